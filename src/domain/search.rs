//! The flight search read model: summaries kept up to date from flight events, and the query
//! rules (filters, sorting, keyset paging). Pure: the caller owns locking and feeding it.

use super::ValidationError;
use super::aircraft::Cabin;
use super::airport::AirportCode;
use super::flight::{Flight, FlightStatus};
use super::ids::FlightId;
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
    position: (i64, i64, FlightId),
}

impl Cursor {
    /// The opaque text form handed to clients.
    pub fn encode(&self) -> String {
        let (v, d, id) = &self.position;
        format!("{}.{v}.{d}.{id}", self.sort.tag())
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
        let id = parts.next().and_then(FlightId::parse).ok_or_else(bad)?;
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
    pub flights: Vec<(&'a FlightSummary, u64)>,
    /// Cursor of the next page, if there is one.
    pub next: Option<Cursor>,
}

/// Every known flight, indexed by route and departure for fast route searches.
#[derive(Debug, Default)]
pub struct FlightIndex {
    /// Boxed: a hash table's slots are allocated in powers of two, so an inline 200-byte
    /// summary would reserve up to twice its size for every flight (measured: 1 M flights).
    by_id: HashMap<FlightId, Box<FlightSummary>>,
    by_route: BTreeSet<(AirportCode, AirportCode, DateTime<Utc>, FlightId)>,
}

impl FlightIndex {
    /// Adds or replaces a flight.
    pub fn upsert(&mut self, summary: FlightSummary) {
        let f = &summary.flight;
        if let Some(old) = self.by_id.get(&f.id) {
            let o = &old.flight;
            self.by_route
                .remove(&(o.origin, o.destination, o.departs_at, o.id.clone()));
        }
        self.by_route
            .insert((f.origin, f.destination, f.departs_at, f.id.clone()));
        self.by_id.insert(f.id.clone(), Box::new(summary));
    }

    /// Records new seat counts for a known flight; unknown flights are ignored.
    pub fn set_availability(
        &mut self,
        id: &FlightId,
        availability: BTreeMap<Cabin, CabinAvailability>,
    ) {
        if let Some(s) = self.by_id.get_mut(id) {
            s.availability = availability;
        }
    }

    /// Every indexed flight.
    pub fn all(&self) -> impl Iterator<Item = &FlightSummary> {
        self.by_id.values().map(|s| &**s)
    }

    /// One flight's summary.
    pub fn get(&self, id: &FlightId) -> Option<&FlightSummary> {
        self.by_id.get(id).map(|s| &**s)
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
        let mut hits: Vec<((i64, i64, FlightId), &FlightSummary, u64)> = self
            .candidates(q)
            .filter(|s| s.flight.status == FlightStatus::Scheduled && s.flight.departs_at > now)
            .filter(|s| q.date.is_none_or(|d| s.flight.departs_at.date_naive() == d))
            .filter_map(|s| {
                let fare = matching_fare(s, q)?;
                let f = &s.flight;
                let primary = match q.sort {
                    SortKey::Price => i64::try_from(fare).unwrap_or(i64::MAX),
                    SortKey::Departure => f.departs_at.timestamp(),
                    SortKey::Duration => f.duration().num_seconds(),
                };
                Some(((primary, f.departs_at.timestamp(), f.id.clone()), s, fare))
            })
            .filter(|(pos, _, _)| q.after.as_ref().is_none_or(|c| *pos > c.position))
            .collect();
        hits.sort_by(|a, b| a.0.cmp(&b.0));
        let more = hits.len() > q.limit;
        hits.truncate(q.limit);
        let next = match (more, hits.last()) {
            (true, Some((pos, _, _))) => Some(Cursor {
                sort: q.sort,
                position: pos.clone(),
            }),
            _ => None,
        };
        Page {
            flights: hits.into_iter().map(|(_, s, fare)| (s, fare)).collect(),
            next,
        }
    }

    fn candidates<'a>(
        &'a self,
        q: &SearchQuery,
    ) -> Box<dyn Iterator<Item = &'a FlightSummary> + 'a> {
        let lookup = move |k: &(AirportCode, AirportCode, DateTime<Utc>, FlightId)| {
            self.by_id.get(&k.3).map(|s| &**s)
        };
        match (q.origin, q.destination) {
            (Some(o), Some(d)) => {
                let (from, to) = match q.date {
                    Some(day) => day_bounds(day),
                    None => (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC),
                };
                let lo = (o, d, from, FlightId::min());
                Box::new(
                    self.by_route
                        .range(lo..)
                        .take_while(move |k| k.0 == o && k.1 == d && k.2 < to)
                        .filter_map(lookup),
                )
            }
            (Some(o), None) => Box::new(
                self.by_route
                    .range(
                        (
                            o,
                            AirportCode::MIN,
                            DateTime::<Utc>::MIN_UTC,
                            FlightId::min(),
                        )..,
                    )
                    .take_while(move |k| k.0 == o)
                    .filter_map(lookup),
            ),
            (None, d) => Box::new(
                self.by_id
                    .values()
                    .map(|s| &**s)
                    .filter(move |s| d.is_none_or(|d| s.flight.destination == d)),
            ),
        }
    }
}

/// The fare a flight offers this query, if it has room for everyone within the price limit.
fn matching_fare(s: &FlightSummary, q: &SearchQuery) -> Option<u64> {
    let needed = u32::from(q.passengers.max(1));
    s.flight
        .fares
        .iter()
        .filter(|(cabin, _)| q.cabin.is_none_or(|c| c == **cabin))
        .filter(|(cabin, _)| {
            s.availability
                .get(*cabin)
                .is_some_and(|a| a.available >= needed)
        })
        .map(|(_, fare)| *fare)
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
