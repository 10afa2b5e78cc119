//! Replicated partitions (`cluster.replication`) with real `contrail` processes on loopback:
//! every write is decided by a majority of its partition's replicas, a partition's leader
//! serves its entities, and when a leader is killed another replica takes over with
//! everything that was acknowledged.

mod helpers;

use contrail::cluster::raft::partition_of;
use contrail_client::Client;
use helpers::cluster::{Member, cluster_with};
use helpers::{aircraft, airport, economy, eventually, flight, flight_spec, status_of};
use reqwest::StatusCode;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PARTITIONS: u16 = 8;
const ENV: [(&str, &str); 4] = [
    ("CONTRAIL__CLUSTER__REPLICATION", "true"),
    ("CONTRAIL__CLUSTER__PARTITIONS", "8"),
    ("CONTRAIL__CLUSTER__RAFT_HEARTBEAT_MS", "100"),
    ("CONTRAIL__CLUSTER__ELECTION_TIMEOUT_MS", "600"),
];
const NAMES: [&str; 3] = ["node-a", "node-b", "node-c"];

/// The placement tag of an entity id (`flt_<tag><rest>`).
fn tag_of(id: &str) -> &str {
    &id[4..20]
}

/// The leader of every partition if every one of `nodes` reports one for each, with
/// `replicas` replicas, and they all agree.
async fn leaders(nodes: &[&Member], admin: &Client, replicas: usize) -> Option<Vec<String>> {
    let mut seen = Vec::new();
    for node in nodes {
        let view = node.app.signed_as(admin).cluster().await.ok()?;
        let complete = view.partitions.len() == usize::from(PARTITIONS)
            && view
                .partitions
                .iter()
                .all(|p| p.leader.is_some() && p.replicas.len() == replicas);
        if !complete {
            return None;
        }
        seen.push(
            view.partitions
                .iter()
                .map(|p| p.leader.clone().unwrap_or_default())
                .collect::<Vec<_>>(),
        );
    }
    let same = seen.windows(2).all(|pair| pair[0] == pair[1]);
    if same { seen.pop() } else { None }
}

/// Waits (bounded) until [`leaders`] answers.
async fn formed(nodes: &[&Member], admin: &Client, replicas: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(found) = leaders(nodes, admin, replicas).await {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "the partitions' groups did not form"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An acknowledged booking: its order, the customer who made it, and its seat.
#[derive(Clone)]
struct Booked {
    /// How it was acknowledged (for a failure's report).
    how: String,
    order: String,
    customer: Client,
    seat: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leader_loses_no_acknowledged_booking_and_its_partitions_book_again() {
    let root = tempfile::tempdir().expect("dir");
    let mut nodes = cluster_with(root.path(), &NAMES, &ENV).await;
    let admin = nodes[0].app.admin().await;
    formed(&nodes.iter().collect::<Vec<_>>(), &admin, 3).await;
    let a_admin = nodes[0].app.signed_as(&admin);
    airport(&a_admin, "DEL").await;
    airport(&a_admin, "BOM").await;

    // 300 buyers over all three HTTP ports for one 50-seat flight: exactly 50 win.
    let fifty = aircraft(&a_admin, 10, "ABCDE").await;
    let hot = flight(
        &a_admin,
        &flight_spec(&fifty, "DEL", "BOM", "2031-03-01T08:00:00Z", 120, 5000),
    )
    .await;
    let customers = nodes[1].app.customers(300).await;
    let attempts = customers.iter().enumerate().map(|(i, (_, customer))| {
        let buyer = nodes[i % 3].app.signed_as(customer);
        let one_seat = economy(&[&hot], 1);
        async move { status_of(&buyer.place_order(&one_seat, None).await) }
    });
    let statuses = futures::future::join_all(attempts).await;
    let count = |code| statuses.iter().filter(|s| **s == code).count();
    assert_eq!(
        (count(StatusCode::CREATED), count(StatusCode::CONFLICT)),
        (50, 250),
        "{statuses:?}"
    );
    for node in &nodes {
        let held = node.app.seat_statuses(&hot).await;
        assert_eq!(held.values().filter(|s| *s == "held").count(), 50);
    }

    // Kill -9 the leader of the booked flight's partition, a few times, while customers book
    // another flight of that partition through the other nodes.
    let big = aircraft(&a_admin, 60, "ABCDEF").await;
    let hot_partition = partition_of(tag_of(&hot), PARTITIONS);
    let mut failovers = Vec::new();
    let mut total = 0;
    let mut strays = 0;
    let rounds = std::env::var("FAILOVER_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3usize);
    for round in 0..rounds {
        let live: Vec<&Member> = nodes.iter().collect();
        let leaders = formed(&live, &admin, 3).await;
        // A flight of the hot partition, and buyers, for this round (a customer may hold only
        // a few seats of one flight).
        let r_admin = nodes[0].app.signed_as(&admin);
        let mut target = String::new();
        for i in 0..200 {
            let spec = flight_spec(&big, "DEL", "BOM", "2031-03-02T08:00:00Z", 120, 7000 + i);
            let id = flight(&r_admin, &spec).await;
            if partition_of(tag_of(&id), PARTITIONS) == hot_partition {
                target = id;
                break;
            }
        }
        assert!(
            !target.is_empty(),
            "no flight landed in partition {hot_partition}"
        );
        let buyers: Vec<Client> = nodes[0]
            .app
            .customers(24)
            .await
            .into_iter()
            .map(|(_, c)| c)
            .collect();
        let booked: Arc<Mutex<Vec<Booked>>> = Arc::default();
        let victim = leaders[usize::from(hot_partition)].clone();
        let index = nodes.iter().position(|n| n.name == victim).expect("victim");
        let survivors: Vec<String> = nodes
            .iter()
            .filter(|n| n.name != victim)
            .map(|n| n.app.base.clone())
            .collect();

        // Steady load through the survivors, before and after the kill.
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let killed_at: Arc<Mutex<Option<Instant>>> = Arc::default();
        let first_after: Arc<Mutex<Option<Instant>>> = Arc::default();
        let load: Vec<_> = buyers
            .iter()
            .enumerate()
            .map(|(i, buyer)| {
                let api = helpers::client_of(&survivors[i % survivors.len()]).signed_as(buyer);
                let (stop, booked, target) = (stop.clone(), booked.clone(), target.clone());
                let (killed_at, first_after) = (killed_at.clone(), first_after.clone());
                let buyer = buyer.clone();
                tokio::spawn(async move {
                    // Each booking retries with its idempotency key until it is answered:
                    // a client cannot tell a write lost in a failover from one that landed.
                    let mut attempt = 0;
                    let mut key = format!("load-{round}-{i}-{attempt}");
                    let mut unanswered = false;
                    for _ in 0..400 {
                        if stop.load(std::sync::atomic::Ordering::Acquire) {
                            break;
                        }
                        let sent = Instant::now();
                        match api.place_order(&economy(&[&target], 1), Some(&key)).await {
                            Ok(placed) => {
                                let seat = placed.order.segments[0].seats[0].clone();
                                let how = format!(
                                    "{} key {key} after {:?}, killed {:?}",
                                    if placed.replayed {
                                        "replayed"
                                    } else {
                                        "placed"
                                    },
                                    sent.elapsed(),
                                    killed_at.lock().expect("lock").map(|k| k.elapsed())
                                );
                                booked.lock().expect("lock").push(Booked {
                                    how,
                                    order: placed.order.id.clone(),
                                    customer: buyer.clone(),
                                    seat,
                                });
                                let killed = *killed_at.lock().expect("lock");
                                if killed.is_some_and(|k| sent > k) {
                                    first_after
                                        .lock()
                                        .expect("lock")
                                        .get_or_insert(Instant::now());
                                }
                                attempt += 1;
                                key = format!("load-{round}-{i}-{attempt}");
                                unanswered = false;
                            }
                            Err(e) if e.status() == Some(StatusCode::CONFLICT) => {
                                unanswered = false;
                                break;
                            }
                            Err(_) => {
                                unanswered = true;
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                        }
                    }
                    // An unanswered booking is settled by its retry, as a client would.
                    if unanswered {
                        for _ in 0..100 {
                            match api.place_order(&economy(&[&target], 1), Some(&key)).await {
                                Ok(placed) => {
                                    if placed.order.status == "held" {
                                        let seat = placed.order.segments[0].seats[0].clone();
                                        booked.lock().expect("lock").push(Booked {
                                            how: format!("settled key {key}"),
                                            order: placed.order.id.clone(),
                                            customer: buyer.clone(),
                                            seat,
                                        });
                                    }
                                    break;
                                }
                                Err(e) if e.status() == Some(StatusCode::CONFLICT) => break,
                                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                            }
                        }
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(700)).await;
        nodes[index].kill9();
        *killed_at.lock().expect("lock") = Some(Instant::now());
        let recovered = eventually(Duration::from_secs(30), || async {
            first_after.lock().expect("lock").is_some()
        })
        .await;
        assert!(
            recovered,
            "round {round}: nothing booked after {victim} was killed"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, std::sync::atomic::Ordering::Release);
        for task in load {
            task.await.expect("load task");
        }
        let killed = killed_at.lock().expect("lock").expect("killed");
        let first = first_after.lock().expect("lock").expect("first");
        failovers.push(first.duration_since(killed));

        // Every acknowledged booking is there, each seat once, read through a survivor.
        let reader = helpers::client_of(&survivors[0]);
        let seats = reader.seat_statuses(&target).await;
        let all = booked.lock().expect("lock").clone();
        let mut seen = BTreeMap::new();
        for b in &all {
            if let Some(other) = seen.insert(b.seat.clone(), b.order.clone()) {
                let first = all.iter().find(|x| x.order == other).expect("first");
                let a = reader.signed_as(&first.customer).order(&other).await;
                let z = reader.signed_as(&b.customer).order(&b.order).await;
                panic!(
                    "round {round}: seat {} acknowledged to {other} ({}) and {} ({}):\n{a:?}\n{z:?}",
                    b.seat, first.how, b.order, b.how
                );
            }
            assert_eq!(
                seats.get(&b.seat).map(String::as_str),
                Some("held"),
                "{} lost",
                b.seat
            );
            let order = reader.signed_as(&b.customer).order(&b.order).await;
            let order = order.unwrap_or_else(|e| panic!("order {} lost: {e}", b.order));
            assert_eq!(order.status, "held");
        }
        // An order that failed in the failover may keep its seats until its hold lapses (its
        // compensation found no leader for the flight's partition): more may be held, never
        // fewer.
        let held = seats.values().filter(|s| *s == "held").count();
        assert!(
            held >= all.len(),
            "round {round}: {held} seats held, {} acknowledged",
            all.len()
        );
        strays += held - all.len();

        // It returns with its disk and catches up; the next round may kill another node.
        nodes[index].launch();
        let back = eventually(Duration::from_secs(60), || async {
            nodes[index].app.api().ready().await.is_ok()
        })
        .await;
        assert!(back, "{victim} did not come back");
        // Every node agrees on the flight's seat map once all three are back.
        let live: Vec<&Member> = nodes.iter().collect();
        formed(&live, &admin, 3).await;
        let mut maps = BTreeMap::new();
        for node in &nodes {
            let ok = eventually(Duration::from_secs(30), || async {
                node.app.api().seats(&target).await.is_ok()
            })
            .await;
            assert!(ok, "{} does not answer", node.name);
            maps.insert(node.name.clone(), node.app.seat_statuses(&target).await);
        }
        let first = maps.values().next().cloned().unwrap_or_default();
        assert!(
            maps.values().all(|m| *m == first),
            "nodes disagree on the seat map"
        );
        assert_eq!(
            first.values().filter(|s| *s == "held").count(),
            held,
            "round {round}: the seat map changed after the load"
        );
        total += all.len();
    }
    let mut sorted = failovers.clone();
    sorted.sort();
    let pct = |p: f64| sorted[((sorted.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "failover over {} kills of a partition leader: p50 {:?}, p99 {:?}, max {:?} \
         (kill -9 to the first booking acknowledged on one of its flights)",
        sorted.len(),
        pct(0.5),
        pct(0.99),
        sorted[sorted.len() - 1]
    );
    println!(
        "{total} bookings acknowledged; {strays} seats held by orders that failed in a failover (they lapse at their deadline)"
    );
    assert!(total > 0);
}
