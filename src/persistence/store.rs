//! The node's store: typed reads, atomic batched writes, durable acknowledgements.
//!
//! Why a layer over the engine: callers think in records and acknowledgements, not in
//! journals. [`Store::commit`] orders a batch in the node's one log and hands back a
//! [`Durable`] to await before answering anyone; [`Store::record`] writes without a waiter
//! when a later awaited sync covers it; the cluster's fence is checked on every write.

use super::codec;
use super::engine::Engine;
use super::log::{self, LogStats};
use super::replicated::{Proposal, Replicate, Tracker};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, mpsc};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::oneshot;

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
    /// This node may not write the record now: it does not lead the record's partition.
    #[error("this node may not write {key} now: {why}")]
    Fenced {
        /// The record's key.
        key: String,
        /// Why (for the operator and the client's 503).
        why: String,
    },
}

/// Decides whether this node may write a record now (the cluster layer implements it; a store
/// without a fence refuses nothing).
pub trait Fence: Send + Sync + 'static {
    /// Whether this node may write `key` now, or why not.
    fn admit(&self, key: &str) -> Result<(), String>;
}

/// Where releases that fenced non-replicated clusters kept the latest cluster epoch any record
/// was written under (read only to recognise such a data directory).
const LEGACY_MAX_EPOCH_KEY: &str = "store/max_epoch";

/// Records to write together: all of them become visible at once, or none.
#[derive(Debug, Default)]
pub struct WriteBatch {
    /// Keys with their encoded value (`None`: delete), in order.
    ops: Vec<(String, Option<Vec<u8>>)>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a record.
    pub fn put<T: Serialize>(&mut self, key: &str, value: &T) -> Result<&mut Self, StoreError> {
        self.ops
            .push((key.to_owned(), Some(codec::encode(key, value)?)));
        Ok(self)
    }

    /// Adds (or replaces) a record already encoded.
    pub fn put_raw(&mut self, key: &str, value: Vec<u8>) -> &mut Self {
        self.ops.push((key.to_owned(), Some(value)));
        self
    }

    /// Removes a record (a no-op if it does not exist).
    pub fn delete(&mut self, key: &str) -> &mut Self {
        self.ops.push((key.to_owned(), None));
        self
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// A handle to the node's store; cheap to clone.
///
/// Writes go to the log writer (`persistence::log`) in the order they are committed: a
/// committed batch becomes visible to reads when the log writer applies it, moments later,
/// and durable with the sync of its group. Code that reads back what it wrote before that
/// write was acknowledged waits for [`Store::caught_up`] first.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    log: mpsc::Sender<log::Request>,
    /// The log writer, joined when the last handle drops (so the database is closed then).
    writer: Option<JoinHandle<()>>,
    stats: Arc<LogStats>,
    /// Set once by the cluster layer (see [`Store::set_fence`]).
    fence: OnceLock<Box<dyn Fence>>,
    /// Set once by the cluster layer when its records are replicated (see
    /// [`Store::set_replication`]).
    replicated: OnceLock<Replicated>,
}

/// Where a replicated node's writes go.
struct Replicated {
    replicate: Box<dyn Replicate>,
    tracker: Arc<Tracker>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Hang up so the log writer finishes its last group and exits, then wait for it.
        let (closed, _) = mpsc::channel();
        drop(std::mem::replace(&mut self.log, closed));
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// The engine's block cache when the caller does not choose one.
pub const DEFAULT_CACHE_BYTES: u64 = 256 << 20;
/// How long a write nobody waits for stays unsynced when the caller does not choose.
pub(super) const DEFAULT_MAX_UNSYNCED: Duration = Duration::from_millis(5);

impl Store {
    /// Opens (or creates) the store at `path` and starts its log writer.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, DEFAULT_CACHE_BYTES, DEFAULT_MAX_UNSYNCED)
    }

    /// Like [`Store::open`], with a block cache of at most `cache_bytes` (recently read blocks
    /// stay in memory up to this size; others are read from disk), and writes nobody waits for
    /// synced after at most `max_unsynced`.
    pub fn open_with(
        path: &Path,
        cache_bytes: u64,
        max_unsynced: Duration,
    ) -> Result<Self, StoreError> {
        super::migrate::refuse_sled(path)?;
        create_private_dir(path)?;
        let engine = Engine::open(path, cache_bytes, false)?;
        Self::start(engine, log::Sync::Data, max_unsynced)
    }

    /// A store in a temporary directory that is deleted when it closes, and whose groups skip
    /// the disk sync: for benchmarks and tests that measure everything but the disk.
    pub fn temporary() -> Result<Self, StoreError> {
        let path = std::env::temp_dir().join(format!("contrail-{}", uuid::Uuid::new_v4().simple()));
        let engine = Engine::open(&path, 16 << 20, true)?;
        Self::start(engine, log::Sync::Skip, DEFAULT_MAX_UNSYNCED)
    }

    fn start(engine: Engine, sync: log::Sync, max_unsynced: Duration) -> Result<Self, StoreError> {
        let stats = Arc::new(LogStats::default());
        let (log, writer) = log::spawn(engine.clone(), sync, max_unsynced, stats.clone())
            .map_err(|e| StoreError::Io(format!("cannot start the log writer: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                log,
                writer: Some(writer),
                stats,
                fence: OnceLock::new(),
                replicated: OnceLock::new(),
            }),
        })
    }

    /// Reads one record.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        match self.inner.engine.get(key)? {
            Some(bytes) => codec::decode(key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Whether a record exists, without decoding it.
    pub fn contains(&self, key: &str) -> Result<bool, StoreError> {
        self.inner.engine.contains(key)
    }

    /// How many records there are under `prefix` (values are not decoded).
    pub fn count_prefix(&self, prefix: &str) -> u64 {
        self.inner.engine.count(prefix)
    }

    /// Every record under `prefix`, in key order, with the key's remainder after the prefix.
    pub fn scan<T: DeserializeOwned>(
        &self,
        prefix: &str,
    ) -> impl Iterator<Item = Result<(String, T), StoreError>> + use<T> {
        let plen = prefix.len();
        self.raw_scan(prefix).map(move |item| {
            let (key, value) = item?;
            let value = codec::decode(&key, &value)?;
            Ok((key[plen..].to_owned(), value))
        })
    }

    /// Every record, still encoded, in key order (for handing records over to another node).
    pub fn raw_entries(&self) -> impl Iterator<Item = Result<(String, Vec<u8>), StoreError>> {
        self.raw_scan("")
    }

    fn raw_scan(
        &self,
        prefix: &str,
    ) -> impl Iterator<Item = Result<(String, Vec<u8>), StoreError>> + use<> {
        self.inner.engine.scan(prefix).map(|item| {
            let (k, v) = item?;
            let key = String::from_utf8(k).map_err(|e| StoreError::Corrupt {
                key: String::from_utf8_lossy(e.as_bytes()).into_owned(),
                reason: "key is not UTF-8".into(),
            })?;
            Ok((key, v))
        })
    }

    /// One record, still encoded (for records this store does not decode itself, such as the
    /// consensus log's).
    pub fn get_raw(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.engine.get(key)
    }

    /// Records with keys in `start..end`, still encoded, in key order.
    pub fn range_raw(
        &self,
        start: &str,
        end: &str,
    ) -> impl DoubleEndedIterator<Item = Result<(String, Vec<u8>), StoreError>> + use<> {
        self.inner.engine.range(start, end).map(|item| {
            let (k, v) = item?;
            let key = String::from_utf8(k).map_err(|e| StoreError::Corrupt {
                key: String::from_utf8_lossy(e.as_bytes()).into_owned(),
                reason: "key is not UTF-8".into(),
            })?;
            Ok((key, v))
        })
    }

    /// Writes records exactly as given, past the fence: for the
    /// consensus layer, whose log already decided that they are written (its own log entries,
    /// and the entries it applies). With `durable`, returns the wait for the sync covering
    /// them; otherwise a later sync does.
    pub fn write_decided(
        &self,
        ops: Vec<(String, Option<Vec<u8>>)>,
        durable: bool,
    ) -> Result<Option<Durable>, StoreError> {
        if !durable {
            self.send(log::Request::Write {
                ops,
                guard: None,
                durable: None,
            })?;
            return Ok(None);
        }
        let (tx, waiter) = oneshot::channel();
        self.send(log::Request::Write {
            ops,
            guard: None,
            durable: Some(tx),
        })?;
        Ok(Some(Durable::new(waiter)))
    }

    /// Installs the fence every owner's write passes (once; later calls are ignored).
    pub fn set_fence(&self, fence: impl Fence) {
        let _ = self.inner.fence.set(Box::new(fence));
    }

    /// From now on, records that belong to a partition are written through `replicate`
    /// (see `persistence::replicated`); a refused write fails every flush and acknowledgement
    /// that waits on it for `window` (as long as one step of a saga can take). Once; later
    /// calls are ignored.
    pub fn set_replication(&self, replicate: impl Replicate, window: Duration) {
        let _ = self.inner.replicated.set(Replicated {
            replicate: Box::new(replicate),
            tracker: Arc::new(Tracker::new(window)),
        });
    }

    /// Whether records are replicated through their partitions' logs (then writes of different
    /// partitions become durable independently, not in one order).
    pub fn replicated(&self) -> bool {
        self.inner.replicated.get().is_some()
    }

    /// Sends the partitions' records of `ops` to their groups (node-local ones to the log),
    /// guarded by `guard` if given: returns the last proposal's sequence number and, for a
    /// guarded write, what became of it.
    fn replicate(
        &self,
        replicated: &Replicated,
        ops: Vec<log::Op>,
        guard: Option<&str>,
    ) -> Result<(Option<u64>, Option<super::replicated::Decided>), StoreError> {
        let r = &*replicated.replicate;
        let mut local = Vec::new();
        let mut groups: Vec<(u16, Vec<log::Op>)> = Vec::new();
        for op in ops {
            match r.partition_of(&op.0) {
                None => local.push(op),
                Some(p) => match groups.iter_mut().find(|(q, _)| *q == p) {
                    Some((_, ops)) => ops.push(op),
                    None => groups.push((p, vec![op])),
                },
            }
        }
        if let Some(key) = guard
            && (groups.len() != 1 || !local.is_empty() || r.partition_of(key).is_none())
        {
            return Err(StoreError::Io(format!(
                "a write guarded by {key} must stay within its partition"
            )));
        }
        if !local.is_empty() {
            self.send(log::Request::Write {
                ops: local,
                guard: None,
                durable: None,
            })?;
        }
        let mut last = None;
        let mut decided = None;
        for (p, ops) in groups {
            let proposal = Proposal {
                ops,
                guard: guard.map(str::to_owned),
            };
            let (seq, outcome) = replicated.tracker.submit(r, p, proposal)?;
            last = Some(seq);
            decided = Some(outcome);
        }
        Ok((last, decided.filter(|_| guard.is_some())))
    }

    /// The wait for everything this node wrote up to proposal `seq` (and to its log).
    fn replicated_wait(&self, replicated: &Replicated, seq: u64, strict: bool) -> Durable {
        let barrier = replicated.tracker.barrier(seq, strict);
        let store = self.clone();
        Durable::replicated(Box::pin(async move {
            barrier.await?;
            if strict {
                store.local_flush().await
            } else {
                store.local_caught_up().await
            }
        }))
    }

    /// Queues `batch` for the log writer, which applies it atomically after every batch
    /// committed before it, and returns a future that resolves once it is on disk (fsync'd).
    ///
    /// Refused with [`StoreError::Fenced`] (and nothing written) when the fence does not admit
    /// one of the batch's keys.
    pub fn commit(&self, batch: WriteBatch) -> Result<Durable, StoreError> {
        let ops = self.seal(batch)?;
        if let Some(replicated) = self.inner.replicated.get() {
            let (seq, _) = self.replicate(replicated, ops, None)?;
            let seq = seq.unwrap_or_else(|| replicated.tracker.last());
            return Ok(self.replicated_wait(replicated, seq, true));
        }
        let (durable, waiter) = oneshot::channel();
        self.send(log::Request::Write {
            ops,
            guard: None,
            durable: Some(durable),
        })?;
        Ok(Durable::new(waiter))
    }

    /// Commits `batch` like [`Store::commit`], for a write nobody waits for: it is ordered
    /// before every later write of the node and becomes durable with the next sync somebody
    /// waits for (which covers it), or after `storage.max_unsynced_ms` at the latest. Saying
    /// so up front, rather than dropping a [`Durable`], spares a sync the log writer would
    /// start if it saw the write before the drop.
    pub fn record(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let ops = self.seal(batch)?;
        if let Some(replicated) = self.inner.replicated.get() {
            return self.replicate(replicated, ops, None).map(|_| ());
        }
        self.send(log::Request::Write {
            ops,
            guard: None,
            durable: None,
        })
    }

    /// Like [`Store::commit`], but only if `guard_key` does not exist yet: then the guard record
    /// and the batch are written atomically. Otherwise nothing is written and the existing guard
    /// record is returned (for idempotency keys and unique names: the first request wins).
    pub async fn commit_if_absent<T: Serialize + DeserializeOwned>(
        &self,
        guard_key: &str,
        guard: &T,
        batch: WriteBatch,
    ) -> Result<Result<Durable, T>, StoreError> {
        if let Some(replicated) = self.inner.replicated.get() {
            return Ok(self
                .replicate_if_absent(replicated, guard_key, guard, batch)
                .await?
                .map(|seq| self.replicated_wait(replicated, seq, true)));
        }
        let (durable, waiter) = oneshot::channel();
        Ok(self
            .write_if_absent(guard_key, guard, batch, Some(durable))
            .await?
            .map(|()| Durable::new(waiter)))
    }

    /// [`Store::commit_if_absent`] for a write nobody waits for (see [`Store::record`]).
    pub async fn record_if_absent<T: Serialize + DeserializeOwned>(
        &self,
        guard_key: &str,
        guard: &T,
        batch: WriteBatch,
    ) -> Result<Result<(), T>, StoreError> {
        if let Some(replicated) = self.inner.replicated.get() {
            return Ok(self
                .replicate_if_absent(replicated, guard_key, guard, batch)
                .await?
                .map(|_| ()));
        }
        self.write_if_absent(guard_key, guard, batch, None).await
    }

    /// [`Store::write_if_absent`] through the guard key's partition: the check happens where
    /// the group applies its log, so every replica decides alike. Returns the proposal's
    /// sequence number once it is decided.
    async fn replicate_if_absent<T: Serialize + DeserializeOwned>(
        &self,
        replicated: &Replicated,
        guard_key: &str,
        guard: &T,
        batch: WriteBatch,
    ) -> Result<Result<u64, T>, StoreError> {
        let ops = self.seal_guarded(guard_key, guard, batch)?;
        let (seq, decided) = self.replicate(replicated, ops, Some(guard_key))?;
        let (Some(seq), Some(decided)) = (seq, decided) else {
            return Err(StoreError::Closed);
        };
        match decided.await.map_err(|_| StoreError::Closed)?? {
            None => Ok(Ok(seq)),
            Some(existing) => Ok(Err(codec::decode(guard_key, &existing)?)),
        }
    }

    /// `batch` behind its guard record, fenced.
    fn seal_guarded<T: Serialize>(
        &self,
        guard_key: &str,
        guard: &T,
        batch: WriteBatch,
    ) -> Result<Vec<log::Op>, StoreError> {
        let mut guarded = WriteBatch {
            ops: Vec::with_capacity(batch.ops.len() + 1),
        };
        guarded.put(guard_key, guard)?;
        guarded.ops.extend(batch.ops);
        self.seal(guarded)
    }

    async fn write_if_absent<T: Serialize + DeserializeOwned>(
        &self,
        guard_key: &str,
        guard: &T,
        batch: WriteBatch,
        durable: Option<oneshot::Sender<Result<(), StoreError>>>,
    ) -> Result<Result<(), T>, StoreError> {
        let ops = self.seal_guarded(guard_key, guard, batch)?;
        let (decided, verdict) = oneshot::channel();
        self.send(log::Request::Write {
            ops,
            guard: Some(log::Guard {
                key: guard_key.to_owned(),
                decided,
            }),
            durable,
        })?;
        match verdict.await.map_err(|_| StoreError::Closed)?? {
            None => Ok(Ok(())),
            Some(existing) => Ok(Err(codec::decode(guard_key, &existing)?)),
        }
    }

    /// Resolves once everything committed before is durable.
    pub async fn flush(&self) -> Result<(), StoreError> {
        if let Some(replicated) = self.inner.replicated.get() {
            let seq = replicated.tracker.last();
            return self.replicated_wait(replicated, seq, true).await;
        }
        self.local_flush().await
    }

    /// Resolves once everything written to the node's own log before is durable.
    async fn local_flush(&self) -> Result<(), StoreError> {
        let (ack, waiter) = oneshot::channel();
        self.send(log::Request::Synced(ack))?;
        Durable::new(waiter).await
    }

    /// Resolves once everything committed before is visible to reads (durable or not): for
    /// code that reads back records whose writes may not be acknowledged yet (an entity
    /// re-activated right after a crash of its actor, a read-modify-write in a singleton).
    pub async fn caught_up(&self) -> Result<(), StoreError> {
        if let Some(replicated) = self.inner.replicated.get() {
            let seq = replicated.tracker.last();
            return self.replicated_wait(replicated, seq, false).await;
        }
        self.local_caught_up().await
    }

    /// Resolves once everything written to the node's own log before is visible, replicated
    /// writes still undecided aside: for the consensus layer, which applies them.
    pub async fn local_caught_up(&self) -> Result<(), StoreError> {
        let (ack, waiter) = oneshot::channel();
        self.send(log::Request::Applied(ack))?;
        waiter.await.map_err(|_| StoreError::Closed)?;
        // A write queued before may have failed to apply: then it is not visible.
        if self.inner.stats.failed.load(Ordering::Acquire) {
            return Err(StoreError::Failed);
        }
        Ok(())
    }

    fn send(&self, request: log::Request) -> Result<(), StoreError> {
        if self.inner.stats.failed.load(Ordering::Acquire) {
            return Err(StoreError::Failed);
        }
        self.inner.log.send(request).map_err(|_| StoreError::Closed)
    }

    /// Checks every key of `batch` against the fence.
    fn seal(&self, batch: WriteBatch) -> Result<Vec<log::Op>, StoreError> {
        if let Some(fence) = self.inner.fence.get() {
            for (key, _) in &batch.ops {
                fence.admit(key).map_err(|why| StoreError::Fenced {
                    key: key.clone(),
                    why,
                })?;
            }
        }
        Ok(batch.ops)
    }

    /// The latest cluster epoch a release that fenced non-replicated clusters recorded in this
    /// store (0 if none): above 1, the data directory belongs to such a cluster, whose records
    /// are on no other node's disk.
    pub fn legacy_cluster_epoch(&self) -> Result<u64, StoreError> {
        match self.inner.engine.get(LEGACY_MAX_EPOCH_KEY)? {
            Some(bytes) => codec::decode(LEGACY_MAX_EPOCH_KEY, &bytes),
            None => Ok(0),
        }
    }

    /// Whether the store accepts writes (false after a failed write or sync).
    pub fn healthy(&self) -> bool {
        !self.inner.stats.failed.load(Ordering::Acquire)
    }

    /// How many syncs the log writer performed, and how many writes they made durable.
    pub fn sync_stats(&self) -> (u64, u64) {
        (
            self.inner.stats.syncs.load(Ordering::Relaxed),
            self.inner.stats.writes.load(Ordering::Relaxed),
        )
    }

    /// How many handles to this store exist (the database closes when the last one drops).
    pub fn handles(&self) -> usize {
        Arc::strong_count(&self.inner)
    }
}

/// Creates the data directory readable by the node's user only (it holds password hashes and
/// personal data); an existing directory is left as it is.
fn create_private_dir(path: &Path) -> Result<(), StoreError> {
    let io = |e: std::io::Error| StoreError::Io(format!("cannot create {}: {e}", path.display()));
    if path.exists() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path).map_err(io)
}

/// Resolves when a committed batch is on disk.
///
/// It carries a `store.sync` span, a child of the span current when the write was queued,
/// which ends when the wait does: a trace shows how long a step waited for the disk.
#[must_use = "a write is not acknowledged until it is durable"]
pub struct Durable {
    wait: Wait,
    _span: tracing::Span,
}

/// What a [`Durable`] waits for.
enum Wait {
    /// The node's log writer's sync.
    Log(oneshot::Receiver<Result<(), StoreError>>),
    /// Replicated writes decided by their groups (see `persistence::replicated`).
    Replicated(super::replicated::Wait),
}

impl Durable {
    fn new(waiter: oneshot::Receiver<Result<(), StoreError>>) -> Self {
        Self {
            wait: Wait::Log(waiter),
            _span: tracing::info_span!("store.sync"),
        }
    }

    fn replicated(wait: super::replicated::Wait) -> Self {
        Self {
            wait: Wait::Replicated(wait),
            _span: tracing::info_span!("store.sync"),
        }
    }
}

impl Future for Durable {
    type Output = Result<(), StoreError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.wait {
            Wait::Log(waiter) => Pin::new(waiter)
                .poll(cx)
                .map(|r| r.unwrap_or(Err(StoreError::Closed))),
            Wait::Replicated(wait) => wait.as_mut().poll(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// A fence that refuses keys under `refused/`.
    struct TestFence;

    impl Fence for TestFence {
        fn admit(&self, key: &str) -> Result<(), String> {
            if key.starts_with("refused/") {
                return Err("not the leader".into());
            }
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_batch_with_a_refused_key_leaves_nothing() -> TestResult {
        let store = Store::temporary()?;
        store.set_fence(TestFence);
        let mut batch = WriteBatch::new();
        batch.put("a/1", &1u32)?;
        store.commit(batch)?.await?;

        let mut batch = WriteBatch::new();
        batch
            .put("a/2", &2u32)?
            .put("refused/1", &1u32)?
            .delete("a/1");
        let refused = store.commit(batch).err();
        assert!(
            matches!(refused, Some(StoreError::Fenced { ref key, .. }) if key == "refused/1"),
            "{refused:?}"
        );
        assert_eq!(
            store.get::<u32>("a/2")?,
            None,
            "half a refused batch was written"
        );
        assert_eq!(store.get::<u32>("a/1")?, Some(1));

        let mut guarded = WriteBatch::new();
        guarded.put("refused/2", &2u32)?;
        assert!(matches!(
            store.commit_if_absent("a/guard", &0u32, guarded).await,
            Err(StoreError::Fenced { .. })
        ));
        assert_eq!(store.get::<u32>("a/guard")?, None);
        Ok(())
    }

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
            std::thread::sleep(std::time::Duration::from_millis(300));
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
        let (syncs, writes) = store.sync_stats();
        assert_eq!(writes, 200);
        assert!(syncs < 200, "every commit synced alone");
        Ok(())
    }

    /// A recorded write starts no sync of its own: it waits for the next write somebody waits
    /// for, and that one sync covers both (durability is in commit order).
    #[tokio::test]
    async fn recorded_writes_share_the_next_awaited_sync() -> TestResult {
        let dir = tempfile::tempdir()?;
        let store = Store::open_with(dir.path(), 8 << 20, Duration::from_secs(3600))?;
        for i in 0..10u32 {
            let mut b = WriteBatch::new();
            b.put(&format!("r/{i}"), &i)?;
            store.record(b)?;
        }
        store.caught_up().await?;
        assert_eq!(
            store.sync_stats(),
            (0, 0),
            "a recorded write was synced alone"
        );
        let mut b = WriteBatch::new();
        b.put("r/awaited", &10u32)?;
        store.commit(b)?.await?;
        assert_eq!(
            store.sync_stats(),
            (1, 11),
            "one sync for all eleven writes"
        );
        let guard = store
            .record_if_absent("g/1", &1u32, WriteBatch::new())
            .await?;
        assert_eq!(guard, Ok(()));
        let again = store
            .record_if_absent("g/1", &2u32, WriteBatch::new())
            .await?;
        assert_eq!(again, Err(1));
        store.flush().await?;
        assert_eq!(store.sync_stats(), (2, 12));
        Ok(())
    }
}
