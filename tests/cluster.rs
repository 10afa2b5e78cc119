//! Multi-node clusters of real `contrail` processes on loopback: placement and forwarding,
//! cross-node sagas, node loss and return, partitions, join under load, drain.

mod helpers;

use contrail::cluster::placement;
use helpers::binary::{Server, free_port};
use helpers::{TestApp, client_of, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

const COOKIE: &str = "cluster-test-cookie";

/// One node of a test cluster: its process, data directory and cluster address.
struct Member {
    name: String,
    port: u16,
    data: PathBuf,
    seeds: Vec<u16>,
    server: Option<Server>,
    app: TestApp,
}

impl Member {
    fn start(name: &str, root: &Path, seeds: &[u16]) -> Self {
        let port = free_port();
        let data = root.join(name);
        let mut member = Self {
            name: name.to_owned(),
            port,
            data,
            seeds: seeds.to_vec(),
            server: None,
            app: client_of("http://127.0.0.1:1"),
        };
        member.launch();
        member
    }

    fn launch(&mut self) {
        let listen = format!("127.0.0.1:{}", self.port);
        let seeds = self
            .seeds
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut env = vec![
            ("CONTRAIL__CLUSTER__NODE_ID", self.name.as_str()),
            ("CONTRAIL__CLUSTER__LISTEN", listen.as_str()),
            ("CONTRAIL__CLUSTER__COOKIE", COOKIE),
            ("CONTRAIL__CLUSTER__HEARTBEAT_MS", "150"),
            ("CONTRAIL__CLUSTER__DOWN_AFTER_MS", "1200"),
            ("CONTRAIL__CLUSTER__FAULT_INJECTION", "true"),
            ("CONTRAIL__ACTORS__CALL_TIMEOUT_MS", "3000"),
        ];
        if !seeds.is_empty() {
            env.push(("CONTRAIL__CLUSTER__SEEDS", seeds.as_str()));
        }
        let server = Server::start_with(&self.data, &env);
        self.app = client_of(&server.base);
        self.server = Some(server);
    }

    fn kill9(&mut self) {
        if let Some(server) = self.server.take() {
            server.kill9();
        }
    }
}

/// The cluster as seen by `app` (admin).
async fn view(app: &TestApp, admin: &str) -> Value {
    let r = app.get("/api/v1/cluster", Some(admin)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body
}

/// Waits until every member reports `n` members, all up, and serves.
async fn settled(members: &[&Member], n: usize) {
    for m in members {
        let ok = eventually(Duration::from_secs(60), || async {
            let ready = m.app.get("/readyz", None).await.status == StatusCode::OK;
            let r = m.app.get("/api/v1/cluster", Some(&admin(m).await)).await;
            ready
                && r.status == StatusCode::OK
                && r.body["members"].as_array().map(Vec::len) == Some(n)
                && r.body["members"]
                    .as_array()
                    .is_some_and(|ms| ms.iter().all(|x| x["status"] == "up"))
        })
        .await;
        assert!(ok, "{} did not see {n} members up", m.name);
    }
}

async fn admin(m: &Member) -> String {
    let r = m
        .app
        .signin(helpers::ADMIN_EMAIL, helpers::ADMIN_PASSWORD)
        .await;
    r.body["token"].as_str().unwrap_or_default().to_owned()
}

/// Starts `names[0]` as the founder and the rest joining through it, one after the other.
async fn cluster(root: &Path, names: &[&str]) -> Vec<Member> {
    let first = Member::start(names[0], root, &[]);
    let seed = first.port;
    let mut members = vec![first];
    settled(&members.iter().collect::<Vec<_>>(), 1).await;
    for name in &names[1..] {
        members.push(Member::start(name, root, &[seed]));
        let n = members.len();
        settled(&members.iter().collect::<Vec<_>>(), n).await;
    }
    members
}

/// The owner of an entity id under a member list.
fn owner_of(id: &str, members: &[&str]) -> String {
    let tag = &id[4..20];
    placement::owner(members.iter().copied(), tag)
        .expect("owner")
        .to_owned()
}

/// Creates flights (through `app`) until each of `wanted` owners has one; returns them.
async fn flights_owned_by(
    app: &TestApp,
    admin: &str,
    aircraft: &str,
    members: &[&str],
    wanted: &[&str],
) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    for i in 0..60 {
        let body = TestApp::flight_body(
            aircraft,
            "DEL",
            "BOM",
            "2031-03-01T08:00:00Z",
            120,
            5000 + i,
        );
        let id = app.flight(admin, body).await;
        let owner = owner_of(&id, members);
        if wanted.contains(&owner.as_str()) {
            found.entry(owner).or_insert(id);
        }
        if found.len() == wanted.len() {
            break;
        }
    }
    assert_eq!(found.len(), wanted.len(), "no flight landed on some node");
    found
}

/// Seats of live orders, failing if a seat is in two orders.
fn seats_by_order(orders: &[Value]) -> BTreeMap<(String, String), String> {
    let mut taken = BTreeMap::new();
    for o in orders {
        if !matches!(o["status"].as_str(), Some("held" | "confirmed")) {
            continue;
        }
        for seg in o["segments"].as_array().into_iter().flatten() {
            for seat in seg["seats"].as_array().into_iter().flatten() {
                let key = (
                    seg["flight_id"].as_str().unwrap_or_default().to_owned(),
                    seat.as_str().unwrap_or_default().to_owned(),
                );
                let order = o["id"].as_str().unwrap_or_default().to_owned();
                if let Some(other) = taken.insert(key.clone(), order.clone()) {
                    panic!("seat {key:?} is in orders {other} and {order}");
                }
            }
        }
    }
    taken
}

async fn all_orders(app: &TestApp, admin: &str) -> Vec<Value> {
    let r = app.get("/api/v1/orders", Some(admin)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["orders"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_sell_each_seat_once_and_run_cross_node_sagas() {
    let root = tempfile::tempdir().expect("dir");
    let nodes = cluster(root.path(), &["node-a", "node-b", "node-c"]).await;
    let names = ["node-a", "node-b", "node-c"];
    let (a, b, c) = (&nodes[0].app, &nodes[1].app, &nodes[2].app);
    let admin = admin(&nodes[0]).await;
    // The catalog is written through one node and read through another.
    b.airport(&admin, "DEL").await;
    c.airport(&admin, "BOM").await;
    let airports = a.get("/api/v1/airports", None).await;
    assert_eq!(airports.body["airports"].as_array().map(Vec::len), Some(2));
    let fifty = b.aircraft(&admin, 10, "ABCDE").await;
    let flight = c
        .flight(
            &admin,
            TestApp::flight_body(&fifty, "DEL", "BOM", "2031-03-01T08:00:00Z", 120, 5000),
        )
        .await;

    // 300 concurrent buyers spread over the three nodes' HTTP ports.
    let customers = a.customers(300).await;
    let apps = [a, b, c];
    let attempts = customers.iter().enumerate().map(|(i, (_, token))| {
        let app = apps[i % 3];
        let flight = flight.clone();
        async move { app.order(token, &[&flight], 1, None).await.status }
    });
    let statuses = futures::future::join_all(attempts).await;
    let won = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let lost = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((won, lost), (50, 250), "{statuses:?}");
    let taken = seats_by_order(&all_orders(b, &admin).await);
    assert_eq!(taken.len(), 50);
    let map = c.seat_statuses(&flight).await;
    assert_eq!(map.values().filter(|s| *s == "held").count(), 50);

    // A two-segment order whose flights live on different nodes confirms.
    let by_owner = flights_owned_by(a, &admin, &fifty, &names, &["node-b", "node-c"]).await;
    let (f1, f2) = (&by_owner["node-b"], &by_owner["node-c"]);
    let (_, token) = a.customer().await;
    let placed = a.order(&token, &[f1, f2], 2, None).await;
    assert_eq!(placed.status, StatusCode::CREATED, "{}", placed.body);
    let id = placed.body["id"].as_str().expect("id").to_owned();
    let paid = c.pay(&token, &id, "tok_visa", None).await;
    assert_eq!(paid.status, StatusCode::OK, "{}", paid.body);
    assert_eq!(paid.body["status"], "confirmed");
    assert_eq!(paid.body["tickets"].as_array().map(Vec::len), Some(4));

    // One whose second flight (another node's) is full leaves the first untouched.
    let tiny = a.aircraft(&admin, 1, "A").await;
    let full = flights_owned_by(a, &admin, &tiny, &names, &["node-a"]).await["node-a"].clone();
    let (_, other) = b.customer().await;
    assert_eq!(
        b.order(&other, &[&full], 1, None).await.status,
        StatusCode::CREATED
    );
    let before = b.seat_statuses(f1).await;
    let refused = c.order(&token, &[f1, &full], 1, None).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert_eq!(refused.code(), "seats_unavailable");
    assert_eq!(a.seat_statuses(f1).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_node_answers_503_keeps_its_bookings_and_a_cut_off_node_stops_writing() {
    let root = tempfile::tempdir().expect("dir");
    let mut nodes = cluster(root.path(), &["node-a", "node-b", "node-c"]).await;
    let names = ["node-a", "node-b", "node-c"];
    let index = |name: &str| names.iter().position(|n| *n == name).expect("member");
    // The admin account lives on one node: that one is cut off later (its own admin calls work
    // without the others); another one is killed.
    let admin_home = placement::owner(names, &contrail::domain::ids::tag_for(helpers::ADMIN_EMAIL))
        .expect("owner")
        .to_owned();
    let victim = names
        .iter()
        .find(|n| **n != admin_home)
        .expect("victim")
        .to_string();
    let survivor = names
        .iter()
        .find(|n| **n != admin_home && **n != victim)
        .expect("survivor")
        .to_string();
    let admin = admin(&nodes[0]).await;
    let s = nodes[index(&survivor)].app.clone_client();
    s.airport(&admin, "DEL").await;
    s.airport(&admin, "BOM").await;
    let aircraft = s.aircraft(&admin, 10, "ABCDE").await;
    let flights = flights_owned_by(&s, &admin, &aircraft, &names, &[&victim, &admin_home]).await;
    let (on_victim, on_home) = (flights[&victim].clone(), flights[&admin_home].clone());
    let token = loop {
        let (id, token) = s.customer().await;
        if owner_of(&id, &names) != victim {
            break token;
        }
    };
    let mut booked = Vec::new();
    for _ in 0..3 {
        let r = s.order(&token, &[&on_victim], 1, None).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        booked.push(
            r.body["segments"][0]["seats"][0]
                .as_str()
                .expect("seat")
                .to_owned(),
        );
    }

    // kill -9 the victim: its flight answers 503 with Retry-After, the rest keeps booking.
    nodes[index(&victim)].kill9();
    let gone = eventually(Duration::from_secs(20), || async {
        s.get(&format!("/api/v1/flights/{on_victim}/seats"), None)
            .await
            .status
            == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    assert!(gone, "a dead owner's flight did not answer 503");
    let r = s.order(&token, &[&on_victim], 1, None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    assert!(r.headers.contains_key("retry-after"));
    let r = s.order(&token, &[&on_home], 1, None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

    // It returns with its disk: every acknowledged booking is there.
    nodes[index(&victim)].launch();
    let back = eventually(Duration::from_secs(60), || async {
        s.get(&format!("/api/v1/flights/{on_victim}/seats"), None)
            .await
            .status
            == StatusCode::OK
    })
    .await;
    assert!(back, "the returning owner's flight did not come back");
    let seats = s.seat_statuses(&on_victim).await;
    for seat in &booked {
        assert_eq!(seats[seat], "held", "{seat} lost after kill -9");
    }
    settled(&nodes.iter().collect::<Vec<_>>(), 3).await;

    // Cut the admin's node off from both others for a while: it has no majority, so it stops
    // serving its flight, and the others cannot reach it: nobody accepts a write for it.
    let cut_for = json!(8000);
    for other in names.iter().filter(|n| **n != admin_home) {
        let r = nodes[index(other)]
            .app
            .post(
                "/api/v1/cluster/faults",
                Some(&admin),
                json!({"blocked": [admin_home], "for_ms": cut_for}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let others: Vec<&str> = names.iter().copied().filter(|n| *n != admin_home).collect();
    let home = nodes[index(&admin_home)].app.clone_client();
    let r = home
        .post(
            "/api/v1/cluster/faults",
            Some(&admin),
            json!({"blocked": others, "for_ms": cut_for}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let cut = eventually(Duration::from_secs(5), || async {
        home.get("/readyz", None).await.status == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    assert!(cut, "a node cut off from the majority still reports ready");
    for m in &nodes {
        let r = m.app.order(&token, &[&on_home], 1, None).await;
        assert_eq!(
            r.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}: {}",
            m.name,
            r.body
        );
    }
    let majority = s
        .get(&format!("/api/v1/flights/{on_victim}/seats"), None)
        .await;
    assert_eq!(
        majority.status,
        StatusCode::OK,
        "the majority side keeps serving"
    );

    // The fault heals by itself: the flight takes writes again.
    let healed = eventually(Duration::from_secs(30), || async {
        s.order(&token, &[&on_home], 1, None).await.status == StatusCode::CREATED
    })
    .await;
    assert!(healed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_joins_under_load_and_a_drained_node_leaves_with_nothing_lost() {
    let root = tempfile::tempdir().expect("dir");
    let mut nodes = cluster(root.path(), &["node-a", "node-b", "node-c"]).await;
    let admin = admin(&nodes[0]).await;
    let a = nodes[0].app.clone_client();
    a.airport(&admin, "DEL").await;
    a.airport(&admin, "BOM").await;
    let aircraft = a.aircraft(&admin, 20, "ABCDEF").await;
    let mut flights = Vec::new();
    for i in 0..6 {
        let body = TestApp::flight_body(
            &aircraft,
            "DEL",
            "BOM",
            "2031-03-01T08:00:00Z",
            120,
            5000 + i,
        );
        flights.push(a.flight(&admin, body).await);
    }
    let customers = a.customers(12).await;

    // Steady booking load over every node while node-d joins.
    let apps: Vec<TestApp> = nodes.iter().map(|n| n.app.clone_client()).collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for (i, (_, token)) in customers.into_iter().enumerate() {
        let apps = apps.iter().map(TestApp::clone_client).collect::<Vec<_>>();
        let flights = flights.clone();
        let stop = stop.clone();
        load.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut statuses = BTreeSet::new();
            for n in 0..400usize {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let app = &apps[(i + n) % apps.len()];
                let flight = &flights[(i * 7 + n) % flights.len()];
                let r = app.order(&token, &[flight], 1, None).await;
                statuses.insert(r.status.as_u16());
                if r.status == StatusCode::CREATED {
                    acknowledged.push(r.body["id"].as_str().unwrap_or_default().to_owned());
                }
                if r.status == StatusCode::SERVICE_UNAVAILABLE {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            (acknowledged, statuses)
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let seed = nodes[0].port;
    nodes.push(Member::start("node-d", root.path(), &[seed]));
    settled(&nodes.iter().collect::<Vec<_>>(), 4).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acknowledged = Vec::new();
    for task in load {
        let (ids, statuses) = task.await.expect("load task");
        for s in &statuses {
            assert!([201, 409, 503].contains(s), "unexpected status {s}");
        }
        acknowledged.extend(ids);
    }
    assert!(!acknowledged.is_empty());
    let view_d = view(&nodes[3].app, &admin).await;
    let owned_by_d = view_d["members"]
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["node_id"] == "node-d"))
        .map(|m| {
            m["entities"]["flights"].as_u64().unwrap_or(0)
                + m["entities"]["users"].as_u64().unwrap_or(0)
        })
        .unwrap_or(0);
    assert!(owned_by_d > 0, "node-d took over nothing: {view_d}");

    let check = |app: TestApp, acknowledged: Vec<String>, admin: String| async move {
        let orders = all_orders(&app, &admin).await;
        let taken = seats_by_order(&orders);
        let live: BTreeSet<String> = taken.values().cloned().collect();
        for id in &acknowledged {
            assert!(live.contains(id), "acknowledged order {id} lost");
        }
        taken
    };
    let before = check(
        nodes[3].app.clone_client(),
        acknowledged.clone(),
        admin.clone(),
    )
    .await;

    // Drain node-b, stop it: nothing is lost.
    let r = nodes[0]
        .app
        .post(
            "/api/v1/cluster/drain",
            Some(&admin),
            json!({"node_id": "node-b"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["members"].as_array().map(Vec::len), Some(3));
    nodes[1].kill9();
    let after = check(nodes[2].app.clone_client(), acknowledged, admin.clone()).await;
    assert_eq!(before, after);
    for flight in &flights {
        let seats = nodes[0].app.seat_statuses(flight).await;
        let held = seats.values().filter(|s| *s == "held").count();
        let expected = after.keys().filter(|(f, _)| f == flight).count();
        assert_eq!(held, expected, "flight {flight}");
    }
}
