//! SearchIndexActor: applies the events flight actors publish to the node's search read model.
//!
//! Searches read the shared index directly (a read lock), never through this mailbox, so
//! searching never waits behind a flight and never messages flight actors.

use crate::domain::aircraft::Cabin;
use crate::domain::ids::FlightId;
use crate::domain::search::{FlightIndex, FlightSummary, Listing};
use crate::domain::seat_map::CabinAvailability;
use ractor::{Actor, ActorProcessingErr, ActorRef, OutputPort};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock, RwLockReadGuard};

/// The node's search read model, shared between the actor (writer) and HTTP (readers).
#[derive(Clone, Default)]
pub struct SharedIndex(Arc<RwLock<FlightIndex>>);

impl SharedIndex {
    /// A read view; a panic while writing cannot leave the index half-updated (every update is
    /// a single map operation), so a poisoned lock is still safe to read.
    pub fn read(&self) -> RwLockReadGuard<'_, FlightIndex> {
        self.0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn update(&self, f: impl FnOnce(&mut FlightIndex)) {
        let mut guard = self
            .0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard);
    }

    /// Adds or replaces a flight (used at start-up, before the actor runs).
    pub fn upsert(&self, summary: &FlightSummary) {
        self.update(|i| i.upsert(summary));
    }

    /// Adds or replaces listings another node published.
    pub fn insert(&self, listings: Vec<Listing>) {
        self.update(|i| {
            for listing in listings {
                i.insert(listing);
            }
        });
    }
}

/// Events published by flight actors.
pub enum SearchIndexMessage {
    /// A flight was created or (re)activated: its full summary.
    Upsert(FlightSummary),
    /// A flight's seat counts changed.
    Availability(FlightId, BTreeMap<Cabin, CabinAvailability>),
    /// Fault injection for supervision tests: panics inside the actor. Not reachable over HTTP.
    InjectPanic,
}

// Local only: with ractor's `cluster` feature every message type opts in explicitly.
impl ractor::Message for SearchIndexMessage {}

// Listings leave through an output port (a local subscriber forwards them to other nodes).
impl ractor::Message for Listing {}

/// The writer of the shared index. Each listing it changes also leaves through `listings`,
/// for whoever keeps other read models up to date (the cluster, which sends them to the other
/// nodes): the actors do not know who listens.
#[derive(Clone)]
pub struct SearchIndexActor {
    /// Where changed listings are published; `None` on a node that has nobody to tell (a
    /// node without a cluster), which then skips copying them.
    pub listings: Option<Arc<OutputPort<Listing>>>,
}

impl Actor for SearchIndexActor {
    type Msg = SearchIndexMessage;
    type State = SharedIndex;
    type Arguments = SharedIndex;

    async fn pre_start(
        &self,
        _: ActorRef<Self::Msg>,
        index: SharedIndex,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(index)
    }

    async fn handle(
        &self,
        _: ActorRef<Self::Msg>,
        message: Self::Msg,
        index: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let id = match message {
            SearchIndexMessage::InjectPanic => panic!("injected fault in the search index actor"),
            SearchIndexMessage::Upsert(summary) => {
                let id = summary.flight.id.clone();
                index.upsert(&summary);
                id
            }
            SearchIndexMessage::Availability(id, availability) => {
                index.update(|i| i.set_availability(&id, &availability));
                id
            }
        };
        if let Some(port) = &self.listings {
            let listing = index.read().get(&id).cloned();
            if let Some(listing) = listing {
                port.send(listing);
            }
        }
        Ok(())
    }
}

impl super::root::InjectPanic for SearchIndexMessage {
    fn inject_panic() -> Self {
        Self::InjectPanic
    }
}
