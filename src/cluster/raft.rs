//! Replicated partitions on [openraft](https://crates.io/crates/openraft): every placement
//! tag maps to one of a fixed number of partitions, and each partition is a replication group
//! of up to three replicas run by openraft (never a protocol of our own).
//!
//! ```text
//! propose(partition, records) ─► that partition's leader ─► its log on a majority (fsync'd)
//!                                                          ─► every replica's state machine
//!                                                             (the node's store)
//! ```
//!
//! * A partition's log and vote live in the node's store ([`log_store`]), so every partition
//!   shares the store's group commit: one `fdatasync` covers the appends of all partitions
//!   that arrived together. An append is reported flushed only after that sync.
//! * Applying an entry writes its records into the store exactly as the proposer sealed them
//!   ([`state_machine`]); a snapshot is the partition's records.
//! * Terms and log positions fence a stale leader: a node that lost its majority cannot commit,
//!   whatever it believes.
//! * The engine's messages travel through a [`Transport`] (the cluster's authenticated
//!   node-to-node connections).

mod balance;
mod log_store;
mod network;
mod state_machine;
mod takeover;
#[cfg(test)]
mod tests;
mod types;

use crate::persistence::{Store, StoreError};
use log_store::LogStore;
use network::Network;
pub use network::{Answer, Message, Transport, Undelivered};
pub use openraft::ServerState;
use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{Raft, SnapshotPolicy};
use state_machine::StateMachine;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use types::keys;
pub use types::{
    Batch, Decisions, MEMBERS, Member, PartitionId, Records, Replicated, node_id, partition_of,
};

/// How many replicas a partition has by default (fewer only when the cluster is smaller).
pub const REPLICAS: usize = 3;
/// How long a new replica may take to catch up before the change is retried.
const CATCH_UP: Duration = Duration::from_secs(30);
/// How many entries behind its leader's log a learner may be and still count as caught up
/// (under load the log grows while it catches up; a few entries arrive with the next beat).
const CAUGHT_UP_WITHIN: u64 = 64;

/// Timing of the consensus groups.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Interval between a leader's heartbeats.
    pub heartbeat: Duration,
    /// A follower that hears no leader for a random time in this range stands for election.
    pub election: (Duration, Duration),
    /// How long a proposal may wait to be committed before it is reported as unavailable.
    pub propose_timeout: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_millis(100),
            election: (Duration::from_millis(400), Duration::from_millis(800)),
            propose_timeout: Duration::from_secs(3),
        }
    }
}

/// Why replication could not start, or a proposal was not committed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplicationError {
    /// Another member leads the partition (or none does yet: `None`).
    #[error("partition {partition} is led by {}", leader.as_ref().map_or("no node yet", |m| m.name.as_str()))]
    NotLeader {
        /// The partition.
        partition: PartitionId,
        /// Its leader, if one is known.
        leader: Option<Member>,
    },
    /// The proposal may or may not be committed: the partition did not answer in time, or its
    /// leader stepped down while it waited. The caller reads back before trying again.
    #[error("partition {partition} did not confirm the write: {why}")]
    Unconfirmed {
        /// The partition.
        partition: PartitionId,
        /// What happened.
        why: String,
    },
    /// The consensus engine or the store failed.
    #[error("replication failed: {0}")]
    Failed(String),
}

impl From<StoreError> for ReplicationError {
    fn from(e: StoreError) -> Self {
        Self::Failed(e.to_string())
    }
}

/// The replicas of `partition` among `members`: the `replicas` members with the highest
/// rendezvous weight (all of them in a cluster of three or fewer).
pub fn replicas_of(partition: PartitionId, members: &[Member], replicas: usize) -> Vec<Member> {
    let weight = |m: &Member| {
        let mut bytes = m.name.as_bytes().to_vec();
        bytes.extend_from_slice(&partition.to_be_bytes());
        (xxhash_rust::xxh3::xxh3_64(&bytes), m.name.clone())
    };
    let mut ranked: Vec<_> = members.to_vec();
    ranked.sort_by_key(|m| std::cmp::Reverse(weight(m)));
    ranked.truncate(replicas.max(1));
    ranked
}

/// What an operator sees of one partition on this node.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PartitionStatus {
    /// The partition.
    pub partition: PartitionId,
    /// Its leader as this node knows it.
    pub leader: Option<String>,
    /// The current term.
    pub term: u64,
    /// The last index in this node's log.
    pub last_log_index: Option<u64>,
    /// The last index this node applied.
    pub last_applied: Option<u64>,
    /// Its replicas that vote (count toward its majorities).
    pub replicas: Vec<String>,
    /// Replicas still catching up (they vote once they have).
    pub learners: Vec<String>,
    /// Whether this node leads it and may serve it ([`Replication::leads`]).
    pub serving: bool,
    /// On the leader: log entries the slowest replica lacks.
    pub lag: Option<u64>,
    /// The last index known committed (on the leader: on disk at a majority of the replicas;
    /// elsewhere: the last applied).
    pub committed: Option<u64>,
}

/// This node's replicas of every partition; cheap to clone.
#[derive(Clone)]
pub struct Replication {
    inner: Arc<Inner>,
}

struct Inner {
    /// This node.
    me: Member,
    /// One consensus group per partition, indexed by partition.
    groups: Vec<Raft<Replicated>>,
    /// The group that decides the member list (numbered after the partitions): its voters are
    /// chosen like a partition's, every other member follows it as a learner.
    members: Raft<Replicated>,
    timing: Timing,
    /// How many replicas each partition has (fewer only when the cluster is smaller).
    replicas: usize,
    /// Leaders other members say they are (group → term, member): how this node routes to a
    /// group it holds no replica of. Only a hint: the leader itself checks that it leads.
    hints: std::sync::Mutex<std::collections::HashMap<PartitionId, (u64, Member)>>,
    /// How consensus messages reach the other members (also for a handover's request).
    transport: Arc<dyn Transport>,
    /// The node's store (for this node's own bookkeeping of its groups).
    store: Store,
    /// The partitions this node is handing to their preferred leaders, and how far
    /// ([`balance`]).
    moving: std::sync::Mutex<std::collections::HashMap<PartitionId, balance::Handover>>,
    /// Per partition: a handover ended with this node still leading ([`balance`]).
    resumed: Vec<tokio::sync::Notify>,
    /// Since when this node leads each partition it leads, at which term ([`balance`]).
    leading_since:
        std::sync::Mutex<std::collections::HashMap<PartitionId, (u64, std::time::Instant)>>,
}

/// How long one chunk of a snapshot may take to install on a replica.
const INSTALL_SNAPSHOT_TIMEOUT_MS: u64 = 10_000;

/// Whether replica `id` of the group `raft` leads has (nearly) every entry of its log.
pub(super) fn caught_up(raft: &Raft<Replicated>, id: u64) -> bool {
    let metrics = raft.metrics();
    let metrics = metrics.borrow();
    let last = metrics.last_log_index.unwrap_or(0);
    metrics.replication.as_ref().is_some_and(|followers| {
        followers
            .get(&id)
            .is_some_and(|matched| matched.is_some_and(|m| m.index + CAUGHT_UP_WITHIN >= last))
    })
}

/// `mutex`'s guard, also after a panic while it was held (what it guards stays consistent:
/// each holder makes one change).
fn locked<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How long a new group may take to elect its first leader before its founding state is
/// snapshotted anyway (see [`snapshot_founding_state`]).
const FORMING: Duration = Duration::from_secs(60);

/// Snapshots a group this node has just formed and purges its log up to the snapshot. A node
/// that ran alone before it founded a cluster has records in its store that no log entry
/// carries; without this, the replicas that join would replay the log from its start and never
/// receive them. With it, each starts from the snapshot, which holds every record of the
/// partition in the store.
///
/// Until it is taken (a durable marker says so, and a restart retries), the group adds no
/// replica.
async fn snapshot_founding_state(raft: Raft<Replicated>, partition: PartitionId, store: Store) {
    let formed = raft
        .wait(Some(FORMING))
        .metrics(
            |m| m.last_applied.is_some() && m.current_leader.is_some(),
            "formed",
        )
        .await;
    let Some(applied) = formed.ok().and_then(|m| m.last_applied) else {
        tracing::warn!(
            partition,
            "the group has not elected a leader; its founding state is not snapshotted"
        );
        return;
    };
    if raft.trigger().snapshot().await.is_err() {
        return;
    }
    let covers = |id: Option<openraft::LogId<u64>>| id.is_some_and(|id| id.index >= applied.index);
    let taken = raft
        .wait(Some(FORMING))
        .metrics(|m| covers(m.snapshot), "founding snapshot")
        .await;
    if taken.is_err() || raft.trigger().purge_log(applied.index).await.is_err() {
        return;
    }
    let purged = raft
        .wait(Some(FORMING))
        .metrics(|m| covers(m.purged), "founding log purged")
        .await;
    if purged.is_err() {
        return;
    }
    match store.write_decided(vec![(keys::founding(partition), None)], true) {
        Ok(_) => tracing::debug!(
            partition,
            index = applied.index,
            "founding state snapshotted"
        ),
        Err(e) => tracing::warn!(partition, error = %e, "founding snapshot taken, not noted"),
    }
}

impl Replication {
    /// Starts this node's replica of each of `partitions` partitions (each with up to
    /// `replicas` replicas), with their logs and state in `store`, talking to other replicas
    /// through `transport`.
    pub async fn start(
        store: &Store,
        me: Member,
        (partitions, replicas): (u16, usize),
        transport: Arc<dyn Transport>,
        timing: Timing,
    ) -> Result<Self, ReplicationError> {
        let config = openraft::Config {
            cluster_name: "contrail".into(),
            heartbeat_interval: millis(timing.heartbeat),
            election_timeout_min: millis(timing.election.0),
            election_timeout_max: millis(timing.election.1),
            // A snapshot reads the partition's records from the store: rare enough.
            snapshot_policy: SnapshotPolicy::LogsSinceLast(20_000),
            max_in_snapshot_log_to_keep: 2_000,
            // Per chunk of a snapshot (3 MiB at most); its last chunk replaces the partition's
            // records and syncs them. The engine's 200 ms default is less than that takes
            // when several partitions catch up at once on a busy node.
            install_snapshot_timeout: INSTALL_SNAPSHOT_TIMEOUT_MS,
            ..Default::default()
        }
        .validate()
        .map_err(|e| ReplicationError::Failed(e.to_string()))?;
        let config = Arc::new(config);
        let id = node_id(&me.name);
        let mut groups = Vec::with_capacity(usize::from(partitions) + 1);
        // The member list's group last: numbered `partitions`.
        for partition in 0..=partitions {
            let (machine, written) = StateMachine::open(store.clone(), partition, partitions)?;
            let log = LogStore::open(store.clone(), partition, written)?;
            let network = Network::new(transport.clone(), partition);
            let raft = Raft::new(id, config.clone(), network, log, machine)
                .await
                .map_err(|e| ReplicationError::Failed(e.to_string()))?;
            groups.push(raft);
        }
        let members = groups
            .pop()
            .ok_or_else(|| ReplicationError::Failed("no member list group".into()))?;
        let resumed = groups.iter().map(|_| tokio::sync::Notify::new()).collect();
        let this = Self {
            inner: Arc::new(Inner {
                me,
                groups,
                members,
                timing,
                replicas,
                hints: std::sync::Mutex::default(),
                transport,
                store: store.clone(),
                moving: std::sync::Mutex::default(),
                resumed,
                leading_since: std::sync::Mutex::default(),
            }),
        };
        // A founding snapshot a crash interrupted is taken now.
        for (partition, raft) in this.all_groups() {
            if this.founding(partition) {
                tokio::spawn(snapshot_founding_state(
                    raft.clone(),
                    partition,
                    this.inner.store.clone(),
                ));
            }
        }
        Ok(this)
    }

    /// Whether the founding snapshot of `partition`'s group is still to be taken here.
    fn founding(&self, partition: PartitionId) -> bool {
        self.inner
            .store
            .get_raw(&keys::founding(partition))
            .map_or(true, |marker| marker.is_some())
    }

    /// Forms the groups of a new cluster of `members`: every partition this node replicates
    /// and that has no log yet starts with its replicas among them. Every founding member calls
    /// this with the same members (the engine allows that); a node that has a log already
    /// keeps it.
    pub async fn bootstrap(&self, members: &[Member]) -> Result<(), ReplicationError> {
        for (partition, raft) in self.all_groups() {
            let replicas = replicas_of(partition, members, self.inner.replicas);
            // A group with a log (or a vote) formed already: asking again only makes the
            // engine log its refusal.
            let formed = {
                let metrics = raft.metrics();
                let metrics = metrics.borrow();
                metrics.last_log_index.is_some() || metrics.current_term > 0
            };
            if formed || !replicas.iter().any(|m| m.name == self.inner.me.name) {
                continue;
            }
            let nodes: BTreeMap<u64, Member> = replicas
                .into_iter()
                .map(|m| (node_id(&m.name), m))
                .collect();
            match raft.initialize(nodes).await {
                Ok(()) => {
                    // Durably noted first: a crash before the snapshot is taken retries it.
                    let marker = vec![(keys::founding(partition), Some(vec![1]))];
                    let noted = self.inner.store.write_decided(marker, true);
                    if let Some(durable) =
                        noted.map_err(|e| ReplicationError::Failed(e.to_string()))?
                    {
                        durable
                            .await
                            .map_err(|e| ReplicationError::Failed(e.to_string()))?;
                    }
                    tokio::spawn(snapshot_founding_state(
                        raft.clone(),
                        partition,
                        self.inner.store.clone(),
                    ));
                }
                Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => return Err(ReplicationError::Failed(e.to_string())),
            }
        }
        Ok(())
    }

    /// Makes `partition`'s replicas the ones `members` call for ([`replicas_of`]), if this
    /// node leads it: new replicas join as learners and catch up first (at most
    /// `CATCH_UP`), then the voters change in one step of the engine's joint consensus. The
    /// member list's group is chosen the same way and keeps every other member as a learner.
    /// Returns whether anything changed.
    pub async fn reconcile(
        &self,
        partition: PartitionId,
        members: &[Member],
    ) -> Result<bool, ReplicationError> {
        let voters = replicas_of(partition, members, self.inner.replicas);
        // Every member follows the member list; partitions have no learners to keep.
        let learners: Vec<Member> = if partition == self.members_group() {
            members
                .iter()
                .filter(|m| !voters.contains(m))
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        self.reconcile_group(partition, &voters, &learners).await
    }

    /// Makes the group's voters `voters` and its learners `learners`, if this node leads it.
    async fn reconcile_group(
        &self,
        partition: PartitionId,
        voters: &[Member],
        learners: &[Member],
    ) -> Result<bool, ReplicationError> {
        if !self.serves(partition) {
            return Ok(false);
        }
        let raft = self.group(partition)?;
        let wanted: BTreeSet<u64> = voters.iter().map(|m| node_id(&m.name)).collect();
        let everyone: BTreeSet<u64> = voters
            .iter()
            .chain(learners)
            .map(|m| node_id(&m.name))
            .collect();
        let membership = || {
            let metrics = raft.metrics();
            let metrics = metrics.borrow();
            let membership = metrics.membership_config.membership();
            (
                membership.voter_ids().collect::<BTreeSet<u64>>(),
                membership
                    .nodes()
                    .map(|(id, _)| *id)
                    .collect::<BTreeSet<u64>>(),
            )
        };
        let (current, known) = membership();
        if current == wanted && known == everyone {
            return Ok(false);
        }
        let failed = |e: String| ReplicationError::Failed(format!("partition {partition}: {e}"));
        if self.founding(partition) {
            // A replica added now would replay the log from its start and miss what the
            // founding snapshot is about to hold.
            return Err(failed("its founding snapshot is not taken yet".into()));
        }
        for member in voters.iter().chain(learners) {
            let id = node_id(&member.name);
            if known.contains(&id) {
                continue;
            }
            tokio::time::timeout(CATCH_UP, raft.add_learner(id, member.clone(), true))
                .await
                .map_err(|_| failed(format!("{} did not catch up in time", member.name)))?
                .map_err(|e| failed(e.to_string()))?;
        }
        if current != wanted {
            // The engine promotes a learner however far behind it is: only one that has
            // caught up (one whose catching up timed out in an earlier round may not have)
            // may vote, or the group's writes would stall until it has.
            let lagging: Vec<&str> = voters
                .iter()
                .filter(|m| {
                    let id = node_id(&m.name);
                    !current.contains(&id) && !caught_up(raft, id)
                })
                .map(|m| m.name.as_str())
                .collect();
            if !lagging.is_empty() {
                return Err(failed(format!("{lagging:?} still catching up")));
            }
            raft.change_membership(wanted, false)
                .await
                .map_err(|e| failed(e.to_string()))?;
        }
        let (_, known) = membership();
        let stale: BTreeSet<u64> = known.difference(&everyone).copied().collect();
        if !stale.is_empty() {
            raft.change_membership(openraft::ChangeMembers::RemoveNodes(stale), false)
                .await
                .map_err(|e| failed(e.to_string()))?;
        }
        tracing::info!(
            partition,
            voters = ?voters.iter().map(|m| &m.name).collect::<Vec<_>>(),
            learners = ?learners.iter().map(|m| &m.name).collect::<Vec<_>>(),
            "group members changed"
        );
        Ok(true)
    }

    fn partitions(&self) -> impl Iterator<Item = (PartitionId, &Raft<Replicated>)> {
        (0..).zip(self.inner.groups.iter())
    }

    /// The group of `partition` (or of the member list: [`Replication::members_group`]).
    fn group(&self, partition: PartitionId) -> Result<&Raft<Replicated>, ReplicationError> {
        if partition == self.members_group() {
            return Ok(&self.inner.members);
        }
        self.inner
            .groups
            .get(usize::from(partition))
            .ok_or_else(|| ReplicationError::Failed(format!("no partition {partition}")))
    }

    /// The number of the group that decides the member list (after the partitions'):
    /// propose to it, watch it and ask whether this node leads it like a partition.
    pub fn members_group(&self) -> PartitionId {
        self.partition_count()
    }

    /// The groups this node runs: every partition, then the member list's.
    fn all_groups(&self) -> impl Iterator<Item = (PartitionId, &Raft<Replicated>)> {
        self.partitions()
            .chain(std::iter::once((self.members_group(), &self.inner.members)))
    }

    /// How many partitions there are.
    pub fn partition_count(&self) -> u16 {
        u16::try_from(self.inner.groups.len()).unwrap_or(u16::MAX)
    }

    /// The partition of a placement tag.
    pub fn partition_of(&self, tag: &str) -> PartitionId {
        partition_of(tag, self.partition_count())
    }

    /// Every change of `partition`'s state on this node (role, leader, term, log positions).
    pub fn changes(
        &self,
        partition: PartitionId,
    ) -> Option<tokio::sync::watch::Receiver<openraft::RaftMetrics<u64, Member>>> {
        self.group(partition).ok().map(|raft| raft.metrics())
    }

    /// The leader of `partition` as this node knows it.
    pub fn leader(&self, partition: PartitionId) -> Option<Member> {
        let raft = self.group(partition).ok()?;
        let known = {
            let metrics = raft.metrics();
            let metrics = metrics.borrow();
            metrics.current_leader.and_then(|leader| {
                let member = metrics.membership_config.membership().get_node(&leader)?;
                Some((metrics.current_term, member.clone()))
            })
        };
        // A member that holds no replica (or no longer does) learns of leaders from their
        // heartbeats; the newer term wins.
        let hint = self.hints().get(&partition).cloned();
        match (known, hint) {
            (Some((term, _)), Some((hinted, other))) if hinted > term => Some(other),
            (Some((_, member)), _) => Some(member),
            (None, hint) => hint.map(|(_, member)| member),
        }
    }

    /// The groups this node leads now, with their terms (for its heartbeats).
    pub fn led_here(&self) -> Vec<(PartitionId, u64)> {
        self.all_groups()
            .filter_map(|(partition, raft)| {
                let metrics = raft.metrics();
                let metrics = metrics.borrow();
                (metrics.state == ServerState::Leader).then_some((partition, metrics.current_term))
            })
            .collect()
    }

    /// Notes that member `name` (at `addr`) leads `leads` (group, term).
    pub fn heard_leads(&self, name: &str, addr: &str, leads: &[(PartitionId, u64)]) {
        let mut hints = self.hints();
        for &(partition, term) in leads {
            if hints
                .get(&partition)
                .is_none_or(|(known, _)| *known <= term)
            {
                let member = Member {
                    name: name.to_owned(),
                    addr: addr.to_owned(),
                };
                hints.insert(partition, (term, member));
            }
        }
    }

    fn hints(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<PartitionId, (u64, Member)>> {
        locked(&self.inner.hints)
    }

    /// Whether this node leads `partition`, has applied every entry committed before its term
    /// (so what it reads from the store is everything the partition decided), and heard from a
    /// majority more recently than any follower may stand for election (a lease: no other
    /// leader can have been elected meanwhile, clocks running at about the same rate).
    ///
    /// A leader cut off from its majority keeps calling itself leader; without the lease it
    /// would keep serving reads the majority has moved past. Its writes fail either way.
    ///
    /// This is what the store's fence asks: a leader handing the partition over still leads
    /// (its entities finish what they are doing) until it seals the partition.
    pub fn leads(&self, partition: PartitionId) -> bool {
        !self.sealed(partition) && self.holds_lease(partition)
    }

    /// Whether this node [`leads`](Self::leads) `partition` and takes new requests for it (it
    /// is not handing it over): what routing asks, on every request.
    pub fn serves(&self, partition: PartitionId) -> bool {
        !self.handing_over(partition) && self.holds_lease(partition)
    }

    /// [`Replication::leads`], handovers aside.
    fn holds_lease(&self, partition: PartitionId) -> bool {
        let Ok(raft) = self.group(partition) else {
            return false;
        };
        let lease = millis(self.inner.timing.election.0);
        let metrics = raft.metrics();
        let metrics = metrics.borrow();
        metrics.state == ServerState::Leader
            && metrics
                .last_applied
                .is_some_and(|applied| applied.leader_id.term == metrics.current_term)
            && metrics.millis_since_quorum_ack.is_some_and(|ms| ms < lease)
    }

    /// Completes when a handover of `partition` ended with this node still leading it (its
    /// entities were stopped and must be activated again).
    pub async fn resumed(&self, partition: PartitionId) {
        match self.inner.resumed.get(usize::from(partition)) {
            Some(notify) => notify.notified().await,
            None => std::future::pending().await,
        }
    }

    /// Writes `records` to `partition` and returns once a majority of its replicas has them
    /// on disk and this node has applied them.
    pub async fn propose(
        &self,
        partition: PartitionId,
        records: Records,
    ) -> Result<Decisions, ReplicationError> {
        let raft = self.group(partition)?;
        let started = std::time::Instant::now();
        let written = tokio::time::timeout(
            self.inner.timing.propose_timeout,
            raft.client_write(records),
        )
        .await;
        match written {
            Ok(Ok(written)) => {
                metrics::histogram!("contrail_partition_commit_seconds")
                    .record(started.elapsed().as_secs_f64());
                Ok(written.data)
            }
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(to)))) => {
                Err(ReplicationError::NotLeader {
                    partition,
                    leader: to.leader_node,
                })
            }
            // The group stopped (its storage failed, or the node is shutting down).
            Ok(Err(e)) => Err(ReplicationError::Failed(format!(
                "partition {partition}: {e}"
            ))),
            Err(_) => Err(ReplicationError::Unconfirmed {
                partition,
                why: format!(
                    "not committed within {} ms",
                    self.inner.timing.propose_timeout.as_millis()
                ),
            }),
        }
    }

    /// Serves a consensus message from another replica of `partition`.
    pub async fn serve(&self, partition: PartitionId, message: &[u8]) -> Vec<u8> {
        let answer = match (
            self.group(partition),
            postcard::from_bytes::<Message>(message),
        ) {
            (Err(e), _) => Answer::Refused(e.to_string()),
            (_, Err(e)) => Answer::Refused(format!("unreadable consensus message: {e}")),
            (Ok(raft), Ok(Message::Append(rpc))) => Answer::Append(raft.append_entries(rpc).await),
            (Ok(raft), Ok(Message::Vote(rpc))) => Answer::Vote(raft.vote(rpc).await),
            (Ok(raft), Ok(Message::Snapshot(rpc))) => {
                Answer::Snapshot(raft.install_snapshot(rpc).await)
            }
            (Ok(raft), Ok(Message::TakeLead)) => match raft.trigger().elect().await {
                Ok(()) => Answer::Standing,
                Err(e) => Answer::Refused(e.to_string()),
            },
        };
        // Encoding our own enum into a Vec cannot fail; an empty answer would read as
        // unreadable on the other side.
        postcard::to_allocvec(&answer).unwrap_or_default()
    }

    /// What this node knows of every partition.
    pub fn status(&self) -> Vec<PartitionStatus> {
        self.partitions()
            .map(|(partition, raft)| self.status_of(partition, raft))
            .collect()
    }

    /// What this node knows of the member list's group.
    pub fn member_list_status(&self) -> PartitionStatus {
        self.status_of(self.members_group(), &self.inner.members)
    }

    fn status_of(&self, partition: PartitionId, raft: &Raft<Replicated>) -> PartitionStatus {
        let serving = self.serves(partition);
        // As routing knows it (a group without a replica here: from its leader's heartbeats);
        // read before the metrics are borrowed below.
        let leader = self.leader(partition).map(|m| m.name);
        let metrics = raft.metrics();
        let metrics = metrics.borrow();
        let membership = metrics.membership_config.membership();
        let last = metrics.last_log_index.unwrap_or(0);
        let lag = metrics.replication.as_ref().map(|followers| {
            followers
                .values()
                .map(|matched| last.saturating_sub(matched.map_or(0, |m| m.index)))
                .max()
                .unwrap_or(0)
        });
        let committed = match &metrics.replication {
            Some(followers) => {
                let voters: BTreeSet<u64> = membership.voter_ids().collect();
                let mut matched: Vec<u64> = followers
                    .iter()
                    .filter(|(id, _)| voters.contains(id) && **id != metrics.id)
                    .map(|(_, m)| m.map_or(0, |m| m.index))
                    .chain(std::iter::once(last))
                    .collect();
                matched.sort_unstable_by(|a, b| b.cmp(a));
                matched.get(voters.len() / 2).copied()
            }
            None => metrics.last_applied.map(|l| l.index),
        };
        PartitionStatus {
            partition,
            leader,
            term: metrics.current_term,
            last_log_index: metrics.last_log_index,
            last_applied: metrics.last_applied.map(|l| l.index),
            replicas: membership
                .voter_ids()
                .filter_map(|id| membership.get_node(&id))
                .map(|m| m.name.clone())
                .collect(),
            learners: membership
                .learner_ids()
                .filter_map(|id| membership.get_node(&id))
                .map(|m| m.name.clone())
                .collect(),
            serving,
            lag,
            committed,
        }
    }

    /// Stops every group (this node's replicas go quiet; the others elect new leaders).
    pub async fn shutdown(&self) {
        for (_, raft) in self.all_groups() {
            let _ = raft.shutdown().await;
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod placement_tests {
    use super::*;
    use proptest::prelude::*;

    fn members(n: usize) -> Vec<Member> {
        (0..n)
            .map(|i| Member {
                name: format!("node-{i}"),
                addr: format!("127.0.0.1:{}", 7100 + i),
            })
            .collect()
    }

    proptest! {
        #[test]
        fn every_member_agrees_on_the_replicas(partition: u16, n in 1usize..8, rot in 0usize..8) {
            let ms = members(n);
            let mut rotated = ms.clone();
            rotated.rotate_left(rot % n);
            prop_assert_eq!(replicas_of(partition, &ms, 3), replicas_of(partition, &rotated, 3));
        }

        #[test]
        fn a_join_only_brings_the_joiner_in(partition: u16, n in 1usize..7) {
            let before = members(n);
            let mut after = before.clone();
            after.push(Member { name: "joiner".into(), addr: "127.0.0.1:1".into() });
            let (old, new) = (replicas_of(partition, &before, 3), replicas_of(partition, &after, 3));
            // Every new replica is an old one or the joiner; at most one old one leaves.
            prop_assert!(new.iter().all(|m| old.contains(m) || m.name == "joiner"));
            prop_assert!(old.iter().filter(|m| !new.contains(m)).count() <= 1);
        }

        #[test]
        fn a_removal_only_replaces_the_removed_member(partition: u16, n in 2usize..8, gone in 0usize..8) {
            let before = members(n);
            let gone = before[gone % n].clone();
            let after: Vec<Member> = before.iter().filter(|m| **m != gone).cloned().collect();
            let (old, new) = (replicas_of(partition, &before, 3), replicas_of(partition, &after, 3));
            prop_assert!(old.iter().filter(|m| **m != gone).all(|m| new.contains(m)));
            prop_assert_eq!(new.len(), old.len().min(after.len()));
        }
    }
}
