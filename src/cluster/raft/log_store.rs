//! A partition's consensus log and vote, kept in the node's store.
//!
//! Every partition's appends go through the store's one log writer, so the entries of all
//! partitions share its group commit, and an append is reported flushed only once the sync
//! (`fdatasync`) that covers it has returned. Nothing is acknowledged from memory.

use super::types::{PartitionId, Replicated, keys};
use crate::persistence::{Store, StoreError};
use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, StorageError, StorageIOError, Vote};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::watch;

type Error = StorageError<u64>;

/// One partition's log; clones share it (the engine's log reader is a clone).
#[derive(Clone)]
pub(super) struct LogStore {
    store: Store,
    partition: PartitionId,
    tail: Arc<Mutex<Tail>>,
    /// The index the partition's state machine has written up to (see [`LogStore::purge`]).
    applied: watch::Receiver<Option<u64>>,
}

/// Where the log ends, kept in memory (the store is the truth; this spares a scan per call).
#[derive(Debug, Default, Clone, Copy)]
struct Tail {
    last: Option<LogId<u64>>,
    purged: Option<LogId<u64>>,
}

impl LogStore {
    /// Opens partition `partition`'s log in `store`.
    pub(super) fn open(
        store: Store,
        partition: PartitionId,
        applied: watch::Receiver<Option<u64>>,
    ) -> Result<Self, StoreError> {
        let purged: Option<LogId<u64>> = read(&store, &keys::purged(partition))?;
        let newest = store
            .range_raw(
                &keys::entry(partition, 0),
                &keys::entry(partition, u64::MAX),
            )
            .next_back()
            .transpose()?;
        let last = match newest {
            Some((key, bytes)) => Some(decode::<Entry<Replicated>>(&key, &bytes)?.log_id),
            None => purged,
        };
        Ok(Self {
            store,
            partition,
            tail: Arc::new(Mutex::new(Tail { last, purged })),
            applied,
        })
    }

    fn tail(&self) -> Tail {
        *self.tail.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, change: impl FnOnce(&mut Tail)) {
        change(&mut self.tail.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// Writes `ops` and waits for the sync that covers them.
    async fn write_durably(&self, ops: Vec<(String, Option<Vec<u8>>)>) -> Result<(), StoreError> {
        match self.store.write_decided(ops, true)? {
            Some(durable) => durable.await,
            None => Ok(()),
        }
    }
}

impl RaftLogReader<Replicated> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<Replicated>>, Error> {
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&i) => i.saturating_add(1),
            Bound::Excluded(&i) => i,
            Bound::Unbounded => u64::MAX,
        };
        if start >= end {
            return Ok(Vec::new());
        }
        let from = keys::entry(self.partition, start);
        let to = keys::entry(self.partition, end);
        self.store
            .range_raw(&from, &to)
            .map(|item| {
                let (key, bytes) = item?;
                decode::<Entry<Replicated>>(&key, &bytes)
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StorageIOError::read_logs(&e).into())
    }
}

impl RaftLogStorage<Replicated> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<Replicated>, Error> {
        let tail = self.tail();
        Ok(LogState {
            last_purged_log_id: tail.purged,
            last_log_id: tail.last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), Error> {
        let key = keys::vote(self.partition);
        let value = encode(&key, vote).map_err(|e| StorageIOError::write_vote(&e))?;
        self.write_durably(vec![(key, Some(value))])
            .await
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, Error> {
        read(&self.store, &keys::vote(self.partition))
            .map_err(|e| StorageIOError::read_vote(&e).into())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<Replicated>) -> Result<(), Error>
    where
        I: IntoIterator<Item = Entry<Replicated>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut ops = Vec::new();
        let mut last = None;
        for entry in entries {
            let key = keys::entry(self.partition, entry.log_id.index);
            let value = encode(&key, &entry).map_err(|e| StorageIOError::write_logs(&e))?;
            ops.push((key, Some(value)));
            last = Some(entry.log_id);
        }
        let Some(last) = last else {
            callback.log_io_completed(Ok(()));
            return Ok(());
        };
        // The entries are visible to reads once written (before the sync), and reported
        // flushed only after it.
        let durable = self
            .store
            .write_decided(ops, true)
            .map_err(|e| StorageIOError::write_logs(&e))?;
        self.update(|tail| tail.last = Some(last));
        let synced = match durable {
            Some(durable) => durable.await,
            None => Ok(()),
        };
        callback.log_io_completed(synced.map_err(std::io::Error::other));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), Error> {
        // Entries from `log_id` on were never committed: a new leader overwrote them.
        let last = self.tail().last.map_or(0, |l| l.index);
        let ops = (log_id.index..=last)
            .map(|i| (keys::entry(self.partition, i), None))
            .collect();
        self.write_durably(ops)
            .await
            .map_err(|e| StorageIOError::write_logs(&e))?;
        let previous = if log_id.index == 0 {
            None
        } else {
            let mut reader = self.clone();
            reader
                .try_get_log_entries(log_id.index - 1..log_id.index)
                .await?
                .pop()
                .map(|e| e.log_id)
        };
        self.update(|tail| tail.last = previous.or(tail.purged));
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), Error> {
        // Entries up to `log_id` are in a snapshot: drop them, and remember where the log now
        // starts (atomically with the drop). Not before the state machine's write of that
        // snapshot is queued (an installed snapshot is written concurrently): the store applies
        // and syncs in queue order, so no crash can keep the purge and lose the snapshot.
        let mut applied = self.applied.clone();
        applied
            .wait_for(|applied| applied.is_some_and(|index| index >= log_id.index))
            .await
            .map_err(|e| StorageIOError::write_logs(&e))?;
        // Only entries this log holds: after a snapshot was installed, the log may hold none
        // of the entries the snapshot covers.
        let tail = self.tail();
        let first = tail.purged.map_or(0, |p| p.index + 1);
        let mut ops: Vec<_> = match tail.last {
            Some(last) => (first..=last.index.min(log_id.index))
                .map(|i| (keys::entry(self.partition, i), None))
                .collect(),
            None => Vec::new(),
        };
        let key = keys::purged(self.partition);
        let value = encode(&key, &log_id).map_err(|e| StorageIOError::write_logs(&e))?;
        ops.push((key, Some(value)));
        self.write_durably(ops)
            .await
            .map_err(|e| StorageIOError::write_logs(&e))?;
        self.update(|tail| {
            tail.purged = Some(log_id);
            if tail.last.is_none_or(|last| last.index < log_id.index) {
                tail.last = Some(log_id);
            }
        });
        Ok(())
    }
}

/// Encodes a consensus record (postcard, like every other record).
pub(super) fn encode<T: Serialize>(key: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    postcard::to_allocvec(value).map_err(|e| StoreError::Encode {
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

/// Decodes a consensus record, naming its key when it is unreadable.
pub(super) fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    postcard::from_bytes(bytes).map_err(|e| StoreError::Corrupt {
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

/// Reads and decodes one consensus record.
pub(super) fn read<T: DeserializeOwned>(store: &Store, key: &str) -> Result<Option<T>, StoreError> {
    store
        .get_raw(key)?
        .map(|bytes| decode(key, &bytes))
        .transpose()
}
