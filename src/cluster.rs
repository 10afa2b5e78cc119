//! The cluster layer: membership, replicated partitions and forwarding, built on
//! `ractor_cluster` (which gives authenticated node connections, process groups and remote
//! calls, and nothing more) and openraft (which decides everything that needs a majority).
//!
//! The cluster is the actors' [`Router`](crate::actors::router::Router) on a clustered node:
//!
//! ```text
//! HTTP handler ─► facade (Directory, Orders, Accounts, Catalog)
//!                   │ RouterRef::ask(operation)  →  Cluster::route(tag)
//!                   ├─ Here ──────────────► the operation's handler on this node
//!                   ├─ Elsewhere(leader) ─► leader's GatewayActor ─► Request::serve ─► the same handler
//!                   └─ Unavailable(why) ──► 503 + Retry-After
//! ```
//!
//! * Every record belongs to a placement tag (`domain::ids`); a tag maps to one of a fixed
//!   number of partitions, each an openraft group of up to `cluster.replicas` replicas
//!   ([`raft`]). Its leader serves the tag's entities and is the only node whose writes to them
//!   commit: terms and log positions fence a stale leader, whatever it believes.
//! * The member list is the state of one more openraft group ([`roster`]): join, drain and
//!   removal are guarded writes to it, and each partition's leader then moves the partition's
//!   replicas to match it (learners catch up first, then the voters change: [`replicas`]).
//! * What is hand-written is only what the engine does not do: heartbeats for failure
//!   detection and connections ([`membership`]), gossip of the decided member list and of who
//!   leads which group ([`view`]), and forwarding to a leader ([`routing`]).
//! * A node without `[cluster]` keeps a cluster of one (no replication, no peers) and routes
//!   with [`Alone`](crate::actors::router::Alone): it owns every tag.

mod fencing;
pub mod gateway;
mod leadership;
pub mod membership;
mod peers;
pub mod placement;
mod proposer;
pub mod raft;
mod replicas;
pub mod roster;
mod routing;
mod sessions;
pub use sessions::Sessions;
mod tls;
pub mod view;
pub mod wire;

use crate::persistence::{Store, StoreError, WriteBatch};
use fencing::Fencing;
use peers::Peer;
use ractor::ActorRef;
pub use routing::Route;
pub(crate) use routing::done;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;
pub use tls::{Tls, Transport};
use tokio::time::Instant;
pub use view::View;
use wire::GatewayMessage;

/// Where the node keeps its view of the cluster.
const VIEW_KEY: &str = "cluster/view";
/// The node id of a node without `[cluster]` (a cluster of one).
pub const SINGLE_NODE: &str = "local";
/// The process group every gateway joins.
pub const GATEWAYS: &str = "contrail/gateways";

/// The process group of one node's gateway.
pub fn gateway_group(node: &str) -> String {
    format!("contrail/gateway/{node}")
}

/// Timing of the membership protocol.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Interval between heartbeats to every peer.
    pub heartbeat: Duration,
    /// Silence after which a peer counts as down.
    pub down_after: Duration,
    /// Deadline of one node-to-node call.
    pub call_timeout: Duration,
}

/// Mutable membership state.
#[derive(Debug, Default)]
struct State {
    /// The adopted view (the member list as decided by its group, or gossiped).
    view: View,
    /// Peers heard from (by node id).
    peers: HashMap<String, Peer>,
    /// Peers whose traffic is dropped (fault injection for partition tests).
    blocked: BTreeSet<String>,
    /// When the injected fault heals by itself.
    blocked_until: Option<Instant>,
}

impl State {
    fn blocks(&self, node: &str) -> bool {
        self.blocked.contains(node) && self.blocked_until.is_some_and(|t| Instant::now() < t)
    }
}

/// A handle on the node's cluster membership; cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    /// Whether this node talks to others (false: a cluster of one, without a node server).
    clustered: bool,
    node: String,
    addr: String,
    timing: Timing,
    store: Store,
    state: RwLock<State>,
    /// The node's own gateway, once started.
    gateway: RwLock<Option<ActorRef<GatewayMessage>>>,
    /// The node's replicas of the partitions, when `cluster.replication` is on.
    replication: std::sync::OnceLock<raft::Replication>,
}

impl Cluster {
    /// Membership for node `node` reachable at `addr`, with the view persisted in `store` (a
    /// node without one founds a cluster of one when `founding`, and otherwise waits to join).
    pub fn open(
        node: &str,
        addr: &str,
        store: Store,
        timing: Timing,
        founding: bool,
        clustered: bool,
    ) -> Result<Self, StoreError> {
        // A node that ran alone founds a cluster on its data as if it were new.
        let stored = store
            .get::<View>(VIEW_KEY)?
            .filter(|view| !(clustered && ran_alone(view)));
        let view = match stored {
            Some(view) => view,
            None if founding => {
                let view = View::founding(node, addr);
                let mut batch = WriteBatch::new();
                batch.put(VIEW_KEY, &view)?;
                // The first flush of a new store; the node waits for it on start-up anyway.
                store.record(batch)?;
                view
            }
            None => View::default(),
        };
        let inner = Arc::new(Inner {
            clustered,
            node: node.to_owned(),
            addr: addr.to_owned(),
            timing,
            store: store.clone(),
            state: RwLock::new(State {
                view,
                ..State::default()
            }),
            gateway: RwLock::new(None),
            replication: std::sync::OnceLock::new(),
        });
        // Weak: the store must not keep the cluster (and with it, itself) alive.
        store.set_fence(Fencing(Arc::downgrade(&inner)));
        Ok(Self { inner })
    }

    /// Whether `store` holds the data of a node that ran alone (without `[cluster]`).
    pub fn ran_alone_on(store: &Store) -> Result<bool, StoreError> {
        Ok(store
            .get::<View>(VIEW_KEY)?
            .is_some_and(|view| ran_alone(&view)))
    }

    /// A cluster of one on `store`, as for a node without `[cluster]`.
    pub fn alone(store: Store, call_timeout: Duration) -> Result<Self, StoreError> {
        let timing = Timing {
            heartbeat: Duration::from_secs(1),
            down_after: Duration::from_secs(2),
            call_timeout,
        };
        Self::open(SINGLE_NODE, "", store, timing, true, false)
    }

    /// Whether this node talks to other nodes.
    pub fn clustered(&self) -> bool {
        self.inner.clustered
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.inner.node
    }

    /// This node's node-to-node address.
    pub fn addr(&self) -> &str {
        &self.inner.addr
    }

    /// Membership timing.
    pub fn timing(&self) -> Timing {
        self.inner.timing
    }

    /// The epoch of the adopted view.
    pub fn epoch(&self) -> u64 {
        self.read().view.epoch
    }

    /// The adopted view.
    pub fn view(&self) -> View {
        self.read().view.clone()
    }

    /// Adopts `view` if it is newer than the adopted one (and persists it). Only through
    /// `roster::adopt`, which also announces it.
    pub(crate) fn adopt(&self, view: View) -> bool {
        {
            let state = self.read();
            if view.epoch <= state.view.epoch {
                return false;
            }
        }
        if let Err(e) = self.persist(&view) {
            tracing::error!(error = %e, "the new cluster view could not be stored; not adopted");
            return false;
        }
        let mut state = self.write();
        if view.epoch <= state.view.epoch {
            return false;
        }
        tracing::info!(epoch = view.epoch, members = ?view.members.keys().collect::<Vec<_>>(), "adopted cluster view");
        state.view = view;
        metrics::gauge!("contrail_cluster_epoch").set(state.view.epoch as f64);
        true
    }

    fn persist(&self, view: &View) -> Result<(), StoreError> {
        let mut batch = WriteBatch::new();
        batch.put(VIEW_KEY, view)?;
        // Adopting a view is rare, and the member list's group has it durably already.
        self.inner.store.record(batch)?;
        Ok(())
    }

    pub(crate) fn set_gateway(&self, gateway: ActorRef<GatewayMessage>) {
        *self
            .inner
            .gateway
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(gateway);
    }

    /// Whether the node's records are replicated by consensus: then a partition's leader
    /// serves its entities, and the hand-written view decides nothing about records.
    pub fn replicated(&self) -> bool {
        self.inner.replication.get().is_some()
    }

    /// The node's replicas of the partitions, if it runs them.
    pub fn replication(&self) -> Option<&raft::Replication> {
        self.inner.replication.get()
    }

    /// Starts this node's replicas of `partitions` partitions (up to `replicas` each), talking
    /// through the cluster's gateways.
    pub async fn start_replication(
        &self,
        (partitions, replicas): (u16, usize),
        timing: raft::Timing,
    ) -> Result<(), raft::ReplicationError> {
        let me = raft::Member {
            name: self.inner.node.clone(),
            addr: self.inner.addr.clone(),
        };
        let transport = Arc::new(replicas::Gateways(Arc::downgrade(&self.inner)));
        let replication = raft::Replication::start(
            &self.inner.store,
            me,
            (partitions, replicas),
            transport,
            timing,
        )
        .await?;
        let weak = Arc::downgrade(&self.inner);
        let proposer = proposer::Proposer::start(&replication, move |partition| {
            if let Some(inner) = weak.upgrade() {
                leadership::stop_actors(&Cluster { inner }, partition);
            }
        });
        if self.inner.replication.set(replication).is_err() {
            return Err(raft::ReplicationError::Failed(
                "replication was started twice".into(),
            ));
        }
        // A refused write fails the flushes after it for as long as a saga step can wait.
        let window = 2 * timing.propose_timeout + self.inner.timing.call_timeout;
        self.inner.store.set_replication(proposer, window);
        Ok(())
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.inner
            .state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.inner
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Whether `view` is the one a node without `[cluster]` keeps (itself alone, with no address).
fn ran_alone(view: &View) -> bool {
    view.members.len() == 1
        && view
            .members
            .get(SINGLE_NODE)
            .is_some_and(|addr| addr.is_empty())
}
