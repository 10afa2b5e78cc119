//! Catalog and account set-up through the API, and the data collection for the audit.

use super::LoadgenArgs;
use super::audit::{Audit, AuditInput, AuditOrder, audit};
use super::users::Outcome;
use anyhow::Context;
use contrail_client::seed::{self, patiently};
use contrail_client::{Client, Error, Order, Signup};
use reqwest::StatusCode;
use std::collections::BTreeMap;

/// Whether a creation was refused only because the thing exists already.
fn exists(result: &Result<impl Sized, Error>) -> bool {
    matches!(result, Err(e) if e.status() == Some(StatusCode::CONFLICT))
}

/// Signs in; a client carrying the token.
pub(super) async fn sign_in(
    client: &Client,
    email: &str,
    password: &str,
) -> anyhow::Result<Client> {
    let token = patiently(|| client.signin(email, password))
        .await
        .with_context(|| format!("signing in as {email}"))?;
    Ok(client.with_token(&token.token))
}

/// Creates (or signs in) a customer account; a client carrying its token.
pub(super) async fn customer(client: &Client, email: &str) -> anyhow::Result<Client> {
    let signup = Signup {
        email: email.to_owned(),
        password: "loadgen-password".into(),
        name: "Load".into(),
    };
    let created = patiently(|| client.signup(&signup)).await;
    if !exists(&created) {
        created.with_context(|| format!("signing up {email}"))?;
    }
    sign_in(client, email, &signup.password).await
}

/// The catalog of a run: `count` flights of `rows` rows of six economy seats (see
/// [`seed::catalog`]); their ids.
pub(super) async fn flights(
    client: &Client,
    args: &LoadgenArgs,
    count: usize,
    rows: u16,
) -> anyhow::Result<Vec<String>> {
    let admin = sign_in(client, &args.admin_email, &args.admin_password)
        .await
        .context(
            "the catalog is set up with the admin account (--admin-email, --admin-password)",
        )?;
    let catalog = seed::catalog(&admin, &seed::Plan::new(count, rows))
        .await
        .context("setting up the catalog")?;
    Ok(catalog.flights)
}

/// Seats as (flight id, seat name).
type Seats = Vec<(String, String)>;

/// The seats an order holds or bought, and those of its issued tickets.
fn seats_of(order: &Order) -> (Seats, Seats) {
    let held = order.seats();
    let issued = order
        .tickets
        .iter()
        .filter(|t| t.status == "issued")
        .map(|t| (t.flight_id.clone(), t.seat.clone()))
        .collect();
    (held, issued)
}

/// Reads back every order the run created and the seat maps of its flights, then audits.
pub(super) async fn collect_and_audit(client: &Client, outcome: &Outcome) -> anyhow::Result<Audit> {
    let mut input = AuditInput {
        failures: outcome.stats.failures(),
        ..AuditInput::default()
    };
    for (id, token) in &outcome.orders {
        // A customer's reads are rate-limited like its bookings: wait out a 429.
        let owner = client.with_token(token);
        let order = patiently(|| owner.order(id))
            .await
            .with_context(|| format!("reading order {id} for the audit"))?;
        let (seats, issued) = seats_of(&order);
        input.orders.push(AuditOrder {
            id: id.clone(),
            status: order.status,
            seats,
            issued,
        });
    }
    for flight in &outcome.flights {
        let seats = patiently(|| client.seats(flight))
            .await
            .with_context(|| format!("reading the seats of {flight}"))?;
        let map: BTreeMap<String, String> = seats.into_iter().map(|s| (s.seat, s.status)).collect();
        input.seat_maps.insert(flight.clone(), map);
    }
    Ok(audit(&input))
}
