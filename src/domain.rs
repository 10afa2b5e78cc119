//! Pure types and rules: ids, airports, aircraft layouts, seat maps, flights, users and search.
//!
//! Nothing here does I/O or is async; every constructor that takes outside input is fallible
//! ("parse, don't validate"), so the rest of the code only ever handles valid values.

pub mod aircraft;
pub mod airport;
pub mod flight;
pub mod ids;
pub mod listing;
pub mod order;
pub mod outbox;
pub mod search;
pub mod seat_map;
pub mod user;

/// A rule that a value from outside broke; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ValidationError {
    /// The request field that was wrong (dotted path for nested fields).
    pub field: String,
    /// What was wrong with it, in words a client can act on.
    pub reason: String,
}

impl ValidationError {
    /// A validation error for `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
