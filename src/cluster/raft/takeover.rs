//! Standing for election as soon as a dead leader's lease allows, instead of waiting for the
//! engine's election timer.
//!
//! A follower of openraft 0.9 stands only after the leader's lease (`election_timeout_max`
//! since the last heartbeat) *and* a random election timeout have passed, plus twice the
//! maximum when it has seen a longer log than its own: 1.5–2.5 election timeouts, 4.5 in the
//! worst case. The transport tells us much sooner that a peer is gone: its session closes the
//! moment its process dies. Then one surviving voter of each group the peer led (the first by
//! id; the next ones a little later, in case the first is gone too or loses) asks the engine
//! to stand as soon as the other voters' lease has lapsed, when they may grant their vote.
//!
//! This only anticipates the engine's own timer, and only for a peer nothing was heard from
//! since its session closed: a leader that is alive keeps its lease (its voters refuse the
//! vote until it lapses) and is not disturbed more than by a timer that fires early.

use super::{Raft, Replicated, Replication, node_id};
use openraft::ServerState;
use std::time::Duration;
use tokio::time::Instant;

/// How long after the lease a surviving voter stands (the vote request must reach voters
/// whose lease has lapsed; their clocks started at the last heartbeat, before the kill).
const MARGIN: Duration = Duration::from_millis(50);
/// Between one surviving voter's turn and the next's.
const NEXT_TURN: Duration = Duration::from_millis(300);

impl Replication {
    /// `peer`'s session closed at `since`: for every group it led, the surviving voters take
    /// turns standing once its lease lapses, while `silent()` says nothing was heard from it
    /// since and no election has happened yet.
    pub fn leader_lost(
        &self,
        peer: &str,
        since: Instant,
        silent: impl Fn() -> bool + Clone + Send + Sync + 'static,
    ) {
        let lost = node_id(peer);
        let me = node_id(&self.inner.me.name);
        let lease = self.inner.timing.election.1;
        let groups = self
            .partitions()
            .chain(std::iter::once((self.members_group(), &self.inner.members)));
        for (partition, raft) in groups {
            let (term, turn) = {
                let metrics = raft.metrics();
                let metrics = metrics.borrow();
                if metrics.current_leader != Some(lost) || metrics.state != ServerState::Follower {
                    continue;
                }
                let mut survivors: Vec<u64> = metrics
                    .membership_config
                    .membership()
                    .voter_ids()
                    .filter(|id| *id != lost)
                    .collect();
                survivors.sort_unstable();
                let Some(turn) = survivors.iter().position(|id| *id == me) else {
                    continue;
                };
                (metrics.current_term, turn)
            };
            let raft = raft.clone();
            let silent = silent.clone();
            let at = since
                + lease
                + MARGIN
                + NEXT_TURN.saturating_mul(u32::try_from(turn).unwrap_or(u32::MAX));
            let peer = peer.to_owned();
            tokio::spawn(async move {
                tokio::time::sleep_until(at).await;
                if !silent() || !still_waiting(&raft, term) {
                    return;
                }
                tracing::info!(
                    partition,
                    peer,
                    term,
                    "its leader's session closed; standing for election"
                );
                if let Err(e) = raft.trigger().elect().await {
                    tracing::warn!(partition, error = %e, "could not stand for election");
                }
            });
        }
    }
}

/// Whether the group has not elected anyone since `term` and this node does not lead it.
fn still_waiting(raft: &Raft<Replicated>, term: u64) -> bool {
    let metrics = raft.metrics();
    let metrics = metrics.borrow();
    metrics.current_term == term && metrics.state == ServerState::Follower
}
