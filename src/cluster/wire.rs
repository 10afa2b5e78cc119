//! What travels between nodes. The gateway's ractor message carries opaque bytes; the bytes
//! are postcard-encoded envelopes, decoded inside the handler, so a malformed frame from a peer
//! is an error value, never a panic in the transport.

use super::view::View;
pub use crate::actors::request::{Request, WireError, decode, encode};
use crate::domain::search::Listing;
use ractor::RpcReplyPort;
use ractor_cluster::RactorClusterMessage;
use serde::{Deserialize, Serialize};

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
    /// The epoch of the sender's view: the receiver refuses work routed by another epoch.
    pub epoch: u64,
    /// The W3C `traceparent` of the sender's span, when traces are on: the receiver's spans
    /// join the sender's trace.
    pub trace: Option<String>,
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
    /// Answer with this node's share of a cluster-wide read (served whatever the tags).
    Gather(Request),
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
            Self::Prepare(_) => "Prepare",
            Self::Transfer(_) => "Transfer",
            Self::Records { .. } => "Records",
            Self::Commit(_) => "Commit",
            Self::Abort(_) => "Abort",
            Self::Resolve(_) => "Resolve",
            Self::Raft { .. } => "Raft",
        }
    }
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
    /// Not served: the receiver does not own the group under its view (which it sends along).
    NotOwner(View),
    /// Not served right now (moving, no quorum, refused change): retry later.
    Unavailable(String),
}
