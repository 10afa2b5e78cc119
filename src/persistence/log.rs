//! The log writer: the one thread that writes to the engine, and group commit.
//!
//! Every write of the node goes through this thread, in the order it was committed. It takes
//! every request queued so far (a *group*), applies each one to the engine as an atomic batch
//! (its journal, in the page cache, and its memtable, so reads see it), then makes the whole
//! group durable with **one** `fdatasync` of the journal and acknowledges it. Requests that
//! arrive while a group syncs queue up and form the next group, so under load each sync covers
//! many writes and its cost approaches the disk's raw `fdatasync`.
//!
//! Why one thread: the engine's journal is a single file behind a mutex that is also held
//! while it syncs. Writers that applied their own batches would block on that mutex during
//! every sync (tokio workers stalled on I/O); here they only send a message and await an answer.
//! It also makes check-and-write ([`Guard`]) atomic without engine transactions: nothing else
//! writes between the check and the write.

use super::StoreError;
use super::engine::Engine;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Instant;
use tokio::sync::oneshot;

/// Most requests applied and synced as one group; more wait for the next.
const MAX_GROUP: usize = 4_096;

/// One record to write: its key and encoded value (`None`: delete).
pub(crate) type Op = (String, Option<Vec<u8>>);

/// A write applied only if `key` does not exist yet; otherwise the existing value is reported.
pub(crate) struct Guard {
    pub(crate) key: String,
    /// Told at apply time: `Ok(None)` written, `Ok(Some(existing))` refused.
    pub(crate) decided: oneshot::Sender<Result<Option<Vec<u8>>, StoreError>>,
}

/// What the log writer is asked to do.
pub(crate) enum Request {
    /// Apply `ops` atomically (after `guard`'s check), then report once they are durable.
    Write {
        ops: Vec<Op>,
        guard: Option<Guard>,
        durable: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Report once everything committed before is visible to reads (not necessarily durable).
    Applied(oneshot::Sender<()>),
    /// Report once everything committed before is durable.
    Synced(oneshot::Sender<Result<(), StoreError>>),
}

/// Whether a group's durability comes from a real sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sync {
    /// `fdatasync` the journal once per group.
    Data,
    /// Skip the sync (temporary stores for tests and benches that measure everything else).
    Skip,
}

/// Counters shared between the log writer and the store's handles.
#[derive(Default)]
pub(crate) struct LogStats {
    /// Set for good after a failed write or sync; see [`super::Store::healthy`].
    pub(crate) failed: AtomicBool,
    /// Syncs performed.
    pub(crate) syncs: AtomicU64,
    /// Write requests made durable.
    pub(crate) writes: AtomicU64,
}

/// Starts the log writer over `engine`; it ends (and closes its engine handle) when every
/// sender is dropped.
pub(crate) fn spawn(
    engine: Engine,
    sync: Sync,
    stats: Arc<LogStats>,
) -> std::io::Result<(mpsc::Sender<Request>, JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("contrail-log".into())
        .spawn(move || run(&engine, sync, &stats, &rx))?;
    Ok((tx, thread))
}

fn run(engine: &Engine, sync: Sync, stats: &LogStats, rx: &mpsc::Receiver<Request>) {
    let mut group = Vec::with_capacity(256);
    let mut waiting: Vec<oneshot::Sender<Result<(), StoreError>>> = Vec::with_capacity(256);
    while let Ok(first) = rx.recv() {
        group.push(first);
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let mut wrote = 0u64;
        for request in group.drain(..) {
            match request {
                Request::Write {
                    ops,
                    guard,
                    durable,
                } => {
                    if stats.failed.load(Ordering::Acquire) {
                        refuse(guard, durable);
                        continue;
                    }
                    match apply(engine, ops, guard) {
                        Ok(true) => {
                            wrote += 1;
                            waiting.push(durable);
                        }
                        Ok(false) => {}
                        Err(e) => {
                            fail(stats, &e);
                            let _ = durable.send(Err(e));
                        }
                    }
                }
                Request::Applied(ack) => {
                    let _ = ack.send(());
                }
                Request::Synced(ack) => waiting.push(ack),
            }
        }
        let result = if stats.failed.load(Ordering::Acquire) {
            Err(StoreError::Failed)
        } else if wrote == 0 {
            // Everything before this group was synced with its own group.
            Ok(())
        } else {
            let started = Instant::now();
            let synced = engine.persist(sync == Sync::Data);
            metrics::histogram!("contrail_storage_sync_seconds")
                .record(started.elapsed().as_secs_f64());
            metrics::histogram!("contrail_storage_sync_batch_size").record(wrote as f64);
            stats.syncs.fetch_add(1, Ordering::Relaxed);
            stats.writes.fetch_add(wrote, Ordering::Relaxed);
            synced.inspect_err(|e| fail(stats, e))
        };
        for ack in waiting.drain(..) {
            let _ = ack.send(result.clone());
        }
    }
}

/// Applies one request's records atomically. `Ok(false)`: its guard refused it.
fn apply(engine: &Engine, ops: Vec<Op>, guard: Option<Guard>) -> Result<bool, StoreError> {
    let decided = match guard {
        None => None,
        Some(Guard { key, decided }) => match engine.get(&key) {
            Ok(Some(existing)) => {
                let _ = decided.send(Ok(Some(existing)));
                return Ok(false);
            }
            Ok(None) => Some(decided),
            Err(e) => {
                let _ = decided.send(Err(e.clone()));
                return Err(e);
            }
        },
    };
    let applied = engine.apply(ops);
    if let Some(decided) = decided {
        let _ = decided.send(applied.clone().map(|()| None));
    }
    applied.map(|()| true)
}

fn refuse(guard: Option<Guard>, durable: oneshot::Sender<Result<(), StoreError>>) {
    if let Some(guard) = guard {
        let _ = guard.decided.send(Err(StoreError::Failed));
    }
    let _ = durable.send(Err(StoreError::Failed));
}

/// After a failed write or sync, what reached the disk is unknown: refuse every later write
/// until the node restarts and recovers from what is actually there.
fn fail(stats: &LogStats, e: &StoreError) {
    if !stats.failed.swap(true, Ordering::AcqRel) {
        tracing::error!(error = %e, "storage write failed; refusing writes until restart");
    }
}
