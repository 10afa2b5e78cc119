//! PaymentActor: a payment-gateway simulator behind the message interface a real gateway
//! adapter would have. At most one charge per order, ever: the charge is recorded before it is
//! reported approved (durable with the order's next save), and a repeated charge for the order
//! returns the first one.
//!
//! Test tokens: `tok_visa` approves (unless `payments.decline_rate` turns it down),
//! `tok_declined` declines, `tok_timeout` makes the gateway time out (nothing is charged);
//! any other token is declined as unknown.

use crate::domain::flight::Currency;
use crate::domain::ids::OrderId;
use crate::persistence::{Store, WriteBatch, keys};
use chrono::{DateTime, Utc};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
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
    /// The operation under way for this order finished.
    Done(OrderId),
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
                tokio::time::sleep(latency).await;
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

/// Orders with a payment operation under way, and the operations waiting behind it.
#[derive(Default)]
pub struct PaymentState {
    busy: HashMap<OrderId, VecDeque<(PaymentCommand, RpcReplyPort<PaymentReply>)>>,
}

fn order_of(cmd: &PaymentCommand) -> &OrderId {
    match cmd {
        PaymentCommand::Charge { order, .. } | PaymentCommand::Refund { order } => order,
    }
}

impl PaymentActor {
    /// Runs `cmd` on its own task (the gateway's latency is not the mailbox's) and reports
    /// back with `Done`, so the next operation for the same order starts only after this one
    /// is recorded: a charge retried while the first is in flight gets the first charge.
    fn start(
        &self,
        myself: &ActorRef<PaymentMessage>,
        cmd: PaymentCommand,
        reply: RpcReplyPort<PaymentReply>,
    ) {
        let order = order_of(&cmd).clone();
        let existing = match self.existing(&order) {
            Ok(existing) => existing,
            Err(e) => {
                let _ = reply.send(PaymentReply::Failed(e));
                let _ = myself.cast(PaymentMessage::Done(order));
                return;
            }
        };
        let (store, latency, decline_rate) = (self.store.clone(), self.latency, self.decline_rate);
        let me = myself.clone();
        tokio::spawn(async move {
            let answer = Self::execute(store.clone(), existing, cmd, latency, decline_rate).await;
            metrics::counter!("contrail_payments_total", "result" => result_label(&answer))
                .increment(1);
            tracing::debug!(order = %order, result = result_label(&answer), "payment");
            let _ = reply.send(answer);
            // The next operation for this order reads the record this one wrote.
            let _ = store.caught_up().await;
            let _ = me.cast(PaymentMessage::Done(order));
        });
    }
}

impl Actor for PaymentActor {
    type Msg = PaymentMessage;
    type State = PaymentState;
    type Arguments = ();

    async fn pre_start(
        &self,
        _: ActorRef<Self::Msg>,
        _: (),
    ) -> Result<PaymentState, ActorProcessingErr> {
        Ok(PaymentState::default())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut PaymentState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            PaymentMessage::InjectPanic => panic!("injected fault in the payments actor"),
            PaymentMessage::Command(cmd, reply) => {
                let order = order_of(&cmd).clone();
                match state.busy.get_mut(&order) {
                    Some(waiting) => waiting.push_back((cmd, reply)),
                    None => {
                        state.busy.insert(order, VecDeque::new());
                        self.start(&myself, cmd, reply);
                    }
                }
            }
            PaymentMessage::Done(order) => {
                let next = state.busy.get_mut(&order).and_then(VecDeque::pop_front);
                match next {
                    Some((cmd, reply)) => self.start(&myself, cmd, reply),
                    None => {
                        state.busy.remove(&order);
                    }
                }
            }
        }
        Ok(())
    }
}

impl super::root::InjectPanic for PaymentMessage {
    fn inject_panic() -> Self {
        Self::InjectPanic
    }
}
