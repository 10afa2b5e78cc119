//! Membership changes (join, drain) and the handoff of records that comes with them.
//!
//! The node that receives a join or drain coordinates it, in three phases over every node of
//! the old and new view (all must be up, or the change is refused):
//!
//! 1. **Prepare**: each node freezes the tags whose owner changes (requests for them get 503),
//!    waits for requests in progress on them to finish, seals them (the store refuses writes
//!    to them from then on, timers and recoveries included), and stops their actors.
//! 2. **Transfer**: each old owner sends the records of its moving tags to their new owner,
//!    which writes them durably, stamped with the new epoch, before answering.
//! 3. **Commit**: each node adopts the new view (the next epoch), deletes the records it no
//!    longer owns, and activates what it received (holds keep expiring, sagas resume).
//!
//! A node that misses the commit adopts the new view from the next heartbeat of one that has
//! it; until then it reaches no majority at its old epoch, so it cannot write. The coordinator
//! commits itself first, so a node whose prepare has waited `PREPARED_FOR` can ask it what
//! became of the change (`Resolve`): still running (wait), committed (adopt its view), or
//! neither — it runs no change and has not adopted the view, so nobody has — and only then is
//! the prepare given up. An unreachable coordinator is asked again later: the tags stay frozen
//! (503) rather than risk a second writer.

use super::placement::tag_of_key;
use super::wire::{Answer, CallBody, Resolution, decode};
use super::{Cluster, View};
use crate::actors::services::Services;
use crate::persistence::WriteBatch;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Largest batch of records in one message (well under the transport's 16 MiB frame limit).
const CHUNK_BYTES: usize = 1 << 20;
/// How long a prepare waits for requests in progress on moving tags.
const DRAIN_WAIT: Duration = Duration::from_secs(10);
/// How long a prepared change waits for its commit or abort before this node asks its
/// coordinator what became of it (and again after as long, while the answer is "still running"
/// or the coordinator is unreachable).
const PREPARED_FOR: Duration = Duration::from_secs(30);

/// Raw records (key, encoded value) in one handoff message.
type Records = Vec<(String, Vec<u8>)>;

/// Serializes the changes this node coordinates (held for the whole change).
static CHANGING: Mutex<()> = Mutex::const_new(());

/// Coordinates a change of membership from the current view to `next` (without replicated
/// partitions; with them, the member list's group decides: [`super::roster`]).
pub async fn change(cluster: &Cluster, services: &Services, next: View) -> Result<View, String> {
    let _one_at_a_time = CHANGING.lock().await;
    let current = cluster.view();
    if next.epoch != current.epoch + 1 {
        return Err("the cluster changed meanwhile; retry".into());
    }
    let mut nodes: Vec<String> = current
        .members
        .keys()
        .chain(next.members.keys())
        .cloned()
        .collect();
    nodes.sort();
    nodes.dedup();
    if let Some(down) = nodes.iter().find(|n| !cluster.is_up(n)) {
        return Err(format!(
            "node {down} is unreachable; membership can change only while every member is up"
        ));
    }
    tracing::info!(
        from = current.epoch,
        to = next.epoch,
        ?nodes,
        "membership change starts"
    );
    // Replicated records move by their partitions' own membership changes (`replicas`):
    // the view only names the members.
    if !cluster.replicated() {
        hand_over(cluster, services, &current, &nodes, &next).await?;
    }
    // This node first: once it has adopted the view, a participant asking what became of the
    // change learns that it committed; before that, that nobody has adopted it.
    let me = cluster.node().to_owned();
    let commit_order = nodes
        .iter()
        .filter(|n| **n == me)
        .chain(nodes.iter().filter(|n| **n != me));
    for node in commit_order {
        if let Err(e) = ask(cluster, services, node, CallBody::Commit(next.clone())).await {
            // It adopts the view from a heartbeat; its records are already handed over.
            tracing::warn!(node, error = %e, "commit not delivered; the node catches up by heartbeat");
        }
    }
    metrics::counter!("contrail_cluster_handoffs_total", "result" => "committed").increment(1);
    tracing::info!(epoch = next.epoch, "membership change committed");
    Ok(next)
}

/// Phases 1 and 2 of a change: every node prepares, every old owner transfers (aborted on all
/// nodes if one fails).
async fn hand_over(
    cluster: &Cluster,
    services: &Services,
    current: &View,
    nodes: &[String],
    next: &View,
) -> Result<(), String> {
    let mut prepared = Vec::new();
    for node in nodes {
        match ask(cluster, services, node, CallBody::Prepare(next.clone())).await {
            Ok(()) => prepared.push(node.clone()),
            Err(e) => {
                for node in &prepared {
                    let _ = ask(cluster, services, node, CallBody::Abort(next.clone())).await;
                }
                metrics::counter!("contrail_cluster_handoffs_total", "result" => "aborted")
                    .increment(1);
                return Err(format!("node {node} could not prepare: {e}"));
            }
        }
    }
    for node in current.members.keys() {
        if let Err(e) = ask(cluster, services, node, CallBody::Transfer(next.clone())).await {
            for node in nodes {
                let _ = ask(cluster, services, node, CallBody::Abort(next.clone())).await;
            }
            metrics::counter!("contrail_cluster_handoffs_total", "result" => "aborted")
                .increment(1);
            return Err(format!("node {node} could not hand over its records: {e}"));
        }
    }
    Ok(())
}

/// Runs one phase on `node` (this node directly, others through their gateway).
async fn ask(
    cluster: &Cluster,
    services: &Services,
    node: &str,
    body: CallBody,
) -> Result<(), String> {
    if node == cluster.node() {
        return match handle(cluster, services, node, body).await {
            Answer::Done(_) => Ok(()),
            Answer::Unavailable(why) => Err(why),
            Answer::NotOwner(_) => Err("not a participant".into()),
        };
    }
    let gateway = cluster
        .peer_gateway(node)
        .ok_or_else(|| format!("node {node} is unreachable"))?;
    cluster
        .call(node, &gateway, body)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Handles one phase of a change on this node (`from`: the node that sent it, for a prepare its
/// coordinator).
pub async fn handle(cluster: &Cluster, services: &Services, from: &str, body: CallBody) -> Answer {
    let result = match body {
        CallBody::Prepare(next) => prepare(cluster, services, from, next).await,
        CallBody::Resolve(next) => return super::done(&resolve(cluster, &next)),
        CallBody::Transfer(next) => transfer(cluster, services, next).await,
        CallBody::Records { next, records } => receive(cluster, &next, records).await,
        CallBody::Commit(next) => {
            apply(cluster, services, next);
            Ok(())
        }
        CallBody::Abort(next) => {
            abort(cluster, services, &next);
            Ok(())
        }
        _ => Err("not a handoff message".into()),
    };
    match result {
        Ok(()) => Answer::Done(Vec::new()),
        Err(why) => Answer::Unavailable(why),
    }
}

async fn prepare(
    cluster: &Cluster,
    services: &Services,
    coordinator: &str,
    next: View,
) -> Result<(), String> {
    let current = cluster.view();
    if next.epoch <= current.epoch {
        return Err("this change is older than the adopted view".into());
    }
    if !cluster.begin_move(next.clone()) {
        return Err("another membership change is in progress".into());
    }
    let deadline = Instant::now() + DRAIN_WAIT;
    while cluster.busy_moving(&current, &next) {
        if Instant::now() >= deadline {
            cluster.end_move(&next);
            return Err("requests on moving entities did not finish in time".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cluster.seal_move(&next);
    resolve_later(cluster, services, coordinator, next.clone());
    // Stop the actors of moving entities: their state is on disk, and nothing may write it here
    // any more.
    for name in ractor::registry::registered() {
        let Some(tag) = tag_of_key(&name) else {
            continue;
        };
        if current.owner(&tag) == Some(cluster.node())
            && current.moves(&next, &tag)
            && let Some(actor) = ractor::registry::where_is(name.clone())
        {
            let _ = actor
                .stop_and_wait(Some("handed over".into()), Some(DRAIN_WAIT))
                .await;
        }
    }
    Ok(())
}

async fn transfer(cluster: &Cluster, services: &Services, next: View) -> Result<(), String> {
    let current = cluster.view();
    let me = cluster.node();
    // Per new owner: its chunks, and the size of the last one.
    let mut outgoing: std::collections::BTreeMap<String, (Vec<Records>, usize)> =
        Default::default();
    let mut moved = 0usize;
    // Writes sealed before the prepare may still be on their way to the engine.
    cluster
        .store()
        .caught_up()
        .await
        .map_err(|e| e.to_string())?;
    for entry in cluster.store().raw_entries() {
        let (key, value) = entry.map_err(|e| e.to_string())?;
        let Some(tag) = tag_of_key(&key) else {
            continue;
        };
        if current.owner(&tag) != Some(me) {
            continue;
        }
        let Some(dest) = next.owner(&tag).filter(|d| *d != me) else {
            continue;
        };
        let (chunks, size) = outgoing.entry(dest.to_owned()).or_default();
        if chunks.is_empty() || *size + key.len() + value.len() > CHUNK_BYTES {
            chunks.push(Vec::new());
            *size = 0;
        }
        *size += key.len() + value.len();
        moved += 1;
        if let Some(chunk) = chunks.last_mut() {
            chunk.push((key, value));
        }
    }
    for (dest, (chunks, _)) in outgoing {
        for records in chunks {
            let body = CallBody::Records {
                next: next.clone(),
                records,
            };
            Box::pin(ask(cluster, services, &dest, body)).await?;
        }
    }
    tracing::info!(records = moved, epoch = next.epoch, "records handed over");
    Ok(())
}

async fn receive(
    cluster: &Cluster,
    next: &View,
    records: Vec<(String, Vec<u8>)>,
) -> Result<(), String> {
    if !cluster.is_moving_to(next) {
        return Err("no such change is prepared here".into());
    }
    // Persisted under the new epoch: this node may write them only once it has that epoch.
    let mut batch = WriteBatch::handed_over(next.epoch);
    for (key, value) in records {
        batch.put_raw(&key, value);
    }
    let durable = cluster.store().commit(batch).map_err(|e| e.to_string())?;
    durable.await.map_err(|e| e.to_string())
}

/// Adopts `view` (from a commit or a heartbeat) and settles the local store to it: records no
/// longer owned here are deleted, received entities are activated.
pub fn apply(cluster: &Cluster, services: &Services, view: View) {
    if !cluster.adopt(view) {
        return;
    }
    // Peers count this node toward their majority only once they hear it at their epoch.
    super::membership::announce(cluster);
    settle(cluster, services);
}

/// What the coordinator of `next` answers about it (see the module's documentation).
fn resolve(cluster: &Cluster, next: &View) -> Resolution {
    let Ok(_idle) = CHANGING.try_lock() else {
        return Resolution::InProgress;
    };
    let view = cluster.view();
    if view.epoch >= next.epoch {
        Resolution::Committed(view)
    } else {
        Resolution::Abandoned
    }
}

/// While this very prepare of `next` (not a later one of an equal view) is still pending after
/// [`PREPARED_FOR`], asks its coordinator what became of it and acts on the answer.
fn resolve_later(cluster: &Cluster, services: &Services, coordinator: &str, next: View) {
    let (cluster, services, coordinator) =
        (cluster.clone(), services.clone(), coordinator.to_owned());
    let prepared = cluster.move_generation();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(PREPARED_FOR).await;
            if cluster.move_generation() != prepared || !cluster.is_moving_to(&next) {
                return;
            }
            let answer = if coordinator == cluster.node() {
                Ok(resolve(&cluster, &next))
            } else {
                ask_resolution(&cluster, &coordinator, &next).await
            };
            match answer {
                Ok(Resolution::Committed(view)) => {
                    tracing::warn!(
                        epoch = view.epoch,
                        "prepared change was committed without us; adopting it"
                    );
                    apply(&cluster, &services, view);
                    return;
                }
                Ok(Resolution::Abandoned) => {
                    tracing::warn!(epoch = next.epoch, %coordinator, "prepared change was abandoned by its coordinator; giving it up");
                    abort(&cluster, &services, &next);
                    return;
                }
                Ok(Resolution::InProgress) => {}
                Err(e) => {
                    tracing::warn!(epoch = next.epoch, %coordinator, error = %e, "coordinator of a prepared change unreachable; its entities stay frozen");
                }
            }
        }
    });
}

async fn ask_resolution(
    cluster: &Cluster,
    coordinator: &str,
    next: &View,
) -> Result<Resolution, String> {
    let gateway = cluster
        .peer_gateway(coordinator)
        .ok_or_else(|| format!("node {coordinator} is unreachable"))?;
    let bytes = cluster
        .call(coordinator, &gateway, CallBody::Resolve(next.clone()))
        .await
        .map_err(|e| e.to_string())?;
    decode(&bytes).map_err(|e| e.to_string())
}

fn abort(cluster: &Cluster, services: &Services, next: &View) {
    if cluster.end_move(next) {
        tracing::warn!(epoch = next.epoch, "membership change aborted");
        settle(cluster, services);
    }
}

/// Deletes records this node does not own under its view, then activates entities with live
/// holds or unfinished sagas (received ones included).
fn settle(cluster: &Cluster, services: &Services) {
    // Replicated records stay on every replica; their leaders activate them (`leadership`).
    if cluster.replicated() {
        return;
    }
    let view = cluster.view();
    let me = cluster.node().to_owned();
    let mut batch = WriteBatch::release();
    let mut dropped = 0usize;
    for entry in cluster.store().raw_entries() {
        let Ok((key, _)) = entry else { continue };
        if let Some(tag) = tag_of_key(&key)
            && view.owner(&tag) != Some(me.as_str())
        {
            batch.delete(&key);
            dropped += 1;
        }
    }
    if dropped > 0 {
        match cluster.store().record(batch) {
            Ok(()) => {}
            Err(e) => tracing::error!(error = %e, "records handed over could not be deleted"),
        }
        tracing::info!(
            records = dropped,
            "deleted records now owned by other nodes"
        );
    }
    let (cluster, services) = (cluster.clone(), services.clone());
    tokio::spawn(async move {
        // Right after a change, peers count toward this node's majority only once their
        // heartbeat at the new epoch arrives; recovering before would be refused.
        let deadline = Instant::now() + 3 * cluster.timing().down_after;
        while !cluster.serving() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let flights = services.flights_with_holds();
        services.recover(flights).await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Timing;
    use crate::persistence::Store;

    #[tokio::test]
    async fn a_coordinator_tells_a_waiting_participant_what_became_of_the_change()
    -> Result<(), Box<dyn std::error::Error>> {
        let timing = Timing {
            heartbeat: Duration::from_millis(300),
            down_after: Duration::from_secs(2),
            call_timeout: Duration::from_secs(1),
        };
        let cluster = Cluster::open("a", "127.0.0.1:1", Store::temporary()?, timing, true, true)?;
        let next = cluster.view().with("b", "127.0.0.1:2");

        // Running a change: wait.
        let running = CHANGING.lock().await;
        assert_eq!(resolve(&cluster, &next), Resolution::InProgress);
        drop(running);
        // Idle and not at the change's epoch: nobody committed it (the coordinator commits
        // itself first), so it may be given up.
        assert_eq!(resolve(&cluster, &next), Resolution::Abandoned);
        // Adopted: the participant adopts it too.
        assert!(cluster.adopt(next.clone()));
        assert_eq!(resolve(&cluster, &next), Resolution::Committed(next));
        Ok(())
    }
}
