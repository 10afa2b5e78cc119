//! The key space. One sled tree holds every record under a type prefix, so any batch of
//! records is atomic.

use crate::domain::aircraft::SeatName;
use crate::domain::airport::AirportCode;
use crate::domain::ids::{AircraftId, FlightId, UserId};
use crate::domain::user::Email;

/// Prefix of user records (`User`).
pub const USERS: &str = "user/";
/// Prefix of airport records (`Airport`).
pub const AIRPORTS: &str = "airport/";
/// Prefix of aircraft records.
pub const AIRCRAFT: &str = "aircraft/";
/// Prefix of flight records (`Flight`).
pub const FLIGHTS: &str = "flight/";

/// A user by id.
pub fn user(id: &UserId) -> String {
    format!("{USERS}{id}")
}

/// The email index: email to user id.
pub fn email(email: &Email) -> String {
    format!("email/{email}")
}

/// An airport by code.
pub fn airport(code: &AirportCode) -> String {
    format!("{AIRPORTS}{code}")
}

/// An aircraft by id.
pub fn aircraft(id: &AircraftId) -> String {
    format!("{AIRCRAFT}{id}")
}

/// A flight's schedule record.
pub fn flight(id: &FlightId) -> String {
    format!("{FLIGHTS}{id}")
}

/// Prefix of one flight's seat records; only seats that are not available have one.
pub fn seats_of(id: &FlightId) -> String {
    format!("seat/{id}/")
}

/// One seat of one flight.
pub fn seat(id: &FlightId, seat: SeatName) -> String {
    format!("seat/{id}/{seat}")
}
