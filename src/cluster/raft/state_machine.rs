//! A partition's state machine: the records its log decided, written into the node's store.
//!
//! Applying an entry writes its records exactly as the proposer sealed them, together with
//! the position applied (atomically, in one batch), without waiting for a sync: the entry is
//! durable in the log already, and after a crash the log is applied again from the position
//! that reached the disk. A snapshot is every record of the partition, read from the store.

use super::log_store::{decode, encode, read};
use super::types::{
    Batch, Decisions, MEMBERS, Member, PartitionId, Replicated, keys, partition_of,
};
use crate::cluster::placement::tag_of_key;
use crate::persistence::{Store, StoreError};
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{Entry, EntryPayload, LogId, StorageError, StorageIOError, StoredMembership};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Cursor;
use tokio::sync::watch;

type Error = StorageError<u64>;

/// How far a partition's state machine has applied its log (persisted with what it applied).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Applied {
    log_id: Option<LogId<u64>>,
    membership: StoredMembership<u64, Member>,
}

/// One partition's state machine.
pub(super) struct StateMachine {
    store: Store,
    partition: PartitionId,
    partitions: u16,
    applied: Applied,
    /// Tells the partition's log how far this state machine has written (it purges no further).
    written: watch::Sender<Option<u64>>,
}

impl StateMachine {
    /// Opens partition `partition` (of `partitions`) in `store`.
    pub(super) fn open(
        store: Store,
        partition: PartitionId,
        partitions: u16,
    ) -> Result<(Self, watch::Receiver<Option<u64>>), StoreError> {
        let applied: Applied = read(&store, &keys::applied(partition))?.unwrap_or_default();
        let (written, progress) = watch::channel(applied.log_id.map(|l| l.index));
        let machine = Self {
            store,
            partition,
            partitions,
            applied,
            written,
        };
        Ok((machine, progress))
    }

    /// Publishes how far this state machine has written (its writes are queued in order).
    fn written_up_to(&self) {
        self.written
            .send_replace(self.applied.log_id.map(|l| l.index));
    }

    /// Whether `key` is one of this partition's records (the member list's group, numbered
    /// after the partitions, holds the member list).
    fn owns(&self, key: &str) -> bool {
        if self.partition == self.partitions {
            return key.starts_with(MEMBERS);
        }
        tag_of_key(key).is_some_and(|tag| partition_of(&tag, self.partitions) == self.partition)
    }

    /// Every record of this partition, still encoded.
    fn records(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.store
            .raw_entries()
            .filter(|item| item.as_ref().map_or(true, |(key, _)| self.owns(key)))
            .collect()
    }

    /// Whether `batch` is written (`None`), or refused because its guard's record exists
    /// (`Some` of that record; one written earlier in this apply reads as its own key).
    fn decide(
        &self,
        batch: &Batch,
        guarded: &HashMap<String, Vec<u8>>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(guard) = &batch.guard else {
            return Ok(None);
        };
        if let Some(value) = guarded.get(guard) {
            // Written by an earlier batch of this apply, not yet in the store.
            return Ok(Some(value.clone()));
        }
        self.store.get_raw(guard)
    }

    /// The marker of what is applied, as a write.
    fn applied_op(&self) -> Result<(String, Option<Vec<u8>>), StoreError> {
        let key = keys::applied(self.partition);
        let value = encode(&key, &self.applied)?;
        Ok((key, Some(value)))
    }
}

/// Builds a snapshot from the records read when the builder was made (the state machine
/// applies nothing in between: the engine asks for the builder between two applies).
pub(super) struct Builder {
    partition: PartitionId,
    applied: Applied,
    records: Result<Vec<(String, Vec<u8>)>, StoreError>,
}

impl RaftSnapshotBuilder<Replicated> for Builder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<Replicated>, Error> {
        let records = std::mem::replace(&mut self.records, Ok(Vec::new()))
            .map_err(|e| StorageIOError::read_state_machine(&e))?;
        let key = format!("raft/{:05}/snapshot", self.partition);
        let data = encode(&key, &records).map_err(|e| StorageIOError::read_state_machine(&e))?;
        let snapshot_id = match self.applied.log_id {
            Some(id) => format!("{}-{}-{}", self.partition, id.leader_id.term, id.index),
            None => format!("{}-empty", self.partition),
        };
        Ok(Snapshot {
            meta: SnapshotMeta {
                last_log_id: self.applied.log_id,
                last_membership: self.applied.membership.clone(),
                snapshot_id,
            },
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<Replicated> for StateMachine {
    type SnapshotBuilder = Builder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, Member>), Error> {
        Ok((self.applied.log_id, self.applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Decisions>, Error>
    where
        I: IntoIterator<Item = Entry<Replicated>> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let mut ops = Vec::new();
        let mut replies = Vec::new();
        // Guards written by earlier batches of this apply (not in the store yet).
        let mut guarded = HashMap::new();
        for entry in entries {
            let mut decisions = Decisions::new();
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(records) => {
                    for batch in records.0 {
                        let decision = self
                            .decide(&batch, &guarded)
                            .map_err(|e| StorageIOError::read_state_machine(&e))?;
                        if decision.is_none() {
                            if let Some(guard) = batch.guard {
                                let value = batch
                                    .ops
                                    .iter()
                                    .rev()
                                    .find(|(key, _)| *key == guard)
                                    .and_then(|(_, value)| value.clone());
                                if let Some(value) = value {
                                    guarded.insert(guard, value);
                                }
                            }
                            ops.extend(batch.ops);
                        }
                        decisions.push(decision);
                    }
                }
                EntryPayload::Membership(membership) => {
                    self.applied.membership = StoredMembership::new(Some(entry.log_id), membership);
                }
            }
            self.applied.log_id = Some(entry.log_id);
            replies.push(decisions);
        }
        if replies.is_empty() {
            return Ok(replies);
        }
        ops.push(
            self.applied_op()
                .map_err(|e| StorageIOError::write_state_machine(&e))?,
        );
        let failed = |e: &StoreError| StorageIOError::write_state_machine(e);
        self.store
            .write_decided(ops, false)
            .map_err(|e| failed(&e))?;
        self.written_up_to();
        // Visible to reads before the proposer hears back (not yet synced: the log is).
        self.store.local_caught_up().await.map_err(|e| failed(&e))?;
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        Builder {
            partition: self.partition,
            applied: self.applied.clone(),
            records: self.records(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, Error> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, Member>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), Error> {
        let data = snapshot.into_inner();
        let failed = |e: &StoreError| StorageIOError::write_snapshot(Some(meta.signature()), e);
        let key = format!("raft/{:05}/snapshot", self.partition);
        let records: Vec<(String, Vec<u8>)> = decode(&key, &data).map_err(|e| failed(&e))?;
        // Replace the partition's records with the snapshot's, atomically.
        let mut ops: Vec<(String, Option<Vec<u8>>)> = self
            .records()
            .map_err(|e| failed(&e))?
            .into_iter()
            .map(|(key, _)| (key, None))
            .collect();
        ops.extend(records.into_iter().map(|(k, v)| (k, Some(v))));
        self.applied = Applied {
            log_id: meta.last_log_id,
            membership: meta.last_membership.clone(),
        };
        ops.push(self.applied_op().map_err(|e| failed(&e))?);
        let durable = self
            .store
            .write_decided(ops, true)
            .map_err(|e| failed(&e))?;
        // Queued: the log may now purge what the snapshot covers (the engine purges it as soon
        // as the snapshot is installed, and waits for that until it answers the leader).
        self.written_up_to();
        if let Some(durable) = durable {
            durable.await.map_err(|e| failed(&e))?;
        }
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<Replicated>>, Error> {
        // Always the state as applied now: it covers every entry the log may have purged
        // (a kept copy of an older snapshot might not).
        let mut builder = self.get_snapshot_builder().await;
        builder.build_snapshot().await.map(Some)
    }
}
