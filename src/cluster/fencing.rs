//! The store's fence: a write is applied only by the owner of its key's tag under the adopted
//! view, while it reaches a majority at that epoch, and not while the tag is handed over. A
//! node that missed a change therefore cannot write, even through a path that skipped
//! routing (a timer, a recovery).

use super::placement::tag_of_key;
use super::{Cluster, Inner};
use crate::persistence::Fence;
use std::sync::Weak;

impl Cluster {
    /// The epoch under which this node may write `key` now, or why it may not (the store's
    /// fence): only the owner of the key's tag under the adopted view, while it reaches a
    /// majority at that epoch, and not while the tag is being handed over.
    pub fn admit(&self, key: &str) -> Result<u64, String> {
        if let Some(replication) = self.replication() {
            // The partition's log fences: a deposed leader's proposals never commit. This only
            // spares it the attempt (records are stamped with epoch 0: terms order them).
            let Some(tag) = tag_of_key(key) else {
                return Ok(0);
            };
            let partition = replication.partition_of(&tag);
            return if replication.leads(partition) {
                Ok(0)
            } else {
                Err(format!(
                    "this node does not lead partition {partition} now; retry shortly"
                ))
            };
        }
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
}

/// The store's fence: the cluster's [`Cluster::admit`], held weakly (a store outliving its
/// cluster belongs to a node that is shutting down, and writes nothing more).
pub(super) struct Fencing(pub(super) Weak<Inner>);

impl Fence for Fencing {
    fn admit(&self, key: &str) -> Result<u64, String> {
        match self.0.upgrade() {
            Some(inner) => Cluster { inner }.admit(key),
            None => Err("the node is shutting down".into()),
        }
    }
}
