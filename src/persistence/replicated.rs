//! Writes of a node whose records are replicated by consensus (`cluster.replication`).
//!
//! The store stays the one door for writes: a batch is fenced and sealed as always, then each
//! record goes to the replication group of its partition (the cluster layer implements
//! [`Replicate`]) instead of straight to the node's log. A group applies what its log decided
//! on every replica — here too, through the node's log — so a record becomes visible to reads
//! only once a majority of its replicas hold it on disk. Records that belong to no partition
//! (the node's own bookkeeping) still go to the node's log alone.
//!
//! The node's promises keep their meaning: [`Store::flush`](super::Store::flush) and every
//! `Durable` resolve once everything submitted before them is decided, and fail if any of
//! it was refused (a write the node no longer leads, one not confirmed in time), so nobody is
//! told of a step that a failover could lose. A refusal counts for as long as a step can take
//! ([`Tracker::window`]): an older one was already reported to whoever made that step.

use super::StoreError;
use super::log::Op;
use futures::future::BoxFuture;
use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};

/// A batch of one partition's records for its replication group.
#[derive(Debug)]
pub struct Proposal {
    /// The records (`None`: delete), in order.
    pub ops: Vec<Op>,
    /// Written only if this key does not exist yet (it is one of `ops`).
    pub guard: Option<String>,
}

/// What became of a [`Proposal`]: `Ok(None)` written, `Ok(Some(existing))` refused by its
/// guard (nothing written), or why it was not decided.
pub type Decided = oneshot::Receiver<Verdict>;

/// What a replication group decided about one proposal (see [`Decided`]).
pub type Verdict = Result<Option<Vec<u8>>, StoreError>;

/// Replicates the records of partitions (the cluster layer implements it).
pub trait Replicate: Send + Sync + 'static {
    /// The partition of a record, or `None` for a node-local one.
    fn partition_of(&self, key: &str) -> Option<u16>;

    /// Queues `proposal` for `partition`'s group, behind everything queued for it before; the
    /// answer comes once the group decided it and this node applied it.
    fn submit(&self, partition: u16, proposal: Proposal) -> Decided;
}

/// Which submitted proposals are still open, and which were refused lately.
pub(super) struct Tracker {
    state: Mutex<Tracked>,
    /// The lowest sequence number still open (the next one, when none is).
    settled: watch::Sender<u64>,
    /// How long a refusal fails later flushes.
    window: Duration,
}

#[derive(Default)]
struct Tracked {
    next: u64,
    open: BTreeSet<u64>,
    /// Refused proposals: sequence number and when it was submitted, oldest first.
    refused: VecDeque<(u64, Instant)>,
}

impl Tracker {
    pub(super) fn new(window: Duration) -> Self {
        Self {
            state: Mutex::new(Tracked {
                next: 1,
                ..Tracked::default()
            }),
            settled: watch::Sender::new(1),
            window,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tracked> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Opens the next proposal; returns its sequence number.
    fn open(&self) -> u64 {
        let mut state = self.lock();
        let seq = state.next;
        state.next += 1;
        state.open.insert(seq);
        seq
    }

    /// The last sequence number handed out.
    pub(super) fn last(&self) -> u64 {
        self.lock().next - 1
    }

    fn close(&self, seq: u64, submitted: Instant, refused: bool) {
        let mut state = self.lock();
        state.open.remove(&seq);
        if refused {
            state.refused.push_back((seq, submitted));
        }
        let window = self.window;
        while state
            .refused
            .front()
            .is_some_and(|(_, at)| at.elapsed() > window)
        {
            state.refused.pop_front();
        }
        let low = state.open.first().copied().unwrap_or(state.next);
        drop(state);
        self.settled.send_replace(low);
    }

    /// Whether a proposal up to `seq` was refused within the window.
    fn refused_up_to(&self, seq: u64) -> bool {
        let window = self.window;
        self.lock()
            .refused
            .iter()
            .any(|(s, at)| *s <= seq && at.elapsed() <= window)
    }

    /// Resolves once every proposal up to `seq` is closed; with `strict`, fails if one of
    /// them was refused within the window.
    pub(super) fn barrier(
        self: &Arc<Self>,
        seq: u64,
        strict: bool,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        let tracker = self.clone();
        let mut settled = self.settled.subscribe();
        async move {
            settled
                .wait_for(|low| *low > seq)
                .await
                .map_err(|_| StoreError::Closed)?;
            if strict && tracker.refused_up_to(seq) {
                return Err(StoreError::Fenced {
                    key: "(replicated log)".into(),
                    why: "a write of this node was not confirmed by its partition's replicas \
                          (leadership moved, or a majority is out of reach); retry"
                        .into(),
                });
            }
            Ok(())
        }
    }

    /// Submits `proposal` to `partition` through `replicate`, tracked; returns its sequence
    /// number and what became of it.
    pub(super) fn submit(
        self: &Arc<Self>,
        replicate: &dyn Replicate,
        partition: u16,
        proposal: Proposal,
    ) -> Result<(u64, Decided), StoreError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| StoreError::Io("a replicated write needs the node's runtime".into()))?;
        let submitted = Instant::now();
        let seq = self.open();
        let decided = replicate.submit(partition, proposal);
        let (tell, told) = oneshot::channel();
        let tracker = self.clone();
        runtime.spawn(async move {
            let outcome = decided.await.unwrap_or(Err(StoreError::Closed));
            tracker.close(seq, submitted, outcome.is_err());
            let _ = tell.send(outcome);
        });
        Ok((seq, told))
    }
}

/// A wait on replicated writes, boxed (see [`super::Durable`]).
pub(super) type Wait = BoxFuture<'static, Result<(), StoreError>>;

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// Decides every proposal as the test says, by partition.
    struct Scripted(Mutex<Vec<(u16, oneshot::Sender<Verdict>)>>);

    impl Scripted {
        /// The answer port of the latest proposal.
        fn last(&self) -> Result<oneshot::Sender<Verdict>, Box<dyn std::error::Error>> {
            let mut pending = self.0.lock().map_err(|e| e.to_string())?;
            pending
                .pop()
                .map(|(_, tx)| tx)
                .ok_or_else(|| "no proposal".into())
        }
    }

    impl Replicate for Scripted {
        fn partition_of(&self, key: &str) -> Option<u16> {
            key.split_once('/').and_then(|(p, _)| p.parse().ok())
        }
        fn submit(&self, partition: u16, _: Proposal) -> Decided {
            let (tx, rx) = oneshot::channel();
            if let Ok(mut pending) = self.0.lock() {
                pending.push((partition, tx));
            }
            rx
        }
    }

    fn proposal() -> Proposal {
        Proposal {
            ops: vec![("1/a".into(), Some(vec![1]))],
            guard: None,
        }
    }

    fn decide(tx: oneshot::Sender<Verdict>, verdict: Verdict) -> TestResult {
        tx.send(verdict)
            .map_err(|_| "the tracker stopped listening".into())
    }

    #[tokio::test]
    async fn a_barrier_waits_for_every_earlier_proposal_and_fails_if_one_was_refused() -> TestResult
    {
        let tracker = Arc::new(Tracker::new(Duration::from_secs(60)));
        let script = Scripted(Mutex::new(Vec::new()));
        let (first, _) = tracker.submit(&script, 1, proposal())?;
        let (second, _) = tracker.submit(&script, 2, proposal())?;
        let mut lenient = Box::pin(tracker.barrier(second, false));
        let strict = tracker.barrier(second, true);
        let only_first = tracker.barrier(first, true);
        let second_tx = script.last()?;
        let first_tx = script.last()?;
        decide(second_tx, Ok(None))?;
        tokio::task::yield_now().await;
        assert!(
            futures::poll!(lenient.as_mut()).is_pending(),
            "the first proposal is still open"
        );
        decide(first_tx, Ok(None))?;
        assert_eq!(only_first.await, Ok(()));
        assert_eq!(lenient.await, Ok(()));
        assert_eq!(strict.await, Ok(()));

        let (third, _) = tracker.submit(&script, 1, proposal())?;
        let refusal = StoreError::Fenced {
            key: "1/a".into(),
            why: "not the leader".into(),
        };
        decide(script.last()?, Err(refusal))?;
        assert!(matches!(
            tracker.barrier(third, true).await,
            Err(StoreError::Fenced { .. })
        ));
        assert_eq!(tracker.barrier(third, false).await, Ok(()));
        assert_eq!(
            tracker.barrier(second, true).await,
            Ok(()),
            "older proposals were fine"
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_refusal_stops_counting_after_the_window() -> TestResult {
        let tracker = Arc::new(Tracker::new(Duration::from_millis(30)));
        let script = Scripted(Mutex::new(Vec::new()));
        let (seq, _) = tracker.submit(&script, 1, proposal())?;
        decide(script.last()?, Err(StoreError::Closed))?;
        assert!(tracker.barrier(seq, true).await.is_err());
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(tracker.barrier(seq, true).await, Ok(()));
        Ok(())
    }
}
