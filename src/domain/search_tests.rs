use super::*;
use crate::domain::aircraft::Layout;
use crate::domain::flight::FlightDraft;
use crate::domain::ids::AircraftId;
use chrono::Duration;

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 10, 0, 0, 0)
        .single()
        .expect("time")
}

fn summary(
    origin: &str,
    dest: &str,
    hour: i64,
    minutes: i64,
    fare: u64,
    available: u32,
) -> FlightSummary {
    let layout = Layout::new(vec![(Cabin::Economy, [1, 10], "AB".into())]).expect("layout");
    let departs = base() + Duration::hours(hour);
    let draft = FlightDraft {
        flight_number: "AI101".into(),
        aircraft_id: AircraftId::generate(),
        origin: origin.into(),
        destination: dest.into(),
        departs_at: departs,
        arrives_at: departs + Duration::minutes(minutes),
        fares: [(Cabin::Economy, fare)].into_iter().collect(),
        currency: "USD".into(),
    };
    let flight = Flight::new(
        FlightId::generate(),
        draft,
        layout,
        base() - Duration::days(1),
    )
    .expect("flight");
    let availability = [(
        Cabin::Economy,
        CabinAvailability {
            total: 20,
            available,
        },
    )]
    .into_iter()
    .collect();
    FlightSummary {
        flight,
        availability,
    }
}

fn query() -> SearchQuery {
    SearchQuery {
        passengers: 1,
        limit: DEFAULT_LIMIT,
        ..SearchQuery::default()
    }
}

fn code(s: &str) -> Option<AirportCode> {
    AirportCode::parse(s).ok()
}

#[test]
fn filters_route_date_seats_and_price() {
    let mut index = FlightIndex::default();
    index.upsert(&summary("DEL", "BOM", 1, 120, 5000, 10));
    index.upsert(&summary("DEL", "BOM", 30, 120, 4000, 10)); // next day
    index.upsert(&summary("DEL", "BLR", 2, 150, 3000, 10));
    index.upsert(&summary("DEL", "BOM", 3, 100, 9000, 1)); // one seat left
    let now = base() - Duration::hours(1);

    let mut q = query();
    q.origin = code("DEL");
    q.destination = code("BOM");
    assert_eq!(index.search(&q, now).flights.len(), 3);
    q.date = Some(base().date_naive());
    assert_eq!(index.search(&q, now).flights.len(), 2);
    q.passengers = 2;
    assert_eq!(index.search(&q, now).flights.len(), 1);
    q.passengers = 1;
    q.max_price_cents = Some(6000);
    assert_eq!(index.search(&q, now).flights.len(), 1);

    let mut by_origin = query();
    by_origin.origin = code("DEL");
    assert_eq!(index.search(&by_origin, now).flights.len(), 4);
    let mut by_dest = query();
    by_dest.destination = code("BLR");
    assert_eq!(index.search(&by_dest, now).flights.len(), 1);
    // Departed flights are not offered.
    assert_eq!(
        index
            .search(&by_origin, base() + Duration::hours(5))
            .flights
            .len(),
        1
    );
}

#[test]
fn sorts_and_pages_without_gaps_or_repeats() {
    let mut index = FlightIndex::default();
    for i in 0..25i64 {
        index.upsert(&summary(
            "DEL",
            "BOM",
            i,
            60 + (i * 7) % 50,
            1000 + ((i * 13) % 7) as u64 * 100,
            5,
        ));
    }
    let now = base() - Duration::hours(1);
    for sort in [SortKey::Price, SortKey::Departure, SortKey::Duration] {
        let mut q = query();
        q.sort = sort;
        q.limit = 7;
        let mut seen = Vec::new();
        loop {
            let page = index.search(&q, now);
            seen.extend(page.flights.iter().map(|(l, fare)| ((*l).clone(), *fare)));
            match page.next {
                Some(c) => q.after = Some(Cursor::decode(&c.encode(), sort).expect("own cursor")),
                None => break,
            }
        }
        assert_eq!(seen.len(), 25, "{sort:?}");
        let keys: Vec<i64> = seen
            .iter()
            .map(|(f, fare)| match sort {
                SortKey::Price => *fare as i64,
                SortKey::Departure => f.departs_at.timestamp(),
                SortKey::Duration => f.duration().num_seconds(),
            })
            .collect();
        assert!(keys.windows(2).all(|w| w[0] <= w[1]), "{sort:?} not sorted");
        let ids: BTreeSet<_> = seen.iter().map(|(f, _)| f.id()).collect();
        assert_eq!(ids.len(), 25);
    }
}

#[test]
fn cursors_are_checked() {
    assert!(Cursor::decode("garbage", SortKey::Price).is_err());
    let c = Cursor {
        sort: SortKey::Price,
        position: (1, 2, FlightId::generate().to_bits().expect("hex")),
    };
    assert!(Cursor::decode(&c.encode(), SortKey::Departure).is_err());
    assert_eq!(Cursor::decode(&c.encode(), SortKey::Price), Ok(c));
}

#[test]
fn availability_updates_change_results() {
    let mut index = FlightIndex::default();
    let s = summary("DEL", "BOM", 1, 60, 1000, 3);
    let id = s.flight.id.clone();
    index.upsert(&s);
    let mut q = query();
    q.passengers = 3;
    let now = base() - Duration::hours(1);
    assert_eq!(index.search(&q, now).flights.len(), 1);
    index.set_availability(
        &id,
        &[(
            Cabin::Economy,
            CabinAvailability {
                total: 20,
                available: 2,
            },
        )]
        .into(),
    );
    assert_eq!(index.search(&q, now).flights.len(), 0);
}
