//! GatewayActor: the one cluster-capable actor of a node. Peers send it requests for the
//! entities this node owns; it checks ownership and epoch, hands the request to the local
//! actor or store through the same facades HTTP uses, and sends the reply back. Each call is
//! served on its own task, so a slow saga never blocks the gateway's mailbox.

use super::wire::{Answer, Call, CallBody, Cast, GatewayMessage, Gather, Request, decode, encode};
use super::{Cluster, GATEWAYS, Route, done, gateway_group, handoff};
use crate::actors::CallError;
use crate::actors::accounts::Accounts;
use crate::actors::catalog::Catalog;
use crate::actors::flight::{self, FlightCommand, FlightDirectory};
use crate::actors::notification;
use crate::actors::order::OrderCommand;
use crate::actors::orders::Orders;
use crate::actors::search_index::SharedIndex;
use crate::actors::ticket::TicketDirectory;
use crate::domain::flight::Flight;
use crate::domain::ids::FlightId;
use crate::domain::order::OrderStatus;
use crate::persistence::{Store, keys};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, OnceLock};

/// The local facades a gateway serves requests with.
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
    /// The configured first admin (email, password; validated with the settings): made to exist
    /// by the owner of its email whenever that node recovers — at start-up before a single node
    /// takes requests, and once a clustered node reaches a majority (it cannot write before).
    pub first_admin: Option<(String, SecretString)>,
}

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
        self.store
            .scan::<Flight>(keys::FLIGHTS)
            .filter_map(Result::ok)
            .map(|(_, flight)| flight.id)
            .filter(|id| flight::load(&self.store, id).is_ok_and(|(_, seats)| seats.has_holds()))
            .collect()
    }

    /// Activates the entities that must run, at start-up and whenever this node gains entities
    /// or its majority back: `flights_with_holds` (their lapsed holds are released, also those
    /// that lapsed while the node was down) and orders with live holds (their expiry is
    /// re-armed) or unfinished saga steps (finished or compensated).
    pub async fn recover(&self, flights_with_holds: Vec<FlightId>) {
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
            Ok(list) => list,
            Err(e) => {
                tracing::error!(error = %e, "unsettled orders could not be listed");
                return;
            }
        };
        if !unsettled.is_empty() {
            tracing::info!(orders = unsettled.len(), "recovering unsettled orders");
        }
        for (id, status, expires_at) in unsettled {
            let outcome = match status {
                OrderStatus::Held => {
                    self.orders.deadlines().at(expires_at, id);
                    continue;
                }
                _ => self
                    .orders
                    .call(&id, OrderCommand::Recover)
                    .await
                    .map(|_| ())
                    .map_err(|e| CallError::Unavailable(e.to_string())),
            };
            if let Err(e) = outcome {
                tracing::warn!(order = %id, error = %e, "order not recovered yet; it recovers on its next request");
            }
        }
    }

    /// How many entities this node stores.
    pub fn counts(&self) -> EntityCounts {
        let count = |prefix: &str| self.store.count_prefix(prefix);
        EntityCounts {
            flights: count(keys::FLIGHTS),
            orders: count(keys::ORDERS),
            tickets: count("ticket/"),
            users: count(keys::USERS),
        }
    }
}

/// The gateway actor.
pub struct GatewayActor {
    /// Membership.
    pub cluster: Cluster,
    /// The local facades, set once the node has built them.
    pub services: Arc<OnceLock<Services>>,
}

impl Actor for GatewayActor {
    type Msg = GatewayMessage;
    type State = ();
    type Arguments = ();

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        _: (),
    ) -> Result<(), ActorProcessingErr> {
        if self.cluster.clustered() {
            ractor::pg::join(GATEWAYS.to_owned(), vec![myself.get_cell()]);
            ractor::pg::join(gateway_group(self.cluster.node()), vec![myself.get_cell()]);
        }
        self.cluster.set_gateway(myself);
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<Self::Msg>,
        message: Self::Msg,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let Some(services) = self.services.get().cloned() else {
            // Still starting: callers time out or get "unreachable" and retry.
            return Ok(());
        };
        match message {
            GatewayMessage::Call(bytes, reply) => {
                let cluster = self.cluster.clone();
                tokio::spawn(async move {
                    let answer = answer(&cluster, &services, &bytes).await;
                    let bytes = encode(&answer).unwrap_or_default();
                    let _ = reply.send(bytes);
                });
            }
            GatewayMessage::Cast(bytes) => match decode::<Cast>(&bytes) {
                Ok(Cast::Heartbeat { from, addr, view }) if !self.cluster.blocks(&from) => {
                    // A newer view first: the peer counts toward this node's majority only at
                    // the same epoch.
                    let epoch = view.epoch;
                    handoff::apply(&self.cluster, &services, view);
                    self.cluster.heard(&from, &addr, epoch);
                }
                Ok(Cast::Index(listings)) => services.index.insert(listings),
                Ok(Cast::Heartbeat { .. }) => {}
                Err(e) => tracing::warn!(error = %e, "undecodable message from a peer dropped"),
            },
        }
        Ok(())
    }
}

async fn answer(cluster: &Cluster, services: &Services, bytes: &[u8]) -> Answer {
    let call: Call = match decode(bytes) {
        Ok(call) => call,
        Err(e) => return Answer::Unavailable(e.to_string()),
    };
    if cluster.blocks(&call.from) {
        return Answer::Unavailable("link blocked".into());
    }
    match call.body {
        CallBody::Serve { tag, request } => {
            let epoch = cluster.epoch();
            if call.epoch < epoch {
                return Answer::NotOwner(cluster.view());
            }
            if call.epoch > epoch {
                return Answer::Unavailable("the owner is catching up with the cluster".into());
            }
            match cluster.route(&tag) {
                Route::Local(in_flight) => {
                    let answer = serve(services, request).await;
                    drop(in_flight);
                    answer
                }
                Route::Remote { .. } => Answer::NotOwner(cluster.view()),
                Route::Unavailable(why) => Answer::Unavailable(why),
            }
        }
        CallBody::Gather(Gather::Orders { limit }) => done(
            &services
                .orders
                .list_all_local(limit)
                .map_err(|e| e.to_string()),
        ),
        CallBody::Gather(Gather::Counts) => done(&services.counts()),
        CallBody::Join { node, addr } => {
            let view = cluster.view();
            if view.members.get(&node) == Some(&addr) {
                return done(&view);
            }
            change_answer(handoff::change(cluster, services, view.with(&node, &addr)).await)
        }
        CallBody::Drain { node } => {
            let view = cluster.view();
            if !view.contains(&node) || view.members.len() < 2 {
                return Answer::Unavailable(format!("{node} cannot be drained"));
            }
            change_answer(handoff::change(cluster, services, view.without(&node)).await)
        }
        phase => handoff::handle(cluster, services, &call.from, phase).await,
    }
}

fn change_answer(result: Result<super::View, String>) -> Answer {
    match result {
        Ok(view) => done(&view),
        Err(why) => Answer::Unavailable(why),
    }
}

/// Serves one request with the local facades (ownership already checked).
async fn serve(s: &Services, request: Request) -> Answer {
    match request {
        Request::Flight(id, cmd) => done(&s.flights.call_local(&id, cmd).await),
        Request::Order(id, cmd) => done(&s.orders.directory().call_local(&id, cmd).await),
        Request::Ticket(id, cmd) => done(&s.tickets.call_local(&id, cmd).await),
        Request::PlaceOrder {
            user,
            segments,
            passengers,
            fingerprint,
            key,
        } => done(
            &s.orders
                .place_local(&user, segments, passengers, fingerprint, key.as_deref())
                .await,
        ),
        Request::PayOrder {
            user,
            order,
            token,
            key,
        } => done(
            &s.orders
                .pay_local(&user, &order, token, key.as_deref())
                .await,
        ),
        Request::GetOrder(id) => done(&s.orders.get_local(&id)),
        Request::OrdersOf(user) => done(&s.orders.list_local(&user)),
        Request::GetTicket(id) => done(&s.orders.ticket_local(&id)),
        Request::TicketsOf(user) => done(&s.orders.tickets_of_local(&user)),
        Request::NotificationsOf(user) => done(
            &notification::list(&s.store, &user)
                .map_err(|e| crate::actors::order::OrderError::Storage(e.to_string())),
        ),
        Request::CreateUser(user) => done(&s.accounts.create_local(user).await),
        Request::UserByEmail(email) => done(&s.accounts.by_email_local(&email)),
        Request::GetUser(id) => done(&s.accounts.get_local(&id)),
        Request::SetRoles(id, roles) => done(&s.accounts.set_roles_local(id, roles).await),
        Request::CreateAirport(airport) => done(&s.catalog.create_airport_local(airport).await),
        Request::ListAirports => done(&s.catalog.list_airports_local().await),
        Request::CreateAircraft(aircraft) => done(&s.catalog.create_aircraft_local(aircraft).await),
        Request::PlanFlight(draft) => done(&s.catalog.plan_flight_local(draft).await),
        Request::AdmitFlight(flight) => done(&s.catalog.admit_flight_local(flight).await),
    }
}
