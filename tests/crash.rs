//! The booking saga against the real binary under kill -9: nothing acknowledged is lost, no
//! seat ends up in two orders or held by nobody, and holds expire across a restart.

mod helpers;

use contrail_client::{Client, Signup, seed};
use helpers::binary::Server;
use helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, eventually, to_reply};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Option<helpers::Reply> {
        let mut req = self.client.post(format!("{}{path}", self.base)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        Some(to_reply(req.send().await.ok()?).await)
    }

    async fn get(&self, path: &str, token: Option<&str>) -> helpers::Reply {
        let mut req = self.client.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        to_reply(req.send().await.expect("sent")).await
    }

    /// The typed client of the node (the raw `post`/`get` above tell a refusal from a node
    /// that did not answer, which these tests need).
    fn api(&self) -> Client {
        Client::with_http(&self.base, self.client.clone())
    }

    /// An admin token, airports, and `n` flights of `rows`×6 seats; returns the flight ids.
    async fn catalog(&self, n: usize, rows: u16) -> (String, Vec<String>) {
        let admin = self.api().signin(ADMIN_EMAIL, ADMIN_PASSWORD).await;
        let admin = admin.expect("admin signs in").token;
        let plan = seed::Plan {
            first_departure: "2031-07-01T10:00:00Z".parse().expect("rfc3339"),
            minutes: 120,
            fare_cents: 4000,
            ..seed::Plan::new(n, rows)
        };
        let catalog = seed::catalog(&self.api().with_token(&admin), &plan).await;
        (admin, catalog.expect("catalog").flights)
    }

    /// Customer `i`'s token (signed up on first use).
    async fn customer(&self, i: usize) -> String {
        let signup = Signup {
            email: format!("crash{i}@example.com"),
            password: "password-123".into(),
            name: "C".into(),
        };
        // Taken already when a node restarted over the same data: signing in is what counts.
        let _ = self.api().signup(&signup).await;
        let token = self.api().signin(&signup.email, &signup.password).await;
        token.expect("customer signs in").token
    }
}

fn seats(order: &Value) -> Vec<(String, String)> {
    order["segments"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| {
            let flight = s["flight_id"].as_str().unwrap_or_default().to_owned();
            s["seats"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |seat| (flight.clone(), seat.as_str().unwrap_or_default().to_owned()))
        })
        .collect()
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
async fn book_until_killed(
    server: Server,
    client: &reqwest::Client,
    customers: &[String],
    flights: &[String],
    enough: impl Fn(&Acknowledged) -> bool,
) -> Acknowledged {
    let acked = Arc::new(Mutex::new(Acknowledged::default()));
    let mut workers = Vec::new();
    for (w, token) in customers.iter().enumerate() {
        let api = Api {
            client: client.clone(),
            base: server.base.clone(),
        };
        let (token, flights, acked) = (token.clone(), flights.to_vec(), acked.clone());
        workers.push(tokio::spawn(async move {
            for i in 0..100 {
                let flight = &flights[(w + i) % flights.len()];
                let body = json!({"segments": [{"flight_id": flight, "cabin": "economy", "count": 1}], "passengers": [{"name": "P"}]});
                let Some(r) = api.post("/api/v1/orders", Some(&token), body).await else { return };
                if r.status != StatusCode::CREATED {
                    continue;
                }
                let id = r.body["id"].as_str().unwrap_or_default().to_owned();
                acked.lock().expect("lock").created.push((id.clone(), token.clone()));
                if i % 3 == 0 {
                    continue; // leave some held
                }
                let Some(p) = api.post(&format!("/api/v1/orders/{id}/pay"), Some(&token), json!({"payment_token": "tok_visa"})).await else { return };
                if p.status == StatusCode::OK {
                    acked.lock().expect("lock").paid.insert(id);
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
async fn audit(api: &Api, customers: &[String], flights: &[String], acked: &Acknowledged) {
    for (id, token) in &acked.created {
        let r = api.get(&format!("/api/v1/orders/{id}"), Some(token)).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "acknowledged order {id} is gone: {}",
            r.body
        );
        let status = r.body["status"].as_str().unwrap_or_default().to_owned();
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
        let r = api.get("/api/v1/orders", Some(token)).await;
        for order in r.body["orders"].as_array().expect("orders") {
            let status = order["status"].as_str().unwrap_or_default();
            if status != "held" && status != "confirmed" {
                continue;
            }
            let id = order["id"].as_str().unwrap_or_default().to_owned();
            for seat in seats(order) {
                if let Some(other) = live_seats.insert(seat.clone(), id.clone()) {
                    panic!("seat {seat:?} is in orders {other} and {id}");
                }
            }
        }
    }
    for flight in flights {
        let r = api
            .get(&format!("/api/v1/flights/{flight}/seats"), None)
            .await;
        let taken: BTreeSet<String> = r.body["seats"]
            .as_array()
            .expect("seats")
            .iter()
            .filter(|s| s["status"] != "available")
            .filter_map(|s| s["seat"].as_str().map(str::to_owned))
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
    let client = client();
    let server = Server::start(dir.path());
    let api = Api {
        client: client.clone(),
        base: server.base.clone(),
    };
    let (_, flights) = api.catalog(3, 10).await; // 3 × 60 seats
    let customers: Vec<String> = futures::future::join_all((0..12).map(|i| api.customer(i))).await;
    let acked = book_until_killed(server, &client, &customers, &flights, |a| {
        a.paid.len() >= 40
    })
    .await;

    let server = Server::start(dir.path());
    let api = Api {
        client,
        base: server.base.clone(),
    };
    audit(&api, &customers, &flights, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_the_middle_of_group_commits_many_times_loses_nothing() {
    // Under load nearly every moment is inside a group commit: some batches applied and not yet
    // synced, a sync under way, the next group forming. Kill at a different one each round.
    const ROUNDS: usize = 8;
    let dir = tempfile::tempdir().expect("dir");
    let client = client();
    let mut rng = fastrand::Rng::with_seed(7);
    let mut all = Acknowledged::default();
    let mut flights = Vec::new();
    let mut customers = Vec::new();
    for round in 0..ROUNDS {
        let server = Server::start(dir.path());
        let api = Api {
            client: client.clone(),
            base: server.base.clone(),
        };
        // What every earlier round acknowledged survived this restart too.
        audit(&api, &customers, &flights, &all).await;
        if round == 0 {
            customers = futures::future::join_all((0..12).map(|i| api.customer(i))).await;
        }
        let (_, fresh) = api.catalog(2, 10).await; // 2 × 60 seats a round
        flights.extend(fresh.iter().cloned());
        let target = rng.usize(5..=40);
        let acked = book_until_killed(server, &client, &customers, &fresh, |a| {
            a.created.len() >= target
        })
        .await;
        all.created.extend(acked.created);
        all.paid.extend(acked.paid);
    }
    let server = Server::start(dir.path());
    let api = Api {
        client,
        base: server.base.clone(),
    };
    audit(&api, &customers, &flights, &all).await;
    assert!(all.created.len() >= 5 * ROUNDS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_whose_deadline_passes_while_the_node_is_down_expires_on_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let env = [("CONTRAIL__BOOKING__HOLD_TTL_SECS", "2")];
    let server = Server::start_with(dir.path(), &env);
    let api = Api {
        client: client.clone(),
        base: server.base.clone(),
    };
    let (_, flights) = api.catalog(1, 2).await;
    let token = api.customer(0).await;
    let body = json!({"segments": [{"flight_id": flights[0], "cabin": "economy", "count": 3}], "passengers": [{"name": "A"}, {"name": "B"}, {"name": "C"}]});
    let order = api
        .post("/api/v1/orders", Some(&token), body)
        .await
        .expect("order");
    assert_eq!(order.status, StatusCode::CREATED);
    let id = order.body["id"].as_str().expect("id").to_owned();
    let expires_at = chrono::DateTime::parse_from_rfc3339(
        order.body["expires_at"].as_str().expect("expires_at"),
    )
    .expect("time");
    server.kill9();
    let passed = eventually(Duration::from_secs(10), || async {
        chrono::Utc::now() > expires_at
    })
    .await;
    assert!(passed);

    let server = Server::start_with(dir.path(), &env);
    let api = Api {
        client,
        base: server.base.clone(),
    };
    let expired = eventually(Duration::from_secs(15), || async {
        api.get(&format!("/api/v1/orders/{id}"), Some(&token))
            .await
            .body["status"]
            == "expired"
    })
    .await;
    assert!(expired, "the order did not expire after the restart");
    let seats = api
        .get(&format!("/api/v1/flights/{}/seats", flights[0]), None)
        .await;
    assert!(
        seats.body["seats"]
            .as_array()
            .expect("seats")
            .iter()
            .all(|s| s["status"] == "available")
    );
    let r = api
        .post(
            &format!("/api/v1/orders/{id}/pay"),
            Some(&token),
            json!({"payment_token": "tok_visa"}),
        )
        .await
        .expect("up");
    assert_eq!(r.status, StatusCode::CONFLICT);
}
