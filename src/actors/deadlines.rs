//! Hold deadlines of this node's orders, with one timer for all of them.
//!
//! An order's actor lives only while it works (it passivates a moment after its last
//! command), but a held order's deadline outlives it. So the order registers its deadline here
//! when it becomes held (and start-up registers every held order's); when a deadline passes,
//! the order is activated with [`OrderCommand::Expire`]. A deadline whose order was paid or
//! cancelled meanwhile finds nothing to do. One sorted set and one sleeping task replace a
//! timer task per held order (a million held orders would otherwise be a million timers and a
//! million live actors).

use super::CallError;
use super::order::{OrderCommand, OrderDirectory};
use crate::domain::ids::OrderId;
use chrono::{DateTime, Utc};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// How soon an expiry that could not be carried out (the order's actor was unreachable) is
/// tried again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The node's hold deadlines; cheap to clone.
#[derive(Clone, Default)]
pub struct Deadlines {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    due: Mutex<BTreeSet<(DateTime<Utc>, OrderId)>>,
    earlier: Notify,
}

impl Deadlines {
    /// Expires `order` at `when` (again if it was registered before: expiring is idempotent).
    pub fn at(&self, when: DateTime<Utc>, order: OrderId) {
        let earliest = {
            let mut due = self.inner.due.lock().unwrap_or_else(|p| p.into_inner());
            let earliest = due.first().is_none_or(|(first, _)| when < *first);
            due.insert((when, order));
            earliest
        };
        if earliest {
            self.inner.earlier.notify_one();
        }
    }

    /// How many deadlines are registered.
    pub fn len(&self) -> usize {
        self.inner
            .due
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes every deadline that has passed, waiting until at least one has.
    async fn next_due(&self) -> Vec<OrderId> {
        loop {
            let wait = {
                let mut due = self.inner.due.lock().unwrap_or_else(|p| p.into_inner());
                let now = Utc::now();
                let mut passed = Vec::new();
                while let Some((when, _)) = due.first()
                    && *when <= now
                {
                    if let Some((_, order)) = due.pop_first() {
                        passed.push(order);
                    }
                }
                if !passed.is_empty() {
                    return passed;
                }
                due.first()
                    .map(|(when, _)| (*when - now).to_std().unwrap_or(Duration::ZERO))
            };
            match wait {
                Some(wait) => {
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = self.inner.earlier.notified() => {}
                    }
                }
                None => self.inner.earlier.notified().await,
            }
        }
    }

    /// Expires orders as their deadlines pass; the node aborts the task when it stops.
    pub fn spawn(&self, orders: OrderDirectory) -> JoinHandle<()> {
        let deadlines = self.clone();
        tokio::spawn(async move {
            loop {
                for order in deadlines.next_due().await {
                    let (orders, deadlines) = (orders.clone(), deadlines.clone());
                    tokio::spawn(async move {
                        match orders.call(&order, OrderCommand::Expire).await {
                            Ok(_) | Err(CallError::NotFound) => {}
                            Err(e) => {
                                tracing::warn!(%order, error = %e, "hold not expired yet; retrying");
                                let retry = chrono::Duration::from_std(RETRY_AFTER)
                                    .unwrap_or(chrono::Duration::zero());
                                deadlines.at(Utc::now() + retry, order);
                            }
                        }
                    });
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn deadlines_come_due_in_order_and_an_earlier_one_wakes_the_wait() {
        let deadlines = Deadlines::default();
        let now = Utc::now();
        let (a, b, c) = (
            OrderId::generate(),
            OrderId::generate(),
            OrderId::generate(),
        );
        deadlines.at(now + chrono::Duration::seconds(60), a.clone());
        deadlines.at(now + chrono::Duration::seconds(30), b.clone());
        // Registering the same deadline twice keeps one.
        deadlines.at(now + chrono::Duration::seconds(30), b.clone());
        assert_eq!(deadlines.len(), 2);
        let waiter = {
            let deadlines = deadlines.clone();
            tokio::spawn(async move { deadlines.next_due().await })
        };
        tokio::task::yield_now().await;
        // Already due: wakes the waiter, which was sleeping toward `b`.
        deadlines.at(now - chrono::Duration::seconds(1), c.clone());
        let woken = tokio::time::timeout(Duration::from_secs(10), waiter).await;
        assert_eq!(woken.ok().and_then(Result::ok), Some(vec![c]));
        assert_eq!(deadlines.len(), 2);
    }
}
