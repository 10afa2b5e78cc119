//! CatalogActor: the single writer of airports, aircraft types and new flights.
//!
//! Uniqueness (airport codes) holds because one mailbox serializes every catalog write. A new
//! flight is acknowledged once its record is durable and its FlightActor is running.

use super::flight::FlightCommand;
use super::flight::FlightDirectory;
use super::root::Slot;
use super::router::{RouterRef, operation};
use super::search_index::SharedIndex;
use super::stateless::Stateless;
use super::{CallError, answer};
use crate::domain::ValidationError;
use crate::domain::aircraft::Aircraft;
use crate::domain::airport::{Airport, AirportCode};
use crate::domain::flight::{Flight, FlightDraft};
use crate::domain::ids::{CATALOG_TAG, FlightId};
use crate::domain::search::FlightSummary;
use crate::domain::seat_map::SeatMap;
use crate::persistence::{Durable, Store, StoreError, WriteBatch, keys};
use chrono::Utc;
use ractor::RpcReplyPort;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Why a catalog change was refused.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, thiserror::Error)]
pub enum CatalogError {
    /// The request broke a rule (names the field).
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// An airport with this code exists.
    #[error("airport {0} already exists")]
    AirportExists(AirportCode),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StoreError),
    /// The catalog's node (or the new flight's) could not be reached; retrying is safe.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl From<CallError> for CatalogError {
    fn from(e: CallError) -> Self {
        CatalogError::Unavailable(e.to_string())
    }
}

type Reply<T> = RpcReplyPort<Result<T, CatalogError>>;

/// Messages the catalog handles.
pub enum CatalogMessage {
    /// Add an airport.
    CreateAirport(Airport, Reply<Airport>),
    /// Every airport, by code.
    ListAirports(Reply<Vec<Airport>>),
    /// Every aircraft type.
    ListAircraft(Reply<Vec<Aircraft>>),
    /// Add an aircraft type.
    CreateAircraft(Aircraft, Reply<Aircraft>),
    /// Check a draft against the catalog and build the flight (nothing is written).
    PlanFlight(FlightDraft, Reply<Flight>),
    /// Store a planned flight (on the node that owns it) and start its actor.
    AdmitFlight(Flight, Reply<FlightSummary>),
    /// Fault injection for supervision tests: panics inside the actor. Not reachable over HTTP.
    InjectPanic,
}

// Local only: with ractor's `cluster` feature every message type opts in explicitly.
impl ractor::Message for CatalogMessage {}

/// The actor.
#[derive(Clone)]
pub struct CatalogActor {
    /// The node's store.
    pub store: Store,
    /// To start new flights' actors.
    pub directory: FlightDirectory,
    /// The search read model, so a new flight is searchable once created.
    pub index: SharedIndex,
}

impl CatalogActor {
    /// Writes the airport unless its code is taken (checked and written atomically).
    async fn create_airport(&self, airport: Airport) -> Result<(Durable, Airport), CatalogError> {
        let key = keys::airport(&airport.code);
        match self
            .store
            .commit_if_absent(&key, &airport, WriteBatch::new())
            .await?
        {
            Ok(durable) => Ok((durable, airport)),
            Err(_) => Err(CatalogError::AirportExists(airport.code)),
        }
    }

    fn create_aircraft(&self, aircraft: Aircraft) -> Result<(Durable, Aircraft), CatalogError> {
        let mut batch = WriteBatch::new();
        batch.put(&keys::aircraft(&aircraft.id), &aircraft)?;
        Ok((self.store.commit(batch)?, aircraft))
    }

    fn list_airports(&self) -> Result<Vec<Airport>, CatalogError> {
        Ok(self
            .store
            .scan::<Airport>(keys::AIRPORTS)
            .map(|r| r.map(|(_, a)| a))
            .collect::<Result<Vec<_>, _>>()?)
    }

    fn list_aircraft(&self) -> Result<Vec<Aircraft>, CatalogError> {
        Ok(self
            .store
            .scan::<Aircraft>(keys::AIRCRAFT)
            .map(|r| r.map(|(_, a)| a))
            .collect::<Result<Vec<_>, _>>()?)
    }

    /// Validates the draft against the catalog and builds the flight.
    fn plan_flight(&self, draft: FlightDraft) -> Result<Flight, CatalogError> {
        let aircraft: Aircraft = self
            .store
            .get(&keys::aircraft(&draft.aircraft_id))?
            .ok_or_else(|| ValidationError::new("aircraft_id", "no such aircraft"))?;
        for (field, code) in [
            ("origin", &draft.origin),
            ("destination", &draft.destination),
        ] {
            let code =
                AirportCode::parse(code).map_err(|e| ValidationError::new(field, e.reason))?;
            if !self.store.contains(&keys::airport(&code))? {
                return Err(ValidationError::new(
                    field,
                    format!("no airport {code} in the catalog"),
                )
                .into());
            }
        }
        Ok(Flight::new(
            FlightId::generate(),
            draft,
            aircraft.layout,
            Utc::now(),
        )?)
    }

    /// Writes a planned flight's record.
    fn admit_flight(&self, flight: Flight) -> Result<(Durable, Flight), CatalogError> {
        let mut batch = WriteBatch::new();
        batch.put(&keys::flight(&flight.id), &flight)?;
        Ok((self.store.commit(batch)?, flight))
    }

    /// Once the flight is durable: adds it to search, answers, and starts its actor. The
    /// answer does not wait for the actor: the flight is on disk, so should the start fail, the
    /// actor is activated by the flight's first request (a client retrying a slow create would
    /// otherwise schedule the flight twice).
    fn start_flight(&self, durable: Durable, flight: Flight, reply: Reply<FlightSummary>) {
        let directory = self.directory.clone();
        let index = self.index.clone();
        tokio::spawn(async move {
            if let Err(e) = durable.await {
                let _ = reply.send(Err(CatalogError::Storage(e)));
                return;
            }
            let summary = FlightSummary {
                availability: SeatMap::new(&flight.layout).availability(),
                flight,
            };
            let id = summary.flight.id.clone();
            tracing::info!(flight = %id, number = summary.flight.flight_number.as_str(), "flight created");
            // Searchable as soon as the client has its 201.
            index.upsert(&summary);
            let _ = reply.send(Ok(summary));
            if let Err(e) = directory.call(&id, FlightCommand::Get).await {
                tracing::warn!(flight = %id, error = %e, "new flight's actor not started; it starts on demand");
            }
        });
    }
}

impl Stateless for CatalogActor {
    type Msg = CatalogMessage;

    async fn handle(&self, message: CatalogMessage) {
        // Storage failures are answered, not crashed on: the catalog holds no state of its own.
        match message {
            CatalogMessage::InjectPanic => panic!("injected fault in the catalog actor"),
            CatalogMessage::CreateAirport(airport, reply) => {
                answer(self.create_airport(airport).await, reply)
            }
            CatalogMessage::ListAirports(reply) => {
                let _ = reply.send(self.list_airports());
            }
            CatalogMessage::ListAircraft(reply) => {
                let _ = reply.send(self.list_aircraft());
            }
            CatalogMessage::CreateAircraft(aircraft, reply) => {
                answer(self.create_aircraft(aircraft), reply)
            }
            CatalogMessage::PlanFlight(draft, reply) => {
                let _ = reply.send(self.plan_flight(draft));
            }
            CatalogMessage::AdmitFlight(flight, reply) => match self.admit_flight(flight) {
                Ok((durable, flight)) => self.start_flight(durable, flight, reply),
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
        }
    }
}

/// What the HTTP layer uses for the catalog: airports and aircraft live on the node that owns
/// the catalog tag; a new flight is planned there and stored on the node that owns the flight.
#[derive(Clone)]
pub struct Catalog {
    actor: Slot<CatalogMessage>,
    router: RouterRef,
    timeout: Duration,
}

impl Catalog {
    /// A handle over the running actor.
    pub fn new(actor: Slot<CatalogMessage>, router: RouterRef, timeout: Duration) -> Self {
        Self {
            actor,
            router,
            timeout,
        }
    }

    async fn ask<T: Send + 'static>(
        &self,
        build: impl FnOnce(Reply<T>) -> CatalogMessage,
    ) -> Result<T, CatalogError> {
        self.actor.ask(build, self.timeout).await?
    }

    /// Adds an airport.
    pub async fn create_airport(&self, airport: Airport) -> Result<Airport, CatalogError> {
        self.router.call(CreateAirport(airport), self).await
    }

    /// Every airport.
    pub async fn list_airports(&self) -> Result<Vec<Airport>, CatalogError> {
        self.router.call(ListAirports, self).await
    }

    /// Every aircraft type.
    pub async fn list_aircraft(&self) -> Result<Vec<Aircraft>, CatalogError> {
        self.router.call(ListAircraft, self).await
    }

    /// Adds an aircraft type.
    pub async fn create_aircraft(&self, aircraft: Aircraft) -> Result<Aircraft, CatalogError> {
        self.router.call(CreateAircraft(aircraft), self).await
    }

    /// Schedules a flight: planned against the catalog, then stored and started by its owner.
    /// Planning writes nothing, so a failure between the steps leaves nothing behind.
    pub async fn create_flight(&self, draft: FlightDraft) -> Result<FlightSummary, CatalogError> {
        let flight = self.router.call(PlanFlight(draft), self).await?;
        self.router.call(AdmitFlight(flight), self).await
    }
}

/// Add an airport (on the catalog's node).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateAirport(pub Airport);
operation!(CreateAirport => Result<Airport, CatalogError>, by catalog: Catalog,
    tag |_r| CATALOG_TAG, |r| catalog.ask(|port| CatalogMessage::CreateAirport(r.0, port)).await);

/// Every airport (from the catalog's node).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListAirports;
operation!(ListAirports => Result<Vec<Airport>, CatalogError>, by catalog: Catalog,
    tag |_r| CATALOG_TAG, |_r| catalog.ask(CatalogMessage::ListAirports).await);

/// Every aircraft type (from the catalog's node).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListAircraft;
operation!(ListAircraft => Result<Vec<Aircraft>, CatalogError>, by catalog: Catalog,
    tag |_r| CATALOG_TAG, |_r| catalog.ask(CatalogMessage::ListAircraft).await);

/// Add an aircraft type (on the catalog's node).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateAircraft(pub Aircraft);
operation!(CreateAircraft => Result<Aircraft, CatalogError>, by catalog: Catalog,
    tag |_r| CATALOG_TAG, |r| catalog.ask(|port| CatalogMessage::CreateAircraft(r.0, port)).await);

/// Check a draft against the catalog and build the flight (writes nothing).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanFlight(pub FlightDraft);
operation!(PlanFlight => Result<Flight, CatalogError>, by catalog: Catalog,
    tag |_r| CATALOG_TAG, |r| catalog.ask(|port| CatalogMessage::PlanFlight(r.0, port)).await);

/// Store a planned flight and start its actor (on the flight's node).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdmitFlight(pub Flight);
operation!(AdmitFlight => Result<FlightSummary, CatalogError>, by catalog: Catalog,
    tag |r| r.0.id.tag(), |r| catalog.ask(|port| CatalogMessage::AdmitFlight(r.0, port)).await);

impl super::root::InjectPanic for CatalogMessage {
    fn inject_panic() -> Self {
        Self::InjectPanic
    }
}
