use super::*;
use crate::domain::ids::UserId;
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

/// Four orders: the first two by one customer, the last two by another.
fn orders() -> Vec<Holder> {
    let users = [UserId::generate(), UserId::generate()];
    (0..4)
        .map(|i| Holder {
            order: OrderId::generate(),
            user: users[i / 2].clone(),
        })
        .collect()
}

/// Most live seats one customer may have in the property test.
const CAP: u16 = 5;

/// `SeatStatus` as it was stored before held and sold seats were boxed.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum InlineStatus {
    Available,
    Held {
        order: OrderId,
        user: UserId,
        expires_at: DateTime<Utc>,
    },
    Sold {
        order: OrderId,
        user: UserId,
    },
}

#[test]
fn boxed_seat_states_are_stored_exactly_as_the_inline_ones_were() {
    let (order, user) = (OrderId::generate(), UserId::generate());
    let pairs = [
        (SeatStatus::Available, InlineStatus::Available),
        (
            SeatStatus::Held(Box::new(Hold {
                order: order.clone(),
                user: user.clone(),
                expires_at: t(42),
            })),
            InlineStatus::Held {
                order: order.clone(),
                user: user.clone(),
                expires_at: t(42),
            },
        ),
        (
            SeatStatus::Sold(Box::new(Sale {
                order: order.clone(),
                user: user.clone(),
            })),
            InlineStatus::Sold { order, user },
        ),
    ];
    for (boxed, inline) in pairs {
        let old = postcard::to_allocvec(&inline).expect("encode");
        assert_eq!(postcard::to_allocvec(&boxed).expect("encode"), old);
        assert_eq!(
            postcard::from_bytes::<SeatStatus>(&old).expect("decode"),
            boxed
        );
    }
    assert!(std::mem::size_of::<SeatStatus>() <= 16);
}

#[test]
fn a_taken_seat_cannot_be_held_and_nothing_partial_is_left() {
    let o = orders();
    let mut map = SeatMap::new(&layout());
    let req = SeatRequest::Seats(vec![seat("3A"), seat("3B")]);
    assert_eq!(
        map.hold(&req, &o[0], t(60), t(0), None).map(|v| v.len()),
        Ok(2)
    );
    let clash = SeatRequest::Seats(vec![seat("4A"), seat("3B")]);
    assert_eq!(
        map.hold(&clash, &o[1], t(60), t(0), None),
        Err(HoldError::Unavailable(seat("3B")))
    );
    assert_eq!(map.status(seat("4A")), Some(&SeatStatus::Available));
}

#[test]
fn a_lapsed_hold_can_be_taken_and_not_confirmed() {
    let o = orders();
    let mut map = SeatMap::new(&layout());
    let req = SeatRequest::Seats(vec![seat("1A")]);
    map.hold(&req, &o[0], t(10), t(0), None)
        .expect("first hold");
    assert_eq!(
        map.confirm(&o[0].order, &[seat("1A")], t(10)),
        Err(ConfirmError::Expired(seat("1A")))
    );
    map.hold(&req, &o[1], t(100), t(11), None)
        .expect("lapsed hold is free");
    assert_eq!(
        map.confirm(&o[0].order, &[seat("1A")], t(12)),
        Err(ConfirmError::NotHeld(seat("1A")))
    );
    assert_eq!(
        map.confirm(&o[1].order, &[seat("1A")], t(12))
            .map(|v| v.len()),
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
            None,
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
        None,
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
        None,
    );
    assert_eq!(none, Err(HoldError::NoSuchCabin(Cabin::First)));
}

#[test]
fn a_retried_cabin_hold_returns_the_same_seats() {
    let o = orders();
    let mut map = SeatMap::new(&layout());
    map.hold(
        &SeatRequest::Seats(vec![seat("3A")]),
        &o[0],
        t(60),
        t(0),
        None,
    )
    .expect("3A");
    let req = SeatRequest::Cabin {
        cabin: Cabin::Economy,
        count: 1,
    };
    assert_eq!(
        map.hold(&req, &o[1], t(60), t(0), None),
        Ok(vec![seat("3B")])
    );
    map.release(&o[0].order);
    assert_eq!(
        map.hold(&req, &o[1], t(90), t(1), None),
        Ok(vec![seat("3B")])
    );
    assert_eq!(map.status(seat("3A")), Some(&SeatStatus::Available));
}

#[test]
fn the_per_customer_cap_counts_every_order_of_that_customer() {
    let o = orders(); // o[0] and o[1] belong to one customer
    let mut map = SeatMap::new(&layout());
    let three = SeatRequest::Cabin {
        cabin: Cabin::Economy,
        count: 3,
    };
    map.hold(&three, &o[0], t(60), t(0), Some(4))
        .expect("3 of 4");
    assert_eq!(
        map.hold(
            &SeatRequest::Cabin {
                cabin: Cabin::Economy,
                count: 2
            },
            &o[1],
            t(60),
            t(0),
            Some(4)
        ),
        Err(HoldError::CapExceeded { cap: 4 })
    );
    // Another customer is not affected, and a retry of the same order is not double counted.
    map.hold(&three, &o[2], t(60), t(0), Some(4))
        .expect("other customer");
    map.hold(&three, &o[0], t(60), t(0), Some(4))
        .expect("retry");
    // Lapsed holds do not count.
    map.hold(
        &SeatRequest::Cabin {
            cabin: Cabin::Economy,
            count: 4,
        },
        &o[1],
        t(120),
        t(61),
        Some(4),
    )
    .expect("the first order's holds lapsed");
}

#[test]
fn unknown_and_duplicate_seats_are_refused() {
    let o = orders();
    let mut map = SeatMap::new(&layout());
    let unknown = SeatRequest::Seats(vec![seat("1B")]);
    assert_eq!(
        map.hold(&unknown, &o[0], t(1), t(0), None),
        Err(HoldError::UnknownSeat(seat("1B")))
    );
    let dup = SeatRequest::Seats(vec![seat("1A"), seat("1A")]);
    assert_eq!(
        map.hold(&dup, &o[0], t(1), t(0), None),
        Err(HoldError::DuplicateSeat(seat("1A")))
    );
    assert_eq!(
        map.hold(&SeatRequest::Seats(vec![]), &o[0], t(1), t(0), None),
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
    fn seat_map_invariants_hold_for_any_sequence(
        ops in prop::collection::vec(op(), 1..60),
        unit_ms in prop_oneof![Just(1000i64), Just(350), Just(1)],
    ) {
        // Time moves in units of a second or of a part of one, so deadlines fall on and between
        // whole seconds (the map's scans compare whole seconds first).
        let t = |units: i64| t(0) + chrono::Duration::milliseconds(units * unit_ms);
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
                    map.hold(&SeatRequest::Seats(names), &o[*who], t(now + ttl), t(now), Some(CAP)).map(|v| v.len())
                        .map_err(|e| e.to_string())
                }
                Op::HoldCabin(who, business, count, ttl) => {
                    let cabin = if *business { Cabin::Business } else { Cabin::Economy };
                    let held_by = |m: &SeatMap| m.seats().iter().filter(|s| s.cabin == cabin
                        && matches!(&s.status, SeatStatus::Held(h) if h.order == o[*who].order)).count();
                    let before_held = held_by(&map);
                    let r = map.hold(&SeatRequest::Cabin { cabin, count: *count }, &o[*who], t(now + ttl), t(now), Some(CAP));
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
                    map.confirm(&o[*who].order, &names, t(now)).map(|v| v.len()).map_err(|e| e.to_string())
                }
                Op::Release(who) => Ok(map.release(&o[*who].order).len()),
                Op::Sweep => Ok(map.sweep_expired(t(now)).len()),
                Op::Tick(d) => { now += d; Ok(0) }
            };
            if let Err(why) = &changed {
                prop_assert_eq!(&map, &before, "a failed {:?} changed the map", op);
                // A refusal is right: judged on the seats' states alone, as stated.
                let holder = match &op {
                    Op::HoldSeats(who, ..) | Op::HoldCabin(who, ..) => Some(&o[*who]),
                    _ => None,
                };
                if let Some(holder) = holder {
                    let takeable = |s: &Seat| match &s.status {
                        SeatStatus::Available => true,
                        SeatStatus::Held(h) => h.order == holder.order || h.expires_at <= t(now),
                        SeatStatus::Sold(_) => false,
                    };
                    let live = map.seats().iter().filter(|s| match &s.status {
                        SeatStatus::Held(h) => h.user == holder.user && h.expires_at > t(now),
                        SeatStatus::Sold(s) => s.user == holder.user,
                        SeatStatus::Available => false,
                    }).count();
                    match &op {
                        Op::HoldSeats(_, seats, _) if why.ends_with("is not available") => {
                            let names: Vec<SeatName> = seats.iter().map(|&i| all[i]).collect();
                            prop_assert!(
                                map.seats().iter().any(|s| names.contains(&s.name) && !takeable(s)),
                                "{:?} refused ({}) though every seat could be taken", op, why
                            );
                        }
                        Op::HoldCabin(_, business, count, _) if why.starts_with("only ") => {
                            let cabin = if *business { Cabin::Business } else { Cabin::Economy };
                            let n = map.seats().iter().filter(|s| s.cabin == cabin && takeable(s)).count();
                            prop_assert!(n < usize::from(*count), "{:?} refused ({}) with {} seats takeable", op, why, n);
                        }
                        _ if why.starts_with("at most") => {
                            prop_assert!(live > 0, "{:?} refused ({}) with nothing live", op, why);
                        }
                        _ => {}
                    }
                }
            }
            // The inline summaries agree with the states, and what is computed from them is what
            // the states say.
            for s in map.seats() {
                prop_assert_eq!(s.hint, Hint::of(&s.status));
            }
            let held = |s: &&Seat| match &s.status {
                SeatStatus::Held(h) => Some(h.expires_at),
                _ => None,
            };
            prop_assert_eq!(map.earliest_hold(), map.seats().iter().filter_map(|s| held(&s)).min());
            for (cabin, until) in map.full_cabins() {
                let in_cabin = map.seats().iter().filter(|s| s.cabin == cabin);
                prop_assert_eq!(until, in_cabin.filter_map(|s| held(&s)).min());
            }
            // No customer ends up with more live seats than the cap.
            for user in [&o[0].user, &o[2].user] {
                let live = map.seats().iter().filter(|s| match &s.status {
                    SeatStatus::Held(h) => h.user == *user && h.expires_at > t(now),
                    SeatStatus::Sold(s) => s.user == *user,
                    SeatStatus::Available => false,
                }).count();
                prop_assert!(live <= usize::from(CAP), "{} live seats", live);
            }
            // Counts add up per cabin.
            for (cabin, a) in map.availability() {
                let in_cabin = map.seats().iter().filter(|s| s.cabin == cabin).count();
                let free = map.seats().iter().filter(|s| s.cabin == cabin && s.status == SeatStatus::Available).count();
                prop_assert_eq!(a.total as usize, in_cabin);
                prop_assert_eq!(a.available as usize, free);
            }
            // A cabin reported full refuses any new order until its earliest hold lapses.
            let newcomer = Holder { order: OrderId::generate(), user: UserId::generate() };
            for (cabin, until) in map.full_cabins() {
                if until.is_none_or(|u| t(now) < u) {
                    let mut probe = map.clone();
                    let r = probe.hold(&SeatRequest::Cabin { cabin, count: 1 }, &newcomer, t(now + 10), t(now), Some(CAP));
                    prop_assert!(r.is_err(), "{:?} reported full until {:?}, yet a seat was held", cabin, until);
                }
            }
            for (cabin, a) in map.availability() {
                if a.available > 0 {
                    prop_assert!(map.full_cabins().iter().all(|(c, _)| *c != cabin), "{:?} has free seats", cabin);
                }
            }
            // Nobody else's live claim was taken over.
            for (old, new) in before.seats().iter().zip(map.seats()) {
                match (&old.status, &new.status) {
                    (SeatStatus::Sold(a), SeatStatus::Sold(b)) => prop_assert_eq!(&a.order, &b.order),
                    (SeatStatus::Sold(s), SeatStatus::Available) => {
                        prop_assert!(matches!(&op, Op::Release(w) if o[*w].order == s.order));
                    }
                    (SeatStatus::Sold(_), SeatStatus::Held(_)) => prop_assert!(false, "sold seat re-held"),
                    (SeatStatus::Held(a), SeatStatus::Held(b)) if a.order != b.order => {
                        prop_assert!(a.expires_at <= t(now), "live hold taken over")
                    }
                    (SeatStatus::Held(a), SeatStatus::Sold(b)) if a.order != b.order => {
                        prop_assert!(a.expires_at <= t(now), "live hold taken over")
                    }
                    (SeatStatus::Held(h), SeatStatus::Available) => {
                        let own_release = matches!(&op, Op::Release(w) if o[*w].order == h.order);
                        let lapsed_sweep = matches!(&op, Op::Sweep) && h.expires_at <= t(now);
                        prop_assert!(own_release || lapsed_sweep, "a live hold was freed by {:?}", op);
                    }
                    _ => {}
                }
            }
        }
    }
}
