//! Catalog and account set-up through the API, and the data collection for the audit.

use super::LoadgenArgs;
use super::audit::{Audit, AuditInput, AuditOrder, audit};
use super::users::Outcome;
use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// How often a set-up request refused with 429 is tried again (after its `Retry-After`).
const RATE_LIMIT_RETRIES: u32 = 60;

/// POSTs JSON and returns (status, body). Set-up requests are a burst from one account (the
/// admin's catalog): a 429 is waited out as its `Retry-After` says, a bounded number of times.
pub(super) async fn post(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: &Value,
) -> anyhow::Result<(u16, Value)> {
    let mut attempt = 0;
    loop {
        let mut req = client.post(url).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.with_context(|| format!("POST {url}"))?;
        let status = resp.status().as_u16();
        if status == 429 && attempt < RATE_LIMIT_RETRIES {
            attempt += 1;
            let wait = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(1u64);
            tokio::time::sleep(std::time::Duration::from_secs(wait.clamp(1, 10))).await;
            continue;
        }
        return Ok((status, resp.json().await.unwrap_or(Value::Null)));
    }
}

/// GETs JSON and returns (status, body).
pub(super) async fn get(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
) -> anyhow::Result<(u16, Value)> {
    let mut req = client.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.with_context(|| format!("GET {url}"))?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await.unwrap_or(Value::Null)))
}

/// Signs in; the token.
pub(super) async fn sign_in(
    client: &reqwest::Client,
    base: &str,
    email: &str,
    password: &str,
) -> anyhow::Result<String> {
    let (status, body) = post(
        client,
        &format!("{base}/api/v1/auth/signin"),
        None,
        &json!({"email": email, "password": password}),
    )
    .await?;
    if status != 200 {
        bail!("signing in as {email} failed with {status}: {body}");
    }
    body["token"]
        .as_str()
        .map(str::to_owned)
        .context("signin answered without a token")
}

/// Creates (or signs in) a customer account; its token.
pub(super) async fn customer(
    client: &reqwest::Client,
    base: &str,
    email: &str,
) -> anyhow::Result<String> {
    let password = "loadgen-password";
    let (status, body) = post(
        client,
        &format!("{base}/api/v1/auth/signup"),
        None,
        &json!({"email": email, "password": password, "name": "Load"}),
    )
    .await?;
    if status != 201 && status != 409 {
        bail!("signing up {email} failed with {status}: {body}");
    }
    sign_in(client, base, email, password).await
}

/// Airports DEL and BOM, an aircraft with `rows` rows of 6 economy seats, and `count` flights
/// departing on consecutive days from 60 days ahead; their ids.
pub(super) async fn flights(
    client: &reqwest::Client,
    args: &LoadgenArgs,
    count: usize,
    rows: u16,
) -> anyhow::Result<Vec<String>> {
    let base = &args.targets[0];
    let admin = sign_in(client, base, &args.admin_email, &args.admin_password)
        .await
        .context(
            "the catalog is set up with the admin account (--admin-email, --admin-password)",
        )?;
    for code in ["DEL", "BOM"] {
        let (status, body) = post(
            client,
            &format!("{base}/api/v1/airports"),
            Some(&admin),
            &json!({"code": code, "name": code, "city": code, "country": "IN"}),
        )
        .await?;
        if status != 201 && status != 409 {
            bail!("creating airport {code} failed with {status}: {body}");
        }
    }
    let (status, aircraft) = post(
        client,
        &format!("{base}/api/v1/aircraft"),
        Some(&admin),
        &json!({"model": "LG-1", "cabins": [{"cabin": "economy", "rows": [1, rows.max(1)], "seats": "ABCDEF"}]}),
    )
    .await?;
    if status != 201 {
        bail!("creating the aircraft failed with {status}: {aircraft}");
    }
    let aircraft = aircraft["id"]
        .as_str()
        .context("aircraft without id")?
        .to_owned();
    let start = chrono::Utc::now() + chrono::Duration::days(60);
    let mut ids = Vec::with_capacity(count);
    for i in 0..count {
        let departs = start
            + chrono::Duration::days(i as i64 % 300)
            + chrono::Duration::minutes(i as i64 % 600);
        let body = json!({
            "flight_number": format!("LG{}", 1 + i % 9999),
            "aircraft_id": aircraft,
            "origin": "DEL",
            "destination": "BOM",
            "departs_at": departs.to_rfc3339(),
            "arrives_at": (departs + chrono::Duration::minutes(90 + (i as i64 % 60))).to_rfc3339(),
            "fares": {"economy": 3000 + (i as u64 % 50) * 100},
            "currency": "USD",
        });
        let (status, flight) = post(
            client,
            &format!("{base}/api/v1/flights"),
            Some(&admin),
            &body,
        )
        .await?;
        if status != 201 {
            bail!("creating a flight failed with {status}: {flight}");
        }
        ids.push(
            flight["id"]
                .as_str()
                .context("flight without id")?
                .to_owned(),
        );
    }
    Ok(ids)
}

fn pairs(order: &Value, field: &str, only_issued: bool) -> Vec<(String, String)> {
    order[field]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|item| {
            let flight = item["flight_id"].as_str().unwrap_or_default().to_owned();
            let seats: Vec<String> = if field == "segments" {
                item["seats"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            } else if !only_issued || item["status"] == "issued" {
                item["seat"]
                    .as_str()
                    .map(str::to_owned)
                    .into_iter()
                    .collect()
            } else {
                vec![]
            };
            seats.into_iter().map(move |s| (flight.clone(), s))
        })
        .collect()
}

/// Reads back every order the run created and the seat maps of its flights, then audits.
pub(super) async fn collect_and_audit(
    client: &reqwest::Client,
    args: &LoadgenArgs,
    outcome: &Outcome,
) -> anyhow::Result<Audit> {
    let base = &args.targets[0];
    let mut input = AuditInput {
        failures: outcome.stats.failures(),
        ..AuditInput::default()
    };
    for (id, token) in &outcome.orders {
        let (status, order) =
            get(client, &format!("{base}/api/v1/orders/{id}"), Some(token)).await?;
        if status != 200 {
            bail!("reading order {id} for the audit failed with {status}: {order}");
        }
        input.orders.push(AuditOrder {
            id: id.clone(),
            status: order["status"].as_str().unwrap_or_default().to_owned(),
            seats: pairs(&order, "segments", false),
            issued: pairs(&order, "tickets", true),
        });
    }
    for flight in &outcome.flights {
        let (status, seats) = get(
            client,
            &format!("{base}/api/v1/flights/{flight}/seats"),
            None,
        )
        .await?;
        if status != 200 {
            bail!("reading the seats of {flight} failed with {status}");
        }
        let map: BTreeMap<String, String> = seats["seats"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                (
                    s["seat"].as_str().unwrap_or_default().to_owned(),
                    s["status"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        input.seat_maps.insert(flight.clone(), map);
    }
    Ok(audit(&input))
}
