//! What the search read model keeps of one flight: everything search filters, sorts and shows,
//! in a fixed ~150 bytes without a heap allocation.
//!
//! Every node indexes every flight of the catalog, so this is what a million flights cost in
//! memory. A [`FlightSummary`](super::search::FlightSummary) carries the whole flight (its seat
//! layout, fare and availability maps, ids as strings): about a kilobyte in a dozen
//! allocations. A listing keeps ids as numbers, short codes inline and per-cabin figures in an
//! array indexed by cabin.

use super::aircraft::Cabin;
use super::airport::AirportCode;
use super::flight::{Flight, FlightStatus};
use super::ids::{AircraftId, FlightId};
use super::seat_map::CabinAvailability;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Every cabin, in the order of [`Listing`]'s per-cabin array.
pub const CABINS: [Cabin; 4] = [
    Cabin::First,
    Cabin::Business,
    Cabin::PremiumEconomy,
    Cabin::Economy,
];

fn slot(cabin: Cabin) -> usize {
    match cabin {
        Cabin::First => 0,
        Cabin::Business => 1,
        Cabin::PremiumEconomy => 2,
        Cabin::Economy => 3,
    }
}

/// One cabin of a listed flight. A cabin the flight does not have has no seats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CabinListing {
    /// Fare per seat, in minor units.
    pub fare_cents: u64,
    /// Seats in the cabin.
    pub total: u32,
    /// Seats neither held nor sold.
    pub available: u32,
}

/// A flight as search sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    id: u128,
    aircraft: u128,
    number: [u8; 6],
    currency: [u8; 3],
    /// Departure airport.
    pub origin: AirportCode,
    /// Arrival airport.
    pub destination: AirportCode,
    /// Scheduled or cancelled.
    pub status: FlightStatus,
    /// Departure time.
    pub departs_at: DateTime<Utc>,
    /// Arrival time.
    pub arrives_at: DateTime<Utc>,
    cabins: [CabinListing; 4],
}

/// Pads a short ASCII code into a fixed array.
fn inline<const N: usize>(text: &str) -> [u8; N] {
    let mut out = [0u8; N];
    for (slot, byte) in out.iter_mut().zip(text.bytes()) {
        *slot = byte;
    }
    out
}

fn text(bytes: &[u8]) -> &str {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    std::str::from_utf8(&bytes[..end]).unwrap_or_default()
}

impl Listing {
    /// The listing of `flight` with these seat counts, or `None` for a flight whose ids this
    /// system did not generate (no stored flight has one).
    pub fn new(flight: &Flight, availability: &BTreeMap<Cabin, CabinAvailability>) -> Option<Self> {
        let mut cabins = [CabinListing::default(); 4];
        for (cabin, fare) in &flight.fares {
            cabins[slot(*cabin)].fare_cents = *fare;
        }
        let mut listing = Self {
            id: flight.id.to_bits()?,
            aircraft: flight.aircraft_id.to_bits()?,
            number: inline(flight.flight_number.as_str()),
            currency: inline(flight.currency.as_str()),
            origin: flight.origin,
            destination: flight.destination,
            status: flight.status,
            departs_at: flight.departs_at,
            arrives_at: flight.arrives_at,
            cabins,
        };
        listing.set_availability(availability);
        Some(listing)
    }

    /// The flight's id.
    pub fn id(&self) -> FlightId {
        FlightId::from_bits(self.id)
    }

    /// The id as the index keys it.
    pub(crate) fn key(&self) -> u128 {
        self.id
    }

    /// The aircraft type flying it.
    pub fn aircraft_id(&self) -> AircraftId {
        AircraftId::from_bits(self.aircraft)
    }

    /// The flight number.
    pub fn flight_number(&self) -> &str {
        text(&self.number)
    }

    /// The currency of the fares.
    pub fn currency(&self) -> &str {
        text(&self.currency)
    }

    /// Time in the air.
    pub fn duration(&self) -> Duration {
        self.arrives_at - self.departs_at
    }

    /// The flight's cabins with their fares and seat counts, in cabin order.
    pub fn cabins(&self) -> impl Iterator<Item = (Cabin, CabinListing)> + '_ {
        CABINS
            .iter()
            .zip(self.cabins)
            .filter(|(_, c)| c.total > 0)
            .map(|(cabin, c)| (*cabin, c))
    }

    /// Records new seat counts (cabins the flight has; others are ignored).
    pub fn set_availability(&mut self, availability: &BTreeMap<Cabin, CabinAvailability>) {
        for (cabin, seats) in availability {
            let c = &mut self.cabins[slot(*cabin)];
            c.total = seats.total;
            c.available = seats.available;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::aircraft::Layout;
    use crate::domain::flight::FlightDraft;

    fn flight() -> Flight {
        let layout = Layout::new(vec![
            (Cabin::Business, [1, 2], "AC".into()),
            (Cabin::Economy, [3, 10], "ABCDEF".into()),
        ])
        .expect("layout");
        let draft = FlightDraft {
            flight_number: "AI2024".into(),
            aircraft_id: AircraftId::generate(),
            origin: "DEL".into(),
            destination: "BOM".into(),
            departs_at: Utc::now() + Duration::days(3),
            arrives_at: Utc::now() + Duration::days(3) + Duration::minutes(130),
            fares: [(Cabin::Business, 20_000), (Cabin::Economy, 5_000)].into(),
            currency: "INR".into(),
        };
        Flight::new(FlightId::generate(), draft, layout, Utc::now()).expect("flight")
    }

    #[test]
    fn a_listing_shows_what_the_flight_says_in_a_fixed_size() {
        let f = flight();
        let availability: BTreeMap<Cabin, CabinAvailability> = [
            (
                Cabin::Business,
                CabinAvailability {
                    total: 4,
                    available: 1,
                },
            ),
            (
                Cabin::Economy,
                CabinAvailability {
                    total: 48,
                    available: 48,
                },
            ),
        ]
        .into();
        let l = Listing::new(&f, &availability).expect("generated ids");
        assert_eq!(l.id(), f.id);
        assert_eq!(l.aircraft_id(), f.aircraft_id);
        assert_eq!(l.flight_number(), "AI2024");
        assert_eq!(l.currency(), "INR");
        assert_eq!(l.duration(), f.duration());
        let cabins: Vec<_> = l
            .cabins()
            .map(|(c, s)| (c, s.fare_cents, s.total, s.available))
            .collect();
        assert_eq!(
            cabins,
            [
                (Cabin::Business, 20_000, 4, 1),
                (Cabin::Economy, 5_000, 48, 48)
            ]
        );
        assert!(
            std::mem::size_of::<Listing>() <= 160,
            "{}",
            std::mem::size_of::<Listing>()
        );
    }
}
