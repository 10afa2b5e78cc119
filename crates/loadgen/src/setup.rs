//! Catalog and account set-up through the API, and the data collection for the audit.

use super::LoadgenArgs;
use super::audit::{Audit, AuditInput, AuditOrder, audit};
use super::users::Outcome;
use anyhow::Context;
use contrail_client::{Airport, CabinLayout, Client, Error, NewAircraft, NewFlight, Order, Signup};
use reqwest::StatusCode;
use std::collections::BTreeMap;
use std::time::Duration;

/// How often a set-up request refused with 429 is tried again (after its `Retry-After`).
const RATE_LIMIT_RETRIES: u32 = 60;

/// Runs a set-up call; set-up requests are a burst from one account (the admin's catalog), so
/// a 429 is waited out as its `Retry-After` says, a bounded number of times.
async fn patiently<T, F, Fut>(mut call: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Err(Error::Api {
                status: StatusCode::TOO_MANY_REQUESTS,
                retry_after,
                ..
            }) if attempt < RATE_LIMIT_RETRIES => {
                attempt += 1;
                let wait = retry_after.unwrap_or(1).clamp(1, 10);
                tokio::time::sleep(Duration::from_secs(wait)).await;
            }
            other => return other,
        }
    }
}

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

/// Airports DEL and BOM, an aircraft with `rows` rows of 6 economy seats, and `count` flights
/// departing on consecutive days from 60 days ahead; their ids.
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
    for code in ["DEL", "BOM"] {
        let airport = Airport {
            code: code.into(),
            name: code.into(),
            city: code.into(),
            country: "IN".into(),
        };
        let created = patiently(|| admin.create_airport(&airport)).await;
        if !exists(&created) {
            created.with_context(|| format!("creating airport {code}"))?;
        }
    }
    let aircraft = NewAircraft {
        model: "LG-1".into(),
        cabins: vec![CabinLayout {
            cabin: "economy".into(),
            rows: [1, rows.max(1)],
            seats: "ABCDEF".into(),
        }],
    };
    let aircraft = patiently(|| admin.create_aircraft(&aircraft))
        .await
        .context("creating the aircraft")?;
    let start = chrono::Utc::now() + chrono::Duration::days(60);
    let mut ids = Vec::with_capacity(count);
    for i in 0..count {
        let departs = start
            + chrono::Duration::days(i as i64 % 300)
            + chrono::Duration::minutes(i as i64 % 600);
        let flight = NewFlight {
            flight_number: format!("LG{}", 1 + i % 9999),
            aircraft_id: aircraft.id.clone(),
            origin: "DEL".into(),
            destination: "BOM".into(),
            departs_at: departs,
            arrives_at: departs + chrono::Duration::minutes(90 + (i as i64 % 60)),
            fares: [("economy".to_owned(), 3000 + (i as u64 % 50) * 100)].into(),
            currency: "USD".into(),
        };
        let flight = patiently(|| admin.create_flight(&flight))
            .await
            .context("creating a flight")?;
        ids.push(flight.id);
    }
    Ok(ids)
}

/// Seats as (flight id, seat name).
type Seats = Vec<(String, String)>;

/// The seats an order holds or bought, and those of its issued tickets.
fn seats_of(order: &Order) -> (Seats, Seats) {
    let held = order
        .segments
        .iter()
        .flat_map(|s| {
            s.seats
                .iter()
                .map(|seat| (s.flight_id.clone(), seat.clone()))
        })
        .collect();
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
        let order = client
            .with_token(token)
            .order(id)
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
        let seats = client
            .seats(flight)
            .await
            .with_context(|| format!("reading the seats of {flight}"))?;
        let map: BTreeMap<String, String> = seats.into_iter().map(|s| (s.seat, s.status)).collect();
        input.seat_maps.insert(flight.clone(), map);
    }
    Ok(audit(&input))
}
