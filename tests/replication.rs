//! Replicated partitions with real `contrail` processes on loopback:
//! every write is decided by a majority of its partition's replicas, a partition's leader
//! serves its entities, and when a leader is killed another replica takes over with
//! everything that was acknowledged.

mod helpers;

use contrail::cluster::raft::partition_of;
use contrail_client::{Client, Faults};
use helpers::cluster::{Member, PARTITIONS, cluster_with, describe, formed, tag_of};
use helpers::{TestApp, aircraft, airport, economy, eventually, flight, flight_spec, status_of};
use reqwest::StatusCode;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Nothing beyond the test cluster's own settings.
const ENV: [(&str, &str); 0] = [];
const NAMES: [&str; 3] = ["node-a", "node-b", "node-c"];

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
    // A 503 (a leader whose lease lapsed while this machine's two cores were busy) is
    // retried with the same idempotency key, as a client would: it must not sell twice.
    let attempts = customers.iter().enumerate().map(|(i, (_, customer))| {
        let buyer = nodes[i % 3].app.signed_as(customer);
        let one_seat = economy(&[&hot], 1);
        let key = format!("burst-{i}");
        async move {
            let mut status = StatusCode::SERVICE_UNAVAILABLE;
            for _ in 0..50 {
                status = status_of(&buyer.place_order(&one_seat, Some(&key)).await);
                if status != StatusCode::SERVICE_UNAVAILABLE {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            status
        }
    });
    let statuses = futures::future::join_all(attempts).await;
    let count = |code| statuses.iter().filter(|s| **s == code).count();
    assert_eq!(
        (
            count(StatusCode::CREATED) + count(StatusCode::OK),
            count(StatusCode::CONFLICT)
        ),
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
        let leaders = helpers::cluster::balanced(&live, &admin, 3).await;
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
        let victim = leaders[usize::from(hot_partition)].clone();
        let index = nodes.iter().position(|n| n.name == victim).expect("victim");
        let survivors: Vec<String> = nodes
            .iter()
            .filter(|n| n.name != victim)
            .map(|n| n.app.base.clone())
            .collect();

        // Steady load through the survivors, before and after the kill.
        let load = Load::start(&format!("kill-{round}"), &buyers, &survivors, &target);
        tokio::time::sleep(Duration::from_millis(700)).await;
        nodes[index].kill9();
        load.mark();
        let recovered = eventually(Duration::from_secs(30), || async {
            load.first_after_mark().is_some()
        })
        .await;
        assert!(
            recovered,
            "round {round}: nothing booked after {victim} was killed"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (all, failover) = load.finish().await;
        failovers.push(failover.expect("a booking after the kill"));

        // Every acknowledged booking is there, each seat once, read through a survivor.
        let reader = helpers::client_of(&survivors[0]);
        let held = verify(&reader, &target, &all).await;

        // It returns with its disk and catches up; the next round may kill another node.
        nodes[index].launch();
        let back = eventually(Duration::from_secs(60), || async {
            nodes[index].app.api().ready().await.is_ok()
        })
        .await;
        assert!(back, "{victim} did not come back");
        // It takes its share of the leaders back, and every node agrees on the flight's seat
        // map once all three are back.
        let live: Vec<&Member> = nodes.iter().collect();
        helpers::cluster::balanced(&live, &admin, 3).await;
        // Seats held by orders that failed in the failover (a flight could not be told to
        // release them) are released on retry, wherever the order's partition is led now.
        let released = eventually(Duration::from_secs(30), || async {
            let Ok(seats) = nodes[0].app.api().seats(&target).await else {
                return false;
            };
            seats.iter().filter(|s| s.status == "held").count() == all.len()
        })
        .await;
        assert!(
            released,
            "round {round}: seats of failed orders were not released"
        );
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
        // Every acknowledged booking still holds its seat, and only those.
        for b in &all {
            assert_eq!(
                first.get(&b.seat).map(String::as_str),
                Some("held"),
                "round {round}: {} lost after the load",
                b.seat
            );
        }
        assert_eq!(first.values().filter(|s| *s == "held").count(), all.len());
        strays += held - all.len();
        total += all.len();
    }
    println!("failover of each round: {failovers:?}");
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
        "{total} bookings acknowledged; {strays} seats held by orders that failed in a failover when the load stopped, summed over the rounds (all released on retry)"
    );
    assert!(total > 0);
}

/// Three replicated nodes with the catalog and a 360-seat aircraft; returns them, the admin
/// and the aircraft.
async fn three_nodes(root: &std::path::Path) -> (Vec<Member>, Client, String) {
    let nodes = cluster_with(root, &NAMES, &ENV).await;
    let admin = nodes[0].app.admin().await;
    formed(&nodes.iter().collect::<Vec<_>>(), &admin, 3).await;
    let a_admin = nodes[0].app.signed_as(&admin);
    airport(&a_admin, "DEL").await;
    airport(&a_admin, "BOM").await;
    let big = aircraft(&a_admin, 60, "ABCDEF").await;
    (nodes, admin, big)
}

/// A flight (of `aircraft`, through `admin`) whose partition `leaders` says `leader` leads.
async fn flight_led_by(admin: &Client, aircraft: &str, leaders: &[String], leader: &str) -> String {
    for i in 0..200 {
        let spec = flight_spec(
            aircraft,
            "DEL",
            "BOM",
            "2031-04-01T08:00:00Z",
            120,
            9000 + i,
        );
        let id = flight(admin, &spec).await;
        if leaders[usize::from(partition_of(tag_of(&id), PARTITIONS))] == leader {
            return id;
        }
    }
    panic!("no flight of 200 landed in a partition {leader} leads")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_node_accepts_no_write_and_the_majority_keeps_booking() {
    let root = tempfile::tempdir().expect("dir");
    let (nodes, admin, big) = three_nodes(root.path()).await;
    let leaders = formed(&nodes.iter().collect::<Vec<_>>(), &admin, 3).await;
    // The node that leads the admin's partition (so the admin's calls that inject the fault
    // work on every node until the last one, the isolated node itself, is told).
    let admin_tag = contrail::domain::ids::tag_for(helpers::ADMIN_EMAIL);
    let lonely = leaders[usize::from(partition_of(&admin_tag, PARTITIONS))].clone();
    let index = nodes.iter().position(|n| n.name == lonely).expect("lonely");
    let a_admin = nodes[(index + 1) % 3].app.signed_as(&admin);
    let its_flight = flight_led_by(&a_admin, &big, &leaders, &lonely).await;
    let buyers: Vec<Client> = nodes[(index + 1) % 3]
        .app
        .customers(8)
        .await
        .into_iter()
        .map(|(_, c)| c)
        .collect();

    // Cut it off from both others, at the transport, on all three nodes (itself last).
    let cut = |blocked: Vec<String>| Faults {
        blocked: blocked.into_iter().collect(),
        for_ms: 10_000,
    };
    let order = (1..=3).map(|k| (index + k) % 3);
    for i in order {
        let node = &nodes[i];
        let blocked = if i == index {
            nodes
                .iter()
                .filter(|n| n.name != lonely)
                .map(|n| n.name.clone())
                .collect()
        } else {
            vec![lonely.clone()]
        };
        let injected = node
            .app
            .signed_as(&admin)
            .inject_faults(&cut(blocked))
            .await;
        injected.unwrap_or_else(|e| panic!("faults on {}: {e}", node.name));
    }
    let cut_at = Instant::now();

    // Through the isolated node, nothing is booked — not its own partitions' flights either.
    let isolated = nodes[index].app.clone_client();
    let mut refused = 0;
    for buyer in &buyers {
        let r = isolated
            .signed_as(buyer)
            .place_order(&economy(&[&its_flight], 1), None)
            .await;
        if cut_at.elapsed() > Duration::from_secs(8) {
            break;
        }
        let status = r.as_ref().err().and_then(|e| e.status());
        assert_eq!(status, Some(StatusCode::SERVICE_UNAVAILABLE), "{r:?}");
        assert!(r.err().and_then(|e| e.retry_after()).is_some());
        refused += 1;
    }
    assert!(refused > 0, "no attempt was made during the isolation");
    // The majority elects a leader for the isolated node's partitions and books its flight.
    let majority: Vec<String> = nodes
        .iter()
        .filter(|n| n.name != lonely)
        .map(|n| n.app.base.clone())
        .collect();
    let booked = eventually(Duration::from_secs(8), || async {
        let api = helpers::client_of(&majority[0]).signed_as(&buyers[0]);
        status_of(&api.place_order(&economy(&[&its_flight], 1), None).await) == StatusCode::CREATED
    })
    .await;
    assert!(
        booked,
        "the majority did not take over the isolated node's flight"
    );
    assert!(
        cut_at.elapsed() < Duration::from_secs(10),
        "the majority booked only after the fault healed"
    );

    // Healed, the node follows the majority: one seat map everywhere, with that booking.
    formed(&nodes.iter().collect::<Vec<_>>(), &admin, 3).await;
    let reader = nodes[index].app.clone_client();
    let ok = eventually(Duration::from_secs(30), || async {
        reader.api().seats(&its_flight).await.is_ok()
    })
    .await;
    assert!(ok);
    let held = reader.seat_statuses(&its_flight).await;
    assert_eq!(
        held.values().filter(|s| *s == "held").count(),
        1,
        "{held:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_load_loses_no_booking() {
    let root = tempfile::tempdir().expect("dir");
    let (mut nodes, admin, big) = three_nodes(root.path()).await;
    let a_admin = nodes[0].app.signed_as(&admin);
    let leaders = formed(&nodes.iter().collect::<Vec<_>>(), &admin, 3).await;
    let target = flight_led_by(&a_admin, &big, &leaders, &leaders[0]).await;
    let buyers: Vec<Client> = nodes[0]
        .app
        .customers(30)
        .await
        .into_iter()
        .map(|(_, c)| c)
        .collect();
    let mut all = Vec::new();
    for i in 0..nodes.len() {
        // Load through the two nodes that stay up while this one restarts.
        let bases: Vec<String> = nodes
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, n)| n.app.base.clone())
            .collect();
        let group = &buyers[i * 10..(i + 1) * 10];
        let load = Load::start(&format!("roll-{i}"), group, &bases, &target);
        tokio::time::sleep(Duration::from_millis(400)).await;
        nodes[i].kill9();
        load.mark();
        nodes[i].launch();
        formed(&nodes.iter().collect::<Vec<_>>(), &admin, 3).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        let (booked, _) = load.finish().await;
        assert!(
            !booked.is_empty(),
            "nothing was booked while {} restarted",
            nodes[i].name
        );
        all.extend(booked);
    }
    let reader = nodes[0].app.clone_client();
    let held = verify(&reader, &target, &all).await;
    println!(
        "rolling restart: {} bookings acknowledged, {} seats held",
        all.len(),
        held
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_with_five_replicas_book_everything_with_two_nodes_down() {
    let root = tempfile::tempdir().expect("dir");
    let names = ["node-a", "node-b", "node-c", "node-d", "node-e"];
    let mut env = ENV.to_vec();
    env.push(("CONTRAIL__CLUSTER__REPLICAS", "5"));
    let mut nodes = cluster_with(root.path(), &names, &env).await;
    let admin = nodes[0].app.admin().await;
    formed(&nodes.iter().collect::<Vec<_>>(), &admin, 5).await;
    let a_admin = nodes[0].app.signed_as(&admin);
    airport(&a_admin, "DEL").await;
    airport(&a_admin, "BOM").await;
    let small = aircraft(&a_admin, 2, "AB").await;
    // A flight in every partition, and a booking on each before the loss.
    let by_partition = a_flight_per_partition(&a_admin, &small).await;
    let customers = nodes[1].app.customers(2).await;
    let mut before = Vec::new();
    for target in by_partition.values() {
        let placed = customers[0]
            .1
            .place_order(&economy(&[target], 1), None)
            .await;
        let placed = placed.unwrap_or_else(|e| panic!("booking on {target}: {e}"));
        before.push((target.clone(), placed.order.segments[0].seats[0].clone()));
    }

    // Two nodes down at once, one of them the leader of partition 0.
    let leaders = formed(&nodes.iter().collect::<Vec<_>>(), &admin, 5).await;
    let first = nodes
        .iter()
        .position(|n| n.name == leaders[0])
        .expect("leader");
    let second = (first + 2) % nodes.len();
    nodes[first].kill9();
    nodes[second].kill9();
    let survivors: Vec<String> = nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != first && *i != second)
        .map(|(_, n)| n.app.base.clone())
        .collect();

    // Every partition's flight books again through the survivors, and keeps what it had.
    for (i, target) in by_partition.values().enumerate() {
        let api = helpers::client_of(&survivors[i % survivors.len()]).signed_as(&customers[1].1);
        let booked = eventually(Duration::from_secs(30), || async {
            let key = format!("after-loss-{target}");
            let placed = api.place_order(&economy(&[target], 1), Some(&key)).await;
            matches!(status_of(&placed), StatusCode::CREATED | StatusCode::OK)
        })
        .await;
        assert!(booked, "{target} was not bookable with two nodes down");
    }
    let reader = helpers::client_of(&survivors[0]);
    for (target, seat) in &before {
        let seats = reader.seat_statuses(target).await;
        assert_eq!(
            seats.get(seat).map(String::as_str),
            Some("held"),
            "{target} {seat}"
        );
        assert_eq!(
            seats.values().filter(|s| *s == "held").count(),
            2,
            "{seats:?}"
        );
    }
}

/// A flight of `aircraft` in every partition, created through `admin`.
async fn a_flight_per_partition(admin: &Client, aircraft: &str) -> BTreeMap<u16, String> {
    let mut by_partition = BTreeMap::new();
    for i in 0..400 {
        let spec = flight_spec(
            aircraft,
            "DEL",
            "BOM",
            "2031-05-01T08:00:00Z",
            120,
            3000 + i,
        );
        let id = flight(admin, &spec).await;
        by_partition
            .entry(partition_of(tag_of(&id), PARTITIONS))
            .or_insert(id);
        if by_partition.len() == usize::from(PARTITIONS) {
            return by_partition;
        }
    }
    panic!("400 flights did not cover every partition")
}

/// Books one seat on every flight through `via` (idempotent retries until answered).
async fn book_each(
    via: &TestApp,
    customer: &Client,
    flights: &BTreeMap<u16, String>,
    round: &str,
) -> Vec<(String, String)> {
    let api = via.signed_as(customer);
    let mut booked = Vec::new();
    for target in flights.values() {
        let key = format!("{round}-{target}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let seat = loop {
            match api.place_order(&economy(&[target], 1), Some(&key)).await {
                Ok(placed) => break placed.order.segments[0].seats[0].clone(),
                Err(e) => assert!(
                    Instant::now() < deadline,
                    "{target} was not bookable ({round}): {e}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        booked.push((target.clone(), seat));
    }
    booked
}

/// Every booking in `booked` holds its seat, as `reader` sees it (a read answered 503 while a
/// partition elects a new leader is retried, as a client honouring Retry-After does).
async fn all_held(reader: &TestApp, booked: &[(String, String)]) {
    for (target, seat) in booked {
        let deadline = Instant::now() + Duration::from_secs(30);
        let seats = loop {
            match reader.api().seats(target).await {
                Ok(seats) => break seats,
                Err(e) if e.status() == Some(StatusCode::SERVICE_UNAVAILABLE) => {
                    assert!(Instant::now() < deadline, "{target} unreadable: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("seats of {target}: {e}"),
            }
        };
        let seats: BTreeMap<String, String> =
            seats.into_iter().map(|s| (s.seat, s.status)).collect();
        assert_eq!(
            seats.get(seat).map(String::as_str),
            Some("held"),
            "{target} {seat}: {seats:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_removed_for_good_has_its_replicas_rebuilt_and_loses_no_booking() {
    let root = tempfile::tempdir().expect("dir");
    let (mut nodes, admin, _) = three_nodes(root.path()).await;
    let a_admin = nodes[0].app.signed_as(&admin);
    let small = aircraft(&a_admin, 4, "AB").await;
    let flights = a_flight_per_partition(&a_admin, &small).await;
    let customer = nodes[1].app.customers(1).await.remove(0).1;
    let mut booked = book_each(&nodes[1].app, &customer, &flights, "before").await;

    // A member that answers is drained, not removed; an unknown one is not found.
    let up = a_admin.remove_node("node-c").await;
    assert!(
        up.as_ref()
            .is_err_and(|e| e.to_string().contains("node_up")),
        "{up:?}"
    );
    let unknown = a_admin.remove_node("node-x").await;
    assert!(
        unknown
            .as_ref()
            .is_err_and(|e| e.to_string().contains("not_found")),
        "{unknown:?}"
    );

    // node-c is gone for good: killed, its disk lost.
    nodes[2].kill9();
    std::fs::remove_dir_all(&nodes[2].data).expect("delete node-c's data");
    // A new member joins while node-c is still a member, down: the member list's consensus
    // group decides it (a majority of its voters is up), nobody waits for node-c.
    let seed = nodes[0].port;
    nodes.push(Member::start_with("node-d", root.path(), &[seed], &ENV));
    let joined = eventually(Duration::from_secs(60), || async {
        let view = nodes[3].app.signed_as(&admin).cluster().await;
        view.is_ok_and(|v| v.members.iter().any(|m| m.node_id == "node-d"))
    })
    .await;
    assert!(joined, "node-d did not join while node-c was down");
    all_held(&nodes[0].app, &booked).await;

    // Then node-c is removed: every partition gets its three replicas on the members left.
    let removed = eventually(Duration::from_secs(30), || async {
        a_admin.remove_node("node-c").await.is_ok()
    })
    .await;
    assert!(removed, "node-c could not be removed");
    let live: Vec<&Member> = [&nodes[0], &nodes[1], &nodes[3]].into_iter().collect();
    helpers::cluster::settled(&live, 3).await;
    formed(&live, &admin, 3).await;
    // Every group, as its leader reports it, has its three replicas on the members left.
    let rebuilt = eventually(Duration::from_secs(60), || async {
        let groups = groups_by_leader(&live, &admin).await;
        groups.iter().all(|g| {
            g.as_ref().is_some_and(|g| {
                g.replicas.len() == 3
                    && !g.replicas.iter().chain(&g.learners).any(|r| r == "node-c")
            })
        })
    })
    .await;
    assert!(
        rebuilt,
        "node-c's replicas were not rebuilt:\n{}",
        describe(&live, &admin).await
    );
    let view = nodes[3]
        .app
        .signed_as(&admin)
        .cluster()
        .await
        .expect("view");
    assert_eq!(
        view.members
            .iter()
            .map(|m| m.node_id.as_str())
            .collect::<Vec<_>>(),
        ["node-a", "node-b", "node-d"]
    );
    assert!(
        view.partitions
            .iter()
            .all(|p| p.replicas.iter().any(|r| r == "node-d")),
        "{:?}",
        view.partitions
    );
    // The member list's own group followed: its voters are the three members left.
    let listed = eventually(Duration::from_secs(30), || async {
        let view = nodes[3].app.signed_as(&admin).cluster().await;
        view.ok().and_then(|v| v.member_list).is_some_and(|list| {
            let mut voters = list.replicas.clone();
            voters.sort();
            list.leader.is_some() && voters == ["node-a", "node-b", "node-d"]
        })
    })
    .await;
    assert!(listed, "the member list's group did not follow the removal");
    all_held(&nodes[3].app, &booked).await;
    booked.extend(book_each(&nodes[3].app, &customer, &flights, "after-removal").await);

    // With node-a down too, node-b and node-d are a majority of every partition: node-d's
    // replicas hold everything, and every partition books again.
    nodes[0].kill9();
    let after = book_each(&nodes[3].app, &customer, &flights, "after-rebuild").await;
    all_held(&nodes[3].app, &booked).await;
    all_held(&nodes[1].app, &after).await;
    let mut seen = std::collections::BTreeSet::new();
    for (target, seat) in booked.iter().chain(&after) {
        assert!(seen.insert((target, seat)), "{target} {seat} booked twice");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_node_hands_its_replicas_over_before_it_is_stopped() {
    let root = tempfile::tempdir().expect("dir");
    let names = ["node-a", "node-b", "node-c", "node-d"];
    let mut nodes = cluster_with(root.path(), &names, &ENV).await;
    let admin = nodes[0].app.admin().await;
    // Each group has three replicas of four nodes; every group's leader reports it.
    let all: Vec<&Member> = nodes.iter().collect();
    let settled = |without: Option<&'static str>| {
        let (all, admin) = (all.clone(), admin.clone());
        async move {
            let groups = groups_by_leader(&all, &admin).await;
            // The member list's group (numbered after the partitions) has the members it
            // does not keep as voters as learners.
            groups.iter().all(|g| {
                g.as_ref().is_some_and(|g| {
                    g.replicas.len() == 3
                        && (g.id == PARTITIONS || g.learners.is_empty())
                        && without.is_none_or(|gone| {
                            !g.replicas.iter().chain(&g.learners).any(|r| r == gone)
                        })
                })
            })
        }
    };
    assert!(
        eventually(Duration::from_secs(60), || settled(None)).await,
        "the groups did not form:\n{}\n{:?}",
        describe(&all, &admin).await,
        view_of_member_list(&all, &admin).await,
    );
    let a_admin = nodes[0].app.signed_as(&admin);
    airport(&a_admin, "DEL").await;
    airport(&a_admin, "BOM").await;
    let small = aircraft(&a_admin, 4, "AB").await;
    let flights = a_flight_per_partition(&a_admin, &small).await;
    let customer = nodes[1].app.customers(1).await.remove(0).1;
    // Every node, each holding no replica of some partitions, reads every flight: it finds the
    // leaders of groups it is not in from the leaders' heartbeats.
    for node in &nodes {
        for target in flights.values() {
            let read = eventually(Duration::from_secs(5), || async {
                node.app.api().seats(target).await.is_ok()
            })
            .await;
            assert!(read, "{} cannot reach the leader of {target}", node.name);
        }
    }
    let mut booked = Vec::new();
    for node in &nodes {
        let round = format!("before-via-{}", node.name);
        booked.extend(book_each(&node.app, &customer, &flights, &round).await);
    }

    // Drain node-d (through node-a): it leaves the member list at once, and every group it
    // had a replica in gets one elsewhere, caught up, before it is let go.
    let drained = a_admin.drain("node-d").await.expect("drain");
    assert!(drained.members.iter().all(|m| m.node_id != "node-d"));
    let handed_over = eventually(Duration::from_secs(60), || settled(Some("node-d"))).await;
    assert!(handed_over, "node-d's replicas were not handed over");

    // Stopped, and another node lost too: every partition still has a majority on the two
    // left, which hold every booking.
    drop(all);
    nodes[3].kill9();
    nodes[2].kill9();
    let after = book_each(&nodes[0].app, &customer, &flights, "after-drain").await;
    all_held(&nodes[1].app, &booked).await;
    all_held(&nodes[1].app, &after).await;
}

async fn view_of_member_list(nodes: &[&Member], admin: &Client) -> Vec<String> {
    let mut out = Vec::new();
    for node in nodes {
        if let Ok(view) = node.app.signed_as(admin).cluster().await {
            out.push(format!("{}: {:?}", node.name, view.member_list));
        }
    }
    out
}

/// Each group (the partitions, then the member list's) as its leader reports it (`None` while
/// no node says it leads the group): a node that holds no replica of a group knows nothing of it.
async fn groups_by_leader(
    nodes: &[&Member],
    admin: &Client,
) -> Vec<Option<contrail_client::Partition>> {
    let mut found = vec![None; usize::from(PARTITIONS) + 1];
    for node in nodes {
        let Ok(view) = node.app.signed_as(admin).cluster().await else {
            continue;
        };
        for group in view.partitions.iter().chain(&view.member_list) {
            if group.leader.as_deref() == Some(node.name.as_str())
                && let Some(slot) = found.get_mut(usize::from(group.id))
            {
                *slot = Some(group.clone());
            }
        }
    }
    found
}

/// Customers booking one seat at a time on one flight through some nodes, each booking retried
/// with its idempotency key until it is answered (a client cannot tell a write lost in a
/// failover from one that landed).
/// A buyer's pause after each booking of [`Load`]'s: the load lasts about
/// `max_seats_per_user_per_flight` (9) × this, plus the outages it meets.
const PACE: Duration = Duration::from_millis(300);

struct Load {
    stop: Arc<AtomicBool>,
    booked: Arc<Mutex<Vec<Booked>>>,
    /// When the fault under test was made, and the first booking sent after it that succeeded.
    marked: Arc<Mutex<(Option<Instant>, Option<Instant>)>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(name: &str, buyers: &[Client], bases: &[String], target: &str) -> Self {
        let load = Self {
            stop: Arc::default(),
            booked: Arc::default(),
            marked: Arc::default(),
            tasks: Vec::new(),
        };
        let tasks = buyers
            .iter()
            .enumerate()
            .map(|(i, buyer)| {
                let api = helpers::client_of(&bases[i % bases.len()]).signed_as(buyer);
                let prefix = format!("{name}-{i}");
                let (stop, booked, marked) =
                    (load.stop.clone(), load.booked.clone(), load.marked.clone());
                let (buyer, target) = (buyer.clone(), target.to_owned());
                tokio::spawn(async move {
                    let record = |placed: &contrail_client::Placed, how: String| {
                        booked.lock().expect("lock").push(Booked {
                            how,
                            order: placed.order.id.clone(),
                            customer: buyer.clone(),
                            seat: placed.order.segments[0].seats[0].clone(),
                        });
                    };
                    let mut attempt = 0;
                    let mut unanswered = false;
                    for _ in 0..400 {
                        if stop.load(Ordering::Acquire) {
                            break;
                        }
                        let key = format!("{prefix}-{attempt}");
                        if attempt > 0 && !unanswered {
                            // Paced, so that the load outlasts the fault under test (a release
                            // build would otherwise use up every buyer's seats before it).
                            tokio::time::sleep(PACE).await;
                        }
                        let sent = Instant::now();
                        match api.place_order(&economy(&[&target], 1), Some(&key)).await {
                            Ok(placed) => {
                                let mut marks = marked.lock().expect("lock");
                                let how = format!(
                                    "{} key {key} in {:?}, {:?} after the fault",
                                    if placed.replayed {
                                        "replayed"
                                    } else {
                                        "placed"
                                    },
                                    sent.elapsed(),
                                    marks.0.map(|k| k.elapsed())
                                );
                                if marks.0.is_some_and(|k| sent > k) && marks.1.is_none() {
                                    marks.1 = Some(Instant::now());
                                }
                                drop(marks);
                                record(&placed, how);
                                attempt += 1;
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
                    let key = format!("{prefix}-{attempt}");
                    for _ in 0..if unanswered { 100 } else { 0 } {
                        match api.place_order(&economy(&[&target], 1), Some(&key)).await {
                            Ok(placed) => {
                                if placed.order.status == "held" {
                                    record(&placed, format!("settled key {key}"));
                                }
                                break;
                            }
                            Err(e) if e.status() == Some(StatusCode::CONFLICT) => break,
                            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                        }
                    }
                })
            })
            .collect();
        Self { tasks, ..load }
    }

    /// Marks the moment of the fault.
    fn mark(&self) {
        self.marked.lock().expect("lock").0 = Some(Instant::now());
    }

    /// When the first booking sent after the mark succeeded.
    fn first_after_mark(&self) -> Option<Instant> {
        self.marked.lock().expect("lock").1
    }

    /// Stops the load (every booking answered) and returns what was acknowledged, with the
    /// time from the mark to the first booking after it.
    async fn finish(self) -> (Vec<Booked>, Option<Duration>) {
        self.stop.store(true, Ordering::Release);
        for task in self.tasks {
            task.await.expect("load task");
        }
        let (mark, first) = *self.marked.lock().expect("lock");
        let failover = mark.zip(first).map(|(m, f)| f.duration_since(m));
        let booked = self.booked.lock().expect("lock").clone();
        (booked, failover)
    }
}

/// Checks that every acknowledged booking of `target` is held, each seat once, reading through
/// `reader`; returns how many seats are held. An order that failed in a failover may keep its
/// seats until its hold lapses (its compensation found no leader for the flight's partition):
/// more may be held, never fewer.
async fn verify(reader: &TestApp, target: &str, all: &[Booked]) -> usize {
    let seats = reader.seat_statuses(target).await;
    let mut seen = BTreeMap::new();
    for b in all {
        if let Some(other) = seen.insert(b.seat.clone(), b.order.clone()) {
            let first = all.iter().find(|x| x.order == other).expect("first");
            let a = reader.signed_as(&first.customer).order(&other).await;
            let z = reader.signed_as(&b.customer).order(&b.order).await;
            panic!(
                "seat {} acknowledged to {other} ({}) and {} ({}):\n{a:?}\n{z:?}",
                b.seat, first.how, b.order, b.how
            );
        }
        assert_eq!(
            seats.get(&b.seat).map(String::as_str),
            Some("held"),
            "{} lost ({})",
            b.seat,
            b.how
        );
        let order = reader.signed_as(&b.customer).order(&b.order).await;
        let order = order.unwrap_or_else(|e| panic!("order {} lost: {e}", b.order));
        assert_eq!(order.status, "held");
    }
    let held = seats.values().filter(|s| *s == "held").count();
    assert!(
        held >= all.len(),
        "{held} seats held, {} acknowledged",
        all.len()
    );
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_ran_alone_founds_a_cluster_and_its_records_reach_every_replica() {
    let root = tempfile::tempdir().expect("dir");
    // node-a runs alone first: a catalog, customers and bookings only on its disk.
    let alone = helpers::binary::Server::start(&root.path().join("node-a"));
    let app = helpers::client_of(&alone.base);
    let admin = app.admin().await;
    let a_admin = app.signed_as(&admin);
    airport(&a_admin, "DEL").await;
    airport(&a_admin, "BOM").await;
    let small = aircraft(&a_admin, 4, "AB").await;
    let flights = a_flight_per_partition(&a_admin, &small).await;
    let (_, customer) = app.customers(1).await.remove(0);
    let booked = book_each(&app, &customer, &flights, "alone").await;
    alone.kill9();

    // It founds a cluster on the same data directory; two nodes join.
    let mut nodes = vec![Member::start("node-a", root.path(), &[])];
    let seed = nodes[0].port;
    for name in ["node-b", "node-c"] {
        nodes.push(Member::start(name, root.path(), &[seed]));
    }
    let all: Vec<&Member> = nodes.iter().collect();
    helpers::cluster::settled(&all, 3).await;
    helpers::cluster::balanced(&all, &admin, 3).await;
    drop(all);

    // node-a is lost for good: what it had before the cluster is on the others.
    nodes[0].kill9();
    std::fs::remove_dir_all(&nodes[0].data).expect("delete node-a's data");
    all_held(&nodes[1].app, &booked).await;
    let orders = eventually(Duration::from_secs(30), || async {
        nodes[2]
            .app
            .clone_client()
            .signed_as(&customer)
            .orders()
            .await
            .is_ok_and(|orders| orders.len() == booked.len())
    })
    .await;
    assert!(orders, "the customer's orders did not survive node-a");
    let signin = nodes[1]
        .app
        .api()
        .signin(helpers::ADMIN_EMAIL, helpers::ADMIN_PASSWORD)
        .await;
    assert!(signin.is_ok(), "{signin:?}");
    let more = book_each(&nodes[2].app, &customer, &flights, "after").await;
    assert_eq!(more.len(), flights.len());
}
