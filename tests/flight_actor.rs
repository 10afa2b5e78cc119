//! Flight actors under concurrency, panics, passivation and corrupt records, on a real node.

mod helpers;

use chrono::{Duration as ChronoDuration, Utc};
use contrail::actors::CallError;
use contrail::actors::flight::{FlightCommand, FlightError, FlightMessage, FlightReply};
use contrail::domain::aircraft::{Cabin, SeatName};
use contrail::domain::ids::{FlightId, OrderId, UserId};
use contrail::domain::seat_map::{HoldError, Holder, SeatRequest};
use contrail::persistence::{Store, WriteBatch, keys};
use contrail_client::Search;
use helpers::*;
use reqwest::StatusCode;
use std::collections::HashSet;
use std::time::Duration;

fn hold(request: SeatRequest) -> FlightCommand {
    FlightCommand::Hold {
        holder: Holder {
            order: OrderId::generate(),
            user: UserId::generate(),
        },
        request,
        expires_at: Utc::now() + ChronoDuration::minutes(10),
    }
}

/// A hold of `count` economy seats, chosen by the flight.
fn economy_hold(count: u16) -> FlightCommand {
    hold(SeatRequest::Cabin {
        cabin: Cabin::Economy,
        count,
    })
}

async fn held_seats(app: &TestApp, flight: &str) -> Vec<String> {
    let statuses = app.seat_statuses(flight).await;
    statuses
        .into_iter()
        .filter(|(_, status)| status != "available")
        .map(|(seat, _)| seat)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_concurrent_holds_on_fifty_seats_sell_each_seat_once() {
    let mut app = spawn_app().await;
    let (_, flight) = app.one_flight(10, "ABCDE").await; // 50 seats
    let id = FlightId::parse(&flight).expect("id");
    let directory = app.node().directory().clone();
    let tasks: Vec<_> = (0..300)
        .map(|_| {
            let d = directory.clone();
            let id = id.clone();
            tokio::spawn(async move { d.call(&id, economy_hold(1)).await })
        })
        .collect();
    let mut won = Vec::new();
    let mut refused = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(Ok(FlightReply::Held { seats, .. })) => won.extend(seats),
            Ok(Err(FlightError::Hold(HoldError::NotEnoughSeats { .. }))) => refused += 1,
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(won.len(), 50);
    assert_eq!(refused, 250);
    let distinct: HashSet<SeatName> = won.iter().copied().collect();
    assert_eq!(distinct.len(), 50, "a seat was sold twice");
    assert_eq!(held_seats(&app, &flight).await.len(), 50);
    // Every acknowledged hold is durable.
    drop(directory);
    app.restart().await;
    assert_eq!(held_seats(&app, &flight).await.len(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_buyers_for_one_seat_give_exactly_one_hold() {
    let app = spawn_app().await;
    let (_, flight) = app.one_flight(10, "ABCDE").await;
    let id = FlightId::parse(&flight).expect("id");
    let seat = SeatName::parse("1A").expect("seat");
    let directory = app.node().directory().clone();
    let tasks: Vec<_> = (0..60)
        .map(|_| {
            let d = directory.clone();
            let id = id.clone();
            tokio::spawn(async move { d.call(&id, hold(SeatRequest::Seats(vec![seat]))).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(Ok(_)) => ok += 1,
            Ok(Err(FlightError::Hold(HoldError::Unavailable(s)))) => assert_eq!(s, seat),
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(held_seats(&app, &flight).await, vec!["1A".to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_flight_restarts_from_disk_and_loses_no_acknowledged_hold() {
    let app = spawn_app().await;
    let (admin, flight) = app.one_flight(10, "ABCDE").await;
    let other = {
        let aircraft = aircraft(&admin, 2, "AB").await;
        let spec = flight_spec(&aircraft, "DEL", "BOM", "2031-03-02T08:00:00Z", 60, 100);
        helpers::flight(&admin, &spec).await
    };
    let id = FlightId::parse(&flight).expect("id");
    let directory = app.node().directory().clone();
    // Some holds acknowledged before the crash for sure, then more racing with it.
    let mut acked = Vec::new();
    for _ in 0..5 {
        match directory.call(&id, economy_hold(1)).await {
            Ok(Ok(FlightReply::Held { seats, .. })) => {
                acked.extend(seats.iter().map(|s| s.to_string()))
            }
            other => panic!("hold before the crash failed: {other:?}"),
        }
    }
    let mut tasks = Vec::new();
    for i in 0..40 {
        let d = directory.clone();
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            if i == 20 {
                d.tell(&id, FlightMessage::InjectPanic).await.map(|_| None)
            } else {
                d.call(&id, economy_hold(1)).await.map(Some)
            }
        }));
    }
    for t in tasks {
        match tokio::time::timeout(Duration::from_secs(20), t)
            .await
            .expect("a caller hung")
            .expect("task")
        {
            Ok(Some(Ok(FlightReply::Held { seats, .. }))) => {
                acked.extend(seats.iter().map(|s| s.to_string()))
            }
            Ok(Some(Ok(other))) => panic!("unexpected reply {other:?}"),
            Ok(Some(Err(e))) => panic!("hold refused with seats left: {e:?}"),
            Ok(None) => {}
            Err(CallError::Stopped | CallError::Timeout | CallError::Unavailable(_)) => {}
            Err(CallError::NotFound) => panic!("flight vanished"),
        }
    }
    // The other flight never noticed.
    app.api().flight(&other).await.expect("the other flight");
    // The flight is back, restarted from disk, with every acknowledged hold.
    let ok = eventually(Duration::from_secs(10), || async {
        app.api().flight(&flight).await.is_ok()
    })
    .await;
    assert!(ok, "the flight did not come back");
    let held: HashSet<String> = held_seats(&app, &flight).await.into_iter().collect();
    for seat in &acked {
        assert!(held.contains(seat), "acknowledged hold on {seat} was lost");
    }
    assert!(acked.len() >= 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_flights_passivate_and_come_back_from_disk() {
    let app = spawn_app_with(|s| s.actors.passivate_after_secs = 1).await;
    let (_, flight) = app.one_flight(4, "AB").await;
    let id = FlightId::parse(&flight).expect("id");
    let directory = app.node().directory().clone();
    // A sold seat (a held one would keep the flight active until the hold lapses).
    let seat = SeatName::parse("2B").expect("seat");
    let order = OrderId::generate();
    let held = FlightCommand::Hold {
        holder: Holder {
            order: order.clone(),
            user: UserId::generate(),
        },
        request: SeatRequest::Seats(vec![seat]),
        expires_at: Utc::now() + ChronoDuration::minutes(10),
    };
    let r = directory.call(&id, held).await;
    assert!(matches!(r, Ok(Ok(FlightReply::Held { .. }))), "{r:?}");
    let sold = FlightCommand::Confirm {
        order,
        seats: vec![seat],
    };
    let r = directory.call(&id, sold).await;
    assert!(matches!(r, Ok(Ok(FlightReply::Changed(_)))), "{r:?}");
    assert!(directory.active().await.expect("count") >= 1);
    let passivated = eventually(Duration::from_secs(15), || async {
        directory.active().await == Ok(0)
    })
    .await;
    assert!(passivated, "the idle flight actor never stopped");
    assert_eq!(held_seats(&app, &flight).await, vec!["2B".to_owned()]);
    assert_eq!(directory.active().await, Ok(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_flight_record_is_a_clear_503_never_a_wrong_answer() {
    let mut app = spawn_app().await;
    let (admin, broken) = app.one_flight(4, "AB").await;
    let aircraft = aircraft(&admin, 2, "AB").await;
    let spec = flight_spec(&aircraft, "DEL", "BOM", "2031-03-02T08:00:00Z", 60, 100);
    let fine = helpers::flight(&admin, &spec).await;
    let node = app.node.take().expect("node");
    node.shutdown().await.expect("shutdown");
    {
        let store = Store::open(&app.data_dir()).expect("open");
        let mut batch = WriteBatch::new();
        batch
            .put(&keys::flight(&FlightId::parse(&broken).expect("id")), &7u8)
            .expect("put");
        store.commit(batch).expect("commit").await.expect("durable");
    }
    app.restart().await;
    let e = app
        .api()
        .flight(&broken)
        .await
        .expect_err("a corrupt flight");
    assert_eq!(e.status(), Some(StatusCode::SERVICE_UNAVAILABLE), "{e}");
    assert_eq!(e.code(), Some("unavailable"));
    assert!(e.retry_after().is_some());
    app.api().flight(&fine).await.expect("the fine flight");
    let from_del = Search {
        origin: Some("DEL".into()),
        ..Search::default()
    };
    let found = app.api().search(&from_del).await.expect("search");
    let ids: Vec<&str> = found.flights.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(ids, vec![fine.as_str()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_that_lapses_while_the_flight_is_idle_returns_to_sale() {
    let app = spawn_app_with(|s| s.actors.passivate_after_secs = 1).await;
    let (_, flight) = app.one_flight(1, "AB").await; // 2 seats
    let id = FlightId::parse(&flight).expect("id");
    let directory = app.node().directory().clone();
    let short = FlightCommand::Hold {
        holder: Holder {
            order: OrderId::generate(),
            user: UserId::generate(),
        },
        request: SeatRequest::Cabin {
            cabin: Cabin::Economy,
            count: 2,
        },
        expires_at: Utc::now() + ChronoDuration::seconds(2),
    };
    assert!(matches!(
        directory.call(&id, short).await,
        Ok(Ok(FlightReply::Held { .. }))
    ));
    assert_eq!(held_seats(&app, &flight).await.len(), 2);
    let two = Search {
        origin: Some("DEL".into()),
        destination: Some("BOM".into()),
        passengers: Some(2),
        ..Search::default()
    };
    let back = eventually(Duration::from_secs(20), || async {
        let found = app.api().search(&two).await;
        found.is_ok_and(|page| !page.flights.is_empty())
    })
    .await;
    assert!(back, "the lapsed hold never returned to sale");
    assert!(held_seats(&app, &flight).await.is_empty());
}

/// Refuses writes of flight records while switched on (what a node's fence does while it does
/// not lead the flight's partition, or seals it to hand it over).
struct Switch(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl contrail::persistence::Fence for Switch {
    fn admit(&self, key: &str) -> Result<(), String> {
        let on = self.0.load(std::sync::atomic::Ordering::SeqCst);
        if on && key.starts_with(keys::FLIGHTS) {
            Err("this node does not lead the flight's partition".into())
        } else {
            Ok(())
        }
    }
}

/// A flight actor over `store` for the flight `id`.
async fn flight_actor(
    store: &Store,
    id: &FlightId,
) -> (ractor::ActorRef<FlightMessage>, tokio::task::JoinHandle<()>) {
    use contrail::actors::search_index::{SearchIndexActor, SharedIndex};
    let (index, _) = ractor::Actor::spawn(
        None,
        SearchIndexActor { listings: None },
        SharedIndex::default(),
    )
    .await
    .expect("index");
    let actor = contrail::actors::flight::FlightActor {
        store: store.clone(),
        index: contrail::actors::root::Slot::of(index),
        passivate_after: Duration::from_secs(3600),
        hold_cap: None,
        sold_out: Default::default(),
    };
    ractor::Actor::spawn(None, actor, id.clone())
        .await
        .expect("flight actor")
}

async fn ask(
    flight: &ractor::ActorRef<FlightMessage>,
    cmd: FlightCommand,
) -> Result<FlightReply, FlightError> {
    let answer = flight
        .call(
            |port| FlightMessage::Command(cmd, port, tracing::Span::none()),
            Some(Duration::from_secs(10)),
        )
        .await
        .expect("delivered");
    match answer {
        ractor::rpc::CallResult::Success(reply) => reply,
        other => panic!("no answer: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_the_fence_refuses_is_unavailable_changes_nothing_and_the_actor_steps_down() {
    use contrail::domain::aircraft::Layout;
    use contrail::domain::flight::{Flight, FlightDraft};
    let dir = tempfile::tempdir().expect("dir");
    let store = Store::open(dir.path()).expect("store");
    let refusing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    store.set_fence(Switch(refusing.clone()));
    let layout = Layout::new(vec![(Cabin::Economy, [1, 4], "AB".into())]).expect("layout");
    let departs = Utc::now() + ChronoDuration::days(30);
    let draft = FlightDraft {
        flight_number: "AI101".into(),
        aircraft_id: contrail::domain::ids::AircraftId::generate(),
        origin: "DEL".into(),
        destination: "BOM".into(),
        departs_at: departs,
        arrives_at: departs + ChronoDuration::hours(2),
        fares: [(Cabin::Economy, 5_000)].into_iter().collect(),
        currency: "USD".into(),
    };
    let id = FlightId::generate();
    let flight = Flight::new(id.clone(), draft, layout, Utc::now()).expect("flight");
    let mut batch = WriteBatch::new();
    batch.put(&keys::flight(&id), &flight).expect("put");
    store.commit(batch).expect("commit").await.expect("durable");
    let stored = || {
        let record: Option<Flight> = store.get(&keys::flight(&id)).expect("read");
        record.expect("stored")
    };

    let (actor, stopped) = flight_actor(&store, &id).await;
    assert!(matches!(
        ask(&actor, economy_hold(1)).await,
        Ok(FlightReply::Held { .. })
    ));
    refusing.store(true, std::sync::atomic::Ordering::SeqCst);
    let refused = ask(&actor, FlightCommand::Cancel).await;
    assert!(
        matches!(&refused, Err(FlightError::Unavailable(why)) if why.contains("does not lead")),
        "{refused:?}"
    );
    // Nothing changed on disk, and the actor stopped (normally: no fault to count toward
    // quarantine) rather than keep a change its store refused in memory.
    assert_eq!(stored(), flight);
    tokio::time::timeout(Duration::from_secs(10), stopped)
        .await
        .expect("the actor stepped down")
        .expect("stopped without a fault");

    // Activated again from disk once the node may write: one seat held (the first hold), the
    // flight still scheduled, and it serves holds as before.
    refusing.store(false, std::sync::atomic::Ordering::SeqCst);
    let (actor, _) = flight_actor(&store, &id).await;
    assert!(matches!(
        ask(&actor, economy_hold(2)).await,
        Ok(FlightReply::Held { .. })
    ));
    let seats = ask(&actor, FlightCommand::Seats).await;
    let Ok(FlightReply::Seats(seats)) = seats else {
        panic!("{seats:?}");
    };
    assert_eq!(seats.iter().filter(|s| s.status == "held").count(), 3);
    assert_eq!(stored().status, flight.status);
    actor.stop(None);
}
