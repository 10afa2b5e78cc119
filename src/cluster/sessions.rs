//! The transport's sessions: a peer whose session closes is gone, most likely (its process
//! died, or the link broke), and the replicated groups it led need not wait for their election
//! timers to replace it (see `raft::takeover`).

use super::Cluster;
use ractor_cluster::NodeEventSubscription;
use ractor_cluster::node::NodeServerSessionInformation;
use tokio::time::Instant;

/// Subscribes to the transport's session events.
pub struct Sessions(pub Cluster);

impl NodeEventSubscription for Sessions {
    fn node_session_opened(&self, _: NodeServerSessionInformation) {}

    fn node_session_authenticated(&self, _: NodeServerSessionInformation) {}

    fn node_session_disconnected(&self, session: NodeServerSessionInformation) {
        // The transport names a peer `name@host`.
        let Some(full) = session.peer_name.map(|p| p.name) else {
            return;
        };
        let peer = full
            .rsplit_once('@')
            .map_or(full.as_str(), |(name, _)| name);
        let Some(replication) = self.0.replication() else {
            return;
        };
        let since = Instant::now();
        let cluster = self.0.clone();
        let name = peer.to_owned();
        replication.leader_lost(peer, since, move || {
            cluster.last_heard(&name).is_none_or(|at| at <= since)
        });
    }
}
