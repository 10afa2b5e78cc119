//! What travels between nodes. The gateway's ractor message carries opaque bytes; the bytes
//! are postcard-encoded envelopes, decoded inside the handler, so a malformed frame from a peer
//! is an error value, never a panic in the transport.

use super::view::View;
use crate::actors::flight::FlightCommand;
use crate::actors::order::OrderCommand;
use crate::actors::ticket::TicketCommand;
use crate::domain::aircraft::Aircraft;
use crate::domain::airport::Airport;
use crate::domain::flight::{Flight, FlightDraft};
use crate::domain::ids::{FlightId, OrderId, TicketId, UserId};
use crate::domain::order::Passenger;
use crate::domain::search::Listing;
use crate::domain::seat_map::SeatRequest;
use crate::domain::user::{Email, Role, User};
use ractor::RpcReplyPort;
use ractor_cluster::RactorClusterMessage;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The shard gateway's message: the only remote-capable actor of a node.
#[derive(RactorClusterMessage)]
pub enum GatewayMessage {
    /// A request that expects an answer ([`Call`] in, [`Answer`] out).
    #[rpc]
    Call(Vec<u8>, RpcReplyPort<Vec<u8>>),
    /// A one-way message ([`Cast`]).
    Cast(Vec<u8>),
}

/// A request from one node to another.
#[derive(Debug, Serialize, Deserialize)]
pub struct Call {
    /// The sender's node id.
    pub from: String,
    /// The epoch of the sender's view: the receiver refuses work routed by another epoch.
    pub epoch: u64,
    /// What is asked.
    pub body: CallBody,
}

/// What a node asks another.
#[derive(Debug, Serialize, Deserialize)]
pub enum CallBody {
    /// Serve a request for the placement group `tag`, which the sender believes this node owns.
    Serve {
        /// The placement tag the request belongs to.
        tag: String,
        /// The request.
        request: Request,
    },
    /// Answer with this node's share of a cluster-wide read.
    Gather(Gather),
    /// A node asks to become a member (sent to any member, which coordinates the change).
    Join {
        /// The joiner's node id.
        node: String,
        /// The joiner's node-to-node address.
        addr: String,
    },
    /// Remove a member after moving its entities to the others.
    Drain {
        /// The member to drain.
        node: String,
    },
    /// Phase 1 of a membership change: stop serving the entities that move under `next`.
    Prepare(View),
    /// Phase 2: send the records of moving entities to their new owners.
    Transfer(View),
    /// Records handed over for `next` (key, encoded value).
    Records {
        /// The view they are handed over for.
        next: View,
        /// Raw records.
        records: Vec<(String, Vec<u8>)>,
    },
    /// Phase 3: adopt `next`.
    Commit(View),
    /// Give up a prepared change.
    Abort(View),
    /// Asked of a change's coordinator by a node whose prepare for `next` has waited long: what
    /// became of it (answered with a [`Resolution`]).
    Resolve(View),
}

/// What became of a prepared change, as its coordinator knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Resolution {
    /// The coordinator is still running a change: keep waiting.
    InProgress,
    /// The coordinator has adopted this view (it commits itself first): adopt it.
    Committed(View),
    /// The coordinator runs no change and has not adopted it, so nobody has: give it up.
    Abandoned,
}

/// A read that every member answers for its own share.
#[derive(Debug, Serialize, Deserialize)]
pub enum Gather {
    /// Newest orders first (→ `Vec<Order>`).
    Orders {
        /// At most this many.
        limit: usize,
    },
    /// How many entities of each kind this node owns (→ `EntityCounts`).
    Counts,
}

/// A request served by the owner of its placement group. The comment on each variant names
/// the type the owner answers with.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    /// → `Result<Result<FlightReply, FlightError>, CallError>`
    Flight(FlightId, FlightCommand),
    /// → `Result<Result<Order, OrderError>, CallError>`
    Order(OrderId, OrderCommand),
    /// → `Result<Result<TicketRecord, String>, CallError>`
    Ticket(TicketId, TicketCommand),
    /// → `Result<Placed, OrderError>`
    PlaceOrder {
        /// The customer.
        user: UserId,
        /// Flights and seats.
        segments: Vec<(FlightId, SeatRequest)>,
        /// Travellers.
        passengers: Vec<Passenger>,
        /// The request's fingerprint (for Idempotency-Key reuse checks).
        fingerprint: String,
        /// The Idempotency-Key.
        key: Option<String>,
    },
    /// → `Result<Order, OrderError>`
    PayOrder {
        /// The customer.
        user: UserId,
        /// The order.
        order: OrderId,
        /// The card token.
        token: String,
        /// The Idempotency-Key.
        key: Option<String>,
    },
    /// → `Result<Option<Order>, OrderError>`
    GetOrder(OrderId),
    /// → `Result<Vec<Order>, OrderError>`
    OrdersOf(UserId),
    /// → `Result<Option<TicketRecord>, OrderError>`
    GetTicket(TicketId),
    /// → `Result<Vec<TicketRecord>, OrderError>`
    TicketsOf(UserId),
    /// → `Result<Vec<Notification>, OrderError>`
    NotificationsOf(UserId),
    /// → `Result<User, AccountError>`
    CreateUser(User),
    /// → `Result<Option<User>, AccountError>`
    UserByEmail(Email),
    /// → `Result<Option<User>, AccountError>`
    GetUser(UserId),
    /// → `Result<User, AccountError>`
    SetRoles(UserId, BTreeSet<Role>),
    /// → `Result<Airport, CatalogError>`
    CreateAirport(Airport),
    /// → `Result<Vec<Airport>, CatalogError>`
    ListAirports,
    /// → `Result<Aircraft, CatalogError>`
    CreateAircraft(Aircraft),
    /// Checks a draft against the catalog and builds the flight (→ `Result<Flight, CatalogError>`).
    PlanFlight(FlightDraft),
    /// Stores a planned flight on its owner and starts it (→ `Result<FlightSummary, CatalogError>`).
    AdmitFlight(Flight),
}

/// A one-way message between nodes.
#[derive(Debug, Serialize, Deserialize)]
pub enum Cast {
    /// "I am alive", with the sender's view (a newer view is adopted by the receiver).
    Heartbeat {
        /// The sender's node id.
        from: String,
        /// Its node-to-node address.
        addr: String,
        /// Its view.
        view: View,
    },
    /// Search read-model updates for flights the sender owns.
    Index(Vec<Listing>),
}

/// The receiver's answer to a [`Call`].
#[derive(Debug, Serialize, Deserialize)]
pub enum Answer {
    /// Served: the encoded reply.
    Done(Vec<u8>),
    /// Not served: the receiver does not own the group under its view (which it sends along).
    NotOwner(View),
    /// Not served right now (moving, no quorum, refused change): retry later.
    Unavailable(String),
}

/// Why a remote call produced no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The bytes did not decode.
    #[error("undecodable message: {0}")]
    Decode(String),
    /// A value did not encode.
    #[error("unencodable message: {0}")]
    Encode(String),
}

/// Encodes a value for the wire.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, WireError> {
    postcard::to_stdvec(value).map_err(|e| WireError::Encode(e.to_string()))
}

/// Decodes a value from the wire.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    postcard::from_bytes(bytes).map_err(|e| WireError::Decode(e.to_string()))
}
