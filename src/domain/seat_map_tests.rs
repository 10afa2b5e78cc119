use super::*;
use chrono::TimeZone;
use proptest::prelude::*;

fn layout() -> Layout {
    Layout::new(vec![
        (Cabin::Business, [1, 2], "AC".into()),
        (Cabin::Economy, [3, 5], "ABC".into()),
    ])
    .expect("valid layout")
}

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + secs, 0)
        .single()
        .expect("valid time")
}

fn seat(s: &str) -> SeatName {
    SeatName::parse(s).expect("seat name")
}

fn orders() -> Vec<OrderId> {
    (0..4).map(|_| OrderId::generate()).collect()
}

#[test]
fn a_taken_seat_cannot_be_held_and_nothing_partial_is_left() {
    let o = orders();
    let mut map = SeatMap::new(&layout());
    let req = SeatRequest::Seats(vec![seat("3A"), seat("3B")]);
    assert_eq!(map.hold(&req, &o[0], t(60), t(0)).map(|v| v.len()), Ok(2));
    let clash = SeatRequest::Seats(vec![seat("4A"), seat("3B")]);
    assert_eq!(
        map.hold(&clash, &o[1], t(60), t(0)),
        Err(HoldError::Unavailable(seat("3B")))
    );
    assert_eq!(map.status(seat("4A")), Some(&SeatStatus::Available));
}

#[test]
fn a_lapsed_hold_can_be_taken_and_not_confirmed() {
    let o = orders();
    let mut map = SeatMap::new(&layout());
    let req = SeatRequest::Seats(vec![seat("1A")]);
    map.hold(&req, &o[0], t(10), t(0)).expect("first hold");
    assert_eq!(
        map.confirm(&o[0], &[seat("1A")], t(10)),
        Err(ConfirmError::Expired(seat("1A")))
    );
    map.hold(&req, &o[1], t(100), t(11))
        .expect("lapsed hold is free");
    assert_eq!(
        map.confirm(&o[0], &[seat("1A")], t(12)),
        Err(ConfirmError::NotHeld(seat("1A")))
    );
    assert_eq!(
        map.confirm(&o[1], &[seat("1A")], t(12)).map(|v| v.len()),
        Ok(1)
    );
}

#[test]
fn cabin_requests_pick_only_that_cabin() {
    let o = orders();
    let mut map = SeatMap::new(&layout());
    let got = map
        .hold(
            &SeatRequest::Cabin {
                cabin: Cabin::Business,
                count: 4,
            },
            &o[0],
            t(60),
            t(0),
        )
        .expect("four business seats");
    assert!(got.iter().all(|s| s.row <= 2));
    let more = map.hold(
        &SeatRequest::Cabin {
            cabin: Cabin::Business,
            count: 1,
        },
        &o[1],
        t(60),
        t(0),
    );
    assert!(matches!(
        more,
        Err(HoldError::NotEnoughSeats { available: 0, .. })
    ));
    let none = map.hold(
        &SeatRequest::Cabin {
            cabin: Cabin::First,
            count: 1,
        },
        &o[1],
        t(60),
        t(0),
    );
    assert_eq!(none, Err(HoldError::NoSuchCabin(Cabin::First)));
}

#[test]
fn a_retried_cabin_hold_returns_the_same_seats() {
    let o = orders();
    let mut map = SeatMap::new(&layout());
    map.hold(&SeatRequest::Seats(vec![seat("3A")]), &o[0], t(60), t(0))
        .expect("3A");
    let req = SeatRequest::Cabin {
        cabin: Cabin::Economy,
        count: 1,
    };
    assert_eq!(map.hold(&req, &o[1], t(60), t(0)), Ok(vec![seat("3B")]));
    map.release(&o[0]);
    assert_eq!(map.hold(&req, &o[1], t(90), t(1)), Ok(vec![seat("3B")]));
    assert_eq!(map.status(seat("3A")), Some(&SeatStatus::Available));
}

#[test]
fn unknown_and_duplicate_seats_are_refused() {
    let o = orders();
    let mut map = SeatMap::new(&layout());
    let unknown = SeatRequest::Seats(vec![seat("1B")]);
    assert_eq!(
        map.hold(&unknown, &o[0], t(1), t(0)),
        Err(HoldError::UnknownSeat(seat("1B")))
    );
    let dup = SeatRequest::Seats(vec![seat("1A"), seat("1A")]);
    assert_eq!(
        map.hold(&dup, &o[0], t(1), t(0)),
        Err(HoldError::DuplicateSeat(seat("1A")))
    );
    assert_eq!(
        map.hold(&SeatRequest::Seats(vec![]), &o[0], t(1), t(0)),
        Err(HoldError::Empty)
    );
}

#[derive(Debug, Clone)]
enum Op {
    HoldSeats(usize, Vec<usize>, i64),
    HoldCabin(usize, bool, u16, i64),
    Confirm(usize, Vec<usize>),
    Release(usize),
    Sweep,
    Tick(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..4usize, prop::collection::vec(0..13usize, 0..4), 1..50i64)
            .prop_map(|(o, s, ttl)| Op::HoldSeats(o, s, ttl)),
        (0..4usize, any::<bool>(), 0..6u16, 1..50i64)
            .prop_map(|(o, b, n, ttl)| Op::HoldCabin(o, b, n, ttl)),
        (0..4usize, prop::collection::vec(0..13usize, 0..4)).prop_map(|(o, s)| Op::Confirm(o, s)),
        (0..4usize).prop_map(Op::Release),
        Just(Op::Sweep),
        (1..30i64).prop_map(Op::Tick),
    ]
}

proptest! {
    /// For any sequence of operations: failed operations change nothing, counts always add up,
    /// a sold seat is only ever freed by its own order, and a seat an order holds (unexpired)
    /// or bought is never taken by another order.
    #[test]
    fn seat_map_invariants_hold_for_any_sequence(ops in prop::collection::vec(op(), 1..60)) {
        let layout = layout();
        // Seat index 12 is not on the aircraft ("9Z"), to exercise unknown seats.
        let mut all: Vec<SeatName> = SeatMap::new(&layout).seats().iter().map(|s| s.name).collect();
        all.push(seat("9Z"));
        let o = orders();
        let mut map = SeatMap::new(&layout);
        let mut now = 0i64;
        for op in ops {
            let before = map.clone();
            let changed = match &op {
                Op::HoldSeats(who, seats, ttl) => {
                    let names: Vec<SeatName> = seats.iter().map(|&i| all[i]).collect();
                    map.hold(&SeatRequest::Seats(names), &o[*who], t(now + ttl), t(now)).map(|v| v.len())
                        .map_err(|e| e.to_string())
                }
                Op::HoldCabin(who, business, count, ttl) => {
                    let cabin = if *business { Cabin::Business } else { Cabin::Economy };
                    let held_by = |m: &SeatMap| m.seats().iter().filter(|s| s.cabin == cabin
                        && matches!(&s.status, SeatStatus::Held { order, .. } if *order == o[*who])).count();
                    let before_held = held_by(&map);
                    let r = map.hold(&SeatRequest::Cabin { cabin, count: *count }, &o[*who], t(now + ttl), t(now));
                    if let Ok(got) = &r {
                        prop_assert_eq!(got.len(), usize::from(*count));
                        prop_assert!(got.iter().all(|s| layout.cabin_of(*s) == Some(cabin)));
                        // A retried request takes no extra seats.
                        prop_assert_eq!(held_by(&map), before_held.max(usize::from(*count)));
                    }
                    r.map(|v| v.len()).map_err(|e| e.to_string())
                }
                Op::Confirm(who, seats) => {
                    let names: Vec<SeatName> = seats.iter().map(|&i| all[i]).collect();
                    map.confirm(&o[*who], &names, t(now)).map(|v| v.len()).map_err(|e| e.to_string())
                }
                Op::Release(who) => Ok(map.release(&o[*who]).len()),
                Op::Sweep => Ok(map.sweep_expired(t(now)).len()),
                Op::Tick(d) => { now += d; Ok(0) }
            };
            if changed.is_err() {
                prop_assert_eq!(&map, &before, "a failed {:?} changed the map", op);
            }
            // Counts add up per cabin.
            for (cabin, a) in map.availability() {
                let in_cabin = map.seats().iter().filter(|s| s.cabin == cabin).count();
                let free = map.seats().iter().filter(|s| s.cabin == cabin && s.status == SeatStatus::Available).count();
                prop_assert_eq!(a.total as usize, in_cabin);
                prop_assert_eq!(a.available as usize, free);
            }
            // Nobody else's live claim was taken over.
            for (old, new) in before.seats().iter().zip(map.seats()) {
                match (&old.status, &new.status) {
                    (SeatStatus::Sold { order: a }, SeatStatus::Sold { order: b }) => prop_assert_eq!(a, b),
                    (SeatStatus::Sold { order }, SeatStatus::Available) => {
                        prop_assert!(matches!(&op, Op::Release(w) if &o[*w] == order));
                    }
                    (SeatStatus::Sold { .. }, SeatStatus::Held { .. }) => prop_assert!(false, "sold seat re-held"),
                    (SeatStatus::Held { order: a, expires_at }, SeatStatus::Held { order: b, .. })
                    | (SeatStatus::Held { order: a, expires_at }, SeatStatus::Sold { order: b })
                        if a != b => prop_assert!(*expires_at <= t(now), "live hold taken over"),
                    (SeatStatus::Held { order, expires_at }, SeatStatus::Available) => {
                        let own_release = matches!(&op, Op::Release(w) if &o[*w] == order);
                        let lapsed_sweep = matches!(&op, Op::Sweep) && *expires_at <= t(now);
                        prop_assert!(own_release || lapsed_sweep, "a live hold was freed by {:?}", op);
                    }
                    _ => {}
                }
            }
        }
    }
}
