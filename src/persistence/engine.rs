//! The storage engine: [fjall](https://crates.io/crates/fjall), an LSM-tree whose journal is
//! the write-ahead log. This is the only file that names it.
//!
//! Why fjall (measured in `benches/storage.rs`, figures in BENCHMARKS.md): a commit is a
//! sequential append to one journal, and making a group of commits durable is one
//! `fdatasync` of that file, so group commit costs about what the disk's raw sync costs.
//! It is maintained, pure Rust, and recovers the journal after a crash up to the last complete
//! batch (batches carry checksums). redb, the other candidate, copies B-tree pages on every
//! commit and syncs more than it appends; sled, the original choice, never fsyncs at all.

use super::StoreError;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use std::path::Path;
use std::time::{Duration, Instant};

/// The one keyspace every record lives in (so any batch of records is atomic).
const RECORDS: &str = "records";

/// How long opening waits for a database another handle in this process is closing.
const LOCK_WAIT: Duration = Duration::from_secs(15);

/// An open database; cheap to clone (both handles share it).
#[derive(Clone)]
pub(crate) struct Engine {
    db: Database,
    records: Keyspace,
}

impl From<fjall::Error> for StoreError {
    fn from(e: fjall::Error) -> Self {
        StoreError::Io(e.to_string())
    }
}

impl Engine {
    /// Opens (or creates) the database at `path` with a block cache of `cache_bytes`; with
    /// `temporary`, the directory is deleted when the database closes.
    ///
    /// A database still locked by a handle that is closing in this process is waited for
    /// briefly; one held by another live process stays locked, reported after [`LOCK_WAIT`].
    pub(crate) fn open(path: &Path, cache_bytes: u64, temporary: bool) -> Result<Self, StoreError> {
        let deadline = Instant::now() + LOCK_WAIT;
        let db = loop {
            let opened = Database::builder(path)
                .cache_size(cache_bytes)
                // Only the log writer's persist reaches the OS: one write per group.
                .manual_journal_persist(true)
                .temporary(temporary)
                .open();
            match opened {
                Err(fjall::Error::Locked) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => {
                    return Err(StoreError::Io(format!(
                        "cannot open store at {}: {e}",
                        path.display()
                    )));
                }
                Ok(db) => break db,
            }
        };
        let records = db.keyspace(RECORDS, KeyspaceCreateOptions::default)?;
        Ok(Self { db, records })
    }

    /// One record's encoded value.
    pub(crate) fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.records.get(key)?.map(|v| v.to_vec()))
    }

    /// Whether a record exists.
    pub(crate) fn contains(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.records.contains_key(key)?)
    }

    /// Records under `prefix` (every record for an empty prefix), in key order.
    pub(crate) fn scan(
        &self,
        prefix: &str,
    ) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), StoreError>> + use<> {
        self.records.prefix(prefix).map(|guard| {
            let (k, v) = guard.into_inner()?;
            Ok((k.to_vec(), v.to_vec()))
        })
    }

    /// Records with keys in `start..end`, in key order.
    pub(crate) fn range(
        &self,
        start: &str,
        end: &str,
    ) -> impl DoubleEndedIterator<Item = Result<(Vec<u8>, Vec<u8>), StoreError>> + use<> {
        self.records
            .range(start.to_owned()..end.to_owned())
            .map(|guard| {
                let (k, v) = guard.into_inner()?;
                Ok((k.to_vec(), v.to_vec()))
            })
    }

    /// How many records there are under `prefix` (values are not read).
    pub(crate) fn count(&self, prefix: &str) -> u64 {
        self.records.prefix(prefix).count() as u64
    }

    /// Applies `ops` as one atomic batch: journaled (not yet synced) and visible to reads.
    pub(crate) fn apply(&self, ops: Vec<super::log::Op>) -> Result<(), StoreError> {
        let mut batch = self.db.batch().durability(None);
        for (key, value) in ops {
            match value {
                Some(value) => batch.insert(&self.records, key, value),
                None => batch.remove(&self.records, key),
            }
        }
        Ok(batch.commit()?)
    }

    /// Hands what was applied to the OS and, with `sync`, `fdatasync`s the journal.
    pub(crate) fn persist(&self, sync: bool) -> Result<(), StoreError> {
        let mode = if sync {
            PersistMode::SyncData
        } else {
            PersistMode::Buffer
        };
        Ok(self.db.persist(mode)?)
    }
}
