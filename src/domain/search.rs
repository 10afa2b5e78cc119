//! The flight search read model: summaries kept up to date from flight events, and the query
//! rules (filters, sorting, keyset paging). Pure: the caller owns locking and feeding it.

use super::ValidationError;
use super::aircraft::Cabin;
use super::airport::AirportCode;
use super::flight::{Flight, FlightStatus};
use super::ids::FlightId;
pub use super::listing::Listing;
use super::seat_map::CabinAvailability;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Results per page when the client does not say.
pub const DEFAULT_LIMIT: usize = 20;
/// Most results per page.
pub const MAX_LIMIT: usize = 100;

/// What search knows about one flight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlightSummary {
    /// The flight (schedule and fares).
    pub flight: Flight,
    /// Seats per cabin, as last published by the flight's actor.
    pub availability: BTreeMap<Cabin, CabinAvailability>,
}

/// How results are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    /// Cheapest fare first.
    #[default]
    Price,
    /// Earliest departure first.
    Departure,
    /// Shortest flight first.
    Duration,
}

impl SortKey {
    /// Parses `price`, `departure` or `duration`.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        match raw {
            "price" => Ok(Self::Price),
            "departure" => Ok(Self::Departure),
            "duration" => Ok(Self::Duration),
            _ => Err(ValidationError::new(
                "sort",
                "must be price, departure or duration",
            )),
        }
    }

    fn tag(self) -> char {
        match self {
            Self::Price => 'p',
            Self::Departure => 'd',
            Self::Duration => 'u',
        }
    }
}

/// Where the previous page ended: the sort value, departure and id of its last flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    sort: SortKey,
    position: (i64, i64, u128),
}

impl Cursor {
    /// The opaque text form handed to clients.
    pub fn encode(&self) -> String {
        let (v, d, id) = &self.position;
        format!("{}.{v}.{d}.{}", self.sort.tag(), FlightId::from_bits(*id))
    }

    /// Parses a cursor made by [`Cursor::encode`] for the same sort order.
    pub fn decode(raw: &str, sort: SortKey) -> Result<Self, ValidationError> {
        let bad = || {
            ValidationError::new(
                "cursor",
                "is not a cursor from a previous page of this search",
            )
        };
        let mut parts = raw.splitn(4, '.');
        let tag = parts.next().ok_or_else(bad)?;
        if tag.len() != 1 || !tag.starts_with(sort.tag()) {
            return Err(bad());
        }
        let v = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let d = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let id = parts
            .next()
            .and_then(FlightId::parse)
            .and_then(|id| id.to_bits())
            .ok_or_else(bad)?;
        Ok(Self {
            sort,
            position: (v, d, id),
        })
    }
}

/// A validated search.
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    /// Departure airport.
    pub origin: Option<AirportCode>,
    /// Arrival airport.
    pub destination: Option<AirportCode>,
    /// Departure date (UTC).
    pub date: Option<NaiveDate>,
    /// Seats needed (in `cabin` if given, else in any one cabin).
    pub passengers: u16,
    /// Only this cabin.
    pub cabin: Option<Cabin>,
    /// Highest fare per passenger.
    pub max_price_cents: Option<u64>,
    /// Ordering.
    pub sort: SortKey,
    /// Page size.
    pub limit: usize,
    /// Continue after this position.
    pub after: Option<Cursor>,
}

/// One page of results.
#[derive(Debug)]
pub struct Page<'a> {
    /// Matching flights with the fare that matched (cabin given, or cheapest with room).
    pub flights: Vec<(&'a Listing, u64)>,
    /// Cursor of the next page, if there is one.
    pub next: Option<Cursor>,
}

/// Every known flight, indexed by route and departure for fast route searches.
#[derive(Debug, Default)]
pub struct FlightIndex {
    by_id: HashMap<u128, Listing>,
    by_route: BTreeSet<(AirportCode, AirportCode, DateTime<Utc>, u128)>,
}

impl FlightIndex {
    /// Adds or replaces a flight (a flight whose ids this system did not generate is left out;
    /// no stored flight has one).
    pub fn upsert(&mut self, summary: &FlightSummary) {
        if let Some(listing) = Listing::new(&summary.flight, &summary.availability) {
            self.insert(listing);
        }
    }

    /// Adds or replaces a listing (as another node publishes it).
    pub fn insert(&mut self, listing: Listing) {
        let key = listing.key();
        if let Some(old) = self.by_id.get(&key) {
            self.by_route
                .remove(&(old.origin, old.destination, old.departs_at, key));
        }
        self.by_route
            .insert((listing.origin, listing.destination, listing.departs_at, key));
        self.by_id.insert(key, listing);
    }

    /// Records new seat counts for a known flight; unknown flights are ignored.
    pub fn set_availability(
        &mut self,
        id: &FlightId,
        availability: &BTreeMap<Cabin, CabinAvailability>,
    ) {
        if let Some(l) = id.to_bits().and_then(|k| self.by_id.get_mut(&k)) {
            l.set_availability(availability);
        }
    }

    /// Every indexed flight.
    pub fn all(&self) -> impl Iterator<Item = &Listing> {
        self.by_id.values()
    }

    /// One flight's listing.
    pub fn get(&self, id: &FlightId) -> Option<&Listing> {
        id.to_bits().and_then(|k| self.by_id.get(&k))
    }

    /// How many flights are indexed.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether no flight is indexed.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Runs a search. Flights that are cancelled or already departed at `now` never match.
    pub fn search(&self, q: &SearchQuery, now: DateTime<Utc>) -> Page<'_> {
        let mut hits: Vec<((i64, i64, u128), &Listing, u64)> = self
            .candidates(q)
            .filter(|l| l.status == FlightStatus::Scheduled && l.departs_at > now)
            .filter(|l| q.date.is_none_or(|d| l.departs_at.date_naive() == d))
            .filter_map(|l| {
                let fare = matching_fare(l, q)?;
                let primary = match q.sort {
                    SortKey::Price => i64::try_from(fare).unwrap_or(i64::MAX),
                    SortKey::Departure => l.departs_at.timestamp(),
                    SortKey::Duration => l.duration().num_seconds(),
                };
                Some(((primary, l.departs_at.timestamp(), l.key()), l, fare))
            })
            .filter(|(pos, _, _)| q.after.as_ref().is_none_or(|c| *pos > c.position))
            .collect();
        hits.sort_by_key(|a| a.0);
        let more = hits.len() > q.limit;
        hits.truncate(q.limit);
        let next = match (more, hits.last()) {
            (true, Some((pos, _, _))) => Some(Cursor {
                sort: q.sort,
                position: *pos,
            }),
            _ => None,
        };
        Page {
            flights: hits.into_iter().map(|(_, l, fare)| (l, fare)).collect(),
            next,
        }
    }

    fn candidates<'a>(&'a self, q: &SearchQuery) -> Box<dyn Iterator<Item = &'a Listing> + 'a> {
        let lookup =
            move |k: &(AirportCode, AirportCode, DateTime<Utc>, u128)| self.by_id.get(&k.3);
        match (q.origin, q.destination) {
            (Some(o), Some(d)) => {
                let (from, to) = match q.date {
                    Some(day) => day_bounds(day),
                    None => (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC),
                };
                Box::new(
                    self.by_route
                        .range((o, d, from, 0)..)
                        .take_while(move |k| k.0 == o && k.1 == d && k.2 < to)
                        .filter_map(lookup),
                )
            }
            (Some(o), None) => Box::new(
                self.by_route
                    .range((o, AirportCode::MIN, DateTime::<Utc>::MIN_UTC, 0)..)
                    .take_while(move |k| k.0 == o)
                    .filter_map(lookup),
            ),
            (None, d) => Box::new(
                self.by_id
                    .values()
                    .filter(move |l| d.is_none_or(|d| l.destination == d)),
            ),
        }
    }
}

/// The fare a flight offers this query, if it has room for everyone within the price limit.
fn matching_fare(l: &Listing, q: &SearchQuery) -> Option<u64> {
    let needed = u32::from(q.passengers.max(1));
    l.cabins()
        .filter(|(cabin, c)| q.cabin.is_none_or(|want| want == *cabin) && c.available >= needed)
        .map(|(_, c)| c.fare_cents)
        .filter(|fare| q.max_price_cents.is_none_or(|max| *fare <= max))
        .min()
}

fn day_bounds(day: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = Utc.from_utc_datetime(&day.and_time(chrono::NaiveTime::MIN));
    let end = start
        .checked_add_signed(chrono::Duration::days(1))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    (start, end)
}

#[cfg(test)]
#[path = "search_tests.rs"]
mod tests;
