//! The transport's sessions: when the last session with a peer closes, the peer is most likely
//! gone (its process died, or the link broke). It counts as down at once (and is dialled
//! again), and the replicated groups it led need not wait for their election timers to
//! replace it (see `raft::takeover`).

use super::Cluster;
use ractor::ActorId;
use ractor_cluster::NodeEventSubscription;
use ractor_cluster::node::NodeServerSessionInformation;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::time::Instant;

/// Follows the transport's authenticated sessions (the winners of its duplicate-connection
/// election; a session that never authenticated says nothing about its peer).
pub struct Sessions {
    cluster: Cluster,
    /// Each authenticated session that is open, with its peer's name.
    open: Arc<Mutex<HashMap<ActorId, String>>>,
}

impl Sessions {
    /// Sessions of `cluster`'s transport.
    pub fn new(cluster: Cluster) -> Self {
        Self {
            cluster,
            open: Arc::default(),
        }
    }
}

/// The peer's node name (the transport names it `name@host`).
fn peer_of(session: &NodeServerSessionInformation) -> Option<String> {
    let full = &session.peer_name.as_ref()?.name;
    Some(
        full.rsplit_once('@')
            .map_or(full.as_str(), |(name, _)| name)
            .to_owned(),
    )
}

/// Whether a session with `peer` is open.
fn connected(open: &Mutex<HashMap<ActorId, String>>, peer: &str) -> bool {
    let open = open.lock().unwrap_or_else(PoisonError::into_inner);
    open.values().any(|name| name == peer)
}

impl NodeEventSubscription for Sessions {
    fn node_session_opened(&self, _: NodeServerSessionInformation) {}

    fn node_session_authenticated(&self, session: NodeServerSessionInformation) {
        if let Some(peer) = peer_of(&session) {
            let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
            open.insert(session.actor.get_id(), peer);
        }
    }

    fn node_session_disconnected(&self, session: NodeServerSessionInformation) {
        let closed = {
            let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
            open.remove(&session.actor.get_id())
        };
        let Some(peer) = closed else {
            return;
        };
        if connected(&self.open, &peer) {
            return;
        }
        let since = Instant::now();
        self.cluster.lost(&peer);
        let Some(replication) = self.cluster.replication() else {
            return;
        };
        let (cluster, open, name) = (self.cluster.clone(), self.open.clone(), peer.clone());
        // Gone for good only if, a lease later, it has neither been heard from nor reconnected
        // (a live peer is dialled again at once and heard from within a heartbeat).
        replication.leader_lost(&peer, since, move || {
            !connected(&open, &name) && cluster.last_heard(&name).is_none_or(|at| at <= since)
        });
    }
}
