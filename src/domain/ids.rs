//! Opaque entity ids. New ids are a type prefix plus a random UUID; ids that come from a URL
//! are checked for shape only, so a malformed one is simply "not found".

use serde::{Deserialize, Serialize};
use std::fmt;

/// The longest id accepted from a client.
const MAX_ID_LEN: usize = 64;

macro_rules! entity_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A fresh random id.
            pub fn generate() -> Self {
                Self(format!("{}_{}", $prefix, uuid::Uuid::new_v4().simple()))
            }

            /// Accepts an id from outside if it has the shape of one of ours.
            pub fn parse(raw: &str) -> Option<Self> {
                let ok = raw.len() <= MAX_ID_LEN
                    && raw.starts_with(concat!($prefix, "_"))
                    && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                ok.then(|| Self(raw.to_owned()))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

entity_id!(
    /// Identifies a flight; its FlightActor is the only writer of its seat map.
    FlightId,
    "flt"
);
entity_id!(
    /// Identifies an aircraft type with its cabin layout.
    AircraftId,
    "acf"
);
entity_id!(
    /// Identifies a user account.
    UserId,
    "usr"
);
entity_id!(
    /// Identifies an order (the holder of seats).
    OrderId,
    "ord"
);
entity_id!(
    /// Identifies a ticket.
    TicketId,
    "tkt"
);

impl FlightId {
    /// Sorts before every real id; a lower bound for range scans.
    pub(crate) fn min() -> Self {
        Self(String::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_back() {
        let id = FlightId::generate();
        assert_eq!(FlightId::parse(id.as_str()), Some(id));
    }

    #[test]
    fn foreign_shapes_are_rejected() {
        assert!(FlightId::parse("usr_abc").is_none());
        assert!(FlightId::parse("flt_../etc").is_none());
        assert!(FlightId::parse(&format!("flt_{}", "a".repeat(80))).is_none());
    }
}
