//! PaymentActor: a payment-gateway simulator behind the message interface a real gateway
//! adapter would have. At most one charge per order, ever: the charge is recorded before it is
//! reported approved (durable with the order's next save), and a repeated charge for the order
//! returns the first one.
//!
//! Test tokens: `tok_visa` approves (unless `payments.decline_rate` turns it down),
//! `tok_declined` declines, `tok_timeout` makes the gateway time out (nothing is charged);
//! any other token is declined as unknown.

use super::stateless::Stateless;
use crate::domain::flight::Currency;
use crate::domain::ids::OrderId;
use crate::persistence::{Store, WriteBatch, keys};
use chrono::{DateTime, Utc};
use ractor::RpcReplyPort;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long the simulated gateway takes before `tok_timeout` is reported as a timeout.
pub const GATEWAY_TIMEOUT: Duration = Duration::from_millis(300);

/// A request to the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentCommand {
    /// Take `amount_cents` for `order`.
    Charge {
        /// The order paying.
        order: OrderId,
        /// Amount in minor units.
        amount_cents: u64,
        /// Its currency.
        currency: Currency,
        /// The card token.
        token: String,
    },
    /// Give back the order's charge, if any.
    Refund {
        /// The order.
        order: OrderId,
    },
}

/// The gateway's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentReply {
    /// Charged (now or earlier).
    Approved {
        /// The charge's id.
        charge_id: String,
    },
    /// Refused by the issuer; nothing charged.
    Declined {
        /// Why.
        reason: String,
    },
    /// The gateway did not answer in time; nothing charged.
    TimedOut,
    /// Refunded (now or earlier), or there was nothing to refund.
    Refunded,
    /// The charge could not be recorded; nothing charged.
    Failed(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ChargeRecord {
    charge_id: String,
    amount_cents: u64,
    currency: Currency,
    charged_at: DateTime<Utc>,
    refunded: bool,
}

/// Messages to the payment actor.
pub enum PaymentMessage {
    /// A request with the port for its answer.
    Command(PaymentCommand, RpcReplyPort<PaymentReply>),
    /// Fault injection for supervision tests: panics inside the actor. Not reachable over HTTP.
    InjectPanic,
}

// Local only: with ractor's `cluster` feature every message type opts in explicitly.
impl ractor::Message for PaymentMessage {}

/// The simulator.
#[derive(Clone)]
pub struct PaymentActor {
    /// Where charges are recorded.
    pub store: Store,
    /// Simulated gateway latency.
    pub latency: Duration,
    /// Share of otherwise approved charges that are declined.
    pub decline_rate: f64,
    /// One lock per order with an operation under way: operations for one order never
    /// overlap. Shared by every incarnation of the actor (a restart must not let a retried
    /// charge run beside the one still in flight), and held by the operation's own task.
    pub in_progress: OrderLocks,
}

/// Per-order locks of payment operations.
#[derive(Clone, Default)]
pub struct OrderLocks(Arc<Mutex<HashMap<OrderId, Arc<tokio::sync::Mutex<()>>>>>);

impl OrderLocks {
    fn of(&self, order: &OrderId) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(order.clone()).or_default().clone()
    }

    /// Forgets the order's lock once nobody else holds or waits for it.
    fn release(&self, order: &OrderId, lock: Arc<tokio::sync::Mutex<()>>) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // The map's reference and `lock`: nobody else is waiting.
        if Arc::strong_count(&lock) == 2 {
            map.remove(order);
        }
    }
}

impl PaymentActor {
    fn existing(&self, order: &OrderId) -> Result<Option<ChargeRecord>, String> {
        self.store
            .get(&keys::charge(order))
            .map_err(|e| e.to_string())
    }

    /// Commits `record` as the order's charge and answers `reply`, without waiting for the sync:
    /// the gateway runs on the order's node and the store is durable in commit order, so the
    /// order's next durable write (which it makes before telling anyone it paid or was
    /// refunded) covers this one.
    fn record(
        store: &Store,
        order: &OrderId,
        record: &ChargeRecord,
        reply: PaymentReply,
    ) -> PaymentReply {
        let mut batch = WriteBatch::new();
        let committed = batch
            .put(&keys::charge(order), record)
            .map(|_| ())
            .and_then(|()| store.record(batch));
        match committed {
            Ok(()) => reply,
            Err(e) => PaymentReply::Failed(e.to_string()),
        }
    }

    /// Runs one command; operations for one order never overlap (see [`PaymentActor::start`]).
    async fn execute(
        store: Store,
        existing: Option<ChargeRecord>,
        cmd: PaymentCommand,
        latency: Duration,
        decline_rate: f64,
    ) -> PaymentReply {
        match cmd {
            PaymentCommand::Charge {
                order,
                amount_cents,
                currency,
                token,
            } => {
                if let Some(charge) = existing.filter(|c| !c.refunded) {
                    return PaymentReply::Approved {
                        charge_id: charge.charge_id,
                    };
                }
                if !latency.is_zero() {
                    tokio::time::sleep(latency).await;
                }
                match token.as_str() {
                    "tok_visa" if fastrand::f64() >= decline_rate => {}
                    "tok_visa" => {
                        return PaymentReply::Declined {
                            reason: "declined by the issuer".into(),
                        };
                    }
                    "tok_declined" => {
                        return PaymentReply::Declined {
                            reason: "card declined".into(),
                        };
                    }
                    "tok_timeout" => {
                        tokio::time::sleep(GATEWAY_TIMEOUT).await;
                        return PaymentReply::TimedOut;
                    }
                    _ => {
                        return PaymentReply::Declined {
                            reason: "unknown payment token".into(),
                        };
                    }
                }
                let record = ChargeRecord {
                    charge_id: format!("ch_{}", uuid::Uuid::new_v4().simple()),
                    amount_cents,
                    currency,
                    charged_at: Utc::now(),
                    refunded: false,
                };
                let charge_id = record.charge_id.clone();
                Self::record(
                    &store,
                    &order,
                    &record,
                    PaymentReply::Approved { charge_id },
                )
            }
            PaymentCommand::Refund { order } => {
                let Some(mut charge) = existing else {
                    return PaymentReply::Refunded;
                };
                if charge.refunded {
                    return PaymentReply::Refunded;
                }
                charge.refunded = true;
                Self::record(&store, &order, &charge, PaymentReply::Refunded)
            }
        }
    }
}

fn result_label(reply: &PaymentReply) -> &'static str {
    match reply {
        PaymentReply::Approved { .. } => "approved",
        PaymentReply::Declined { .. } => "declined",
        PaymentReply::TimedOut => "timeout",
        PaymentReply::Refunded => "refunded",
        PaymentReply::Failed(_) => "failed",
    }
}

fn order_of(cmd: &PaymentCommand) -> &OrderId {
    match cmd {
        PaymentCommand::Charge { order, .. } | PaymentCommand::Refund { order } => order,
    }
}

impl PaymentActor {
    /// Runs `cmd` on its own task (the gateway's latency is not the mailbox's), after the
    /// operation before it for the same order has recorded its outcome: a charge retried while
    /// the first is in flight gets the first charge, a refund waits for the charge it undoes.
    fn start(&self, cmd: PaymentCommand, reply: RpcReplyPort<PaymentReply>) {
        let actor = self.clone();
        tokio::spawn(async move {
            let order = order_of(&cmd).clone();
            let lock = actor.in_progress.of(&order);
            let guard = lock.lock().await;
            // The previous operation's record may still be on its way to the engine.
            let answer = match actor.store.caught_up().await.map_err(|e| e.to_string()) {
                Ok(()) => match actor.existing(&order) {
                    Ok(existing) => {
                        let (store, latency, rate) =
                            (actor.store.clone(), actor.latency, actor.decline_rate);
                        Self::execute(store, existing, cmd, latency, rate).await
                    }
                    Err(e) => PaymentReply::Failed(e),
                },
                Err(e) => PaymentReply::Failed(e),
            };
            metrics::counter!("contrail_payments_total", "result" => result_label(&answer))
                .increment(1);
            tracing::debug!(order = %order, result = result_label(&answer), "payment");
            let _ = reply.send(answer);
            drop(guard);
            actor.in_progress.release(&order, lock);
        });
    }
}

impl Stateless for PaymentActor {
    type Msg = PaymentMessage;

    async fn handle(&self, message: PaymentMessage) {
        match message {
            PaymentMessage::InjectPanic => panic!("injected fault in the payments actor"),
            PaymentMessage::Command(cmd, reply) => self.start(cmd, reply),
        }
    }
}

impl super::root::InjectPanic for PaymentMessage {
    fn inject_panic() -> Self {
        Self::InjectPanic
    }
}
