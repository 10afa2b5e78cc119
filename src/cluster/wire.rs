//! What travels between nodes. The gateway's ractor message carries opaque bytes; the bytes
//! are postcard-encoded envelopes, decoded inside the handler, so a malformed frame from a peer
//! is an error value, never a panic in the transport.

use super::view::View;
pub use crate::actors::request::{Request, WireError, decode, encode};
use crate::domain::search::Listing;
use ractor::RpcReplyPort;
use ractor_cluster::RactorClusterMessage;
use serde::{Deserialize, Serialize};

/// The version of what nodes send each other (requests and their answers, consensus messages,
/// heartbeats), raised with every change to one of those types: postcard carries no field
/// names, so two builds that disagree on a shape misread each other (a field read as another,
/// one left out). It is part of the cookie nodes authenticate with ([`session_cookie`]), so
/// nodes of different versions never connect.
///
/// 2: an order's `Pay` and `Cancel` name who asks, `PayOrder` carries a `Viewer`, and
/// `GetOrder` is gone.
pub const WIRE_VERSION: u32 = 2;

/// The cookie the transport authenticates peers with: the configured one and [`WIRE_VERSION`].
pub fn session_cookie(cookie: &str) -> String {
    format!("{cookie}/wire-{WIRE_VERSION}")
}

/// The shard gateway's message: the only remote-capable actor of a node.
#[derive(RactorClusterMessage)]
pub enum GatewayMessage {
    /// A request that expects an answer ([`Call`] in, [`Answer`] out).
    #[rpc]
    Call(Vec<u8>, RpcReplyPort<Vec<u8>>),
    /// A one-way message ([`Cast`]).
    Cast(Vec<u8>),
    /// Fault injection for supervision tests: panics inside the gateway (sent by this node's
    /// root supervisor; peers share the cluster cookie and are trusted as much).
    InjectPanic,
}

impl crate::actors::root::InjectPanic for GatewayMessage {
    fn inject_panic() -> Self {
        Self::InjectPanic
    }
}

/// A request from one node to another.
#[derive(Debug, Serialize, Deserialize)]
pub struct Call {
    /// The sender's node id.
    pub from: String,
    /// The W3C `traceparent` of the sender's span, when traces are on: the receiver's spans
    /// join the sender's trace.
    pub trace: Option<String>,
    /// What is asked.
    pub body: CallBody,
}

/// What a node asks another.
#[derive(Debug, Serialize, Deserialize)]
pub enum CallBody {
    /// Serve a request for the placement group `tag`, whose partition the sender believes this
    /// node leads.
    Serve {
        /// The placement tag the request belongs to.
        tag: String,
        /// The request.
        request: Request,
    },
    /// Answer with this node's share of a cluster-wide read (served whatever the tags).
    Gather(Request),
    /// A node asks to become a member (sent to any member, which forwards it to the member
    /// list's leader).
    Join {
        /// The joiner's node id.
        node: String,
        /// The joiner's node-to-node address.
        addr: String,
    },
    /// Remove a member from the member list (its replicas then move to the others).
    Drain {
        /// The member to drain.
        node: String,
    },
    /// A consensus message for one partition's replica on the receiving node.
    Raft {
        /// The partition.
        partition: u16,
        /// The encoded message (`cluster::raft::Message`).
        message: Vec<u8>,
    },
}

impl CallBody {
    /// The call's kind (for spans and logs).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Serve { request, .. } => request.kind(),
            Self::Gather(_) => "Gather",
            Self::Join { .. } => "Join",
            Self::Drain { .. } => "Drain",
            Self::Raft { .. } => "Raft",
        }
    }
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
        /// The replicated groups it leads, with their terms (how members that hold no replica
        /// of a group find its leader).
        leads: Vec<(u16, u64)>,
    },
    /// Search read-model updates for flights the sender owns.
    Index(Vec<Listing>),
}

/// The receiver's answer to a [`Call`].
#[derive(Debug, Serialize, Deserialize)]
pub enum Answer {
    /// Served: the encoded reply.
    Done(Vec<u8>),
    /// Not served: the receiver does not lead the tag's partition (any more).
    NotOwner,
    /// Not served right now (no leader, no majority, refused change): retry later.
    Unavailable(String),
}
