//! One cross-node call, measured through the API of a real 2-node cluster on loopback (two
//! `contrail` processes, as operators run them): the same request through node-a for an entity
//! node-a owns and for one node-b owns. The difference is the cost of the cross-node call
//! (placement, one `ractor_cluster` round trip to node-b's gateway, node-b's local work).
//!
//! * `get_flight`: `GET /api/v1/flights/{id}` (the flight actor's live seat counts).
//! * `hold_then_cancel`: a customer whose orders live on node-a holds one seat and cancels: the
//!   order saga on node-a holds and releases the seat on the flight's owner (durably).
//!
//! `cargo bench --bench cluster`; results go in BENCHMARKS.md.

// Shared with the integration tests; the bench needs only part of it.
#[allow(dead_code)]
#[path = "../tests/helpers/binary.rs"]
mod binary;

use binary::{Server, free_port};
use contrail::cluster::placement;
use contrail::domain::ids::FlightId;
use contrail::domain::user::Email;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The first admin of both nodes (`binary::Server` passes them to the child).
const ADMIN_EMAIL: &str = "admin@bench.local";
const ADMIN_PASSWORD: &str = "admin-password-1";
const NODES: [&str; 2] = ["node-a", "node-b"];

/// Starts `name` listening for nodes on `port`, joining through `seed` if given.
fn node(name: &str, data: &std::path::Path, port: u16, seed: Option<u16>) -> Server {
    let listen = format!("127.0.0.1:{port}");
    let seeds = seed.map(|p| format!("127.0.0.1:{p}")).unwrap_or_default();
    let mut env = vec![
        ("CONTRAIL__CLUSTER__NODE_ID", name),
        ("CONTRAIL__CLUSTER__LISTEN", listen.as_str()),
        ("CONTRAIL__CLUSTER__COOKIE", "bench-cookie"),
        ("CONTRAIL__HTTP__USER_RPS", "1000000"),
        ("CONTRAIL__HTTP__USER_BURST", "1000000"),
        ("CONTRAIL__HTTP__ANONYMOUS_RPS", "1000000"),
        ("CONTRAIL__HTTP__ANONYMOUS_BURST", "1000000"),
    ];
    if !seeds.is_empty() {
        env.push(("CONTRAIL__CLUSTER__SEEDS", seeds.as_str()));
    }
    Server::start_with(&data.join(name), &env)
}

async fn send(req: reqwest::RequestBuilder, token: Option<&str>) -> (u16, Value) {
    let req = match token {
        Some(t) => req.bearer_auth(t),
        None => req,
    };
    let resp = req.send().await.expect("sent");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Waits (bounded) until `base` is ready and sees both nodes up.
async fn settled(client: &reqwest::Client, base: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        let signin = json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD});
        let (_, t) = send(
            client
                .post(format!("{base}/api/v1/auth/signin"))
                .json(&signin),
            None,
        )
        .await;
        if let Some(token) = t["token"].as_str() {
            let (_, view) = send(client.get(format!("{base}/api/v1/cluster")), Some(token)).await;
            let up = view["members"]
                .as_array()
                .map_or(0, |ms| ms.iter().filter(|m| m["status"] == "up").count());
            let (ready, _) = send(client.get(format!("{base}/readyz")), None).await;
            if up == NODES.len() && ready == 200 {
                return token.to_owned();
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{base} did not see the cluster settle");
}

fn owner(tag: &str) -> &'static str {
    placement::owner(NODES, tag).expect("owner")
}

fn cross_node(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("dir");
    let a_port = free_port();
    let a = node("node-a", dir.path(), a_port, None);
    let b = node("node-b", dir.path(), free_port(), Some(a_port));
    let client = reqwest::Client::new();
    let base = a.base.clone();
    let (token, flights) = rt.block_on(async {
        let admin = settled(&client, &base).await;
        settled(&client, &b.base).await;
        let post = |path: &str, body: Value| send(client.post(format!("{base}{path}")).json(&body), Some(&admin));
        for code in ["DEL", "BOM"] {
            post("/api/v1/airports", json!({"code": code, "name": "n", "city": "c", "country": "IN"})).await;
        }
        let (_, aircraft) = post("/api/v1/aircraft", json!({"model": "B", "cabins": [{"cabin": "economy", "rows": [1, 100], "seats": "ABCDEFGHJK"}]})).await;
        let departs = chrono::Utc::now() + chrono::Duration::days(30);
        // One flight owned by each node.
        let mut flights: [Option<String>; 2] = [None, None];
        for i in 0..64 {
            let (_, flight) = post("/api/v1/flights", json!({
                "flight_number": format!("BM{i}"), "aircraft_id": aircraft["id"], "origin": "DEL", "destination": "BOM",
                "departs_at": departs.to_rfc3339(), "arrives_at": (departs + chrono::Duration::hours(1)).to_rfc3339(),
                "fares": {"economy": 1000}, "currency": "USD"})).await;
            let id = flight["id"].as_str().expect("flight").to_owned();
            let tag = FlightId::parse(&id).expect("id").tag().to_owned();
            let slot = usize::from(owner(&tag) == "node-b");
            flights[slot].get_or_insert(id);
            if flights.iter().all(Option::is_some) {
                break;
            }
        }
        // A customer whose orders live on node-a (the node the requests go to).
        let email = (0..)
            .map(|i| format!("buyer{i}@bench.local"))
            .find(|e| Email::parse(e).is_ok_and(|e| owner(&e.tag()) == "node-a"))
            .expect("email");
        let account = json!({"email": email, "password": "bench-password", "name": "B"});
        send(client.post(format!("{base}/api/v1/auth/signup")).json(&account), None).await;
        let signin = json!({"email": email, "password": "bench-password"});
        let (_, t) = send(client.post(format!("{base}/api/v1/auth/signin")).json(&signin), None).await;
        let token = t["token"].as_str().expect("token").to_owned();
        (token, flights.map(|f| f.expect("a flight on each node")))
    });

    let mut group = c.benchmark_group("cross_node");
    group.measurement_time(Duration::from_secs(6));
    for (flight, owned_by) in flights.iter().zip(NODES) {
        let where_ = if owned_by == "node-a" {
            "local"
        } else {
            "remote"
        };
        group.bench_function(format!("get_flight/{where_}"), |bench| {
            bench.to_async(&rt).iter(|| async {
                let (status, _) =
                    send(client.get(format!("{base}/api/v1/flights/{flight}")), None).await;
                assert_eq!(status, 200);
            });
        });
        group.bench_function(format!("hold_then_cancel/{where_}"), |bench| {
            bench.to_async(&rt).iter(|| async {
                let body = json!({"segments": [{"flight_id": flight, "cabin": "economy", "count": 1}], "passengers": [{"name": "B"}]});
                let (status, order) = send(client.post(format!("{base}/api/v1/orders")).json(&body), Some(&token)).await;
                assert_eq!(status, 201, "{order}");
                let id = order["id"].as_str().expect("order");
                let (status, _) = send(client.post(format!("{base}/api/v1/orders/{id}/cancel")), Some(&token)).await;
                assert_eq!(status, 200);
            });
        });
    }
    group.finish();
    drop((a, b));
}

criterion_group!(benches, cross_node);
criterion_main!(benches);
