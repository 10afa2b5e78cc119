//! The log writer: the one thread that writes to the engine, and group commit.
//!
//! Every write of the node goes through this thread, in the order it was committed. It takes
//! every request queued so far (a *group*), applies each one to the engine as an atomic batch
//! (its journal, in the page cache, and its memtable, so reads see it), then makes the whole
//! group durable with **one** `fdatasync` of the journal and acknowledges it. Requests that
//! arrive while a group syncs queue up and form the next group, so under load each sync covers
//! many writes and its cost approaches the disk's raw `fdatasync`.
//!
//! A write whose committer does not wait for it (a saga step that the saga's last, awaited
//! write covers) is applied but not synced on its own: it rides along with the next sync that
//! somebody waits for, or is synced after at most `max_unsynced` (`storage.max_unsynced_ms`).
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
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
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
    /// Apply `ops` atomically (after `guard`'s check), then report once they are durable, if
    /// anyone asked (`durable`); otherwise a later awaited sync, or `max_unsynced`, covers them.
    Write {
        ops: Vec<Op>,
        guard: Option<Guard>,
        durable: Option<oneshot::Sender<Result<(), StoreError>>>,
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
    max_unsynced: Duration,
    stats: Arc<LogStats>,
) -> std::io::Result<(mpsc::Sender<Request>, JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("contrail-log".into())
        .spawn(move || run(&engine, sync, max_unsynced, &stats, &rx))?;
    Ok((tx, thread))
}

/// The log writer's loop: form a group, apply it, sync it (or defer the sync), acknowledge.
fn run(
    engine: &Engine,
    sync: Sync,
    max_unsynced: Duration,
    stats: &LogStats,
    rx: &mpsc::Receiver<Request>,
) {
    let mut group = Vec::with_capacity(256);
    let mut waiting: Vec<oneshot::Sender<Result<(), StoreError>>> = Vec::with_capacity(256);
    // Writes applied but not synced yet (nobody waited for them), and since when.
    let mut unsynced: u64 = 0;
    let mut unsynced_since: Option<Instant> = None;
    loop {
        let next = match unsynced_since {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(since) => rx.recv_timeout(max_unsynced.saturating_sub(since.elapsed())),
        };
        match next {
            Ok(first) => group.push(first),
            // Deferred writes are due, or the store is closing: sync them now.
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                if unsynced > 0 {
                    let _ = make_durable(engine, sync, unsynced, stats);
                }
                return;
            }
        }
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
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
                            unsynced += 1;
                            waiting.extend(durable);
                        }
                        Ok(false) => {}
                        Err(e) => {
                            fail(stats, &e);
                            if let Some(durable) = durable {
                                let _ = durable.send(Err(e));
                            }
                        }
                    }
                }
                Request::Applied(ack) => {
                    let _ = ack.send(());
                }
                Request::Synced(ack) => waiting.push(ack),
            }
        }
        // Writes nobody waits for (recorded, or whose committer let go of the acknowledgement)
        // wait for the next write somebody does wait for (durability is in commit order, so
        // that sync covers them), but no longer than `max_unsynced`. A write that is part of a
        // saga thus shares the sync of the saga's last step instead of starting its own.
        waiting.retain(|ack| !ack.is_closed());
        let due = unsynced_since.is_some_and(|since| since.elapsed() >= max_unsynced);
        if waiting.is_empty() && !due {
            if unsynced > 0 {
                unsynced_since.get_or_insert_with(Instant::now);
            }
            continue;
        }
        let result = if stats.failed.load(Ordering::Acquire) {
            Err(StoreError::Failed)
        } else if unsynced == 0 {
            // Everything applied before was synced already.
            Ok(())
        } else {
            make_durable(engine, sync, unsynced, stats)
        };
        unsynced = 0;
        unsynced_since = None;
        for ack in waiting.drain(..) {
            let _ = ack.send(result.clone());
        }
    }
}

/// Syncs the journal once for the `writes` applied since the last sync.
fn make_durable(
    engine: &Engine,
    sync: Sync,
    writes: u64,
    stats: &LogStats,
) -> Result<(), StoreError> {
    let started = Instant::now();
    let synced = engine.persist(sync == Sync::Data);
    metrics::histogram!("contrail_storage_sync_seconds").record(started.elapsed().as_secs_f64());
    metrics::histogram!("contrail_storage_sync_batch_size").record(writes as f64);
    stats.syncs.fetch_add(1, Ordering::Relaxed);
    stats.writes.fetch_add(writes, Ordering::Relaxed);
    synced.inspect_err(|e| fail(stats, e))
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

fn refuse(guard: Option<Guard>, durable: Option<oneshot::Sender<Result<(), StoreError>>>) {
    if let Some(guard) = guard {
        let _ = guard.decided.send(Err(StoreError::Failed));
    }
    if let Some(durable) = durable {
        let _ = durable.send(Err(StoreError::Failed));
    }
}

/// After a failed write or sync, what reached the disk is unknown: refuse every later write
/// until the node restarts and recovers from what is actually there.
fn fail(stats: &LogStats, e: &StoreError) {
    if !stats.failed.swap(true, Ordering::AcqRel) {
        tracing::error!(error = %e, "storage write failed; refusing writes until restart");
    }
}
