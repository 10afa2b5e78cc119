//! Virtual users: the request loops of each scenario, bounded by time and request count.

use super::setup::{customer, flights};
use super::stats::Stats;
use super::{LoadgenArgs, Scenario};
use anyhow::Context;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Accounts signed up at once during set-up.
const SIGNUP_CONCURRENCY: usize = 16;

/// What a run produced, for the report and the audit.
pub struct Outcome {
    /// Every request's latency and status.
    pub stats: Stats,
    /// Wall time of the measured part.
    pub elapsed: Duration,
    /// (order id, owner's token) of every order created.
    pub orders: Vec<(String, String)>,
    /// The flights the run used.
    pub flights: Vec<String>,
    /// Rush only: buyers, holds granted.
    pub rush: Option<(usize, u64)>,
}

/// The shared limits of a run.
struct Budget {
    deadline: Instant,
    remaining: AtomicI64,
    done: AtomicU64,
}

impl Budget {
    /// Takes one request from the budget; false once time or count is used up.
    fn take(&self) -> bool {
        if Instant::now() >= self.deadline || self.remaining.fetch_sub(1, Ordering::Relaxed) <= 0 {
            return false;
        }
        self.done.fetch_add(1, Ordering::Relaxed);
        true
    }
}

fn progress(
    args: &LoadgenArgs,
    budget: &Arc<Budget>,
) -> (ProgressBar, tokio::task::JoinHandle<()>) {
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(args.duration_secs.max(1))
    };
    if let Ok(style) = ProgressStyle::with_template("{spinner} {elapsed:>4} [{bar:30}] {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    let (b, budget) = (bar.clone(), budget.clone());
    let started = Instant::now();
    let ticker = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let secs = started.elapsed().as_secs_f64().max(1e-3);
            let done = budget.done.load(Ordering::Relaxed);
            b.set_position(started.elapsed().as_secs());
            b.set_message(format!("{done} requests, {:.0}/s", done as f64 / secs));
        }
    });
    (bar, ticker)
}

async fn timed(
    stats: &mut Stats,
    endpoint: &'static str,
    request: reqwest::RequestBuilder,
) -> Option<(u16, Value)> {
    let started = Instant::now();
    match request.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let body = resp.json().await.unwrap_or(Value::Null);
            stats.record(endpoint, status, started.elapsed());
            Some((status, body))
        }
        Err(_) => {
            stats.record_error(endpoint);
            None
        }
    }
}

/// Runs the scenario.
pub(super) async fn drive(client: &reqwest::Client, args: &LoadgenArgs) -> anyhow::Result<Outcome> {
    let run = format!("{}-{}", args.seed, chrono::Utc::now().timestamp_millis());
    let flight_ids = match args.scenario {
        Scenario::Baseline => vec![],
        Scenario::Rush => flights(client, args, 1, args.seats.div_ceil(6).max(1) as u16).await?,
        Scenario::Browse | Scenario::Book | Scenario::Hold => {
            flights(client, args, args.flights.max(1), 25).await?
        }
    };
    let accounts = match args.scenario {
        Scenario::Book | Scenario::Hold => args.users,
        Scenario::Rush => args.rush_accounts.clamp(1, args.users),
        _ => 0,
    };
    // Accounts are made a few at a time: signup hashes passwords, deliberately slowly.
    let tokens: Vec<String> = futures::stream::iter((0..accounts).map(|i| {
        let (client, base) = (client.clone(), args.targets[i % args.targets.len()].clone());
        let email = format!("lg-{run}-{i}@loadgen.test");
        async move { customer(&client, &base, &email).await }
    }))
    .buffered(SIGNUP_CONCURRENCY)
    .collect::<Vec<_>>()
    .await
    .into_iter()
    .collect::<anyhow::Result<Vec<String>>>()
    .context("creating the load-test accounts")?;

    let budget = Arc::new(Budget {
        deadline: Instant::now()
            + if args.scenario == Scenario::Rush {
                Duration::from_secs(3600)
            } else {
                Duration::from_secs(args.duration_secs)
            },
        remaining: AtomicI64::new(
            args.requests
                .map_or(i64::MAX, |n| i64::try_from(n).unwrap_or(i64::MAX)),
        ),
        done: AtomicU64::new(0),
    });
    let orders = Arc::new(Mutex::new(Vec::new()));
    let flights = Arc::new(flight_ids.clone());
    let gate = Arc::new(tokio::sync::Barrier::new(args.users));
    let (bar, ticker) = progress(args, &budget);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(args.users);
    for vu in 0..args.users {
        let base = args.targets[vu % args.targets.len()].clone();
        let token = if tokens.is_empty() {
            String::new()
        } else {
            tokens[vu % tokens.len()].clone()
        };
        let (client, budget, orders, flights, gate) = (
            client.clone(),
            budget.clone(),
            orders.clone(),
            flights.clone(),
            gate.clone(),
        );
        let (scenario, decline) = (args.scenario, args.decline_rate);
        // `hold` is `book` where every held order is abandoned.
        let abandon = if scenario == Scenario::Hold {
            1.0
        } else {
            args.abandon_rate
        };
        let mut rng =
            fastrand::Rng::with_seed(args.seed.wrapping_mul(1_000_003).wrapping_add(vu as u64));
        tasks.push(tokio::spawn(async move {
            let mut stats = Stats::default();
            match scenario {
                Scenario::Baseline => {
                    while budget.take() {
                        timed(&mut stats, "GET /healthz", client.get(format!("{base}/healthz"))).await;
                    }
                }
                Scenario::Browse => {
                    while budget.take() {
                        let search = format!("{base}/api/v1/flights?origin=DEL&destination=BOM&passengers=1&limit=10");
                        timed(&mut stats, "GET /api/v1/flights", client.get(search)).await;
                        if !budget.take() {
                            break;
                        }
                        let id = &flights[rng.usize(..flights.len())];
                        timed(&mut stats, "GET /api/v1/flights/{id}", client.get(format!("{base}/api/v1/flights/{id}"))).await;
                    }
                }
                Scenario::Book | Scenario::Hold => {
                    while budget.take() {
                        let flight = &flights[rng.usize(..flights.len())];
                        let body = json!({"segments": [{"flight_id": flight, "cabin": "economy", "count": 1}], "passengers": [{"name": "Load Test"}]});
                        let placed = timed(&mut stats, "POST /api/v1/orders", client.post(format!("{base}/api/v1/orders")).bearer_auth(&token).json(&body)).await;
                        let Some((201, order)) = placed else { continue };
                        let id = order["id"].as_str().unwrap_or_default().to_owned();
                        orders.lock().unwrap_or_else(|p| p.into_inner()).push((id.clone(), token.clone()));
                        if rng.f64() < abandon || !budget.take() {
                            continue;
                        }
                        let card = if rng.f64() < decline { "tok_declined" } else { "tok_visa" };
                        let pay = client.post(format!("{base}/api/v1/orders/{id}/pay")).bearer_auth(&token).json(&json!({"payment_token": card}));
                        timed(&mut stats, "POST /api/v1/orders/{id}/pay", pay).await;
                    }
                }
                Scenario::Rush => {
                    let body = json!({"segments": [{"flight_id": flights[0], "cabin": "economy", "count": 1}], "passengers": [{"name": "Rush"}]});
                    gate.wait().await; // everyone at once: the on-sale moment
                    if budget.take() {
                        let placed = timed(&mut stats, "POST /api/v1/orders", client.post(format!("{base}/api/v1/orders")).bearer_auth(&token).json(&body)).await;
                        if let Some((201, order)) = placed {
                            let id = order["id"].as_str().unwrap_or_default().to_owned();
                            orders.lock().unwrap_or_else(|p| p.into_inner()).push((id, token.clone()));
                        }
                    }
                }
            }
            stats
        }));
    }
    let mut stats = Stats::default();
    for t in tasks {
        stats.merge(t.await.context("a virtual user panicked")?);
    }
    let elapsed = started.elapsed();
    ticker.abort();
    bar.finish_and_clear();
    let orders = std::mem::take(&mut *orders.lock().unwrap_or_else(|p| p.into_inner()));
    let rush = (args.scenario == Scenario::Rush).then(|| (args.users, stats.count(201)));
    Ok(Outcome {
        stats,
        elapsed,
        orders,
        flights: flight_ids,
        rush,
    })
}
