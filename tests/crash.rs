//! The booking saga against the real binary under kill -9: nothing acknowledged is lost, no
//! seat ends up in two orders or held by nobody, and holds expire across a restart.

mod helpers;

use contrail_client::{Client, Error, NewOrder, Passenger, SegmentRequest, Signup, seed};
use helpers::binary::Server;
use helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, eventually};
use reqwest::StatusCode;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The typed client of `server` over `http` (whose timeout bounds a call to a killed node).
fn node(server: &Server, http: &reqwest::Client) -> Client {
    Client::with_http(&server.base, http.clone())
}

/// As the admin: airports, and `n` flights of `rows`×6 seats (the seeding helper); their ids.
async fn catalog(node: &Client, n: usize, rows: u16) -> Vec<String> {
    let admin = node.signin(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let admin = admin.expect("admin signs in").token;
    let plan = seed::Plan {
        first_departure: "2031-07-01T10:00:00Z".parse().expect("rfc3339"),
        minutes: 120,
        fare_cents: 4000,
        ..seed::Plan::new(n, rows)
    };
    let catalog = seed::catalog(&node.with_token(&admin), &plan).await;
    catalog.expect("catalog").flights
}

/// Customer `i`'s token (signed up on first use).
async fn customer(node: &Client, i: usize) -> String {
    let signup = Signup {
        email: format!("crash{i}@example.com"),
        password: "password-123".into(),
        name: "C".into(),
    };
    // Taken already when a node restarted over the same data: signing in is what counts.
    let _ = node.signup(&signup).await;
    let token = node.signin(&signup.email, &signup.password).await;
    token.expect("customer signs in").token
}

/// What the clients were told: (order id, customer token) for every 201, and the ids of the
/// orders whose payment was answered 200.
#[derive(Default)]
struct Acknowledged {
    created: Vec<(String, String)>,
    paid: BTreeSet<String>,
}

/// Twelve customers book (and pay for two in three) on `flights` until `enough` says so, then
/// the node is killed with SIGKILL while they are still writing; returns what was acknowledged.
/// A worker stops at the first request the node did not answer.
async fn book_until_killed(
    server: Server,
    http: &reqwest::Client,
    customers: &[String],
    flights: &[String],
    enough: impl Fn(&Acknowledged) -> bool,
) -> Acknowledged {
    let acked = Arc::new(Mutex::new(Acknowledged::default()));
    let mut workers = Vec::new();
    for (w, token) in customers.iter().enumerate() {
        let me = node(&server, http).with_token(token);
        let (token, flights, acked) = (token.clone(), flights.to_vec(), acked.clone());
        workers.push(tokio::spawn(async move {
            for i in 0..100 {
                let flight = &flights[(w + i) % flights.len()];
                let one = NewOrder {
                    segments: vec![SegmentRequest::in_cabin(flight, "economy", 1)],
                    passengers: vec![Passenger { name: "P".into() }],
                };
                let id = match me.place_order(&one, None).await {
                    Ok(placed) if !placed.replayed => placed.order.id,
                    Err(Error::Transport(_)) => return,
                    _ => continue,
                };
                acked
                    .lock()
                    .expect("lock")
                    .created
                    .push((id.clone(), token.clone()));
                if i % 3 == 0 {
                    continue; // leave some held
                }
                match me.pay(&id, "tok_visa", None).await {
                    Ok(_) => {
                        acked.lock().expect("lock").paid.insert(id);
                    }
                    Err(Error::Transport(_)) => return,
                    Err(_) => {}
                }
            }
        }));
    }
    let reached = eventually(Duration::from_secs(60), || async {
        enough(&acked.lock().expect("lock"))
    })
    .await;
    assert!(reached, "too little was acknowledged before the kill");
    server.kill9();
    for w in workers {
        let _ = tokio::time::timeout(Duration::from_secs(30), w).await;
    }
    std::mem::take(&mut *acked.lock().expect("lock"))
}

/// After a restart: every acknowledged order exists in the state it was acknowledged in (or
/// later), no seat is in two live orders, every held or sold seat belongs to a live order and
/// every live order's seats are held or sold.
async fn audit(node: &Client, customers: &[String], flights: &[String], acked: &Acknowledged) {
    for (id, token) in &acked.created {
        let order = node.with_token(token).order(id).await;
        let order = order.unwrap_or_else(|e| panic!("acknowledged order {id} is gone: {e}"));
        let status = order.status;
        if acked.paid.contains(id) {
            assert_eq!(status, "confirmed", "paid order {id} is {status}");
        } else {
            assert!(
                status == "held" || status == "confirmed",
                "order {id} is {status}"
            );
        }
    }
    // Every live order (including any written just before the kill, whose 201 was lost) and
    // its seats: no seat in two orders.
    let mut live_seats: BTreeMap<(String, String), String> = BTreeMap::new();
    for token in customers {
        let orders = node.with_token(token).orders().await.expect("orders");
        for order in &orders {
            if order.status != "held" && order.status != "confirmed" {
                continue;
            }
            for seat in order.seats() {
                if let Some(other) = live_seats.insert(seat.clone(), order.id.clone()) {
                    panic!("seat {seat:?} is in orders {other} and {}", order.id);
                }
            }
        }
    }
    for flight in flights {
        let taken: BTreeSet<String> = node
            .seats(flight)
            .await
            .expect("seats")
            .into_iter()
            .filter(|s| s.status != "available")
            .map(|s| s.seat)
            .collect();
        let ours: BTreeSet<String> = live_seats
            .keys()
            .filter(|(f, _)| f == flight)
            .map(|(_, s)| s.clone())
            .collect();
        assert_eq!(
            taken, ours,
            "flight {flight}: seats held by nobody, or orders without their seats"
        );
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_booking_loses_nothing_and_leaves_no_phantom_seat() {
    let dir = tempfile::tempdir().expect("dir");
    let http = client();
    let server = Server::start(dir.path());
    let api = node(&server, &http);
    let flights = catalog(&api, 3, 10).await; // 3 × 60 seats
    let customers: Vec<String> =
        futures::future::join_all((0..12).map(|i| customer(&api, i))).await;
    let acked =
        book_until_killed(server, &http, &customers, &flights, |a| a.paid.len() >= 40).await;

    let server = Server::start(dir.path());
    audit(&node(&server, &http), &customers, &flights, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_the_middle_of_group_commits_many_times_loses_nothing() {
    // Under load nearly every moment is inside a group commit: some batches applied and not yet
    // synced, a sync under way, the next group forming. Kill at a different one each round.
    const ROUNDS: usize = 8;
    let dir = tempfile::tempdir().expect("dir");
    let http = client();
    let mut rng = fastrand::Rng::with_seed(7);
    let mut all = Acknowledged::default();
    let mut flights = Vec::new();
    let mut customers = Vec::new();
    for round in 0..ROUNDS {
        let server = Server::start(dir.path());
        let api = node(&server, &http);
        // What every earlier round acknowledged survived this restart too.
        audit(&api, &customers, &flights, &all).await;
        if round == 0 {
            customers = futures::future::join_all((0..12).map(|i| customer(&api, i))).await;
        }
        let fresh = catalog(&api, 2, 10).await; // 2 × 60 seats a round
        flights.extend(fresh.iter().cloned());
        let target = rng.usize(5..=40);
        let acked = book_until_killed(server, &http, &customers, &fresh, |a| {
            a.created.len() >= target
        })
        .await;
        all.created.extend(acked.created);
        all.paid.extend(acked.paid);
    }
    let server = Server::start(dir.path());
    audit(&node(&server, &http), &customers, &flights, &all).await;
    assert!(all.created.len() >= 5 * ROUNDS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_whose_deadline_passes_while_the_node_is_down_expires_on_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let http = client();
    let env = [("CONTRAIL__BOOKING__HOLD_TTL_SECS", "2")];
    let server = Server::start_with(dir.path(), &env);
    let api = node(&server, &http);
    let flights = catalog(&api, 1, 2).await;
    let token = customer(&api, 0).await;
    let three = NewOrder {
        segments: vec![SegmentRequest::in_cabin(&flights[0], "economy", 3)],
        passengers: ["A", "B", "C"]
            .map(|name| Passenger { name: name.into() })
            .into(),
    };
    let order = api.with_token(&token).place_order(&three, None).await;
    let order = order.expect("order");
    assert!(!order.replayed, "a new order answered 200");
    let (id, expires_at) = (order.order.id, order.order.expires_at);
    server.kill9();
    let passed = eventually(Duration::from_secs(10), || async {
        chrono::Utc::now() > expires_at
    })
    .await;
    assert!(passed);

    let server = Server::start_with(dir.path(), &env);
    let me = node(&server, &http).with_token(&token);
    let expired = eventually(Duration::from_secs(15), || async {
        me.order(&id).await.is_ok_and(|o| o.status == "expired")
    })
    .await;
    assert!(expired, "the order did not expire after the restart");
    let seats = me.seats(&flights[0]).await.expect("seats");
    assert!(seats.iter().all(|s| s.status == "available"));
    let r = me.pay(&id, "tok_visa", None).await;
    assert_eq!(
        r.expect_err("an expired order was paid").status(),
        Some(StatusCode::CONFLICT)
    );
}
