//! What this node knows of its peers: who was heard from lately (heartbeats), whether it
//! reaches a majority of the members, how to reach a peer's gateway, and the injected link
//! faults of partition tests.

use super::wire::GatewayMessage;
use super::{Cluster, State, gateway_group};
use ractor::ActorRef;
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::time::Instant;

/// What a node knows about a peer.
#[derive(Debug, Clone)]
pub(super) struct Peer {
    pub(super) addr: String,
    pub(super) last_heard: Instant,
    /// Its last session closed since it was last heard from: down until heard again.
    pub(super) lost: bool,
}

impl Cluster {
    /// Whether this node is a member and reaches a majority of the members (what `/readyz`
    /// reports; what a node may serve is decided per partition by its leadership).
    pub fn serving(&self) -> bool {
        let state = self.read();
        if !state.view.contains(&self.inner.node) {
            return false;
        }
        let up = state
            .view
            .members
            .keys()
            .filter(|m| **m == self.inner.node || self.peer_up(&state, m))
            .count();
        up >= state.view.majority()
    }

    /// Records that `node` (at `addr`) was heard from now.
    pub fn heard(&self, node: &str, addr: &str) {
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
            .is_some_and(|p| !p.lost && p.last_heard.elapsed() < self.inner.timing.down_after);
        if !was_up {
            tracing::info!(peer = node, addr, "peer is up");
        }
        state.peers.insert(
            node.to_owned(),
            Peer {
                addr: addr.to_owned(),
                last_heard: Instant::now(),
                lost: false,
            },
        );
    }

    /// Whether `node` is this node or a peer heard from recently.
    pub fn is_up(&self, node: &str) -> bool {
        node == self.inner.node || self.peer_up(&self.read(), node)
    }

    /// `node`'s last session closed: it counts as down (and is dialled again) until it is
    /// heard from again.
    pub fn lost(&self, node: &str) {
        if let Some(peer) = self.write().peers.get_mut(node) {
            peer.lost = true;
        }
    }

    /// When `node` was last heard from, if ever.
    pub fn last_heard(&self, node: &str) -> Option<Instant> {
        self.read().peers.get(node).map(|p| p.last_heard)
    }

    pub(super) fn peer_up(&self, state: &State, node: &str) -> bool {
        !state.blocks(node)
            && state
                .peers
                .get(node)
                .is_some_and(|p| !p.lost && p.last_heard.elapsed() < self.inner.timing.down_after)
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
}
