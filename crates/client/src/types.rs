//! What the API takes and answers (docs/API.md), as the client sees it: requests are built by
//! the caller, replies decoded from the server's JSON. Enumerations the server may extend
//! (statuses, kinds) stay strings, so a newer server never breaks an older client.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// `POST /api/v1/auth/signup`.
#[derive(Debug, Clone, Serialize)]
pub struct Signup {
    /// Sign-in email.
    pub email: String,
    /// At least 10 characters, not a common or easily guessed password.
    pub password: String,
    /// Display name.
    pub name: String,
}

/// An account as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Account {
    /// `usr_…`.
    pub id: String,
    /// Sign-in email.
    pub email: String,
    /// Display name.
    pub name: String,
    /// `customer`, `airline`, `admin`.
    pub roles: Vec<String>,
    /// The airline (IATA code) an `airline` account manages flights of.
    #[serde(default)]
    pub carrier: Option<String>,
    /// Disabled by an admin.
    #[serde(default)]
    pub disabled: bool,
}

/// A bearer token from `POST /api/v1/auth/signin`.
#[derive(Debug, Clone, Deserialize)]
pub struct Token {
    /// The JWT.
    pub token: String,
    /// How to present it: `Bearer`.
    pub token_type: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

/// An airport (`POST /api/v1/airports` takes and answers this shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Airport {
    /// IATA code, three letters.
    pub code: String,
    /// Name.
    pub name: String,
    /// City.
    pub city: String,
    /// ISO country code.
    pub country: String,
}

/// One cabin of an aircraft layout: rows `rows[0]..=rows[1]`, one seat per letter of `seats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CabinLayout {
    /// `first`, `business`, `premium_economy`, `economy`.
    pub cabin: String,
    /// First and last row.
    pub rows: [u16; 2],
    /// Seat letters of each row, e.g. `ABCDEF`.
    pub seats: String,
}

/// `POST /api/v1/aircraft`.
#[derive(Debug, Clone, Serialize)]
pub struct NewAircraft {
    /// Model name.
    pub model: String,
    /// Cabins, front to back.
    pub cabins: Vec<CabinLayout>,
}

/// An aircraft type.
#[derive(Debug, Clone, Deserialize)]
pub struct Aircraft {
    /// `acf_…`.
    pub id: String,
    /// Model name.
    pub model: String,
    /// Seats in all cabins.
    pub capacity: usize,
    /// Cabins, front to back.
    pub cabins: Vec<CabinLayout>,
}

/// `POST /api/v1/flights`.
#[derive(Debug, Clone, Serialize)]
pub struct NewFlight {
    /// E.g. `AI101`.
    pub flight_number: String,
    /// The aircraft type flying it.
    pub aircraft_id: String,
    /// Origin airport code.
    pub origin: String,
    /// Destination airport code.
    pub destination: String,
    /// Departure (UTC).
    pub departs_at: DateTime<Utc>,
    /// Arrival (UTC).
    pub arrives_at: DateTime<Utc>,
    /// Fare per cabin, in cents.
    pub fares: BTreeMap<String, u64>,
    /// ISO currency code.
    pub currency: String,
}

/// Seats of one cabin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Availability {
    /// Seats in the cabin.
    pub total: u32,
    /// Seats neither held nor sold.
    pub available: u32,
}

/// A flight with its fares and seat counts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Flight {
    /// `flt_…`.
    pub id: String,
    /// E.g. `AI101`.
    pub flight_number: String,
    /// The aircraft type flying it.
    pub aircraft_id: String,
    /// Origin airport code.
    pub origin: String,
    /// Destination airport code.
    pub destination: String,
    /// Departure (UTC).
    pub departs_at: DateTime<Utc>,
    /// Arrival (UTC).
    pub arrives_at: DateTime<Utc>,
    /// Scheduled time in the air.
    pub duration_minutes: i64,
    /// `scheduled` or `cancelled`.
    pub status: String,
    /// ISO currency code.
    pub currency: String,
    /// Fare per cabin, in cents.
    pub fares: BTreeMap<String, u64>,
    /// Seat counts per cabin.
    pub availability: BTreeMap<String, Availability>,
    /// In search results: the price of the search's passengers in its cabin.
    #[serde(default)]
    pub price_cents: Option<u64>,
}

/// `GET /api/v1/flights` filters; unset fields are left out of the query (the URL encoder
/// skips `None`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Search {
    /// Origin airport code.
    pub origin: Option<String>,
    /// Destination airport code.
    pub destination: Option<String>,
    /// Departure day (UTC).
    pub date: Option<NaiveDate>,
    /// Seats needed.
    pub passengers: Option<u16>,
    /// Cabin.
    pub cabin: Option<String>,
    /// Highest price for all passengers, in cents.
    pub max_price_cents: Option<u64>,
    /// `price`, `departure` or `duration`.
    pub sort: Option<String>,
    /// Page size.
    pub limit: Option<u16>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// One page of search results.
#[derive(Debug, Clone, Deserialize)]
pub struct FlightPage {
    /// The flights.
    pub flights: Vec<Flight>,
    /// Where the next page starts, if there is one.
    pub next_cursor: Option<String>,
}

/// One seat of a flight.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Seat {
    /// E.g. `12A`.
    pub seat: String,
    /// Its cabin.
    pub cabin: String,
    /// `available`, `held` or `sold`.
    pub status: String,
}

/// One flight of an order: named seats, or `count` seats in `cabin` chosen by the flight.
#[derive(Debug, Clone, Serialize)]
pub struct SegmentRequest {
    /// The flight.
    pub flight_id: String,
    /// Named seats (one per passenger).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seats: Option<Vec<String>>,
    /// Or a cabin…
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cabin: Option<String>,
    /// …and how many seats in it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u16>,
}

impl SegmentRequest {
    /// `count` seats in `cabin` of `flight_id`, chosen by the flight.
    pub fn in_cabin(flight_id: &str, cabin: &str, count: u16) -> Self {
        Self {
            flight_id: flight_id.to_owned(),
            seats: None,
            cabin: Some(cabin.to_owned()),
            count: Some(count),
        }
    }

    /// The named `seats` of `flight_id` (one per passenger).
    pub fn named(flight_id: &str, seats: &[&str]) -> Self {
        Self {
            flight_id: flight_id.to_owned(),
            seats: Some(seats.iter().map(|s| (*s).to_owned()).collect()),
            cabin: None,
            count: None,
        }
    }
}

/// A traveller's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Passenger {
    /// As on the ticket.
    pub name: String,
}

/// `POST /api/v1/orders`.
#[derive(Debug, Clone, Serialize)]
pub struct NewOrder {
    /// Flights, all held or none.
    pub segments: Vec<SegmentRequest>,
    /// Travellers, one seat each per segment.
    pub passengers: Vec<Passenger>,
}

/// One flight of an order, with the seats held or sold on it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Segment {
    /// The flight.
    pub flight_id: String,
    /// Its seats.
    pub seats: Vec<String>,
    /// Its price, in cents.
    pub price_cents: u64,
}

/// An issued ticket.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Ticket {
    /// `tkt_…`.
    pub id: String,
    /// The order that issued it.
    pub order_id: String,
    /// The flight.
    pub flight_id: String,
    /// The seat.
    pub seat: String,
    /// The traveller.
    pub passenger_name: String,
    /// `issued` or `void`.
    pub status: String,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
}

/// An order.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Order {
    /// `ord_…`.
    pub id: String,
    /// `held`, `confirmed`, `expired`, `cancelled`, …
    pub status: String,
    /// When it was placed.
    pub created_at: DateTime<Utc>,
    /// When its hold lapses unless paid.
    pub expires_at: DateTime<Utc>,
    /// Price of every segment, in cents.
    pub total_cents: u64,
    /// ISO currency code.
    pub currency: Option<String>,
    /// Its flights.
    pub segments: Vec<Segment>,
    /// Its travellers.
    pub passengers: Vec<Passenger>,
    /// Tickets, once paid.
    pub tickets: Vec<Ticket>,
}

impl Order {
    /// Its seats as (flight id, seat name) pairs, segment by segment.
    pub fn seats(&self) -> Vec<(String, String)> {
        self.segments
            .iter()
            .flat_map(|s| {
                s.seats
                    .iter()
                    .map(|seat| (s.flight_id.clone(), seat.clone()))
            })
            .collect()
    }
}

/// A placed order, and whether an earlier request with the same Idempotency-Key placed it
/// (answered 200 instead of 201).
#[derive(Debug, Clone)]
pub struct Placed {
    /// The order.
    pub order: Order,
    /// True for a replay.
    pub replayed: bool,
}

/// Something that happened to one of the caller's orders.
#[derive(Debug, Clone, Deserialize)]
pub struct Notification {
    /// `ntf_…`.
    pub id: String,
    /// `order_confirmed`, `payment_declined`, …
    pub kind: String,
    /// The order.
    pub order_id: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// How many entities a node stores.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct EntityCounts {
    /// Flights.
    pub flights: u64,
    /// Orders.
    pub orders: u64,
    /// Tickets.
    pub tickets: u64,
    /// Users.
    pub users: u64,
}

/// One member of the cluster.
#[derive(Debug, Clone, Deserialize)]
pub struct Member {
    /// Node id.
    pub node_id: String,
    /// Node-to-node address.
    pub addr: String,
    /// `up` or `down`.
    pub status: String,
    /// The epoch of the view.
    pub epoch: u64,
    /// What it stores, when it answered.
    pub entities: Option<EntityCounts>,
}

/// `GET /api/v1/cluster`.
#[derive(Debug, Clone, Deserialize)]
pub struct ClusterView {
    /// The node that answered.
    pub node_id: String,
    /// The epoch of its view.
    pub epoch: u64,
    /// Whether it serves (a member reaching a majority).
    pub serving: bool,
    /// The members.
    pub members: Vec<Member>,
    /// The replicated partitions (empty unless the cluster replicates).
    #[serde(default)]
    pub partitions: Vec<Partition>,
    /// The consensus group that decides the member list (with replication).
    #[serde(default)]
    pub member_list: Option<Partition>,
}

/// One replicated partition in [`ClusterView`].
#[derive(Debug, Clone, Deserialize)]
pub struct Partition {
    /// Its number.
    pub id: u16,
    /// Its leader, if known.
    pub leader: Option<String>,
    /// The consensus term.
    pub term: u64,
    /// The answering node's last log index.
    pub last_log_index: Option<u64>,
    /// The answering node's last applied index.
    pub last_applied: Option<u64>,
    /// The last index known committed (on the leader: at a majority; elsewhere: applied).
    pub commit_index: Option<u64>,
    /// On the leader: entries the slowest replica lacks.
    pub lag: Option<u64>,
    /// The members holding a voting replica.
    pub replicas: Vec<String>,
    /// Members whose new replica is still catching up.
    #[serde(default)]
    pub learners: Vec<String>,
    /// The replica that should lead it (its leader hands it over once that one caught up).
    #[serde(default)]
    pub preferred_leader: Option<String>,
}

/// `POST /api/v1/cluster/faults`: drop traffic with these peers for a while.
#[derive(Debug, Clone, Serialize)]
pub struct Faults {
    /// Peers' node ids.
    pub blocked: BTreeSet<String>,
    /// For how long.
    pub for_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_search_filters_stay_out_of_the_query() {
        let search = Search {
            origin: Some("BOM".into()),
            passengers: Some(2),
            ..Search::default()
        };
        let request = reqwest::Client::new()
            .get("http://127.0.0.1/api/v1/flights")
            .query(&search)
            .build()
            .expect("request");
        assert_eq!(request.url().query(), Some("origin=BOM&passengers=2"));
    }
}
