//! One cross-node call, measured through the API of a real 2-node cluster on loopback (two
//! `contrail` processes, as operators run them): the same request through node-a for an entity
//! whose partition node-a leads and for one node-b leads. The difference is the cost of the
//! cross-node call (routing, one `ractor_cluster` round trip to node-b's gateway, node-b's
//! local work); both replicate every write to the other node.
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
use contrail::cluster::raft::partition_of;
use contrail::domain::ids::FlightId;
use contrail::domain::user::Email;
use contrail_client::{Client, NewOrder, Passenger, SegmentRequest, Signup, seed};
use criterion::{Criterion, criterion_group, criterion_main};
use std::time::{Duration, Instant};

/// The first admin of both nodes (`binary::Server` passes them to the child).
const ADMIN_EMAIL: &str = "admin@bench.local";
const ADMIN_PASSWORD: &str = "admin-password-1";
const NODES: [&str; 2] = ["node-a", "node-b"];
/// Partitions of the bench's cluster (every member must agree).
const PARTITIONS: u16 = 16;

/// Starts `name` listening for nodes on `port`, joining through `seed` if given.
fn node(name: &str, data: &std::path::Path, port: u16, seed: Option<u16>) -> Server {
    let listen = format!("127.0.0.1:{port}");
    let seeds = seed.map(|p| format!("127.0.0.1:{p}")).unwrap_or_default();
    let mut env = vec![
        ("CONTRAIL__CLUSTER__NODE_ID", name),
        ("CONTRAIL__CLUSTER__LISTEN", listen.as_str()),
        ("CONTRAIL__CLUSTER__COOKIE", "bench-cookie"),
        ("CONTRAIL__CLUSTER__PARTITIONS", "16"),
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

/// Waits (bounded) until `node` is ready, sees both nodes up and every partition led by one of
/// them, each leading some; an admin client of it and the leader of each partition.
async fn settled(node: &Client) -> (Client, Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        if let Ok(token) = node.signin(ADMIN_EMAIL, ADMIN_PASSWORD).await {
            let admin = node.with_token(&token.token);
            if let Ok(view) = admin.cluster().await {
                let up = view.members.iter().filter(|m| m.status == "up").count();
                let leaders: Vec<String> = view
                    .partitions
                    .iter()
                    .filter_map(|p| p.leader.clone())
                    .collect();
                let spread = NODES.iter().all(|n| leaders.iter().any(|l| l == n));
                if up == NODES.len()
                    && leaders.len() == usize::from(PARTITIONS)
                    && spread
                    && node.ready().await.is_ok()
                {
                    return (admin, leaders);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{} did not see the cluster settle", node.base());
}

/// The leader of `tag`'s partition.
fn owner<'a>(leaders: &'a [String], tag: &str) -> &'a str {
    &leaders[usize::from(partition_of(tag, PARTITIONS))]
}

fn cross_node(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("dir");
    let a_port = free_port();
    let a = node("node-a", dir.path(), a_port, None);
    let b = node("node-b", dir.path(), free_port(), Some(a_port));
    let api = Client::new(&a.base);
    let (customer, flights) = rt.block_on(async {
        let (admin, leaders) = settled(&api).await;
        settled(&Client::new(&b.base)).await;
        let plan = seed::Plan {
            letters: "ABCDEFGHJK".into(),
            ..seed::Plan::new(16, 100)
        };
        let catalog = seed::catalog(&admin, &plan).await.expect("catalog");
        // One flight led by each node.
        let mut flights: [Option<String>; 2] = [None, None];
        for id in catalog.flights {
            let tag = FlightId::parse(&id).expect("id").tag().to_owned();
            flights[usize::from(owner(&leaders, &tag) == "node-b")].get_or_insert(id);
        }
        // A customer whose orders node-a leads (the node the requests go to).
        let email = (0..)
            .map(|i| format!("buyer{i}@bench.local"))
            .find(|e| Email::parse(e).is_ok_and(|e| owner(&leaders, &e.tag()) == "node-a"))
            .expect("email");
        let signup = Signup {
            email,
            password: "bench-password".into(),
            name: "B".into(),
        };
        api.signup(&signup).await.expect("signup");
        let token = api.signin(&signup.email, &signup.password).await;
        let customer = api.with_token(&token.expect("signin").token);
        (customer, flights.map(|f| f.expect("a flight on each node")))
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
                api.flight(flight).await.expect("the flight");
            });
        });
        let order = NewOrder {
            segments: vec![SegmentRequest::in_cabin(flight, "economy", 1)],
            passengers: vec![Passenger { name: "B".into() }],
        };
        group.bench_function(format!("hold_then_cancel/{where_}"), |bench| {
            bench.to_async(&rt).iter(|| async {
                let placed = customer.place_order(&order, None).await.expect("held");
                customer
                    .cancel_order(&placed.order.id)
                    .await
                    .expect("cancelled");
            });
        });
    }
    group.finish();
    drop((a, b));
}

criterion_group!(benches, cross_node);
criterion_main!(benches);
