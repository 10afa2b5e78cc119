//! The memory target: a catalog of `FLIGHTS` flights (default 1 000 000) with `ACTIVE` flight
//! actors running (default 10 000), measured as the resident set of a real `contrail serve`.
//!
//! The catalog is written straight into a fresh store with the library's own record types and
//! keys (the same records the catalog writes; one durable batch per 10 000 flights, so seeding
//! takes seconds rather than the hours of 1 M API calls), then the binary starts on it (and
//! loads every flight into its search read model), and `ACTIVE` distinct flights are read over
//! HTTP, which activates their actors. Prints the figures and one JSON line for BENCHMARKS.md.
//!
//! `cargo bench --bench memory` (`FLIGHTS=100000 cargo bench --bench memory` for a quick run).

// Shared with the integration tests; the bench needs only part of it.
#[allow(dead_code)]
#[path = "../tests/helpers/binary.rs"]
mod binary;

use binary::Server;
use chrono::{Duration as ChronoDuration, Utc};
use contrail::domain::aircraft::{Cabin, Layout};
use contrail::domain::flight::{Flight, FlightDraft};
use contrail::domain::ids::{AircraftId, FlightId};
use contrail::persistence::{Store, WriteBatch, keys};
use contrail_client::Client;
use futures::StreamExt;
use std::time::{Duration, Instant};

/// The first admin (`binary::Server` passes them to the child).
const ADMIN_EMAIL: &str = "admin@bench.local";
const ADMIN_PASSWORD: &str = "admin-password-1";
const BATCH: usize = 10_000;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A 172-seat narrow-body, as most flights are.
fn layout() -> Layout {
    Layout::new(vec![
        (Cabin::Business, [1, 4], "ACDF".into()),
        (Cabin::Economy, [5, 30], "ABCDEF".into()),
    ])
    .expect("valid layout")
}

/// Writes `n` flights (spread over a year of departures and 20 routes); returns their ids.
async fn seed(store: &Store, n: usize) -> Vec<FlightId> {
    const AIRPORTS: [&str; 5] = ["DEL", "BOM", "BLR", "MAA", "CCU"];
    let layout = layout();
    let aircraft = AircraftId::generate();
    let start = Utc::now() + ChronoDuration::days(2);
    let mut ids = Vec::with_capacity(n);
    let mut batch = WriteBatch::new();
    for i in 0..n {
        let origin = AIRPORTS[i % 5];
        let destination = AIRPORTS[(i / 5 + 1 + i % 5) % 5];
        let destination = if destination == origin {
            AIRPORTS[(i + 1) % 5]
        } else {
            destination
        };
        let departs = start + ChronoDuration::minutes((i % 525_600) as i64);
        let draft = FlightDraft {
            flight_number: format!("CT{}", i % 10_000),
            aircraft_id: aircraft.clone(),
            origin: origin.into(),
            destination: destination.into(),
            departs_at: departs,
            arrives_at: departs + ChronoDuration::minutes(90),
            fares: [(Cabin::Business, 20_000), (Cabin::Economy, 5_000)]
                .into_iter()
                .collect(),
            currency: "USD".into(),
        };
        let flight =
            Flight::new(FlightId::generate(), draft, layout.clone(), Utc::now()).expect("flight");
        batch.put(&keys::flight(&flight.id), &flight).expect("put");
        ids.push(flight.id);
        if (i + 1) % BATCH == 0 || i + 1 == n {
            let full = std::mem::take(&mut batch);
            store.commit(full).expect("commit").await.expect("durable");
        }
    }
    ids
}

/// `VmRSS` and `VmHWM` of `pid`, in MiB.
fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn main() {
    // `cargo bench` passes `--bench`; this harness takes its parameters from the environment.
    let flights = env_or("FLIGHTS", 1_000_000);
    let active = env_or("ACTIVE", 10_000).min(flights);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("node");

    let started = Instant::now();
    let ids = rt.block_on(async {
        let store = Store::open(&data).expect("store");
        let ids = seed(&store, flights).await;
        drop(store);
        ids
    });
    let seed_secs = started.elapsed().as_secs_f64();
    println!("seeded {flights} flights in {seed_secs:.1} s");

    let started = Instant::now();
    let server = Server::start_with(
        &data,
        &[
            ("CONTRAIL__HTTP__ANONYMOUS_RPS", "1000000"),
            ("CONTRAIL__HTTP__ANONYMOUS_BURST", "1000000"),
        ],
    );
    let pid = server.child.id();
    let client = Client::new(&server.base);
    let ready = rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(600);
        while Instant::now() < deadline {
            if client.ready().await.is_ok() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    });
    assert!(ready, "the node did not become ready");
    let startup_secs = started.elapsed().as_secs_f64();
    let (rss_ready, _) = rss_mib(pid);
    println!(
        "ready in {startup_secs:.1} s; RSS {rss_ready:.0} MiB with {flights} flights in the read model"
    );

    let started = Instant::now();
    let failures = rt.block_on(async {
        futures::stream::iter(ids.iter().take(active))
            .map(|id| {
                let client = client.clone();
                async move { client.flight(&id.to_string()).await.is_ok() }
            })
            .buffer_unordered(64)
            .filter(|ok| std::future::ready(!ok))
            .count()
            .await
    });
    assert_eq!(failures, 0, "some flights could not be read");
    let activate_secs = started.elapsed().as_secs_f64();
    let metrics = rt.block_on(client.metrics()).expect("metrics");
    let running = metrics
        .lines()
        .find(|l| l.starts_with("contrail_flight_actors_active"))
        .and_then(|l| l.split_whitespace().last())
        .unwrap_or("?")
        .to_owned();
    let (rss_active, hwm) = rss_mib(pid);
    println!(
        "{active} flights read in {activate_secs:.1} s; flight actors running: {running}; RSS {rss_active:.0} MiB (peak {hwm:.0} MiB); target ≤ 1024 MiB"
    );
    println!(
        "{{\"flights\":{flights},\"active\":{active},\"actors_running\":\"{running}\",\"seed_secs\":{seed_secs:.1},\"startup_secs\":{startup_secs:.1},\"rss_ready_mib\":{rss_ready:.0},\"rss_active_mib\":{rss_active:.0},\"peak_mib\":{hwm:.0}}}"
    );
    drop(server);
}
