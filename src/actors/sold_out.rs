//! Which cabins of this node's running flights can seat no new order right now, so that a
//! booking for one is refused (409) before an order is created, written or queued behind the
//! flight: what keeps an on-sale rush of thousands of buyers for 150 seats fast.
//!
//! Only a flight's own actor writes its entry, after each change to its seats, so an entry is
//! as current as the actor's last message, and it counts only while the actor that wrote it
//! runs (a crashed or stopped flight's entry refuses nothing). A hold that lapses frees a seat
//! without any message, so each full cabin carries its earliest hold deadline and stops
//! refusing at that moment. A flight on another node has no entry here: its bookings take the
//! ordinary path.

use crate::domain::aircraft::Cabin;
use crate::domain::ids::FlightId;
use crate::domain::seat_map::{SeatMap, SeatRequest};
use chrono::{DateTime, Utc};
use dashmap::DashMap;
use ractor::{ActorCell, ActorStatus};
use std::sync::Arc;

/// A flight's full cabins, as its running actor last saw them.
struct Entry {
    actor: ActorCell,
    full: Vec<(Cabin, Option<DateTime<Utc>>)>,
}

/// The node's board of full cabins (cheap to clone: one shared map).
#[derive(Clone, Default)]
pub struct SoldOut(Arc<DashMap<FlightId, Entry>>);

impl SoldOut {
    /// Records `seats` as flight `id`'s, from its actor `actor`.
    pub fn update(&self, id: &FlightId, actor: ActorCell, seats: &SeatMap) {
        let full = seats.full_cabins();
        if full.is_empty() {
            if self.0.contains_key(id) {
                self.0.remove(id);
            }
        } else {
            self.0.insert(id.clone(), Entry { actor, full });
        }
    }

    /// Drops flight `id`'s entry (it takes no bookings at all).
    pub fn forget(&self, id: &FlightId) {
        self.0.remove(id);
    }

    /// Drops flight `id`'s entry if `actor` wrote it (the actor is stopping).
    pub fn retire(&self, id: &FlightId, actor: &ActorCell) {
        self.0
            .remove_if(id, |_, e| e.actor.get_id() == actor.get_id());
    }

    /// Whether `request` on flight `id` is sure to be refused for a new order at `now`.
    pub fn refuses(&self, id: &FlightId, request: &SeatRequest, now: DateTime<Utc>) -> bool {
        let SeatRequest::Cabin { cabin, .. } = request else {
            return false;
        };
        self.0.get(id).is_some_and(|e| {
            e.actor.get_status() == ActorStatus::Running
                && e.full
                    .iter()
                    .any(|(c, until)| c == cabin && until.is_none_or(|u| now < u))
        })
    }
}
