//! Opaque entity ids. New ids are a type prefix plus 32 hex digits; ids that come from a URL
//! are checked for shape only, so a malformed one is simply "not found".
//!
//! The first 16 hex digits are the id's *placement tag*: the cluster places every record by
//! the tag of the id it belongs to (see `cluster::placement`). Records that must live together
//! share a tag: a user's tag is derived from the email (so signup can check uniqueness on one
//! node), and the user's orders and tickets carry the user's tag.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The longest id accepted from a client.
const MAX_ID_LEN: usize = 64;
/// Hex digits of a placement tag.
pub const TAG_LEN: usize = 16;

/// The placement tag of the catalog (airports and aircraft): one owner for all of it.
pub const CATALOG_TAG: &str = "catalog";

/// The placement tag at the start of an id's body.
pub fn tag_of(body: &str) -> &str {
    body.get(..TAG_LEN).unwrap_or(body)
}

/// The placement tag of anything keyed by a string outside the id space (an email): 64 bits
/// of xxh3, a hash with a fixed specification, so every node and every build agrees.
pub fn tag_for(key: &str) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(key.as_bytes()))
}

/// What generic code (an entity's directory, the router) needs of an id.
pub trait EntityId: Sized {
    /// Accepts an id from outside if it has the shape of one of ours.
    fn parse(raw: &str) -> Option<Self>;
    /// The placement tag.
    fn tag(&self) -> &str;
}

macro_rules! entity_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A fresh random id with a random placement tag.
            pub fn generate() -> Self {
                Self(format!("{}_{}", $prefix, uuid::Uuid::new_v4().simple()))
            }

            /// A fresh random id placed with `tag` (the tag of the record it belongs to).
            pub fn generate_in(tag: &str) -> Self {
                let random = uuid::Uuid::new_v4().simple().to_string();
                Self(format!("{}_{}{}", $prefix, tag, &random[..TAG_LEN]))
            }

            /// The start every id that [`Self::generate_in`] places with `tag` shares, to
            /// find them by a prefix scan.
            pub fn tagged(tag: &str) -> String {
                format!("{}_{}", $prefix, tag)
            }

            /// The placement tag: the first 16 hex digits after the prefix (or all of a
            /// shorter id, which then names nothing stored and is placed arbitrarily).
            pub fn tag(&self) -> &str {
                tag_of(&self.0[$prefix.len() + 1..])
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

            /// The id's body as a number, for compact indexes: `Some` for every id this
            /// system generates (32 lowercase hex digits after the prefix).
            pub fn to_bits(&self) -> Option<u128> {
                let body = self.0.get($prefix.len() + 1..)?;
                let hex = body.len() == 32
                    && body.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
                hex.then(|| u128::from_str_radix(body, 16).ok()).flatten()
            }

            /// The id whose body is `bits` (the inverse of `to_bits`).
            pub fn from_bits(bits: u128) -> Self {
                Self(format!("{}_{bits:032x}", $prefix))
            }
        }

        impl EntityId for $name {
            fn parse(raw: &str) -> Option<Self> {
                Self::parse(raw)
            }

            fn tag(&self) -> &str {
                self.tag()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_back() {
        let id = FlightId::generate();
        assert_eq!(FlightId::parse(id.as_str()), Some(id));
    }

    #[test]
    fn ids_generated_in_a_tag_carry_it() {
        let user = UserId::generate_in(&tag_for("ann@example.com"));
        let order = OrderId::generate_in(user.tag());
        assert_eq!(order.tag(), user.tag());
        assert_eq!(user.tag(), tag_for("ann@example.com"));
        assert_eq!(OrderId::parse(order.as_str()), Some(order.clone()));
        assert_ne!(order, OrderId::generate_in(user.tag()));
    }

    #[test]
    fn generated_ids_round_trip_through_bits_and_others_have_none() {
        for id in [
            FlightId::generate(),
            FlightId::generate_in(&tag_for("x@example.com")),
        ] {
            let bits = id.to_bits().expect("generated ids are hex");
            assert_eq!(FlightId::from_bits(bits), id);
        }
        for raw in ["flt_abc", "flt_ABCDEF0123456789abcdef0123456789", "flt_"] {
            let id = FlightId::parse(raw).expect("shape");
            assert_eq!(id.to_bits(), None, "{raw}");
        }
    }

    #[test]
    fn short_ids_are_their_own_tag() {
        let id = FlightId::parse("flt_abc").expect("shape");
        assert_eq!(id.tag(), "abc");
    }

    #[test]
    fn foreign_shapes_are_rejected() {
        assert!(FlightId::parse("usr_abc").is_none());
        assert!(FlightId::parse("flt_../etc").is_none());
        assert!(FlightId::parse(&format!("flt_{}", "a".repeat(80))).is_none());
    }
}
