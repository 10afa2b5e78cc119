//! Virtual users: the request loops of each scenario, bounded by time and request count.

use super::setup::{customer, flights};
use super::stats::Stats;
use super::{LoadgenArgs, Scenario};
use anyhow::Context;
use contrail_client::{Client, Error, NewOrder, Passenger, Placed, Search, SegmentRequest};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
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

/// Runs one call and records its latency under `endpoint`, with the server's status: `ok`
/// tells it from a success (the typed client has checked it is a documented one).
async fn timed<T>(
    stats: &mut Stats,
    endpoint: &'static str,
    ok: impl Fn(&T) -> u16,
    call: impl Future<Output = Result<T, Error>>,
) -> Option<T> {
    let started = Instant::now();
    let result = call.await;
    match &result {
        Ok(value) => stats.record(endpoint, ok(value), started.elapsed()),
        Err(e) => match e.status() {
            Some(status) => stats.record(endpoint, status.as_u16(), started.elapsed()),
            None => stats.record_error(endpoint),
        },
    }
    result.ok()
}

/// Places `order` as `client`'s customer, timed; a placed order is remembered (with the
/// customer's token) for the audit. Its id.
async fn place(
    stats: &mut Stats,
    client: &Client,
    order: &NewOrder,
    placed: &Mutex<Vec<(String, String)>>,
) -> Option<String> {
    let call = client.place_order(order, None);
    let created = |p: &Placed| if p.replayed { 200 } else { 201 };
    let id = timed(stats, "POST /api/v1/orders", created, call)
        .await?
        .order
        .id;
    let token = client.token().unwrap_or_default().to_owned();
    placed
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((id.clone(), token));
    Some(id)
}

/// One seat in economy on `flight` for `passenger`.
fn one_seat(flight: &str, passenger: &str) -> NewOrder {
    NewOrder {
        segments: vec![SegmentRequest::in_cabin(flight, "economy", 1)],
        passengers: vec![Passenger {
            name: passenger.to_owned(),
        }],
    }
}

/// Runs the scenario.
pub(super) async fn drive(http: &reqwest::Client, args: &LoadgenArgs) -> anyhow::Result<Outcome> {
    let nodes: Vec<Client> = args
        .targets
        .iter()
        .map(|base| Client::with_http(base, http.clone()))
        .collect();
    let client = &nodes[0];
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
    let customers: Vec<Client> = futures::stream::iter((0..accounts).map(|i| {
        let node = nodes[i % nodes.len()].clone();
        let email = format!("lg-{run}-{i}@loadgen.test");
        async move { customer(&node, &email).await }
    }))
    .buffered(SIGNUP_CONCURRENCY)
    .collect::<Vec<_>>()
    .await
    .into_iter()
    .collect::<anyhow::Result<Vec<Client>>>()
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
        // A customer's requests go to the node it signed up on (rush buyers share accounts).
        let client = if customers.is_empty() {
            nodes[vu % nodes.len()].clone()
        } else {
            customers[vu % customers.len()].clone()
        };
        let (budget, orders, flights, gate) = (
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
        let search = Search {
            origin: Some("DEL".into()),
            destination: Some("BOM".into()),
            passengers: Some(1),
            limit: Some(10),
            ..Search::default()
        };
        tasks.push(tokio::spawn(async move {
            let mut stats = Stats::default();
            match scenario {
                Scenario::Baseline => {
                    while budget.take() {
                        timed(&mut stats, "GET /healthz", |_| 200, client.health()).await;
                    }
                }
                Scenario::Browse => {
                    while budget.take() {
                        timed(
                            &mut stats,
                            "GET /api/v1/flights",
                            |_| 200,
                            client.search(&search),
                        )
                        .await;
                        if !budget.take() {
                            break;
                        }
                        let id = &flights[rng.usize(..flights.len())];
                        timed(
                            &mut stats,
                            "GET /api/v1/flights/{id}",
                            |_| 200,
                            client.flight(id),
                        )
                        .await;
                    }
                }
                Scenario::Book | Scenario::Hold => {
                    while budget.take() {
                        let flight = &flights[rng.usize(..flights.len())];
                        let order = one_seat(flight, "Load Test");
                        let Some(id) = place(&mut stats, &client, &order, &orders).await else {
                            continue;
                        };
                        if rng.f64() < abandon || !budget.take() {
                            continue;
                        }
                        let card = if rng.f64() < decline {
                            "tok_declined"
                        } else {
                            "tok_visa"
                        };
                        timed(
                            &mut stats,
                            "POST /api/v1/orders/{id}/pay",
                            |_| 200,
                            client.pay(&id, card, None),
                        )
                        .await;
                    }
                }
                Scenario::Rush => {
                    let order = one_seat(&flights[0], "Rush");
                    gate.wait().await; // everyone at once: the on-sale moment
                    if budget.take() {
                        place(&mut stats, &client, &order, &orders).await;
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
