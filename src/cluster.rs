//! The cluster layer: placement, forwarding, membership and handoff, built on `ractor_cluster`
//! (which gives authenticated node connections, process groups and remote calls, and nothing
//! more).
//!
//! The cluster is the actors' [`Router`] on a clustered node:
//!
//! ```text
//! HTTP handler ─► facade (Directory, Orders, Accounts, Catalog)
//!                   │ RouterRef::ask(operation)  →  Cluster::route(tag)
//!                   ├─ Here ──────────────► the operation's handler on this node
//!                   ├─ Elsewhere(owner) ──► owner's GatewayActor ─► Request::serve ─► the same handler
//!                   └─ Unavailable(why) ──► 503 + Retry-After
//! ```
//!
//! * Every record belongs to a placement tag (`domain::ids`); the owner of a tag is chosen by
//!   rendezvous hashing over *all* members of the current [`View`], up or down. Only a change of
//!   view (join, drain) moves ownership, and it moves it with the records (`handoff`).
//! * A node serves its own tags only while it reaches a majority of the members; a member that
//!   is unreachable keeps its tags (they answer 503) until it returns.
//! * A forwarded request carries the sender's epoch; the owner refuses work routed by another
//!   epoch, so no node acts on a stale view.
//! * The store is fenced by the view ([`Fencing`]): every record is stamped with the epoch
//!   under which its owner wrote it, and a write is applied only by the tag's owner under the
//!   current view, while it reaches a majority of members *at its epoch*, and never over a
//!   record stamped with a later epoch. A node that missed a change therefore cannot write,
//!   even through a path that skipped routing (a timer, a recovery).
//! * A node without `[cluster]` keeps a cluster of one (its view, its store fence) but routes
//!   with [`Alone`](crate::actors::router::Alone): it owns every tag.

pub mod gateway;
pub mod handoff;
pub mod membership;
pub mod placement;
pub mod view;
pub mod wire;

use crate::actors::CallError;
use crate::actors::router::{Location, Router, Serving};
use crate::persistence::{Fence, Store, StoreError, WriteBatch};
use futures::future::BoxFuture;
use placement::tag_of_key;
use ractor::ActorRef;
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;
use tokio::time::Instant;
pub use view::View;
use wire::{Answer, Call, CallBody, GatewayMessage, Request, decode, encode};

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

/// Where a request for a placement tag goes.
pub enum Route {
    /// This node owns the tag and may serve it.
    Local(InFlight),
    /// Another node owns it and is reachable.
    Remote {
        /// The owner.
        node: String,
        /// Its gateway.
        gateway: ActorRef<GatewayMessage>,
    },
    /// Nobody can serve it right now (why).
    Unavailable(String),
}

/// What a node knows about a peer.
#[derive(Debug, Clone)]
struct Peer {
    addr: String,
    last_heard: Instant,
    /// The epoch of the view in its last heartbeat.
    epoch: u64,
}

/// Mutable membership state.
#[derive(Debug, Default)]
struct State {
    /// The adopted view.
    view: View,
    /// A prepared change: tags whose owner differs under it are frozen until it commits.
    moving: Option<View>,
    /// Whether the prepared change's requests in progress have finished: from then on the
    /// store refuses writes to its moving tags (their records are being handed over).
    sealed: bool,
    /// Counts prepares, so a timer of one prepare never acts on a later one of an equal view.
    move_generation: u64,
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
    /// Tags with a locally served request in progress (a change waits for its tags to drain).
    in_flight: Mutex<HashMap<String, usize>>,
    /// The node's own gateway, once started.
    gateway: RwLock<Option<ActorRef<GatewayMessage>>>,
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
        let view = match store.get::<View>(VIEW_KEY)? {
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
            in_flight: Mutex::new(HashMap::new()),
            gateway: RwLock::new(None),
        });
        // Weak: the store must not keep the cluster (and with it, itself) alive.
        store.set_fence(Fencing(Arc::downgrade(&inner)));
        Ok(Self { inner })
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

    /// The epoch under which this node may write `key` now, or why it may not (the store's
    /// fence): only the owner of the key's tag under the adopted view, while it reaches a
    /// majority at that epoch, and not while the tag is being handed over.
    pub fn admit(&self, key: &str) -> Result<u64, String> {
        let state = self.read();
        let epoch = state.view.epoch;
        // A cluster of one owns every record and never changes its view.
        if !self.inner.clustered {
            return Ok(epoch);
        }
        let Some(tag) = tag_of_key(key) else {
            return Ok(epoch);
        };
        match state.view.owner(&tag) {
            Some(owner) if owner == self.inner.node => {}
            Some(owner) => return Err(format!("node {owner} owns it at epoch {epoch}")),
            None => return Err("this node has not joined a cluster yet".into()),
        }
        if state.sealed
            && let Some(next) = &state.moving
            && next.owner(&tag) != Some(self.inner.node.as_str())
        {
            return Err("it is being handed over to another node".into());
        }
        if !self.quorum(&state) {
            return Err(format!(
                "this node does not reach a majority of the cluster at epoch {epoch}"
            ));
        }
        Ok(epoch)
    }

    /// Whether this node is a member and reaches a majority (what `/readyz` reports).
    pub fn serving(&self) -> bool {
        let state = self.read();
        state.view.contains(&self.inner.node) && self.quorum(&state)
    }

    /// Whether another node owns `tag` under the adopted view.
    pub fn is_remote(&self, tag: &str) -> bool {
        self.inner.clustered
            && self
                .read()
                .view
                .owner(tag)
                .is_some_and(|owner| owner != self.inner.node)
    }

    /// Where a request for `tag` goes.
    pub fn route(&self, tag: &str) -> Route {
        let state = self.read();
        let Some(owner) = state.view.owner(tag) else {
            return Route::Unavailable("this node has not joined a cluster yet".into());
        };
        if let Some(next) = &state.moving
            && next.owner(tag) != Some(owner)
        {
            return Route::Unavailable("moving to another node; retry shortly".into());
        }
        if owner == self.inner.node {
            if !self.quorum(&state) {
                return Route::Unavailable(
                    "this node is cut off from the majority of the cluster".into(),
                );
            }
            return Route::Local(InFlight::start(&self.inner, tag));
        }
        let owner = owner.to_owned();
        drop(state);
        match self.peer_gateway(&owner) {
            Some(gateway) => Route::Remote {
                node: owner,
                gateway,
            },
            None => Route::Unavailable(format!("node {owner} is unreachable")),
        }
    }

    /// Sends `body` to `node`'s gateway and returns the encoded reply (a `NotOwner` answer is a
    /// 503: the retry routes by the newer view, which the next heartbeat brings).
    pub async fn call(
        &self,
        node: &str,
        gateway: &ActorRef<GatewayMessage>,
        body: CallBody,
    ) -> Result<Vec<u8>, CallError> {
        let started = Instant::now();
        let call = Call {
            from: self.inner.node.clone(),
            epoch: self.epoch(),
            body,
        };
        let bytes = encode(&call).map_err(|e| CallError::Unavailable(e.to_string()))?;
        let answer = crate::actors::ask(
            gateway,
            |port| GatewayMessage::Call(bytes, port),
            self.inner.timing.call_timeout,
        )
        .await;
        let outcome = match &answer {
            Ok(_) => "ok",
            Err(CallError::Timeout) => "timeout",
            Err(_) => "unreachable",
        };
        metrics::counter!("contrail_cluster_forwards_total", "result" => outcome).increment(1);
        metrics::histogram!("contrail_cluster_remote_call_seconds")
            .record(started.elapsed().as_secs_f64());
        let answer = answer.map_err(|e| match e {
            CallError::Timeout => CallError::Timeout,
            _ => CallError::Unavailable(format!("node {node} is unreachable")),
        })?;
        match decode::<Answer>(&answer) {
            Ok(Answer::Done(reply)) => Ok(reply),
            // The newer view arrives with the next heartbeat (adopting it here would skip the
            // handoff's settling of the local store).
            Ok(Answer::NotOwner(_)) => Err(CallError::Unavailable(
                "ownership changed; retry shortly".into(),
            )),
            Ok(Answer::Unavailable(why)) => Err(CallError::Unavailable(why)),
            Err(e) => Err(CallError::Unavailable(format!("node {node}: {e}"))),
        }
    }

    /// Sends `body` to every other member and collects their encoded answers. Fails if any
    /// member does not answer: a partial answer would look complete.
    pub async fn gather(&self, body: impl Fn() -> CallBody) -> Result<Vec<Vec<u8>>, CallError> {
        let view = self.view();
        let mut answers = Vec::with_capacity(view.members.len());
        for node in view.members.keys() {
            if *node == self.inner.node {
                continue;
            }
            let gateway = self
                .peer_gateway(node)
                .ok_or_else(|| CallError::Unavailable(format!("node {node} is unreachable")))?;
            answers.push(self.call(node, &gateway, body()).await?);
        }
        Ok(answers)
    }

    /// Adopts `view` if it is newer than the adopted one (and persists it). Only through
    /// `handoff::apply`, which settles the local store to the new view.
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
        if state
            .moving
            .as_ref()
            .is_some_and(|next| next.epoch <= view.epoch)
        {
            state.moving = None;
            state.sealed = false;
        }
        state.view = view;
        metrics::gauge!("contrail_cluster_epoch").set(state.view.epoch as f64);
        true
    }

    fn persist(&self, view: &View) -> Result<(), StoreError> {
        let mut batch = WriteBatch::new();
        batch.put(VIEW_KEY, view)?;
        // Adopting a view is rare; its durability is awaited by the handoff that caused it.
        self.inner.store.record(batch)?;
        Ok(())
    }

    /// Freezes the tags that move under `next` (false if another change is prepared).
    pub(crate) fn begin_move(&self, next: View) -> bool {
        let mut state = self.write();
        match &state.moving {
            Some(prepared) if *prepared != next => false,
            _ => {
                state.moving = Some(next);
                state.move_generation += 1;
                true
            }
        }
    }

    /// Refuses writes to the tags that move under the prepared change `next` (once its
    /// requests in progress have finished; false if `next` is not the prepared change).
    pub(crate) fn seal_move(&self, next: &View) -> bool {
        let mut state = self.write();
        if state.moving.as_ref() == Some(next) {
            state.sealed = true;
            return true;
        }
        false
    }

    /// Gives up the prepared change `next` (false if it was not the prepared one).
    pub(crate) fn end_move(&self, next: &View) -> bool {
        let mut state = self.write();
        if state.moving.as_ref() == Some(next) {
            state.moving = None;
            state.sealed = false;
            return true;
        }
        false
    }

    /// Which prepare is the latest (see [`State::move_generation`]).
    pub(crate) fn move_generation(&self) -> u64 {
        self.read().move_generation
    }

    /// Whether `next` is the prepared change.
    pub(crate) fn is_moving_to(&self, next: &View) -> bool {
        self.read().moving.as_ref() == Some(next)
    }

    /// Whether a request is still in progress on a tag that moves from `current` to `next`.
    pub(crate) fn busy_moving(&self, current: &View, next: &View) -> bool {
        let map = self
            .inner
            .in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.keys().any(|tag| current.moves(next, tag))
    }

    /// Records that `node` (at `addr`, with a view at `epoch`) was heard from now.
    pub fn heard(&self, node: &str, addr: &str, epoch: u64) {
        if node == self.inner.node {
            return;
        }
        let mut state = self.write();
        if state.blocks(node) {
            return;
        }
        let was_up = state
            .peers
            .get(node)
            .is_some_and(|p| p.last_heard.elapsed() < self.inner.timing.down_after);
        if !was_up {
            tracing::info!(peer = node, addr, "peer is up");
        }
        state.peers.insert(
            node.to_owned(),
            Peer {
                addr: addr.to_owned(),
                last_heard: Instant::now(),
                epoch,
            },
        );
    }

    /// Whether `node` is this node or a peer heard from recently.
    pub fn is_up(&self, node: &str) -> bool {
        node == self.inner.node || self.peer_up(&self.read(), node)
    }

    fn peer_up(&self, state: &State, node: &str) -> bool {
        !state.blocks(node)
            && state
                .peers
                .get(node)
                .is_some_and(|p| p.last_heard.elapsed() < self.inner.timing.down_after)
    }

    /// Whether the members this node reaches at its own epoch (itself included) are a
    /// majority of its view. A member heard at another epoch does not count: a node behind
    /// the cluster (one that missed a change) must not serve, and while a change commits, the
    /// majorities of the old and the new view cannot both be formed (they share a member,
    /// which is at one epoch or the other).
    fn quorum(&self, state: &State) -> bool {
        let epoch = state.view.epoch;
        let up = state
            .view
            .members
            .keys()
            .filter(|m| {
                **m == self.inner.node
                    || (self.peer_up(state, m)
                        && state.peers.get(*m).is_some_and(|p| p.epoch == epoch))
            })
            .count();
        up >= state.view.majority()
    }

    /// The gateway of a peer that is up.
    pub fn peer_gateway(&self, node: &str) -> Option<ActorRef<GatewayMessage>> {
        if node == self.inner.node {
            return self
                .inner
                .gateway
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
        }
        if !self.peer_up(&self.read(), node) {
            return None;
        }
        ractor::pg::get_members(&gateway_group(node))
            .into_iter()
            .next()
            .map(ActorRef::from)
    }

    /// Addresses to keep connections to: seeds and members, without peers that are up.
    pub fn addresses_to_connect(&self, seeds: &[String]) -> Vec<String> {
        let state = self.read();
        let connected: BTreeSet<&str> = state
            .peers
            .iter()
            .filter(|(node, _)| self.peer_up(&state, node))
            .map(|(_, p)| p.addr.as_str())
            .collect();
        let mut out: Vec<String> = state
            .view
            .members
            .iter()
            .filter(|(node, _)| **node != self.inner.node)
            .map(|(_, addr)| addr.clone())
            .chain(seeds.iter().cloned())
            .filter(|addr| *addr != self.inner.addr && !connected.contains(addr.as_str()))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Drops (or restores) all traffic with `peers` (fault injection for partition tests).
    pub fn set_blocked(&self, peers: BTreeSet<String>, duration: Duration) {
        let mut state = self.write();
        for peer in &peers {
            state.peers.remove(peer);
        }
        tracing::warn!(
            ?peers,
            "fault injection: traffic with these peers is dropped"
        );
        state.blocked = peers;
        state.blocked_until = Some(Instant::now() + duration);
    }

    /// Peers whose traffic is dropped.
    pub fn blocked(&self) -> BTreeSet<String> {
        let state = self.read();
        state
            .blocked
            .iter()
            .filter(|n| state.blocks(n))
            .cloned()
            .collect()
    }

    /// Whether traffic with `node` is dropped.
    pub fn blocks(&self, node: &str) -> bool {
        self.read().blocks(node)
    }

    /// Members with their status, for the operator's view.
    pub fn members(&self) -> Vec<(String, String, bool)> {
        let state = self.read();
        state
            .view
            .members
            .iter()
            .map(|(node, addr)| {
                let up = *node == self.inner.node || self.peer_up(&state, node);
                (node.clone(), addr.clone(), up)
            })
            .collect()
    }

    /// Peers heard from recently (members or not), for heartbeats and metrics.
    pub fn peers_up(&self) -> Vec<String> {
        let state = self.read();
        state
            .peers
            .keys()
            .filter(|node| self.peer_up(&state, node))
            .cloned()
            .collect()
    }

    pub(crate) fn set_gateway(&self, gateway: ActorRef<GatewayMessage>) {
        *self
            .inner
            .gateway
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(gateway);
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

/// The store's fence: the cluster's [`Cluster::admit`], held weakly (a store outliving its
/// cluster belongs to a node that is shutting down, and writes nothing more).
struct Fencing(Weak<Inner>);

impl Fence for Fencing {
    fn admit(&self, key: &str) -> Result<u64, String> {
        match self.0.upgrade() {
            Some(inner) => Cluster { inner }.admit(key),
            None => Err("the node is shutting down".into()),
        }
    }
}

/// Encodes a served reply.
pub(crate) fn done<T: Serialize>(value: &T) -> Answer {
    match encode(value) {
        Ok(bytes) => Answer::Done(bytes),
        Err(e) => Answer::Unavailable(e.to_string()),
    }
}

/// Marks a locally served request for a tag as in progress until dropped, so a membership
/// change can wait for the requests on the tags it moves. A cluster of one never changes
/// membership, so its requests skip the bookkeeping.
pub struct InFlight(Option<(Arc<Inner>, String)>);

impl InFlight {
    fn start(inner: &Arc<Inner>, tag: &str) -> Self {
        if !inner.clustered {
            return Self(None);
        }
        let mut map = inner
            .in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *map.entry(tag.to_owned()).or_default() += 1;
        Self(Some((inner.clone(), tag.to_owned())))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let Some((inner, tag)) = &self.0 else { return };
        let mut map = inner
            .in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = map.get_mut(tag) {
            *count -= 1;
            if *count == 0 {
                map.remove(tag);
            }
        }
    }
}

/// The cluster as the actors' router: a tag is served by its owner under the adopted view.
impl Router for Cluster {
    fn owns(&self, tag: &str) -> bool {
        !self.inner.clustered || self.read().view.owner(tag) == Some(self.inner.node.as_str())
    }

    fn route(&self, tag: &str) -> Location {
        match Cluster::route(self, tag) {
            Route::Local(in_flight) => Location::Here(Serving::tracked(in_flight)),
            Route::Remote { .. } => Location::Elsewhere,
            Route::Unavailable(why) => Location::Unavailable(why),
        }
    }

    fn forward(
        &self,
        tag: &str,
        request: Request,
    ) -> BoxFuture<'static, Result<Vec<u8>, CallError>> {
        let cluster = self.clone();
        let tag = tag.to_owned();
        Box::pin(async move {
            match Cluster::route(&cluster, &tag) {
                Route::Remote { node, gateway } => {
                    let body = CallBody::Serve { tag, request };
                    cluster.call(&node, &gateway, body).await
                }
                // The owner changed since the request was routed; the retry routes afresh.
                Route::Local(_) => Err(CallError::Unavailable(
                    "ownership changed; retry shortly".into(),
                )),
                Route::Unavailable(why) => Err(CallError::Unavailable(why)),
            }
        })
    }

    fn gather(&self, request: Request) -> BoxFuture<'static, Result<Vec<Vec<u8>>, CallError>> {
        let cluster = self.clone();
        Box::pin(async move { cluster.gather(|| CallBody::Gather(request.clone())).await })
    }
}

#[cfg(test)]
#[path = "cluster/fence_tests.rs"]
mod fence_tests;
