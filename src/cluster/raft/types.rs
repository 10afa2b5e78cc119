//! The consensus engine's types: what a log entry decides, who the members are.

use serde::{Deserialize, Serialize};
use std::io::Cursor;

/// A partition: one replication group of its own (its own log, leader and term).
pub type PartitionId = u16;

/// A node as the consensus engine knows it: its name and its node-to-node address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The node's configured id (`cluster.node_id`).
    pub name: String,
    /// Where other nodes reach it.
    pub addr: String,
}

/// What one log entry decides: batches of one partition's records, in order (the batches
/// queued while the previous entry was being replicated travel as one entry).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Records(pub Vec<Batch>);

/// Records written together (`None`: delete) — or, when guarded and the guard's key exists
/// already, not at all (decided where the log is applied, so every replica decides alike).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// The records, in order.
    pub ops: Vec<(String, Option<Vec<u8>>)>,
    /// Written only if this key does not exist yet.
    pub guard: Option<String>,
}

impl std::fmt::Display for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} batches", self.0.len())
    }
}

/// What became of each batch of an entry: `None` written, `Some(existing)` refused by its
/// guard, whose record holds `existing`.
pub type Decisions = Vec<Option<Vec<u8>>>;

openraft::declare_raft_types!(
    /// The type configuration of every partition's group.
    pub Replicated:
        D = Records,
        R = Decisions,
        NodeId = u64,
        Node = Member,
        Entry = openraft::Entry<Replicated>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The consensus engine's id of a node: 64 bits of xxh3 of its name (a hash with a fixed
/// specification, so every node and every build agrees).
pub fn node_id(name: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(name.as_bytes())
}

/// The partition of a placement tag among `partitions`.
pub fn partition_of(tag: &str, partitions: u16) -> PartitionId {
    // A different seed than rendezvous placement's, so the two never correlate.
    let hash = xxhash_rust::xxh3::xxh3_64_with_seed(tag.as_bytes(), 0x5041_5254);
    (hash % u64::from(partitions.max(1))) as PartitionId
}

/// The prefix of the member list's records (kept by the member list's own group).
pub const MEMBERS: &str = "cluster/members/";

/// Keys of a partition's consensus state in the node's store (node-local: never replicated).
pub(super) mod keys {
    use super::PartitionId;

    /// One log entry (indexes zero-padded, so key order is log order).
    pub(in crate::cluster::raft) fn entry(p: PartitionId, index: u64) -> String {
        format!("raft/{p:05}/log/{index:020}")
    }

    /// The vote this node cast or holds.
    pub(in crate::cluster::raft) fn vote(p: PartitionId) -> String {
        format!("raft/{p:05}/vote")
    }

    /// The last log id purged from the log.
    pub(in crate::cluster::raft) fn purged(p: PartitionId) -> String {
        format!("raft/{p:05}/purged")
    }

    /// Present while the founding snapshot of a group this node formed is still to be taken.
    pub(in crate::cluster::raft) fn founding(p: PartitionId) -> String {
        format!("raft/{p:05}/founding")
    }

    /// The last log id applied to the state machine, with the membership then.
    pub(in crate::cluster::raft) fn applied(p: PartitionId) -> String {
        format!("raft/{p:05}/applied")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn entry_keys_sort_like_their_indexes(a in any::<u64>(), b in any::<u64>()) {
            prop_assert_eq!(a.cmp(&b), keys::entry(3, a).cmp(&keys::entry(3, b)));
        }

        #[test]
        fn every_tag_has_a_partition_in_range(tag in "[0-9a-f]{16}", n in 1u16..512) {
            prop_assert!(partition_of(&tag, n) < n);
            prop_assert_eq!(partition_of(&tag, n), partition_of(&tag, n));
        }
    }
}
