//! [`Services`]: everything a node serves requests with, gathered in one place so a request
//! that arrives from another node reaches the same handlers as one from this node's HTTP layer
//! (see [`Request::serve`](super::request::Request::serve)), and so start-up and a regained
//! majority run the same recovery.

use super::accounts::Accounts;
use super::catalog::Catalog;
use super::flight::{self, FlightCommand, FlightDirectory};
use super::order::OrderCommand;
use super::order::desk::Orders;
use super::router::Operation;
use super::search_index::SharedIndex;
use super::ticket::TicketDirectory;
use crate::domain::flight::Flight;
use crate::domain::ids::FlightId;
use crate::domain::order::OrderStatus;
use crate::persistence::{Store, keys};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// The node-local facades and directories requests are served with.
#[derive(Clone)]
pub struct Services {
    /// Flight actors.
    pub flights: FlightDirectory,
    /// Orders and their actors.
    pub orders: Orders,
    /// Ticket actors.
    pub tickets: TicketDirectory,
    /// Users.
    pub accounts: Accounts,
    /// Airports, aircraft, new flights.
    pub catalog: Catalog,
    /// The search read model.
    pub index: SharedIndex,
    /// The node's store.
    pub store: Store,
    /// The node's outbox dispatcher.
    pub outbox: std::sync::Arc<super::notification::Dispatch>,
    /// The configured first admin (email, password; validated with the settings): made to exist
    /// by the owner of its email whenever that node recovers — at start-up before a single node
    /// takes requests, and once a clustered node reaches a majority (it cannot write before).
    pub first_admin: Option<(String, SecretString)>,
    /// The last count of this node's entities, and when it was made.
    pub counted: std::sync::Arc<tokio::sync::Mutex<Option<(std::time::Instant, EntityCounts)>>>,
}

/// A count of the node's entities is reused for this long: counting scans every key, and an
/// operator's console polls every member every 2 s. Short enough that a count asked for a
/// second after a change of leaders sees it.
const COUNTS_FRESH: std::time::Duration = std::time::Duration::from_secs(1);

/// How many entities a node owns, by kind.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EntityCounts {
    /// Flights.
    pub flights: u64,
    /// Orders.
    pub orders: u64,
    /// Tickets.
    pub tickets: u64,
    /// Users.
    pub users: u64,
}

impl Services {
    /// The stored flights that have held seats.
    pub fn flights_with_holds(&self) -> Vec<FlightId> {
        self.flights_with_holds_where(&|_| true)
    }

    /// The stored flights whose placement tag is `mine` that have held seats.
    pub fn flights_with_holds_where(&self, mine: &(dyn Fn(&str) -> bool + Sync)) -> Vec<FlightId> {
        self.store
            .scan::<Flight>(keys::FLIGHTS)
            .filter_map(Result::ok)
            .map(|(_, flight)| flight.id)
            .filter(|id| mine(id.tag()))
            .filter(|id| flight::load(&self.store, id).is_ok_and(|(_, seats)| seats.has_holds()))
            .collect()
    }

    /// Activates the entities that must run, at start-up and whenever this node gains entities
    /// or its majority back: `flights_with_holds` (their lapsed holds are released, also those
    /// that lapsed while the node was down) and orders with live holds (their expiry is
    /// re-armed) or unfinished saga steps (finished or compensated).
    pub async fn recover(&self, flights_with_holds: Vec<FlightId>) {
        self.recover_where(flights_with_holds, &|_| true).await;
    }

    /// [`Services::recover`] for the orders whose placement tag is `mine` (a replicated node
    /// activates each partition it comes to lead).
    pub async fn recover_where(
        &self,
        flights_with_holds: Vec<FlightId>,
        mine: &(dyn Fn(&str) -> bool + Sync),
    ) {
        if let Some((email, password)) = &self.first_admin
            && let Err(e) = self
                .accounts
                .ensure_admin(email, password.expose_secret().to_owned())
                .await
        {
            tracing::warn!(error = %e, "first admin not ensured yet; it is at the next recovery");
        }
        for id in flights_with_holds {
            if let Err(e) = self.flights.call(&id, FlightCommand::Get).await {
                tracing::warn!(flight = %id, error = %e, "flight with holds not activated yet");
            }
        }
        let unsettled = match self.orders.unsettled() {
            Ok(list) => list
                .into_iter()
                .filter(|(id, _, _)| mine(id.tag()))
                .collect::<Vec<_>>(),
            Err(e) => {
                tracing::error!(error = %e, "unsettled orders could not be listed");
                return;
            }
        };
        if !unsettled.is_empty() {
            tracing::info!(orders = unsettled.len(), "recovering unsettled orders");
        }
        for (id, status, expires_at) in unsettled {
            let command = match status {
                OrderStatus::Held => {
                    self.orders.deadlines().at(expires_at, id);
                    continue;
                }
                OrderStatus::Pending | OrderStatus::Paying | OrderStatus::Refunding => {
                    OrderCommand::Recover
                }
                // Ended with seats still to release: activated, its actor releases them on its
                // own timer (a flight that cannot be reached does not hold up the others here).
                _ => OrderCommand::Get,
            };
            let outcome = self.orders.call(&id, command).await;
            if let Err(e) = outcome {
                tracing::warn!(order = %id, error = %e, "order not recovered yet; it recovers on its next request");
            }
        }
    }

    /// How many entities this node stores: counted at most every [`COUNTS_FRESH`] (a count
    /// scans the keys, 100 ms with a few hundred thousand orders), on a blocking thread, by
    /// one caller at a time while the others wait for its answer.
    pub async fn counts(&self) -> EntityCounts {
        let mut counted = self.counted.lock().await;
        if let Some((at, counts)) = *counted
            && at.elapsed() < COUNTS_FRESH
        {
            return counts;
        }
        let store = self.store.clone();
        let counts = tokio::task::spawn_blocking(move || {
            let count = |prefix: &str| store.count_prefix(prefix);
            EntityCounts {
                flights: count(keys::FLIGHTS),
                orders: count(keys::ORDERS),
                tickets: count("ticket/"),
                users: count(keys::USERS),
            }
        })
        .await
        .unwrap_or_default();
        *counted = Some((std::time::Instant::now(), counts));
        counts
    }
}

/// "How many entities do you store?" (asked of every node, for the operator's view).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Counts;

impl Operation for Counts {
    type Reply = EntityCounts;
    type Handler = Services;

    fn tag(&self) -> std::borrow::Cow<'_, str> {
        "".into()
    }

    fn handler(services: &Services) -> &Services {
        services
    }

    async fn handle(self, services: &Services) -> EntityCounts {
        services.counts().await
    }
}
