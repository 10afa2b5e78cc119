//! Multi-node clusters of real `contrail` processes on loopback: forwarding to partition
//! leaders, cross-node sagas, join under load, drain, node-to-node TLS, and the partitions'
//! consensus groups forming, failing over and taking a returning node back. (Failover under
//! load, isolation, rolling restarts and removal: `tests/replication.rs`.)

mod helpers;

use contrail_client::{Client, Order};
use helpers::cluster::{COOKIE, Member, balanced, cluster, flights_owned_by, formed, settled};
use helpers::{
    TestApp, aircraft, airport, book, economy, eventually, flight, flight_spec, status_of,
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

/// Every order, as a client honouring Retry-After gets them: the list is refused (503), never
/// partial, while a partition changes leaders.
async fn all_orders(admin: &Client) -> Vec<Order> {
    for _ in 0..60 {
        match admin.orders().await {
            Ok(orders) => return orders,
            Err(e) if e.status() == Some(StatusCode::SERVICE_UNAVAILABLE) => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("every order: {e:?}"),
        }
    }
    panic!("the order list stayed unavailable for 30 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_share_the_catalog_and_run_sagas_across_partition_leaders() {
    let root = tempfile::tempdir().expect("dir");
    let nodes = cluster(root.path(), &["node-a", "node-b", "node-c"]).await;
    let (a, b, c) = (&nodes[0].app, &nodes[1].app, &nodes[2].app);
    let admin = a.admin().await;
    // The catalog is written through one node and read through another.
    airport(&b.signed_as(&admin), "DEL").await;
    airport(&c.signed_as(&admin), "BOM").await;
    let airports = a.api().airports().await.expect("airports");
    assert_eq!(airports.len(), 2);
    let fifty = aircraft(&b.signed_as(&admin), 10, "ABCDE").await;

    // A two-segment order whose flights are led by two other nodes confirms, paid through a
    // third.
    let leaders = formed(&nodes.iter().collect::<Vec<_>>(), &admin, 3).await;
    let by_owner = flights_owned_by(&admin, &fifty, &leaders, &["node-b", "node-c"]).await;
    let (f1, f2) = (&by_owner["node-b"], &by_owner["node-c"]);
    let (_, customer) = a.customer().await;
    let id = book(&customer, &[f1, f2], 2).await.id;
    let paid = c.signed_as(&customer).pay(&id, "tok_visa", None).await;
    let paid = paid.expect("paid through another node");
    assert_eq!(paid.status, "confirmed");
    assert_eq!(paid.tickets.len(), 4);
    let taken = seats_by_order(&all_orders(&b.signed_as(&admin)).await);
    assert_eq!(taken.len(), 4, "{taken:?}");

    // One whose second flight (another node's) is full leaves the first untouched.
    let tiny = aircraft(&admin, 1, "A").await;
    let full = flights_owned_by(&admin, &tiny, &leaders, &["node-a"]).await["node-a"].clone();
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
    // node-d gets replicas and, once they caught up, leads its share of the partitions.
    balanced(&nodes.iter().collect::<Vec<_>>(), &admin, 3).await;

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

    // Drain node-b; once no group keeps a replica on it, stop it: nothing is lost.
    let view = nodes[0].app.signed_as(&admin).drain("node-b").await;
    let view = view.expect("drained");
    assert_eq!(view.members.len(), 3);
    let moved = eventually(Duration::from_secs(90), || async {
        let Ok(view) = nodes[0].app.signed_as(&admin).cluster().await else {
            return false;
        };
        view.partitions.iter().all(|p| {
            p.leader.as_deref().is_some_and(|l| l != "node-b")
                && p.replicas.len() == 3
                && p.learners.is_empty()
                && !p.replicas.iter().any(|r| r == "node-b")
        })
    })
    .await;
    assert!(moved, "node-b's replicas did not move to the others");
    nodes[1].kill9();
    let after = check(nodes[2].app.clone_client().signed_as(&admin), acknowledged).await;
    assert_eq!(before, after);
    // Every held seat belongs to a live order: seats held by orders that failed while a
    // partition changed leaders are released on retry.
    for flight in &flights {
        let expected = after.keys().filter(|(f, _)| f == flight).count();
        let held = || async {
            let seats = nodes[0].app.seat_statuses(flight).await;
            seats.values().filter(|s| *s == "held").count()
        };
        let released = eventually(Duration::from_secs(30), || async {
            held().await == expected
        })
        .await;
        assert!(
            released,
            "flight {flight}: {} held, {expected} booked",
            held().await
        );
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

    // Requests travel between the two over TLS: a booking on a flight the other node leads.
    let admin = a.app.admin().await;
    airport(&admin, "DEL").await;
    airport(&admin, "BOM").await;
    let plane = aircraft(&admin, 2, "AB").await;
    let leaders = balanced(&[&a, &b], &admin, 2).await;
    let on_b = flights_owned_by(&admin, &plane, &leaders, &["node-b"]).await;
    let (_, customer) = a.app.customer().await;
    let order = book(&customer, &[&on_b["node-b"]], 1).await;
    assert_eq!(order.status, "held");

    // Two impostors that know the cookie: one with a certificate from another CA, one
    // without TLS at all; and a node with the cluster's certificate that authenticates with
    // another cookie, as a build of another wire version does (the version is part of the
    // cookie, `cluster::wire::session_cookie`). None becomes a member, however long they try.
    let impostor_env = other_ca.node_env("node-x");
    let x = Member::start_with("node-x", root.path(), &[a.port], &env_refs(&impostor_env));
    let y = Member::start("node-y", root.path(), &[a.port]);
    let mut other_wire = cluster_ca.node_env("node-z");
    other_wire.push((
        "CONTRAIL__CLUSTER__COOKIE".to_owned(),
        format!("{COOKIE}/wire-1"),
    ));
    let z = Member::start_with("node-z", root.path(), &[a.port], &env_refs(&other_wire));
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
    for impostor in [&x, &y, &z] {
        let ready = impostor.app.api().ready().await;
        assert!(ready.is_err(), "{} claims to be serving", impostor.name);
    }
    // The members still book with each other.
    let again = book(&customer, &[&on_b["node-b"]], 1).await;
    assert_eq!(again.status, "held");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_form_over_the_gateways_fail_over_when_a_leader_is_killed_and_take_it_back() {
    let root = tempfile::tempdir().expect("dir");
    let names = ["node-a", "node-b", "node-c"];
    // Every partition gets a leader and all three members as replicas, the three nodes agree
    // on who leads what (the groups' messages travel through the gateways), and each node
    // leads some.
    let mut nodes = cluster(root.path(), &names).await;
    let admin = nodes[0].app.admin().await;
    let view_of = |m: &Member| m.app.signed_as(&admin);

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
    // And leads its share again.
    balanced(&nodes.iter().collect::<Vec<_>>(), &admin, 3).await;
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
