//! Flights: schedule, fares and the rules a new flight must meet.

use super::ValidationError;
use super::aircraft::{Cabin, Layout};
use super::airport::AirportCode;
use super::ids::{AircraftId, FlightId};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The longest scheduled flight accepted (the longest real ones are under 19 h).
const MAX_FLIGHT_HOURS: i64 = 24;
/// The highest fare accepted, in minor units.
pub const MAX_FARE_CENTS: u64 = 100_000_000;

/// An airline's two-character IATA designator, e.g. `AI`: uppercase letters and digits, at
/// least one letter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Carrier(String);

impl Carrier {
    /// Parses a designator.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        if Self::is_designator(raw.as_bytes()) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(ValidationError::new(
                "carrier",
                "must be a 2-character airline code (uppercase letters and digits), e.g. AI",
            ))
        }
    }

    fn is_designator(b: &[u8]) -> bool {
        b.len() == 2
            && b.iter()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            && b.iter().any(u8::is_ascii_uppercase)
    }

    /// The designator as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A flight number: a two-character airline designator and 1 to 4 digits, e.g. `AI101`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FlightNumber(String);

impl FlightNumber {
    /// Parses a flight number.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let b = raw.as_bytes();
        let designator_ok = b.len() >= 3 && Carrier::is_designator(&b[..2]);
        let digits = b.get(2..).unwrap_or_default();
        if designator_ok && (1..=4).contains(&digits.len()) && digits.iter().all(u8::is_ascii_digit)
        {
            Ok(Self(raw.to_owned()))
        } else {
            Err(ValidationError::new(
                "flight_number",
                "must be a 2-character airline code and 1 to 4 digits, e.g. AI101",
            ))
        }
    }

    /// The number as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The operating airline's designator (the first two characters).
    pub fn carrier(&self) -> &str {
        self.0.get(..2).unwrap_or_default()
    }
}

/// An ISO 4217 currency code: three uppercase letters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Currency(String);

impl Currency {
    /// Parses a currency code.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        if raw.len() == 3 && raw.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(ValidationError::new(
                "currency",
                "must be a 3-letter ISO 4217 code, e.g. USD",
            ))
        }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether a flight will operate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FlightStatus {
    /// Will operate; seats can be sold.
    Scheduled,
    /// Cancelled by the airline.
    Cancelled,
}

/// What a client supplies to schedule a flight, before validation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlightDraft {
    /// e.g. `AI101`.
    pub flight_number: String,
    /// The aircraft type flying it.
    pub aircraft_id: AircraftId,
    /// Departure airport code.
    pub origin: String,
    /// Arrival airport code.
    pub destination: String,
    /// Departure time.
    pub departs_at: DateTime<Utc>,
    /// Arrival time.
    pub arrives_at: DateTime<Utc>,
    /// Fare per seat in minor units, per cabin.
    pub fares: BTreeMap<Cabin, u64>,
    /// Currency of the fares.
    pub currency: String,
}

/// A scheduled flight: everything about it except the state of its seats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flight {
    /// Its id.
    pub id: FlightId,
    /// Its flight number.
    pub flight_number: FlightNumber,
    /// The aircraft type flying it.
    pub aircraft_id: AircraftId,
    /// The seat layout, copied from the aircraft when the flight was created.
    pub layout: Layout,
    /// Departure airport.
    pub origin: AirportCode,
    /// Arrival airport.
    pub destination: AirportCode,
    /// Departure time.
    pub departs_at: DateTime<Utc>,
    /// Arrival time.
    pub arrives_at: DateTime<Utc>,
    /// Fare per seat in minor units, one for every cabin of the layout.
    pub fares: BTreeMap<Cabin, u64>,
    /// Currency of the fares.
    pub currency: Currency,
    /// Scheduled or cancelled.
    pub status: FlightStatus,
}

impl Flight {
    /// Validates a draft against the aircraft's layout; `now` rules out departures in the past.
    pub fn new(
        id: FlightId,
        draft: FlightDraft,
        layout: Layout,
        now: DateTime<Utc>,
    ) -> Result<Self, ValidationError> {
        let flight_number = FlightNumber::parse(&draft.flight_number)?;
        let origin = AirportCode::parse(&draft.origin)
            .map_err(|e| ValidationError::new("origin", e.reason))?;
        let destination = AirportCode::parse(&draft.destination)
            .map_err(|e| ValidationError::new("destination", e.reason))?;
        if origin == destination {
            return Err(ValidationError::new(
                "destination",
                "must differ from origin",
            ));
        }
        if draft.departs_at <= now {
            return Err(ValidationError::new("departs_at", "must be in the future"));
        }
        if draft.arrives_at <= draft.departs_at {
            return Err(ValidationError::new(
                "arrives_at",
                "must be after departs_at",
            ));
        }
        if draft.arrives_at - draft.departs_at > Duration::hours(MAX_FLIGHT_HOURS) {
            return Err(ValidationError::new(
                "arrives_at",
                format!("a flight may last at most {MAX_FLIGHT_HOURS} hours"),
            ));
        }
        for cabin in layout.cabins() {
            if !draft.fares.contains_key(&cabin.cabin) {
                return Err(ValidationError::new(
                    format!("fares.{}", cabin.cabin.as_str()),
                    "a fare is required for every cabin of the aircraft",
                ));
            }
        }
        for (cabin, &fare) in &draft.fares {
            let field = format!("fares.{}", cabin.as_str());
            if !layout.cabins().iter().any(|c| c.cabin == *cabin) {
                return Err(ValidationError::new(
                    field,
                    "the aircraft has no such cabin",
                ));
            }
            if fare == 0 || fare > MAX_FARE_CENTS {
                return Err(ValidationError::new(
                    field,
                    format!("must be 1 to {MAX_FARE_CENTS}"),
                ));
            }
        }
        Ok(Self {
            id,
            flight_number,
            aircraft_id: draft.aircraft_id,
            layout,
            origin,
            destination,
            departs_at: draft.departs_at,
            arrives_at: draft.arrives_at,
            fares: draft.fares,
            currency: Currency::parse(&draft.currency)?,
            status: FlightStatus::Scheduled,
        })
    }

    /// Scheduled block time.
    pub fn duration(&self) -> Duration {
        self.arrives_at - self.departs_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> FlightDraft {
        let departs = Utc::now() + Duration::days(10);
        FlightDraft {
            flight_number: "AI101".into(),
            aircraft_id: AircraftId::generate(),
            origin: "DEL".into(),
            destination: "BOM".into(),
            departs_at: departs,
            arrives_at: departs + Duration::hours(2),
            fares: [(Cabin::Economy, 5000)].into_iter().collect(),
            currency: "USD".into(),
        }
    }

    fn layout() -> Layout {
        Layout::new(vec![(Cabin::Economy, [1, 10], "ABC".into())]).expect("layout")
    }

    fn field_of(d: FlightDraft) -> String {
        match Flight::new(FlightId::generate(), d, layout(), Utc::now()) {
            Ok(_) => "ok".into(),
            Err(e) => e.field,
        }
    }

    #[test]
    fn a_good_draft_is_accepted() {
        assert_eq!(field_of(draft()), "ok");
    }

    #[test]
    fn each_rule_names_its_field() {
        let mut d = draft();
        d.destination = "DEL".into();
        assert_eq!(field_of(d), "destination");
        let mut d = draft();
        d.arrives_at = d.departs_at;
        assert_eq!(field_of(d), "arrives_at");
        let mut d = draft();
        d.fares.clear();
        assert_eq!(field_of(d), "fares.economy");
        let mut d = draft();
        d.fares.insert(Cabin::First, 9000);
        assert_eq!(field_of(d), "fares.first");
        let mut d = draft();
        d.origin = "de".into();
        assert_eq!(field_of(d), "origin");
        let mut d = draft();
        d.flight_number = "AI-101".into();
        assert_eq!(field_of(d), "flight_number");
        let mut d = draft();
        d.currency = "usd".into();
        assert_eq!(field_of(d), "currency");
        let mut d = draft();
        d.departs_at = Utc::now() - Duration::hours(1);
        assert_eq!(field_of(d), "departs_at");
    }

    #[test]
    fn flight_numbers() {
        for ok in ["AI101", "6E2", "U21234"] {
            assert!(FlightNumber::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["AI", "A1", "ai101", "AI12345", "12101", "AI10A"] {
            assert!(FlightNumber::parse(bad).is_err(), "{bad}");
        }
    }
}
