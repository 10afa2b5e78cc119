//! Multi-node clusters of real `contrail` processes on loopback: placement and forwarding,
//! cross-node sagas, node loss and return, partitions, join under load, drain.

mod helpers;

use contrail::cluster::placement;
use contrail_client::{Client, Faults, Order};
use helpers::cluster::{Member, cluster, flights_owned_by, owner_of, settled};
use helpers::{
    ADMIN_EMAIL, TestApp, aircraft, airport, book, economy, eventually, flight, flight_spec,
    status_of,
};
use reqwest::StatusCode;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Seats of live orders, failing if a seat is in two orders.
fn seats_by_order(orders: &[Order]) -> BTreeMap<(String, String), String> {
    let mut taken = BTreeMap::new();
    for o in orders {
        if !matches!(o.status.as_str(), "held" | "confirmed") {
            continue;
        }
        for seg in &o.segments {
            for seat in &seg.seats {
                let key = (seg.flight_id.clone(), seat.clone());
                if let Some(other) = taken.insert(key.clone(), o.id.clone()) {
                    panic!("seat {key:?} is in orders {other} and {}", o.id);
                }
            }
        }
    }
    taken
}

async fn all_orders(admin: &Client) -> Vec<Order> {
    admin.orders().await.expect("every order")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_sell_each_seat_once_and_run_cross_node_sagas() {
    let root = tempfile::tempdir().expect("dir");
    let nodes = cluster(root.path(), &["node-a", "node-b", "node-c"]).await;
    let names = ["node-a", "node-b", "node-c"];
    let (a, b, c) = (&nodes[0].app, &nodes[1].app, &nodes[2].app);
    let admin = a.admin().await;
    // The catalog is written through one node and read through another.
    airport(&b.signed_as(&admin), "DEL").await;
    airport(&c.signed_as(&admin), "BOM").await;
    let airports = a.api().airports().await.expect("airports");
    assert_eq!(airports.len(), 2);
    let fifty = aircraft(&b.signed_as(&admin), 10, "ABCDE").await;
    let flight = flight(
        &c.signed_as(&admin),
        &flight_spec(&fifty, "DEL", "BOM", "2031-03-01T08:00:00Z", 120, 5000),
    )
    .await;

    // 300 concurrent buyers spread over the three nodes' HTTP ports.
    let customers = a.customers(300).await;
    let apps = [a, b, c];
    let one_seat = economy(&[&flight], 1);
    let attempts = customers.iter().enumerate().map(|(i, (_, customer))| {
        let buyer = apps[i % 3].signed_as(customer);
        let one_seat = &one_seat;
        async move { status_of(&buyer.place_order(one_seat, None).await) }
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
    let taken = seats_by_order(&all_orders(&b.signed_as(&admin)).await);
    assert_eq!(taken.len(), 50);
    let map = c.seat_statuses(&flight).await;
    assert_eq!(map.values().filter(|s| *s == "held").count(), 50);

    // A two-segment order whose flights live on different nodes confirms.
    let by_owner = flights_owned_by(&admin, &fifty, &names, &["node-b", "node-c"]).await;
    let (f1, f2) = (&by_owner["node-b"], &by_owner["node-c"]);
    let (_, customer) = a.customer().await;
    let id = book(&customer, &[f1, f2], 2).await.id;
    let paid = c.signed_as(&customer).pay(&id, "tok_visa", None).await;
    let paid = paid.expect("paid through another node");
    assert_eq!(paid.status, "confirmed");
    assert_eq!(paid.tickets.len(), 4);

    // One whose second flight (another node's) is full leaves the first untouched.
    let tiny = aircraft(&admin, 1, "A").await;
    let full = flights_owned_by(&admin, &tiny, &names, &["node-a"]).await["node-a"].clone();
    let (_, other) = b.customer().await;
    book(&other, &[&full], 1).await;
    let before = b.seat_statuses(f1).await;
    let refused = c
        .signed_as(&customer)
        .place_order(&economy(&[f1, &full], 1), None)
        .await;
    let refused = refused.expect_err("a full flight was booked");
    assert_eq!(refused.status(), Some(StatusCode::CONFLICT), "{refused}");
    assert_eq!(refused.code(), Some("seats_unavailable"));
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
    let admin_home = placement::owner(names, &contrail::domain::ids::tag_for(ADMIN_EMAIL))
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
    let admin = nodes[0].app.admin().await;
    let s = nodes[index(&survivor)].app.clone_client();
    let s_admin = s.signed_as(&admin);
    airport(&s_admin, "DEL").await;
    airport(&s_admin, "BOM").await;
    let aircraft = aircraft(&s_admin, 10, "ABCDE").await;
    let flights = flights_owned_by(&s_admin, &aircraft, &names, &[&victim, &admin_home]).await;
    let (on_victim, on_home) = (flights[&victim].clone(), flights[&admin_home].clone());
    let customer = loop {
        let (id, customer) = s.customer().await;
        if owner_of(&id, &names) != victim {
            break customer;
        }
    };
    let mut booked = Vec::new();
    for _ in 0..3 {
        let order = book(&customer, &[&on_victim], 1).await;
        booked.push(order.segments[0].seats[0].clone());
    }

    // kill -9 the victim: its flight answers 503 with Retry-After, the rest keeps booking.
    nodes[index(&victim)].kill9();
    let seats_status = || async {
        match s.api().seats(&on_victim).await {
            Ok(_) => Some(StatusCode::OK),
            Err(e) => e.status(),
        }
    };
    let gone = eventually(Duration::from_secs(20), || async {
        seats_status().await == Some(StatusCode::SERVICE_UNAVAILABLE)
    })
    .await;
    assert!(gone, "a dead owner's flight did not answer 503");
    let r = customer.place_order(&economy(&[&on_victim], 1), None).await;
    let r = r.expect_err("booked a dead owner's flight");
    assert_eq!(r.status(), Some(StatusCode::SERVICE_UNAVAILABLE), "{r}");
    assert!(r.retry_after().is_some());
    book(&customer, &[&on_home], 1).await;
    // Without replication its records exist only on its disk: it cannot be removed for good.
    let removal = s.signed_as(&admin).remove_node(&victim).await;
    assert!(
        removal
            .as_ref()
            .is_err_and(|e| e.status() == Some(StatusCode::CONFLICT)
                && e.to_string().contains("not_replicated")),
        "{removal:?}"
    );

    // It returns with its disk: every acknowledged booking is there.
    nodes[index(&victim)].launch();
    let back = eventually(Duration::from_secs(60), || async {
        seats_status().await == Some(StatusCode::OK)
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
    let cut = |blocked: &[&str]| Faults {
        blocked: blocked.iter().map(|n| (*n).to_owned()).collect(),
        for_ms: 8000,
    };
    for other in names.iter().filter(|n| **n != admin_home) {
        let faults = cut(&[admin_home.as_str()]);
        let injected = nodes[index(other)]
            .app
            .signed_as(&admin)
            .inject_faults(&faults)
            .await;
        injected.unwrap_or_else(|e| panic!("faults on {other}: {e}"));
    }
    let others: Vec<&str> = names.iter().copied().filter(|n| *n != admin_home).collect();
    let home = nodes[index(&admin_home)].app.clone_client();
    let injected = home.signed_as(&admin).inject_faults(&cut(&others)).await;
    injected.unwrap_or_else(|e| panic!("faults on {admin_home}: {e}"));
    let cut = eventually(Duration::from_secs(5), || async {
        home.api().ready().await.err().and_then(|e| e.status())
            == Some(StatusCode::SERVICE_UNAVAILABLE)
    })
    .await;
    assert!(cut, "a node cut off from the majority still reports ready");
    for m in &nodes {
        let r = m
            .app
            .signed_as(&customer)
            .place_order(&economy(&[&on_home], 1), None)
            .await;
        let status = r.as_ref().err().and_then(|e| e.status());
        assert_eq!(
            status,
            Some(StatusCode::SERVICE_UNAVAILABLE),
            "{}: {r:?}",
            m.name
        );
    }
    let majority = s.api().seats(&on_victim).await;
    assert!(majority.is_ok(), "the majority side keeps serving");

    // The fault heals by itself: the flight takes writes again.
    let healed = eventually(Duration::from_secs(30), || async {
        let r = customer.place_order(&economy(&[&on_home], 1), None).await;
        status_of(&r) == StatusCode::CREATED
    })
    .await;
    assert!(healed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_joins_under_load_and_a_drained_node_leaves_with_nothing_lost() {
    let root = tempfile::tempdir().expect("dir");
    let mut nodes = cluster(root.path(), &["node-a", "node-b", "node-c"]).await;
    let admin = nodes[0].app.admin().await;
    let a = nodes[0].app.clone_client();
    let a_admin = a.signed_as(&admin);
    airport(&a_admin, "DEL").await;
    airport(&a_admin, "BOM").await;
    let aircraft = aircraft(&a_admin, 20, "ABCDEF").await;
    let mut flights = Vec::new();
    for i in 0..6 {
        let spec = flight_spec(
            &aircraft,
            "DEL",
            "BOM",
            "2031-03-01T08:00:00Z",
            120,
            5000 + i,
        );
        flights.push(flight(&a_admin, &spec).await);
    }
    let customers = a.customers(12).await;

    // Steady booking load over every node while node-d joins.
    let apps: Vec<TestApp> = nodes.iter().map(|n| n.app.clone_client()).collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for (i, (_, customer)) in customers.into_iter().enumerate() {
        let through: Vec<Client> = apps
            .iter()
            .map(|app| app.clone_client().signed_as(&customer))
            .collect();
        let flights = flights.clone();
        let stop = stop.clone();
        load.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut statuses = BTreeSet::new();
            for n in 0..400usize {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let buyer = &through[(i + n) % through.len()];
                let flight = &flights[(i * 7 + n) % flights.len()];
                let r = buyer.place_order(&economy(&[flight], 1), None).await;
                let status = status_of(&r);
                statuses.insert(status.as_u16());
                if status == StatusCode::CREATED {
                    acknowledged.push(r.map(|p| p.order.id).unwrap_or_default());
                }
                if status == StatusCode::SERVICE_UNAVAILABLE {
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
    let view_d = nodes[3].app.signed_as(&admin).cluster().await;
    let view_d = view_d.expect("the cluster as node-d sees it");
    let owned_by_d = view_d
        .members
        .iter()
        .find(|m| m.node_id == "node-d")
        .and_then(|m| m.entities)
        .map_or(0, |e| e.flights + e.users);
    assert!(owned_by_d > 0, "node-d took over nothing: {view_d:?}");

    let check = |admin: Client, acknowledged: Vec<String>| async move {
        let orders = all_orders(&admin).await;
        let taken = seats_by_order(&orders);
        let live: BTreeSet<String> = taken.values().cloned().collect();
        for id in &acknowledged {
            assert!(live.contains(id), "acknowledged order {id} lost");
        }
        taken
    };
    let before = check(
        nodes[3].app.clone_client().signed_as(&admin),
        acknowledged.clone(),
    )
    .await;

    // Drain node-b, stop it: nothing is lost.
    let view = nodes[0].app.signed_as(&admin).drain("node-b").await;
    let view = view.expect("drained");
    assert_eq!(view.members.len(), 3);
    nodes[1].kill9();
    let after = check(nodes[2].app.clone_client().signed_as(&admin), acknowledged).await;
    assert_eq!(before, after);
    for flight in &flights {
        let seats = nodes[0].app.seat_statuses(flight).await;
        let held = seats.values().filter(|s| *s == "held").count();
        let expected = after.keys().filter(|(f, _)| f == flight).count();
        assert_eq!(held, expected, "flight {flight}");
    }
}

/// A CA and certificates it signs for nodes on 127.0.0.1, written as PEM files under `dir`.
struct Pki {
    dir: std::path::PathBuf,
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl Pki {
    fn new(dir: &std::path::Path, name: &str) -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{name} CA"));
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let key = rcgen::KeyPair::generate().expect("CA key");
        let issuer = rcgen::CertifiedIssuer::self_signed(params, key).expect("CA");
        let dir = dir.join(name);
        std::fs::create_dir_all(&dir).expect("pki dir");
        std::fs::write(dir.join("ca.pem"), issuer.pem()).expect("CA written");
        Self { dir, issuer }
    }

    /// The environment of a node with a certificate from this CA.
    fn node_env(&self, node: &str) -> Vec<(String, String)> {
        let mut params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, node);
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = rcgen::KeyPair::generate().expect("node key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("node certificate");
        let (cert_file, key_file) = (
            self.dir.join(format!("{node}.pem")),
            self.dir.join(format!("{node}.key")),
        );
        std::fs::write(&cert_file, cert.pem()).expect("certificate written");
        std::fs::write(&key_file, key.serialize_pem()).expect("key written");
        let path = |p: &std::path::Path| p.to_str().expect("utf-8 path").to_owned();
        vec![
            ("CONTRAIL__CLUSTER__TLS_CERT".into(), path(&cert_file)),
            ("CONTRAIL__CLUSTER__TLS_KEY".into(), path(&key_file)),
            (
                "CONTRAIL__CLUSTER__TLS_CA".into(),
                path(&self.dir.join("ca.pem")),
            ),
        ]
    }
}

fn env_refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_talk_over_mutual_tls_and_a_node_without_the_clusters_certificate_never_joins() {
    let root = tempfile::tempdir().expect("dir");
    let cluster_ca = Pki::new(root.path(), "cluster");
    let other_ca = Pki::new(root.path(), "other");

    let a = Member::start_with(
        "node-a",
        root.path(),
        &[],
        &env_refs(&cluster_ca.node_env("node-a")),
    );
    settled(&[&a], 1).await;
    let b_env = cluster_ca.node_env("node-b");
    let b = Member::start_with("node-b", root.path(), &[a.port], &env_refs(&b_env));
    settled(&[&a, &b], 2).await;

    // Requests travel between the two over TLS: a booking on a flight the other node owns.
    let names = ["node-a", "node-b"];
    let admin = a.app.admin().await;
    airport(&admin, "DEL").await;
    airport(&admin, "BOM").await;
    let plane = aircraft(&admin, 2, "AB").await;
    let on_b = flights_owned_by(&admin, &plane, &names, &["node-b"]).await;
    let (_, customer) = a.app.customer().await;
    let order = book(&customer, &[&on_b["node-b"]], 1).await;
    assert_eq!(order.status, "held");

    // Two impostors that know the cookie: one with a certificate from another CA, one
    // without TLS at all. Neither becomes a member, however long they try.
    let impostor_env = other_ca.node_env("node-x");
    let x = Member::start_with("node-x", root.path(), &[a.port], &env_refs(&impostor_env));
    let y = Member::start("node-y", root.path(), &[a.port]);
    let admitted = eventually(Duration::from_secs(6), || async {
        let view = a
            .app
            .signed_as(&admin)
            .cluster()
            .await
            .expect("cluster view");
        view.members.len() != 2
    })
    .await;
    assert!(!admitted, "a node without the cluster's certificate joined");
    for impostor in [&x, &y] {
        let ready = impostor.app.api().ready().await;
        assert!(ready.is_err(), "{} claims to be serving", impostor.name);
    }
    // The members still book with each other.
    let again = book(&customer, &[&on_b["node-b"]], 1).await;
    assert_eq!(again.status, "held");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicated_partitions_form_over_the_gateways_and_fail_over_when_a_leader_is_killed() {
    let root = tempfile::tempdir().expect("dir");
    let env = [
        ("CONTRAIL__CLUSTER__REPLICATION", "true"),
        ("CONTRAIL__CLUSTER__PARTITIONS", "8"),
        ("CONTRAIL__CLUSTER__RAFT_HEARTBEAT_MS", "100"),
        ("CONTRAIL__CLUSTER__ELECTION_TIMEOUT_MS", "600"),
    ];
    let names = ["node-a", "node-b", "node-c"];
    let mut nodes = helpers::cluster::cluster_with(root.path(), &names, &env).await;
    let admin = nodes[0].app.admin().await;
    let view_of = |m: &Member| m.app.signed_as(&admin);

    // Every partition gets a leader and all three members as replicas, and the three nodes
    // agree on who leads what (the groups' messages travel through the gateways).
    let formed = eventually(Duration::from_secs(60), || async {
        let mut leaders = Vec::new();
        for node in &nodes {
            let Ok(view) = view_of(node).cluster().await else {
                return false;
            };
            let complete = view.partitions.len() == 8
                && view
                    .partitions
                    .iter()
                    .all(|p| p.leader.is_some() && p.replicas.len() == 3);
            if !complete {
                return false;
            }
            leaders.push(
                view.partitions
                    .iter()
                    .map(|p| p.leader.clone())
                    .collect::<Vec<_>>(),
            );
        }
        leaders.windows(2).all(|pair| pair[0] == pair[1])
    })
    .await;
    assert!(
        formed,
        "the partitions' groups did not form over three nodes"
    );

    // Kill -9 the leader of partition 0: for every partition, one of the other two becomes a
    // serving leader (read from /metrics: the dead node may hold the admin's account).
    let view = view_of(&nodes[0]).cluster().await.expect("cluster view");
    let victim = view.partitions[0].leader.clone().expect("a leader");
    let index = nodes.iter().position(|n| n.name == victim).expect("victim");
    nodes[index].kill9();
    let survivors: Vec<&Member> = nodes.iter().filter(|n| n.name != victim).collect();
    let failed_over = eventually(Duration::from_secs(30), || async {
        let mut served = BTreeSet::new();
        for node in &survivors {
            served.extend(partitions_led(node).await);
        }
        served.len() == 8
    })
    .await;
    assert!(
        failed_over,
        "the partitions {victim} led found no new leader"
    );
    let applied = applied_indexes(survivors[0]).await;
    assert_eq!(
        applied.len(),
        8,
        "{} exports no applied indexes",
        survivors[0].name
    );

    // It returns with its disk, follows the new leaders and catches up with their logs.
    nodes[index].launch();
    let returned = &nodes[index];
    let caught_up = eventually(Duration::from_secs(60), || async {
        let now = applied_indexes(returned).await;
        now.len() == 8
            && now
                .iter()
                .zip(&applied)
                .all(|(after, before)| after >= before)
    })
    .await;
    assert!(caught_up, "{victim} did not catch up after its return");
}

/// The partitions `node` leads and serves, from its /metrics.
async fn partitions_led(node: &Member) -> BTreeSet<u16> {
    let text = node.app.api().metrics().await.unwrap_or_default();
    (0..8)
        .filter(|p| text.contains(&format!("contrail_partition_leader{{partition=\"{p}\"}} 1")))
        .collect()
}

/// The applied index of every partition on `node`, from its /metrics (empty if unanswered).
async fn applied_indexes(node: &Member) -> Vec<u64> {
    let text = node.app.api().metrics().await.unwrap_or_default();
    (0..8)
        .filter_map(|p| {
            let prefix = format!("contrail_partition_applied_index{{partition=\"{p}\"}} ");
            let line = text.lines().find(|l| l.starts_with(&prefix))?;
            line[prefix.len()..]
                .trim()
                .parse::<f64>()
                .ok()
                .map(|v| v as u64)
        })
        .collect()
}
