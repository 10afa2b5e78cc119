//! What a replicated node does as the leadership of its partitions moves. The leader of a
//! partition hosts its entities: when this node becomes the leader (and has applied all the
//! partition decided before), it activates what must run — flights with holds to release when
//! they lapse, orders with holds to expire or saga steps to finish. When it stops being the
//! leader, or a write of the partition is refused, it stops the partition's actors: their
//! memory may hold changes the partition never decided, and the new leader serves them from
//! what was.

use super::Cluster;
use super::placement::tag_of_key;
use super::raft::{ServerState, partition_of};
use crate::actors::services::Services;
use std::time::Duration;
use tokio::task::JoinHandle;

/// How long a new leader waits to have applied its predecessor's entries before it gives up
/// activating (the next leadership change tries again).
const SETTLE: Duration = Duration::from_secs(10);

/// Follows every partition's leadership on this node, until aborted.
pub(super) fn follow(cluster: &Cluster, services: &Services) -> Vec<JoinHandle<()>> {
    let Some(replication) = cluster.replication() else {
        return Vec::new();
    };
    (0..replication.partition_count())
        .map(|partition| tokio::spawn(follow_one(cluster.clone(), services.clone(), partition)))
        .collect()
}

async fn follow_one(cluster: Cluster, services: Services, partition: u16) {
    let Some(replication) = cluster.replication().cloned() else {
        return;
    };
    let Some(mut changes) = replication.changes(partition) else {
        return;
    };
    let me = super::raft::node_id(cluster.node());
    // (leading, term) as last seen: a new term is a new leadership even if it is this node's.
    let mut was: Option<u64> = None;
    loop {
        let now = {
            let metrics = changes.borrow_and_update();
            (metrics.state == ServerState::Leader && metrics.current_leader == Some(me))
                .then_some(metrics.current_term)
        };
        if now != was {
            if was.is_some() {
                tracing::info!(partition, "no longer leading; its entities stop here");
                stop_actors(&cluster, partition);
            }
            if let Some(term) = now {
                tracing::info!(partition, term, "leading; activating its entities");
                activate(&cluster, &services, partition).await;
            }
            was = now;
        }
        let resumed = tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
                false
            }
            () = replication.resumed(partition) => true,
        };
        if resumed && was.is_some() {
            // A handover that did not move the partition stopped its entities: they run again.
            tracing::info!(
                partition,
                "still leading after a handover; activating again"
            );
            activate(&cluster, &services, partition).await;
        }
    }
}

/// Activates `partition`'s entities that must run, once this node serves it.
async fn activate(cluster: &Cluster, services: &Services, partition: u16) {
    let Some(replication) = cluster.replication() else {
        return;
    };
    if !within(SETTLE, || replication.serves(partition)).await {
        tracing::warn!(
            partition,
            "leading, but not serving yet; entities not activated"
        );
        return;
    }
    let partitions = replication.partition_count();
    let mine = move |tag: &str| partition_of(tag, partitions) == partition;
    let services = services.clone();
    // Off the leadership loop: an activation calls actors, which may wait for the disk.
    tokio::spawn(async move {
        let flights = services.flights_with_holds_where(&mine);
        services.recover_where(flights, &mine).await;
    });
}

/// Stops this node's actors of `partition`'s entities (they load again from what the
/// partition decided when next asked for, here or on its new leader).
pub(super) fn stop_actors(cluster: &Cluster, partition: u16) {
    if let Some(replication) = cluster.replication() {
        stop_partition_actors(partition, replication.partition_count());
    }
}

/// Asks this node's actors of `partition`'s entities (of `partitions`) to stop once they have
/// handled the message in hand; how many were asked.
pub(super) fn stop_partition_actors(partition: u16, partitions: u16) -> usize {
    let running = partition_actors(partition, partitions);
    for actor in &running {
        actor.stop(Some("partition leadership moved".into()));
    }
    running.len()
}

/// This node's running actors of `partition`'s entities (of `partitions`).
fn partition_actors(partition: u16, partitions: u16) -> Vec<ractor::ActorCell> {
    ractor::registry::registered()
        .into_iter()
        .filter(|name| {
            tag_of_key(name).is_some_and(|tag| partition_of(&tag, partitions) == partition)
        })
        .filter_map(ractor::registry::where_is)
        .collect()
}

/// Whether `ready` holds within `limit`, looked at every 10 ms.
pub(super) async fn within(limit: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while !ready() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}
