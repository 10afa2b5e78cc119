//! The replicated partitions inside the cluster: their messages ride the nodes' gateways
//! (authenticated, and encrypted when TLS is configured), and their replicas follow the view
//! (which the member list's group decides: [`super::roster`]): the leader of each partition,
//! and of the member list's group, adds the members the view calls for (as learners that
//! catch up first) and drops the ones it no longer names, as membership changes of the
//! group's own consensus.

use super::raft::{Member, PartitionStatus, Transport, Undelivered};
use super::wire::CallBody;
use super::{Cluster, Inner};
use crate::actors::CallError;
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::sync::Weak;
use std::time::Duration;

/// How often the replicas are compared with the view.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);

/// Carries consensus messages through the peers' gateways (held weakly: the cluster owns the
/// replication, which owns this).
pub(super) struct Gateways(pub(super) Weak<Inner>);

impl Transport for Gateways {
    fn call(
        &self,
        to: &Member,
        partition: u16,
        message: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Vec<u8>, Undelivered>> {
        let inner = self.0.upgrade();
        let to = to.name.clone();
        Box::pin(async move {
            let Some(inner) = inner else {
                return Err(Undelivered::Unreachable("the node is shutting down".into()));
            };
            let cluster = Cluster { inner };
            let Some(gateway) = cluster.peer_gateway(&to) else {
                return Err(Undelivered::Unreachable(format!(
                    "node {to} is not connected"
                )));
            };
            let body = CallBody::Raft { partition, message };
            match tokio::time::timeout(timeout, cluster.call(&to, &gateway, body)).await {
                Ok(Ok(answer)) => Ok(answer),
                Ok(Err(CallError::Timeout)) | Err(_) => Err(Undelivered::Timeout(format!(
                    "node {to} did not answer in time"
                ))),
                Ok(Err(e)) => Err(Undelivered::Unreachable(format!("node {to}: {e}"))),
            }
        })
    }
}

/// Keeps every partition's replicas in line with the adopted view, until aborted.
pub(super) async fn follow_view(cluster: Cluster) {
    let mut leaders: HashMap<u16, Option<String>> = HashMap::new();
    let mut every = tokio::time::interval(FOLLOW_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(replication) = cluster.replication() else {
            return;
        };
        let view = cluster.view();
        // Not a member yet (a drained member still hands over the groups it leads).
        if view.epoch == 0 {
            continue;
        }
        let members: Vec<Member> = view
            .members
            .iter()
            .map(|(name, addr)| Member {
                name: name.clone(),
                addr: addr.clone(),
            })
            .collect();
        // The founder of a new cluster starts every group with itself; later members are
        // added by the groups' leaders.
        if members.len() == 1
            && let Err(e) = replication.bootstrap(&members).await
        {
            tracing::warn!(error = %e, "could not start the partitions' groups");
            continue;
        }
        for partition in 0..=replication.members_group() {
            if let Err(e) = replication.reconcile(partition, &members).await {
                tracing::info!(partition, error = %e, "partition replicas not changed yet; retrying");
            }
        }
        replication.balance(&members, |name| cluster.is_up(name));
        publish(&replication.status(), &mut leaders);
    }
}

/// Exports what this node knows of every partition as metrics.
fn publish(status: &[PartitionStatus], leaders: &mut HashMap<u16, Option<String>>) {
    let leaderless = status.iter().filter(|p| p.leader.is_none()).count();
    metrics::gauge!("contrail_partitions_leaderless").set(leaderless as f64);
    for p in status {
        let label = [("partition", p.partition.to_string())];
        metrics::gauge!("contrail_partition_leader", &label).set(f64::from(u8::from(p.serving)));
        metrics::gauge!("contrail_partition_term", &label).set(p.term as f64);
        metrics::gauge!("contrail_partition_applied_index", &label)
            .set(p.last_applied.unwrap_or(0) as f64);
        if let Some(lag) = p.lag {
            metrics::gauge!("contrail_partition_replication_lag", &label).set(lag as f64);
        }
        let previous = leaders.insert(p.partition, p.leader.clone());
        if previous.is_some_and(|before| before != p.leader) {
            metrics::counter!("contrail_partition_leader_changes_total", &label).increment(1);
        }
    }
}
