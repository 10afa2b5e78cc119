//! Group commit: one task flushes the store for everyone waiting.
//!
//! A writer applies its batch, then registers a waiter. The flusher task takes every waiter
//! registered so far, calls `flush_async` once, and wakes them all. Writers that arrive while a
//! flush runs are served by the next one, so under load each flush covers many writes.

use super::StoreError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// Most waiters served by one flush; more wait for the next.
const MAX_BATCH: usize = 8_192;

/// A waiter: the store to flush (held only while a flush is pending, so the task never keeps
/// the database open on its own) and where to report.
type Ack = (sled::Db, oneshot::Sender<Result<(), StoreError>>);

/// The handle writers use to wait for durability.
pub struct Flusher {
    tx: mpsc::UnboundedSender<Ack>,
    /// Set for good after a failed flush; see [`Flusher::failed`].
    failed: Arc<AtomicBool>,
    #[cfg_attr(not(test), allow(dead_code))]
    flushes: Arc<AtomicU64>,
}

impl Flusher {
    /// Starts the flusher task.
    pub fn spawn() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let flushes = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicBool::new(false));
        tokio::spawn(run(rx, flushes.clone(), failed.clone()));
        Self {
            tx,
            failed,
            flushes,
        }
    }

    /// Whether a flush has failed. After that, what is on disk is unknown (sled may hold
    /// applied but unflushed writes), so the store refuses writes until the node restarts and
    /// recovers from what actually reached the disk.
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// A future that resolves after a flush of `db` that began after this call.
    pub fn wait(&self, db: &sled::Db) -> FlushWaiter {
        let (ack, rx) = oneshot::channel();
        // A send error means the task is gone; the dropped `ack` then reports Closed.
        let _ = self.tx.send((db.clone(), ack));
        FlushWaiter(rx)
    }

    /// How many flushes ran (for tests and metrics).
    #[cfg(test)]
    pub fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }
}

/// Resolves when the flush covering it has finished.
pub struct FlushWaiter(oneshot::Receiver<Result<(), StoreError>>);

impl Future for FlushWaiter {
    type Output = Result<(), StoreError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(StoreError::Closed)))
    }
}

async fn run(
    mut rx: mpsc::UnboundedReceiver<Ack>,
    flushes: Arc<AtomicU64>,
    failed: Arc<AtomicBool>,
) {
    let mut waiting = Vec::with_capacity(256);
    while rx.recv_many(&mut waiting, MAX_BATCH).await > 0 {
        let started = Instant::now();
        // Every waiter comes from the same store, so flushing the first flushes for all.
        let result = match waiting.first() {
            Some((db, _)) => db.flush_async().await.map(|_| ()).map_err(StoreError::from),
            None => Ok(()),
        };
        flushes.fetch_add(1, Ordering::Relaxed);
        metrics::histogram!("contrail_storage_fsync_seconds")
            .record(started.elapsed().as_secs_f64());
        metrics::histogram!("contrail_storage_fsync_batch_size").record(waiting.len() as f64);
        if let Err(e) = &result {
            failed.store(true, Ordering::Release);
            tracing::error!(error = %e, "storage flush failed; refusing writes until restart");
        }
        // Drop the database handles before acknowledging, so that once the last writer has its
        // answer and lets go of the store, nothing here keeps the database open.
        let acks: Vec<_> = waiting.drain(..).map(|(_db, ack)| ack).collect();
        for ack in acks {
            let _ = ack.send(result.clone());
        }
    }
}
