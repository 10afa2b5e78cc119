//! Orders: what was asked for, what is held, and the booking state machine.
//!
//! ```text
//! pending ──held──▶ held ──charged──▶ paying ──confirmed──▶ confirmed ──refund──▶ refunding ──refunded──▶ refunded
//!    │                │ └─expired─▶ expired     └─expired (charge refunded)─▶ expired
//!    └─failed─▶ failed └─cancelled─▶ cancelled ◀─cancelled (charge refunded)─ paying
//! ```
//! `pending`, `paying` and `refunding` are saga steps (persisted, so a crash resumes or
//! compensates them); clients see `held`, `confirmed`, `expired`, `cancelled`, `refunded`.

use super::ValidationError;
use super::aircraft::SeatName;
use super::airport::{MAX_TEXT_CHARS, text};
use super::flight::Currency;
use super::ids::{FlightId, OrderId, UserId};
use super::seat_map::SeatRequest;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// Most passengers in one order.
pub const MAX_PASSENGERS: usize = 9;
/// Most flights in one order.
pub const MAX_SEGMENTS: usize = 6;

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OrderStatus {
    /// Holding seats (saga step).
    Pending,
    /// Every seat held, awaiting payment until `expires_at`.
    Held,
    /// Charged; seats being confirmed and tickets issued (saga step).
    Paying,
    /// Paid, seats sold, tickets issued.
    Confirmed,
    /// Being cancelled after payment: refund, void tickets, release seats (saga step).
    Refunding,
    /// Not paid in time; seats returned to sale.
    Expired,
    /// Cancelled while held; seats returned to sale.
    Cancelled,
    /// Cancelled after payment: refunded, tickets void, seats returned to sale.
    Refunded,
    /// The seats could not all be held; nothing is held.
    Failed,
}

impl OrderStatus {
    /// The API name; saga steps show as the state clients can rely on.
    pub fn label(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Held | OrderStatus::Paying => "held",
            OrderStatus::Confirmed | OrderStatus::Refunding => "confirmed",
            OrderStatus::Expired => "expired",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Refunded => "refunded",
            OrderStatus::Failed => "failed",
        }
    }

    /// No further transition is possible.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            OrderStatus::Expired
                | OrderStatus::Cancelled
                | OrderStatus::Refunded
                | OrderStatus::Failed
        )
    }
}

/// What happens to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderEvent {
    /// Every segment is held.
    Held,
    /// A segment could not be held (the rest were released).
    HoldFailed,
    /// The payment was approved.
    Charged,
    /// Seats sold and tickets issued.
    Confirmed,
    /// The hold lapsed (or the charge came too late and was refunded).
    Expired,
    /// The customer or the airline cancelled a held order.
    Cancelled,
    /// Cancelling a paid order began.
    RefundStarted,
    /// A paid order was cancelled and refunded.
    Refunded,
}

/// A transition the state machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an order that is {from:?} cannot become {event:?}")]
pub struct TransitionError {
    /// The current status.
    pub from: OrderStatus,
    /// What was attempted.
    pub event: OrderEvent,
}

/// The status after `event`, if allowed from `from`.
pub fn next(from: OrderStatus, event: OrderEvent) -> Result<OrderStatus, TransitionError> {
    use OrderEvent as E;
    use OrderStatus as S;
    let to = match (from, event) {
        (S::Pending, E::Held) => S::Held,
        (S::Pending, E::HoldFailed) => S::Failed,
        (S::Held, E::Charged) => S::Paying,
        (S::Held, E::Expired) => S::Expired,
        (S::Held, E::Cancelled) => S::Cancelled,
        (S::Paying, E::Confirmed) => S::Confirmed,
        (S::Paying, E::Expired) => S::Expired,
        (S::Paying, E::Cancelled) => S::Cancelled,
        (S::Confirmed, E::RefundStarted) => S::Refunding,
        (S::Refunding, E::Refunded) => S::Refunded,
        _ => return Err(TransitionError { from, event }),
    };
    Ok(to)
}

/// A passenger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Passenger {
    /// Full name as on the ticket.
    pub name: String,
}

/// One flight of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// The flight.
    pub flight_id: FlightId,
    /// What was asked for.
    pub request: SeatRequest,
    /// Seats held (or sold) for the passengers, in passenger order; empty until held.
    pub seats: Vec<SeatName>,
    /// Price of those seats in minor units.
    pub price_cents: u64,
    /// The flight's departure (known once held); a paid order can be cancelled until then.
    pub departs_at: Option<DateTime<Utc>>,
}

/// A ticket: one passenger on one flight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketRecord {
    /// Its id.
    pub id: super::ids::TicketId,
    /// The order that bought it.
    pub order_id: OrderId,
    /// The customer.
    pub user: UserId,
    /// The flight.
    pub flight_id: FlightId,
    /// The seat.
    pub seat: SeatName,
    /// Who flies.
    pub passenger_name: String,
    /// `issued` or `void`.
    pub status: TicketStatus,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
}

/// A ticket's life: issued, then possibly void.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TicketStatus {
    /// Valid for travel.
    Issued,
    /// Cancelled (refund or flight cancellation).
    Void,
}

/// An order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Its id.
    pub id: OrderId,
    /// The customer.
    pub user: UserId,
    /// Where it is in its life.
    pub status: OrderStatus,
    /// The flights.
    pub segments: Vec<Segment>,
    /// Who flies.
    pub passengers: Vec<Passenger>,
    /// When it was placed.
    pub created_at: DateTime<Utc>,
    /// When its holds lapse.
    pub expires_at: DateTime<Utc>,
    /// Sum of all segments.
    pub total_cents: u64,
    /// Currency of every segment.
    pub currency: Option<Currency>,
    /// The approved charge, once paid.
    pub charge_id: Option<String>,
    /// Issued tickets' ids.
    pub tickets: Vec<super::ids::TicketId>,
    /// Fingerprint of the request that created it: a digest of 32 hex characters (orders
    /// written by earlier builds hold the request itself; nothing reads it back).
    pub request_hash: String,
    /// Why it failed, for a `failed` order (replayed to a client retrying the request).
    pub failure: Option<HoldFailure>,
}

/// Why an order's seats could not all be held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HoldFailure {
    /// Some seat is taken, or too few are left.
    SeatsUnavailable(String),
    /// The customer would exceed the per-flight seat cap.
    HoldLimit(String),
    /// The request does not fit a flight (unknown flight, seat or cabin; mixed currencies).
    Invalid(String),
    /// A flight could not be reached; nothing is held.
    Unavailable(String),
}

impl Order {
    /// Applies an event.
    pub fn apply(&mut self, event: OrderEvent) -> Result<(), TransitionError> {
        self.status = next(self.status, event)?;
        Ok(())
    }

    /// Whether `viewer` may see (and act on) the order: their own once placed, or any placed
    /// order for an admin. A pending order is still being placed and a failed one never
    /// existed for its customer; to anyone it is not shown, it does not exist.
    pub fn visible_to(&self, viewer: &Viewer) -> bool {
        let placed = !matches!(self.status, OrderStatus::Pending | OrderStatus::Failed);
        placed && (viewer.admin || self.user == viewer.user)
    }
}

/// Who asks to see or act on an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Viewer {
    /// The caller.
    pub user: UserId,
    /// The caller may see every customer's orders.
    pub admin: bool,
}

/// Validates what a client asks for: 1 to [`MAX_PASSENGERS`] named passengers and 1 to
/// [`MAX_SEGMENTS`] distinct flights, each asking one seat per passenger.
pub fn validate_request(
    segments: &[(FlightId, SeatRequest)],
    passengers: &[String],
) -> Result<Vec<Passenger>, ValidationError> {
    if passengers.is_empty() || passengers.len() > MAX_PASSENGERS {
        return Err(ValidationError::new(
            "passengers",
            format!("must name 1 to {MAX_PASSENGERS} passengers"),
        ));
    }
    if segments.is_empty() || segments.len() > MAX_SEGMENTS {
        return Err(ValidationError::new(
            "segments",
            format!("must list 1 to {MAX_SEGMENTS} flights"),
        ));
    }
    let mut flights = HashSet::new();
    for (i, (flight, request)) in segments.iter().enumerate() {
        if !flights.insert(flight) {
            return Err(ValidationError::new(
                format!("segments[{i}].flight_id"),
                "each flight may appear once",
            ));
        }
        let asked = match request {
            SeatRequest::Seats(seats) => seats.len(),
            SeatRequest::Cabin { count, .. } => usize::from(*count),
        };
        if asked != passengers.len() {
            return Err(ValidationError::new(
                format!("segments[{i}]"),
                format!("must ask one seat per passenger ({})", passengers.len()),
            ));
        }
    }
    passengers
        .iter()
        .enumerate()
        .map(|(i, name)| {
            text(&format!("passengers[{i}].name"), name, MAX_TEXT_CHARS)
                .map(|name| Passenger { name })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALL: [OrderStatus; 9] = [
        OrderStatus::Pending,
        OrderStatus::Held,
        OrderStatus::Paying,
        OrderStatus::Confirmed,
        OrderStatus::Refunding,
        OrderStatus::Expired,
        OrderStatus::Cancelled,
        OrderStatus::Refunded,
        OrderStatus::Failed,
    ];
    const EVENTS: [OrderEvent; 8] = [
        OrderEvent::Held,
        OrderEvent::HoldFailed,
        OrderEvent::Charged,
        OrderEvent::Confirmed,
        OrderEvent::Expired,
        OrderEvent::Cancelled,
        OrderEvent::RefundStarted,
        OrderEvent::Refunded,
    ];

    proptest! {
        /// For any sequence of events from any status: nothing leaves a terminal status, the
        /// only way out of `confirmed` is a refund, and failed transitions change nothing.
        #[test]
        fn order_state_machine_rules(start in 0..9usize, events in prop::collection::vec(0..8usize, 0..30)) {
            let mut status = ALL[start];
            for e in events {
                let event = EVENTS[e];
                match next(status, event) {
                    Ok(to) => {
                        prop_assert!(!status.is_terminal(), "{:?} left terminal {:?}", event, status);
                        // Out of confirmed there is only the way to refunded.
                        if status == OrderStatus::Confirmed {
                            prop_assert_eq!(to, OrderStatus::Refunding);
                        }
                        if status == OrderStatus::Refunding {
                            prop_assert_eq!(to, OrderStatus::Refunded);
                        }
                        if to == OrderStatus::Confirmed {
                            prop_assert_eq!(status, OrderStatus::Paying, "confirmed without a charge");
                        }
                        status = to;
                    }
                    Err(err) => prop_assert_eq!(err.from, status),
                }
            }
        }
    }

    fn order_of(user: &UserId, status: OrderStatus) -> Order {
        let now = Utc::now();
        Order {
            id: OrderId::generate_in(user.tag()),
            user: user.clone(),
            status,
            segments: vec![],
            passengers: vec![],
            created_at: now,
            expires_at: now,
            total_cents: 0,
            currency: None,
            charge_id: None,
            tickets: vec![],
            request_hash: String::new(),
            failure: None,
        }
    }

    proptest! {
        /// A placed order is its customer's and every admin's to see; nobody sees an order
        /// still being placed or one that failed, not even an admin.
        #[test]
        fn who_sees_an_order(status in 0..9usize, own in any::<bool>(), admin in any::<bool>()) {
            let customer = UserId::generate();
            let order = order_of(&customer, ALL[status]);
            let user = if own { customer } else { UserId::generate() };
            let placed = !matches!(ALL[status], OrderStatus::Pending | OrderStatus::Failed);
            prop_assert_eq!(order.visible_to(&Viewer { user, admin }), placed && (own || admin));
        }
    }

    #[test]
    fn requests_need_one_seat_per_passenger_on_distinct_flights() {
        let f = FlightId::generate();
        let two = vec!["Ada".to_string(), "Alan".to_string()];
        let cabin = |count| SeatRequest::Cabin {
            cabin: super::super::aircraft::Cabin::Economy,
            count,
        };
        assert!(validate_request(&[(f.clone(), cabin(2))], &two).is_ok());
        assert!(validate_request(&[(f.clone(), cabin(1))], &two).is_err());
        assert!(validate_request(&[(f.clone(), cabin(2)), (f.clone(), cabin(2))], &two).is_err());
        assert!(validate_request(&[], &two).is_err());
        assert!(validate_request(&[(f, cabin(0))], &[]).is_err());
    }
}
