//! The store's fence: on a clustered node a record is written only by the leader of its
//! partition. The partition's log fences for real (a deposed leader's proposals never commit);
//! this check spares a node that knows it does not lead the attempt, including through a path
//! that skipped routing (a timer, a recovery).

use super::placement::tag_of_key;
use super::{Cluster, Inner};
use crate::persistence::Fence;
use std::sync::Weak;

impl Cluster {
    /// Whether this node may write `key` now, or why not: a node alone writes everything; a
    /// clustered node only records of partitions it leads (and node-local records).
    pub fn admit(&self, key: &str) -> Result<(), String> {
        let Some(replication) = self.replication() else {
            return if self.inner.clustered {
                Err("this node is still starting its partitions".into())
            } else {
                Ok(())
            };
        };
        let Some(tag) = tag_of_key(key) else {
            return Ok(());
        };
        let partition = replication.partition_of(&tag);
        if replication.leads(partition) {
            Ok(())
        } else {
            Err(format!(
                "this node does not lead partition {partition} now; retry shortly"
            ))
        }
    }
}

/// The store's fence: the cluster's [`Cluster::admit`], held weakly (a store outliving its
/// cluster belongs to a node that is shutting down, and writes nothing more).
pub(super) struct Fencing(pub(super) Weak<Inner>);

impl Fence for Fencing {
    fn admit(&self, key: &str) -> Result<(), String> {
        match self.0.upgrade() {
            Some(inner) => Cluster { inner }.admit(key),
            None => Err("the node is shutting down".into()),
        }
    }
}
