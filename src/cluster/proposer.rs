//! The store's writes on a replicated node: one queue per partition, whose writes travel to
//! the partition's group in order, as few log entries as possible — the batches queued while
//! one entry is being replicated become the next entry (group commit, as the consensus log's
//! batching).
//!
//! A write the group refuses (this node no longer leads the partition, or no majority
//! confirmed it in time) means this node's actors of that partition may hold state the
//! partition never decided: they are stopped, and the next request loads what was decided.

use super::placement::tag_of_key;
use super::raft::{Batch, Records, Replication, partition_of};
use crate::persistence::{Decided, Proposal, Replicate, StoreError, Verdict};
use tokio::sync::{mpsc, oneshot};

/// Most bytes of records in one log entry (more wait for the next).
const ENTRY_BYTES: usize = 1 << 20;
/// Most batches in one log entry.
const ENTRY_BATCHES: usize = 1_024;

type Answer = oneshot::Sender<Verdict>;

/// The partitions' write queues (the store's [`Replicate`]).
pub(super) struct Proposer {
    partitions: u16,
    queues: Vec<mpsc::UnboundedSender<(Proposal, Answer)>>,
}

impl Proposer {
    /// Starts one queue per partition of `replication`; `refused` is told the partition of
    /// every refused entry.
    pub(super) fn start(
        replication: &Replication,
        refused: impl Fn(u16) + Send + Sync + Clone + 'static,
    ) -> Self {
        let partitions = replication.partition_count();
        let queues = (0..partitions)
            .map(|partition| {
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(drain(replication.clone(), partition, rx, refused.clone()));
                tx
            })
            .collect();
        Self { partitions, queues }
    }
}

impl Replicate for Proposer {
    fn partition_of(&self, key: &str) -> Option<u16> {
        tag_of_key(key).map(|tag| partition_of(&tag, self.partitions))
    }

    fn submit(&self, partition: u16, proposal: Proposal) -> Decided {
        let (answer, decided) = oneshot::channel();
        match self.queues.get(usize::from(partition)) {
            Some(queue) => {
                if let Err(mpsc::error::SendError((_, answer))) = queue.send((proposal, answer)) {
                    let _ = answer.send(Err(StoreError::Closed));
                }
            }
            None => {
                let _ = answer.send(Err(StoreError::Io(format!("no partition {partition}"))));
            }
        }
        decided
    }
}

/// Replicates `partition`'s queued writes, one log entry at a time, until the store goes.
async fn drain(
    replication: Replication,
    partition: u16,
    mut queue: mpsc::UnboundedReceiver<(Proposal, Answer)>,
    refused: impl Fn(u16),
) {
    while let Some(first) = queue.recv().await {
        let mut size = bytes(&first.0);
        let mut entry = vec![first];
        while size < ENTRY_BYTES && entry.len() < ENTRY_BATCHES {
            match queue.try_recv() {
                Ok(next) => {
                    size += bytes(&next.0);
                    entry.push(next);
                }
                Err(_) => break,
            }
        }
        let first_key = entry
            .first()
            .and_then(|(p, _)| p.ops.first())
            .map(|(key, _)| key.clone())
            .unwrap_or_default();
        let (batches, answers): (Vec<Batch>, Vec<Answer>) = entry
            .into_iter()
            .map(|(p, answer)| {
                (
                    Batch {
                        ops: p.ops,
                        guard: p.guard,
                    },
                    answer,
                )
            })
            .unzip();
        match replication.propose(partition, Records(batches)).await {
            Ok(decisions) if decisions.len() == answers.len() => {
                for (answer, decision) in answers.into_iter().zip(decisions) {
                    let _ = answer.send(Ok(decision));
                }
            }
            outcome => {
                let why = match outcome {
                    Ok(_) => "the partition's log answered for another entry".to_owned(),
                    Err(e) => e.to_string(),
                };
                tracing::warn!(partition, error = %why, "replicated write refused");
                refused(partition);
                for answer in answers {
                    let _ = answer.send(Err(StoreError::Fenced {
                        key: first_key.clone(),
                        why: why.clone(),
                    }));
                }
            }
        }
    }
}

fn bytes(proposal: &Proposal) -> usize {
    proposal
        .ops
        .iter()
        .map(|(key, value)| key.len() + value.as_ref().map_or(0, Vec::len))
        .sum()
}
