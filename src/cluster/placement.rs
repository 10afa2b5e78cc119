//! Which placement tag a stored record belongs to (and so which partition: `raft::partition_of`).
//! Pure functions, tested below.

pub use crate::domain::ids::CATALOG_TAG;
use crate::domain::ids::{tag_for, tag_of};

/// The placement tag of a stored record, from its key; `None` for node-local records (such as
/// the node's own view of the cluster), which never move.
pub fn tag_of_key(key: &str) -> Option<String> {
    let (kind, rest) = key.split_once('/')?;
    let first = rest.split('/').next().unwrap_or(rest);
    let id_tag = |id: &str| {
        id.split_once('_')
            .map(|(_, body)| tag_of(body).to_owned())
            .filter(|tag| !tag.is_empty())
    };
    match kind {
        "airport" | "aircraft" => Some(CATALOG_TAG.to_owned()),
        "email" => Some(tag_for(rest)),
        "user" | "flight" | "seat" | "order" | "release" | "ticket" | "charge" | "user_order"
        | "user_ticket" | "idem" | "notification" | "outbox_open" | "outbox_failed"
        | "outbox_delivered" => id_tag(first),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::aircraft::SeatName;
    use crate::domain::ids::{FlightId, OrderId, TicketId, UserId};
    use crate::domain::user::Email;
    use crate::persistence::keys;

    #[test]
    fn every_record_of_a_user_shares_the_users_tag() {
        let email = Email::parse("ann@example.com").expect("email");
        let user = UserId::generate_in(&email.tag());
        let order = OrderId::generate_in(user.tag());
        let ticket = TicketId::generate_in(order.tag());
        let tag = Some(user.tag().to_owned());
        let note = crate::actors::notification::Notification::new(
            user.clone(),
            crate::actors::notification::NotificationKind::OrderConfirmed,
            order.clone(),
        );
        use crate::domain::outbox::DeliveryState;
        let delivery = crate::domain::outbox::Delivery::new(
            crate::domain::outbox::Channel::Email,
            &note.id,
            note.key(),
            chrono::Utc::now(),
        );
        for key in [
            note.key(),
            keys::delivery(&delivery.id, DeliveryState::Pending),
            keys::delivery(&delivery.id, DeliveryState::Failed),
            keys::delivery(&delivery.id, DeliveryState::Delivered),
            keys::user(&user),
            keys::email(&email),
            keys::order(&order),
            keys::order_of(&user, 5, &order),
            keys::ticket(&ticket),
            keys::ticket_of(&user, &ticket),
            keys::charge(&order),
            keys::release(&order),
            keys::idempotency(&user, "order", "k-1"),
            keys::notification(&user, 7, "n"),
        ] {
            assert_eq!(tag_of_key(&key), tag, "{key}");
        }
    }

    #[test]
    fn a_flight_and_its_seats_share_a_tag_and_the_catalog_has_one() {
        let flight = FlightId::generate();
        let seat = keys::seat(&flight, SeatName::parse("12C").expect("seat"));
        assert_eq!(tag_of_key(&keys::flight(&flight)), tag_of_key(&seat));
        assert_eq!(tag_of_key(&seat).as_deref(), Some(flight.tag()));
        assert_eq!(tag_of_key("airport/LHR").as_deref(), Some(CATALOG_TAG));
        assert_eq!(tag_of_key("cluster/view"), None);
    }
}
