//! The member list of the cluster, decided by consensus.
//!
//! The view (who the members are, numbered by an epoch) is the state of one more consensus
//! group, the member list's, whose voters are chosen like a
//! partition's and which every other member follows as a learner. A join, a drain or the
//! removal of a dead node is one write to that group, made by its leader (any member forwards
//! the request there):
//!
//! ```text
//! Join / Drain / Remove ─► leader of the member list ─► next view, written only if its epoch
//!                                                       is not taken (guard) ─► every member
//!                                                       applies it and adopts it
//! ```
//!
//! No member has to be up for it beyond a majority of that group: the engine decides. Each
//! partition's leader then moves the partition's replicas to match the view
//! ([`super::replicas`]); records never move by hand.

use super::raft::{Batch, MEMBERS, PartitionId, Records};
use super::wire::{CallBody, decode};
use super::{Cluster, View};
use crate::persistence::encode_record;
use std::time::Duration;

/// The adopted member list.
const VIEW: &str = "cluster/members/view";
/// How many times a change is tried when another change took its epoch first.
const ATTEMPTS: usize = 5;

/// The record that claims `epoch` (a change is written only if its epoch is not taken).
fn epoch_key(epoch: u64) -> String {
    format!("{MEMBERS}epoch/{epoch:020}")
}

/// A change of the member list.
#[derive(Debug, Clone)]
pub enum Edit {
    /// Add `node` at `addr` (or update its address).
    Join {
        /// The joiner's node id.
        node: String,
        /// Its node-to-node address.
        addr: String,
    },
    /// Take `node` out.
    Leave {
        /// The member leaving.
        node: String,
    },
}

impl Edit {
    /// The view after this edit, or `None` if `view` already is that way.
    fn apply(&self, view: &View) -> Option<View> {
        match self {
            Self::Join { node, addr } => {
                (view.members.get(node) != Some(addr)).then(|| view.with(node, addr))
            }
            Self::Leave { node } => view.contains(node).then(|| view.without(node)),
        }
    }

    fn call(&self) -> CallBody {
        match self.clone() {
            Self::Join { node, addr } => CallBody::Join { node, addr },
            Self::Leave { node } => CallBody::Drain { node },
        }
    }
}

/// Why a dead member could not be removed.
#[derive(Debug, thiserror::Error)]
pub enum RemoveError {
    /// It is not a member.
    #[error("{0} is not a member")]
    NotMember(String),
    /// It answers: drain it instead, which moves its entities first.
    #[error("{0} is up; drain it instead")]
    Up(String),
    /// Without it, the members up are not a majority, or the change failed; retry.
    #[error("{0}")]
    Unavailable(String),
}

/// Takes `gone`, a member that is down for good (its disk lost, say), out of the cluster.
/// Every record it held has replicas on other members; the member list's group decides the change (so a majority of its voters must be up), and each
/// partition's leader then replaces it with another member (a membership change of the
/// partition's consensus group, the new replica catching up from a snapshot and the log).
pub async fn remove_dead(cluster: &Cluster, gone: &str) -> Result<View, RemoveError> {
    let current = cluster.view();
    if !current.contains(gone) {
        return Err(RemoveError::NotMember(gone.to_owned()));
    }
    if cluster.is_up(gone) {
        return Err(RemoveError::Up(gone.to_owned()));
    }
    let edit = Edit::Leave {
        node: gone.to_owned(),
    };
    let next = change(cluster, edit)
        .await
        .map_err(RemoveError::Unavailable)?;
    metrics::counter!("contrail_cluster_removals_total").increment(1);
    tracing::warn!(
        node = gone,
        epoch = next.epoch,
        "dead node removed from the cluster"
    );
    Ok(next)
}

/// Makes `edit` through the member list's group: here if this node leads it, else by its
/// leader. Returns the view that has it.
pub async fn change(cluster: &Cluster, edit: Edit) -> Result<View, String> {
    let Some(replication) = cluster.replication() else {
        return Err("this node runs no replicated partitions".into());
    };
    let group = replication.members_group();
    for _ in 0..ATTEMPTS {
        if !replication.leads(group) {
            return forward(cluster, group, &edit).await;
        }
        let current = decided(cluster)?;
        let Some(next) = edit.apply(&current) else {
            return Ok(current);
        };
        if next.members.is_empty() {
            return Err("the last member cannot leave the cluster".into());
        }
        let claim = epoch_key(next.epoch);
        let encode = |key: &str| encode_record(key, &next).map_err(|e| e.to_string());
        let batch = Batch {
            ops: vec![
                (claim.clone(), Some(encode(&claim)?)),
                (VIEW.to_owned(), Some(encode(VIEW)?)),
            ],
            guard: Some(claim),
        };
        let decisions = replication
            .propose(group, Records(vec![batch]))
            .await
            .map_err(|e| e.to_string())?;
        if decisions.first().is_some_and(Option::is_none) {
            tracing::info!(epoch = next.epoch, members = ?next.members.keys().collect::<Vec<_>>(), "member list changed");
            adopt(cluster, next.clone());
            return Ok(next);
        }
        // Another change took this epoch first: start again from the list it made.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err("the member list kept changing; retry".into())
}

/// The member list as the group decided it, on this node (before the first change: the
/// founder's view).
fn decided(cluster: &Cluster) -> Result<View, String> {
    let stored: Option<View> = cluster.store().get(VIEW).map_err(|e| e.to_string())?;
    Ok(stored.unwrap_or_else(|| cluster.view()))
}

/// Sends `edit` to the leader of the member list.
async fn forward(cluster: &Cluster, group: PartitionId, edit: &Edit) -> Result<View, String> {
    let Some((leader, gateway)) = cluster.group_leader(group)? else {
        return Err("this node is taking over the member list; retry".into());
    };
    let answer = cluster
        .call(&leader, &gateway, edit.call())
        .await
        .map_err(|e| e.to_string())?;
    decode(&answer).map_err(|e| e.to_string())
}

/// Adopts every member list the group decides, as this node applies it (until aborted).
pub(super) async fn follow(cluster: Cluster) {
    let Some(mut changes) = cluster
        .replication()
        .and_then(|r| r.changes(r.members_group()))
    else {
        return;
    };
    // The group's metrics change with every heartbeat; the list only when it applies an entry.
    let mut read_at = None;
    loop {
        let applied = changes.borrow_and_update().last_applied;
        if read_at != Some(applied) {
            read_at = Some(applied);
            match decided(&cluster) {
                Ok(view) if view.epoch > cluster.epoch() => {
                    adopt(&cluster, view);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "the member list could not be read"),
            }
        }
        if changes.changed().await.is_err() {
            return;
        }
    }
}

/// Adopts `view` (decided by the member list's group, here or gossiped by a peer's heartbeat)
/// if it is newer than this node's, and tells the peers at once.
pub fn adopt(cluster: &Cluster, view: View) {
    if cluster.adopt(view) {
        super::membership::announce(cluster);
    }
}
