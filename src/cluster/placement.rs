//! Where a record lives: rendezvous (highest random weight) hashing of a placement tag over the
//! cluster's members. Adding a member moves only the tags the new member wins; removing one
//! moves only the tags it held. Pure functions, property-tested below.

pub use crate::domain::ids::CATALOG_TAG;
use crate::domain::ids::{tag_for, tag_of};
use xxhash_rust::xxh3::xxh3_64;

/// The weight of `member` for `tag`; the member with the highest weight owns the tag.
fn weight(member: &str, tag: &str) -> u64 {
    let mut bytes = Vec::with_capacity(member.len() + tag.len() + 1);
    bytes.extend_from_slice(member.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(tag.as_bytes());
    xxh3_64(&bytes)
}

/// The owner of `tag` among `members` (`None` only when there are no members).
pub fn owner<'a>(members: impl IntoIterator<Item = &'a str>, tag: &str) -> Option<&'a str> {
    members
        .into_iter()
        .max_by_key(|member| (weight(member, tag), *member))
}

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
        "user" | "flight" | "seat" | "order" | "ticket" | "charge" | "user_order"
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
    use proptest::prelude::*;

    fn members(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("node-{i}")).collect()
    }

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

    proptest! {
        #[test]
        fn every_member_agrees_on_the_owner(tag in "[0-9a-f]{16}", n in 1usize..8, rot in 0usize..8) {
            let ms = members(n);
            let mut rotated = ms.clone();
            rotated.rotate_left(rot % n);
            prop_assert_eq!(
                owner(ms.iter().map(String::as_str), &tag),
                owner(rotated.iter().map(String::as_str), &tag)
            );
        }

        #[test]
        fn a_join_moves_only_tags_to_the_new_member(tags in proptest::collection::vec("[0-9a-f]{16}", 1..200), n in 1usize..6) {
            let before = members(n);
            let mut after = before.clone();
            after.push("joiner".into());
            for tag in &tags {
                let old = owner(before.iter().map(String::as_str), tag);
                let new = owner(after.iter().map(String::as_str), tag);
                prop_assert!(new == old || new == Some("joiner"));
            }
        }

        #[test]
        fn a_removal_moves_only_the_removed_members_tags(tags in proptest::collection::vec("[0-9a-f]{16}", 1..200), n in 2usize..7, gone in 0usize..7) {
            let before = members(n);
            let gone = before[gone % n].clone();
            let after: Vec<String> = before.iter().filter(|m| **m != gone).cloned().collect();
            for tag in &tags {
                let old = owner(before.iter().map(String::as_str), tag);
                let new = owner(after.iter().map(String::as_str), tag);
                prop_assert!(old == new || old == Some(gone.as_str()));
            }
        }
    }

    #[test]
    fn tags_spread_over_members() {
        let ms = members(3);
        let mut counts = [0usize; 3];
        for _ in 0..3000 {
            let id = FlightId::generate();
            let who = owner(ms.iter().map(String::as_str), id.tag()).expect("owner");
            counts[ms.iter().position(|m| m == who).expect("member")] += 1;
        }
        assert!(counts.iter().all(|&c| c > 700), "{counts:?}");
    }
}
