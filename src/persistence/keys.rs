//! The key space. One engine keyspace holds every record under a type prefix (`flight/…`,
//! `seat/…`, `order/…`), so any batch of records is atomic whatever kinds it mixes, and the
//! prefix plus the id's placement tag tell which node owns a record (`cluster::placement`).
//! Keys are built only here, so a change of layout is one file.

use crate::domain::aircraft::SeatName;
use crate::domain::airport::AirportCode;
use crate::domain::ids::{AircraftId, FlightId, OrderId, TicketId, UserId};
use crate::domain::outbox::DeliveryState;
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

/// Prefix of order records.
pub const ORDERS: &str = "order/";

/// An order.
pub fn order(id: &OrderId) -> String {
    format!("{ORDERS}{id}")
}

/// Prefix of the orders whose ids carry `tag`: a customer's orders carry the customer's tag,
/// so these are the customer's orders (and, should two tags collide, another's).
pub fn orders_tagged(tag: &str) -> String {
    format!("{ORDERS}{}", OrderId::tagged(tag))
}

/// Prefix of a user's order index (`user_order/{user}/{created_ms:016}/{order}` to order id),
/// which earlier builds wrote for every order; read, no longer written (see [`orders_tagged`]).
pub fn orders_of(user: &UserId) -> String {
    format!("user_order/{user}/")
}

/// One entry of a user's order index (written by earlier builds); keys sort oldest first.
pub fn order_of(user: &UserId, created_ms: i64, id: &OrderId) -> String {
    format!("user_order/{user}/{created_ms:016}/{id}")
}

/// A ticket.
pub fn ticket(id: &TicketId) -> String {
    format!("ticket/{id}")
}

/// Prefix of the tickets whose ids carry `tag` (a ticket carries its order's tag, which is
/// its customer's).
pub fn tickets_tagged(tag: &str) -> String {
    format!("ticket/{}", TicketId::tagged(tag))
}

/// Prefix of a user's ticket index: an entry for each ticket whose id does not carry its
/// customer's tag (all of them, in data written by earlier builds).
pub fn tickets_of(user: &UserId) -> String {
    format!("user_ticket/{user}/")
}

/// One entry of a user's ticket index.
pub fn ticket_of(user: &UserId, id: &TicketId) -> String {
    format!("user_ticket/{user}/{id}")
}

/// Prefix of the reminders that an ended order's seats may still be held on a flight that
/// could not be reached (`release/{order}`): the order's actor, wherever its partition is led,
/// releases them again until every flight has let them go.
pub const RELEASES: &str = "release/";

/// The reminder that `order`'s seats are still to be released.
pub fn release(order: &OrderId) -> String {
    format!("{RELEASES}{order}")
}

/// The charge taken for an order (at most one per order, ever).
pub fn charge(order: &OrderId) -> String {
    format!("charge/{order}")
}

/// An idempotency key of a user for an operation (`order` or `pay`).
pub fn idempotency(user: &UserId, operation: &str, key: &str) -> String {
    format!("idem/{user}/{operation}/{key}")
}

/// Prefix of a user's notifications.
pub fn notifications_of(user: &UserId) -> String {
    format!("notification/{user}/")
}

/// One notification; keys sort oldest first.
pub fn notification(user: &UserId, created_ns: i64, id: &str) -> String {
    format!("notification/{user}/{created_ns:020}/{id}")
}

/// Prefix of open deliveries (pending or retrying): what the dispatcher works on.
pub const OUTBOX_OPEN: &str = "outbox_open/";
/// Prefix of failed deliveries (dead letters until an operator retries them).
pub const OUTBOX_FAILED: &str = "outbox_failed/";
/// Prefix of delivered deliveries.
pub const OUTBOX_DELIVERED: &str = "outbox_delivered/";

/// The prefix deliveries in `state` are kept under: the dispatcher scans only open ones, and
/// failed ones are counted without reading the delivered.
pub fn outbox(state: DeliveryState) -> &'static str {
    match state {
        DeliveryState::Pending | DeliveryState::Retrying => OUTBOX_OPEN,
        DeliveryState::Failed => OUTBOX_FAILED,
        DeliveryState::Delivered => OUTBOX_DELIVERED,
    }
}

/// A delivery in `state`.
pub fn delivery(id: &str, state: DeliveryState) -> String {
    format!("{}{id}", outbox(state))
}
