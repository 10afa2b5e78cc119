//! The node's store: typed reads, atomic batched writes, durable acknowledgements.

use super::codec;
use super::group_commit::{FlushWaiter, Flusher};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Why a storage operation failed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened, written or flushed.
    #[error("storage I/O failed: {0}")]
    Io(String),
    /// A record could not be decoded: the store holds something this build cannot read.
    #[error("record {key} is unreadable: {reason}")]
    Corrupt {
        /// The record's key.
        key: String,
        /// What the decoder said.
        reason: String,
    },
    /// A record could not be encoded.
    #[error("record {key} could not be encoded: {reason}")]
    Encode {
        /// The record's key.
        key: String,
        /// What the encoder said.
        reason: String,
    },
    /// The store is shutting down.
    #[error("storage is shut down")]
    Closed,
    /// A flush failed earlier; writes are refused until the node restarts.
    #[error("storage failed earlier; writes are refused until the node restarts")]
    Failed,
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Io(e.to_string())
    }
}

/// Records to write together: all of them become visible at once, or none.
#[derive(Debug, Default)]
pub struct WriteBatch {
    batch: sled::Batch,
    len: usize,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a record.
    pub fn put<T: Serialize>(&mut self, key: &str, value: &T) -> Result<&mut Self, StoreError> {
        self.batch
            .insert(key.as_bytes(), codec::encode(key, value)?);
        self.len += 1;
        Ok(self)
    }

    /// Adds (or replaces) a record already encoded (records handed over between nodes).
    pub fn put_raw(&mut self, key: &str, value: Vec<u8>) -> &mut Self {
        self.batch.insert(key.as_bytes(), value);
        self.len += 1;
        self
    }

    /// Removes a record (a no-op if it does not exist).
    pub fn delete(&mut self, key: &str) -> &mut Self {
        self.batch.remove(key.as_bytes());
        self.len += 1;
        self
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A handle to the node's store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    flusher: Flusher,
}

/// How long opening waits for a store that is still locked.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Opens sled, waiting briefly while the database is still locked: a store closed a moment ago
/// in this process is released by sled's own I/O threads just after the close returns. A store
/// held by another live process stays locked, and that error is reported after [`LOCK_WAIT`].
fn open_db(path: &Path) -> Result<sled::Db, sled::Error> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match sled::Config::new().path(path).open() {
            Err(sled::Error::Io(e)) if is_lock_conflict(&e) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// Whether opening failed because the database is locked. sled 0.34 reports it as an `Other`
/// I/O error whose message names the lock (the OS's `WouldBlock` is only in the text).
fn is_lock_conflict(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock
        || e.to_string().starts_with("could not acquire lock")
}

impl Store {
    /// Opens (or creates) the store at `path` and starts its group-commit task.
    /// Must be called inside a tokio runtime.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = open_db(path)
            .map_err(|e| StoreError::Io(format!("cannot open store at {}: {e}", path.display())))?;
        let flusher = Flusher::spawn();
        Ok(Self {
            inner: Arc::new(Inner { db, flusher }),
        })
    }

    /// A store in a temporary directory that is deleted when it closes, and whose flushes
    /// skip the disk sync: for benchmarks and tests that measure everything but the disk.
    /// Must be called inside a tokio runtime.
    pub fn temporary() -> Result<Self, StoreError> {
        let db = sled::Config::new().temporary(true).open()?;
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                flusher: Flusher::spawn(),
            }),
        })
    }

    /// Reads one record.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        match self.inner.db.get(key.as_bytes())? {
            Some(bytes) => codec::decode(key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Whether a record exists, without decoding it.
    pub fn contains(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.inner.db.contains_key(key.as_bytes())?)
    }

    /// How many records there are under `prefix` (values are not decoded).
    pub fn count_prefix(&self, prefix: &str) -> u64 {
        self.inner.db.scan_prefix(prefix.as_bytes()).keys().count() as u64
    }

    /// Every record under `prefix`, in key order, with the key's remainder after the prefix.
    pub fn scan<T: DeserializeOwned>(
        &self,
        prefix: &str,
    ) -> impl Iterator<Item = Result<(String, T), StoreError>> + '_ {
        let plen = prefix.len();
        self.inner
            .db
            .scan_prefix(prefix.as_bytes())
            .map(move |item| {
                let (k, v) = item?;
                let key = String::from_utf8(k.to_vec()).map_err(|_| StoreError::Corrupt {
                    key: String::from_utf8_lossy(&k).into_owned(),
                    reason: "key is not UTF-8".into(),
                })?;
                let value = codec::decode(&key, &v)?;
                Ok((key[plen..].to_owned(), value))
            })
    }

    /// Every record, still encoded, in key order (for handing records over to another node).
    pub fn raw_entries(&self) -> impl Iterator<Item = Result<(String, Vec<u8>), StoreError>> + '_ {
        self.inner.db.iter().map(|item| {
            let (k, v) = item?;
            let key = String::from_utf8(k.to_vec()).map_err(|_| StoreError::Corrupt {
                key: String::from_utf8_lossy(&k).into_owned(),
                reason: "key is not UTF-8".into(),
            })?;
            Ok((key, v.to_vec()))
        })
    }

    /// Applies `batch` atomically now (later reads see it) and returns a future that resolves
    /// once it is on disk. Batches become durable in the order they were committed.
    pub fn commit(&self, batch: WriteBatch) -> Result<Durable, StoreError> {
        if self.inner.flusher.failed() {
            return Err(StoreError::Failed);
        }
        self.inner.db.apply_batch(batch.batch)?;
        Ok(Durable(self.inner.flusher.wait(&self.inner.db)))
    }

    /// Whether the store accepts writes (false after a failed flush).
    pub fn healthy(&self) -> bool {
        !self.inner.flusher.failed()
    }

    /// How many handles to this store exist (the database closes when the last one drops).
    pub fn handles(&self) -> usize {
        Arc::strong_count(&self.inner)
    }

    /// Like [`Store::commit`], but only if `guard_key` does not exist yet: then the guard record
    /// and the batch are written atomically. Otherwise nothing is written and the existing guard
    /// record is returned (for idempotency keys: the first request wins, atomically).
    pub fn commit_if_absent<T: Serialize + DeserializeOwned>(
        &self,
        guard_key: &str,
        guard: &T,
        batch: WriteBatch,
    ) -> Result<Result<Durable, T>, StoreError> {
        use sled::transaction::{ConflictableTransactionError, TransactionError};
        if self.inner.flusher.failed() {
            return Err(StoreError::Failed);
        }
        let encoded = codec::encode(guard_key, guard)?;
        let outcome = self.inner.db.transaction(|tx| {
            if let Some(existing) = tx.get(guard_key.as_bytes())? {
                return Err(ConflictableTransactionError::Abort(existing));
            }
            tx.insert(guard_key.as_bytes(), encoded.as_slice())?;
            tx.apply_batch(&batch.batch)?;
            Ok(())
        });
        match outcome {
            Ok(()) => Ok(Ok(Durable(self.inner.flusher.wait(&self.inner.db)))),
            Err(TransactionError::Abort(existing)) => Ok(Err(codec::decode(guard_key, &existing)?)),
            Err(TransactionError::Storage(e)) => Err(e.into()),
        }
    }

    /// Makes everything written so far durable.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.inner.flusher.wait(&self.inner.db).await
    }
}

/// Resolves when a committed batch is on disk.
#[must_use = "a write is not acknowledged until it is durable"]
pub struct Durable(FlushWaiter);

impl Future for Durable {
    type Output = Result<(), StoreError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[tokio::test]
    async fn committed_records_survive_reopen() -> TestResult {
        let dir = tempfile::tempdir()?;
        {
            let store = Store::open(dir.path())?;
            let mut batch = WriteBatch::new();
            batch
                .put("a/1", &1u32)?
                .put("a/2", &2u32)?
                .put("b/1", &"x")?;
            store.commit(batch)?.await?;
            let mut del = WriteBatch::new();
            del.delete("a/2");
            store.commit(del)?.await?;
        }
        let store = Store::open(dir.path())?;
        let got: Vec<(String, u32)> = store.scan("a/").collect::<Result<_, _>>()?;
        assert_eq!(got, vec![("1".to_owned(), 1)]);
        assert_eq!(store.get::<String>("b/1"), Ok(Some("x".into())));
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn opening_waits_for_a_store_closed_a_moment_later() -> TestResult {
        let dir = tempfile::tempdir()?;
        let first = Store::open(dir.path())?;
        let closer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(first);
        });
        let second = Store::open(dir.path());
        closer.join().map_err(|_| "closer panicked")?;
        assert!(second.is_ok(), "{:?}", second.err());
        Ok(())
    }

    #[tokio::test]
    async fn many_concurrent_commits_share_flushes() -> TestResult {
        let dir = tempfile::tempdir()?;
        let store = Store::open(dir.path())?;
        let tasks: Vec<_> = (0..200u32)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut b = WriteBatch::new();
                    b.put(&format!("k/{i:04}"), &i)?;
                    store.commit(b)?.await
                })
            })
            .collect();
        for t in tasks {
            t.await??;
        }
        assert_eq!(store.scan::<u32>("k/").count(), 200);
        assert!(
            store.inner.flusher.flushes() < 200,
            "every commit flushed alone"
        );
        Ok(())
    }
}
