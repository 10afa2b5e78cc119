//! Seat-map rules, record encoding, and a flight actor holding seats durably (group commit).
//!
//! `cargo bench --bench flight`; results and the machine go in BENCHMARKS.md.

use chrono::{Duration as ChronoDuration, Utc};
use contrail::actors::flight::{FlightActor, FlightCommand, FlightMessage};
use contrail::actors::root::Slot;
use contrail::actors::search_index::{SearchIndexActor, SharedIndex};
use contrail::domain::aircraft::{Cabin, Layout};
use contrail::domain::flight::{Flight, FlightDraft};
use contrail::domain::ids::{AircraftId, FlightId, OrderId, UserId};
use contrail::domain::seat_map::{Holder, SeatMap, SeatRequest};
use contrail::persistence::{Store, WriteBatch, keys};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ractor::Actor;
use std::hint::black_box;
use std::time::Duration;

fn layout() -> Layout {
    Layout::new(vec![
        (Cabin::Business, [1, 4], "ACDF".into()),
        (Cabin::Economy, [5, 30], "ABCDEF".into()),
    ])
    .expect("valid layout")
}

fn seat_map(c: &mut Criterion) {
    let layout = layout();
    let mut group = c.benchmark_group("seat_map");
    group.throughput(Throughput::Elements(1));
    group.bench_function("hold_then_release_one_economy_seat", |b| {
        let mut map = SeatMap::new(&layout);
        let holder = Holder {
            order: OrderId::generate(),
            user: UserId::generate(),
        };
        let req = SeatRequest::Cabin {
            cabin: Cabin::Economy,
            count: 1,
        };
        let now = Utc::now();
        let until = now + ChronoDuration::minutes(10);
        b.iter(|| {
            let held = map
                .hold(black_box(&req), &holder, until, now, None)
                .expect("free seats");
            black_box(held);
            black_box(map.release(&holder.order));
        });
    });
    group.bench_function("availability_172_seats", |b| {
        let map = SeatMap::new(&layout);
        b.iter(|| black_box(map.availability()));
    });
    group.finish();
}

fn encoding(c: &mut Criterion) {
    let cmd = FlightCommand::Hold {
        holder: Holder {
            order: OrderId::generate(),
            user: UserId::generate(),
        },
        request: SeatRequest::Cabin {
            cabin: Cabin::Economy,
            count: 2,
        },
        expires_at: Utc::now(),
    };
    let mut group = c.benchmark_group("encoding");
    group.bench_function("postcard_hold_command_round_trip", |b| {
        b.iter(|| {
            let bytes = postcard::to_allocvec(black_box(&cmd)).expect("encodes");
            let back: FlightCommand = postcard::from_bytes(&bytes).expect("decodes");
            black_box(back)
        });
    });
    group.finish();
}

/// A store with one 172-seat flight, and its actor.
async fn flight_actor(store: Store) -> ractor::ActorRef<FlightMessage> {
    let departs = Utc::now() + ChronoDuration::days(30);
    let draft = FlightDraft {
        flight_number: "AI101".into(),
        aircraft_id: AircraftId::generate(),
        origin: "DEL".into(),
        destination: "BOM".into(),
        departs_at: departs,
        arrives_at: departs + ChronoDuration::hours(2),
        fares: [(Cabin::Business, 20_000), (Cabin::Economy, 5_000)]
            .into_iter()
            .collect(),
        currency: "USD".into(),
    };
    let flight = Flight::new(FlightId::generate(), draft, layout(), Utc::now()).expect("flight");
    let mut batch = WriteBatch::new();
    batch.put(&keys::flight(&flight.id), &flight).expect("put");
    store.commit(batch).expect("commit").await.expect("durable");
    let (index, _) = Actor::spawn(
        None,
        SearchIndexActor { listings: None },
        SharedIndex::default(),
    )
    .await
    .expect("index");
    let actor = FlightActor {
        store: store.clone(),
        index: Slot::of(index),
        passivate_after: Duration::from_secs(3600),
        hold_cap: None,
        sold_out: Default::default(),
    };
    let (flight_ref, _) = Actor::spawn(None, actor, flight.id.clone())
        .await
        .expect("flight actor");
    flight_ref
}

/// Holds and releases through a flight actor: with a durable store (every change waits for a
/// flush, shared by concurrent writers) and with a temporary in-memory one (no flush cost).
fn flight_actor_holds(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("dir");
    let durable = rt.block_on(async { Store::open(dir.path()).expect("store") });
    let memory = rt.block_on(async { Store::temporary().expect("store") });
    actor_group(c, &rt, "flight_actor_durable", durable);
    actor_group(c, &rt, "flight_actor_in_memory", memory);
}

fn actor_group(c: &mut Criterion, rt: &tokio::runtime::Runtime, name: &str, store: Store) {
    let flight = rt.block_on(flight_actor(store));
    let mut group = c.benchmark_group(name);
    for clients in [1usize, 64] {
        group.throughput(Throughput::Elements(2 * clients as u64));
        group.bench_function(
            format!("hold_and_release_{clients}_concurrent_orders"),
            |b| {
                b.to_async(rt).iter_batched(
                    || {
                        (0..clients)
                            .map(|_| OrderId::generate())
                            .collect::<Vec<_>>()
                    },
                    |orders| {
                        let flight = flight.clone();
                        async move {
                            let calls = orders.into_iter().map(|order| {
                                let flight = flight.clone();
                                async move {
                                    let until = Utc::now() + ChronoDuration::minutes(10);
                                    let req = SeatRequest::Cabin {
                                        cabin: Cabin::Economy,
                                        count: 1,
                                    };
                                    let hold = FlightCommand::Hold {
                                        holder: Holder {
                                            order: order.clone(),
                                            user: UserId::generate(),
                                        },
                                        request: req,
                                        expires_at: until,
                                    };
                                    let held = flight
                                        .call(
                                            |p| {
                                                FlightMessage::Command(
                                                    hold,
                                                    p,
                                                    tracing::Span::none(),
                                                )
                                            },
                                            None,
                                        )
                                        .await
                                        .expect("delivered");
                                    black_box(held);
                                    let release = FlightCommand::Release { order };
                                    flight
                                        .call(
                                            |p| {
                                                FlightMessage::Command(
                                                    release,
                                                    p,
                                                    tracing::Span::none(),
                                                )
                                            },
                                            None,
                                        )
                                        .await
                                        .expect("delivered")
                                }
                            });
                            futures::future::join_all(calls).await
                        }
                    },
                    BatchSize::SmallInput,
                );
            },
        );
    }
    group.finish();
}

criterion_group!(benches, seat_map, encoding, flight_actor_holds);
criterion_main!(benches);
