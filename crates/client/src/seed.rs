//! A catalog to book against, set up through the API: what the load generator, the tests and
//! a new developer's first session all need, written once.

use super::{Aircraft, Airport, CabinLayout, Client, Error, NewAircraft, NewFlight, Result};
use chrono::{DateTime, Duration as Span, Utc};
use reqwest::StatusCode;
use std::time::Duration;

/// How often a set-up request told to come back later is tried again (after its
/// `Retry-After`).
const RATE_LIMIT_RETRIES: u32 = 60;

/// What to create.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Flights, DEL → BOM.
    pub flights: usize,
    /// Economy rows of the aircraft.
    pub rows: u16,
    /// Seat letters of each row.
    pub letters: String,
    /// Departure of the first flight; flight `i` leaves `i` days and `i` minutes later (the
    /// days wrap after 300, the minutes after 600).
    pub first_departure: DateTime<Utc>,
    /// Time in the air of the first flight; flight `i` takes `i % 60` minutes longer.
    pub minutes: i64,
    /// Economy fare of the first flight, in cents; flight `i` costs `(i % 50) × 100` more.
    pub fare_cents: u64,
}

impl Plan {
    /// `flights` flights of `rows` rows of six seats, from 60 days ahead, 90 minutes, $30.
    pub fn new(flights: usize, rows: u16) -> Self {
        Self {
            flights,
            rows,
            letters: "ABCDEF".into(),
            first_departure: Utc::now() + Span::days(60),
            minutes: 90,
            fare_cents: 3000,
        }
    }
}

/// What was created.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// The aircraft type of every flight.
    pub aircraft_id: String,
    /// The flights, in plan order.
    pub flights: Vec<String>,
}

/// Creates airports DEL and BOM (unless they exist), one aircraft and the plan's flights, as
/// `admin` (an admin or airline client).
pub async fn catalog(admin: &Client, plan: &Plan) -> Result<Catalog> {
    for code in ["DEL", "BOM"] {
        airport(admin, code).await?;
    }
    let aircraft = aircraft(admin, plan.rows, &plan.letters).await?;
    let mut flights = Vec::with_capacity(plan.flights);
    for i in 0..plan.flights {
        let n = i as i64;
        let departs = plan.first_departure + Span::days(n % 300) + Span::minutes(n % 600);
        let flight = NewFlight {
            flight_number: format!("CT{}", 1 + i % 9999),
            aircraft_id: aircraft.id.clone(),
            origin: "DEL".into(),
            destination: "BOM".into(),
            departs_at: departs,
            arrives_at: departs + Span::minutes(plan.minutes + n % 60),
            fares: [(
                "economy".to_owned(),
                plan.fare_cents + (i as u64 % 50) * 100,
            )]
            .into(),
            currency: "USD".into(),
        };
        flights.push(patiently(|| admin.create_flight(&flight)).await?.id);
    }
    Ok(Catalog {
        aircraft_id: aircraft.id,
        flights,
    })
}

/// Creates the airport `code` (named after it, in India) unless it exists.
pub async fn airport(admin: &Client, code: &str) -> Result<()> {
    let airport = Airport {
        code: code.into(),
        name: format!("{code} International"),
        city: code.into(),
        country: "IN".into(),
    };
    match patiently(|| admin.create_airport(&airport)).await {
        Err(e) if e.status() == Some(StatusCode::CONFLICT) => Ok(()),
        other => other.map(drop),
    }
}

/// Creates an aircraft type of `rows` economy rows (at least one), one seat per letter of
/// `letters` in each.
pub async fn aircraft(admin: &Client, rows: u16, letters: &str) -> Result<Aircraft> {
    let aircraft = NewAircraft {
        model: "Seed-1".into(),
        cabins: vec![CabinLayout {
            cabin: "economy".into(),
            rows: [1, rows.max(1)],
            seats: letters.to_owned(),
        }],
    };
    patiently(|| admin.create_aircraft(&aircraft)).await
}

/// Runs a call, waiting out "come back later" answers — 429, or 503 with `Retry-After` (a
/// node at capacity, e.g. for password hashing) — as their `Retry-After` says, a bounded
/// number of times: set-up requests are a burst.
pub async fn patiently<T, F, Fut>(mut call: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Err(Error::Api {
                status,
                retry_after,
                ..
            }) if attempt < RATE_LIMIT_RETRIES
                && (status == StatusCode::TOO_MANY_REQUESTS
                    || (status == StatusCode::SERVICE_UNAVAILABLE && retry_after.is_some())) =>
            {
                attempt += 1;
                let wait = retry_after.unwrap_or(1).clamp(1, 10);
                tokio::time::sleep(Duration::from_secs(wait)).await;
            }
            other => return other,
        }
    }
}
