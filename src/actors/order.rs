//! OrderActor: runs one order's booking saga — hold seats on every flight (all or none), take
//! the payment, confirm the seats and issue tickets — and its expiry, cancellation and refund.
//!
//! The actor is the only writer of its order record. A new order starts in memory; its actor
//! writes it (`pending`, with its Idempotency-Key) before asking any flight for seats.
//!
//! Every step is committed before the next, and the store is one log that becomes durable in
//! commit order, so what survives a crash is always a prefix of the steps: a `pending` order
//! found at start-up releases whatever it may hold, a `held` one re-arms its expiry timer, a
//! `paying` one (charged) finishes confirming, and an ended one whose seats a flight could not
//! be told to release (a reminder is written with the end) releases them again. That is why a
//! step's own write needs no wait: the saga waits for durability once, before it answers its
//! caller — one group commit per booking and per payment. (A participant on another node is not covered by this node's log;
//! see [`Directory::call_in_saga`](super::directory::Directory::call_in_saga).) The actor talks
//! to flights, payment, tickets and notifications only by messages.

use super::deadlines::Deadlines;
use super::entity::Entity;
use super::flight::FlightDirectory;
use super::notification::{self, Notification, NotificationKind, NotificationMessage};
use super::payment::PaymentMessage;
use super::root::Slot;
use super::ticket::TicketDirectory;
use crate::domain::ids::OrderId;
use crate::domain::order::{HoldFailure, Order, OrderEvent, OrderStatus, Viewer};
use crate::domain::outbox::{Channel, Delivery};
use crate::persistence::{Store, StoreError, WriteBatch, keys};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

mod cancel;
pub mod desk;
mod errors;
mod hold;
mod payment;
mod timers;

pub use desk::Orders;
pub use errors::OrderError;
use errors::hold_failure;
use timers::RESUME_AFTER;

/// A request to an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderCommand {
    /// Run the hold saga of a new (pending) order; for any other status, answer as it is.
    Place,
    /// The order as it is.
    Get,
    /// Pay with a card token: for the order's customer or an admin (anyone else is told
    /// [`OrderError::NotFound`], and nothing happens).
    Pay {
        /// The card token.
        token: String,
        /// Who pays.
        by: Viewer,
    },
    /// Cancel: a held order is released, a paid one refunded (before departure); for the
    /// order's customer or an admin, like `Pay`.
    Cancel {
        /// Who cancels.
        by: Viewer,
    },
    /// The airline cancelled one of the order's flights: cancel or refund, whatever the time.
    FlightCancelled,
    /// Finish an interrupted saga step (sent at start-up).
    Recover,
    /// The hold's deadline passed (sent by [`Deadlines`]): expire a held order; for any other
    /// status, answer as it is.
    Expire,
}

/// What an Idempotency-Key remembers: the request's fingerprint, its order, and (for payments)
/// the first final outcome, which retries get again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyRecord {
    /// The [`fingerprint`] of the request the key was first used with (records written by
    /// earlier builds hold the request itself).
    pub fingerprint: String,
    /// The order it placed (or paid).
    pub order: OrderId,
    /// For payments: the first final outcome.
    pub outcome: Option<Result<(), OrderError>>,
}

impl KeyRecord {
    /// Whether the key was first used with the request whose fingerprint is `fingerprint`.
    pub fn same_request(&self, fingerprint: &str) -> bool {
        let legacy = || self::fingerprint(&self.fingerprint) == fingerprint;
        self.fingerprint == fingerprint || legacy()
    }
}

/// A request's fingerprint: 128 bits of xxh3 of its canonical form, in hex (32 characters,
/// however long the request). It tells a retry from another request sent with the same
/// Idempotency-Key by mistake; keys are per customer, so a collision someone crafted could
/// only replay their own first request to them.
pub fn fingerprint(canonical: &str) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(canonical.as_bytes()))
}

/// What an order actor starts from.
pub enum OrderStart {
    /// An order on disk.
    Load(OrderId),
    /// A new order, not written yet (its actor writes it when told to `Place` it), and the
    /// Idempotency-Key that must be free for it to be written (its store key and record).
    New(Box<Order>, Option<(String, KeyRecord)>),
}

type Reply = RpcReplyPort<Result<Order, OrderError>>;

/// Messages an OrderActor handles.
pub enum OrderMessage {
    /// A command with the port for its answer and the span to work in.
    Command(OrderCommand, Reply, tracing::Span),
    /// Passivate if idle.
    Tick,
    /// Retry an unfinished saga step (`paying` or `refunding`).
    Resume,
}

// Local only: with ractor's `cluster` feature every message type opts in explicitly.
impl ractor::Message for OrderMessage {}

/// The actor; its fields are the fixed handles every order shares.
#[derive(Clone)]
pub struct OrderActor {
    /// The node's store.
    pub store: Store,
    /// To hold, confirm and release seats.
    pub flights: FlightDirectory,
    /// To void tickets.
    pub tickets: TicketDirectory,
    /// The payment gateway.
    pub payments: Slot<PaymentMessage>,
    /// Where notifications go.
    pub notifications: Slot<NotificationMessage>,
    /// The channels every notification goes out on (its deliveries are written with it).
    pub channels: Arc<[Channel]>,
    /// Deadline of calls to the payment actor.
    pub call_timeout: Duration,
    /// Idle time before an order's actor passivates (the order stays on disk, its deadline
    /// with `deadlines`).
    pub passivate_after: Duration,
    /// Where held orders' deadlines are kept.
    pub deadlines: Deadlines,
}

/// A live order.
pub struct OrderState {
    order: Order,
    last_active: Instant,
    /// A `Resume` is scheduled.
    resume_armed: bool,
    /// A passivation `Tick` is scheduled.
    tick_armed: bool,
    /// A new order that is not written yet, with its Idempotency-Key (store key and record).
    unwritten: Option<Option<(String, KeyRecord)>>,
    /// The store key of the Idempotency-Key this order was placed with, while it is placed.
    key: Option<String>,
    /// A change was adopted whose durability nobody has waited for yet.
    unsynced: bool,
    /// The order ended while a flight could not be reached: its seats are released again until
    /// every flight let them go (a reminder on disk says so, see `keys::release`).
    unreleased: bool,
}

impl Entity for OrderActor {
    type Id = OrderId;
    type Command = OrderCommand;
    type Reply = Result<Order, OrderError>;
    type Start = OrderStart;
    const KIND: &'static str = "order";

    fn load(id: OrderId) -> OrderStart {
        OrderStart::Load(id)
    }

    /// An order makes its changes durable before it reports success (see `OrderActor::save`).
    fn answers_before_durable(_: &OrderCommand) -> bool {
        false
    }

    fn exists(store: &Store, id: &OrderId) -> Result<bool, StoreError> {
        store.contains(&keys::order(id))
    }

    fn directory(services: &super::services::Services) -> &super::directory::Directory<Self> {
        services.orders.directory()
    }

    fn command_name(command: &OrderCommand) -> &'static str {
        match command {
            OrderCommand::Place => "place",
            OrderCommand::Get => "get",
            OrderCommand::Pay { .. } => "pay",
            OrderCommand::Cancel { .. } => "cancel",
            OrderCommand::FlightCancelled => "flight_cancelled",
            OrderCommand::Recover => "recover",
            OrderCommand::Expire => "expire",
        }
    }

    fn request(command: OrderCommand, reply: Reply, span: tracing::Span) -> OrderMessage {
        OrderMessage::Command(command, reply, span)
    }
}

/// Finds order actors.
pub type OrderDirectory = super::directory::Directory<OrderActor>;

/// Records a saga step's latency and runs it inside a span that carries the order id.
async fn step<T>(
    order: &OrderId,
    name: &'static str,
    work: impl std::future::Future<Output = T>,
) -> T {
    let started = Instant::now();
    let span = tracing::info_span!("saga", order = %order, step = name, otel.name = format_args!("saga.{name}"));
    let out = work.instrument(span).await;
    metrics::histogram!("contrail_saga_step_seconds", "step" => name)
        .record(started.elapsed().as_secs_f64());
    out
}

/// One step of the saga as it is written: the order's next state, whatever else the step
/// changes, and the notification it owes the customer — one batch.
struct Change {
    next: Order,
    extra: WriteBatch,
    note: Option<NotificationKind>,
}

impl Change {
    /// The order becomes `next`.
    fn to(next: Order) -> Self {
        Self {
            next,
            extra: WriteBatch::new(),
            note: None,
        }
    }

    /// …together with `extra`.
    fn with(mut self, extra: WriteBatch) -> Self {
        self.extra = extra;
        self
    }

    /// …and tells the customer.
    fn noting(mut self, kind: NotificationKind) -> Self {
        self.note = Some(kind);
        self
    }

    /// The batch that writes the change, with the notification and its deliveries over
    /// `channels` (the outbox is written with the change it reports).
    fn into_batch(
        self,
        channels: &[Channel],
    ) -> Result<(WriteBatch, Order, Vec<Delivery>), OrderError> {
        let Self {
            next,
            mut extra,
            note,
        } = self;
        extra.put(&keys::order(&next.id), &next)?;
        let mut outbox = Vec::new();
        if let Some(kind) = note {
            let n = Notification::new(next.user.clone(), kind, next.id.clone());
            extra.put(&n.key(), &n)?;
            notification::counted(&n);
            outbox = notification::deliveries(&n, channels);
            for d in &outbox {
                extra.put(&keys::delivery(&d.id, d.state), d)?;
            }
        }
        Ok((extra, next, outbox))
    }
}

impl OrderActor {
    /// Serves one command and answers it once what it changed is durable.
    async fn command(
        &self,
        myself: &ActorRef<OrderMessage>,
        state: &mut OrderState,
        cmd: OrderCommand,
        reply: Reply,
    ) -> Result<(), ActorProcessingErr> {
        if let OrderCommand::Pay { by, .. } | OrderCommand::Cancel { by } = &cmd
            && !state.order.visible_to(by)
        {
            // Not theirs: nothing happens (nor does it keep the actor from passivating).
            let _ = reply.send(Err(OrderError::NotFound));
            return Ok(());
        }
        state.last_active = Instant::now();
        let mut result = match cmd {
            OrderCommand::Place => self.place(state).await,
            OrderCommand::Get => Ok(state.order.clone()),
            OrderCommand::Pay { token, .. } => self.pay(state, token).await,
            OrderCommand::Cancel { .. } => self.cancel(state, false).await,
            OrderCommand::FlightCancelled => self.cancel(state, true).await,
            OrderCommand::Recover => self.recover(state).await,
            OrderCommand::Expire => self.expire_if_due(state).await,
        };
        // Whatever the outcome, the caller is not told about a step the disk could
        // still lose — except a failed hold, which promises nothing (see `fail`).
        if state.unsynced && state.order.status != OrderStatus::Failed {
            match self.store.flush().await {
                Ok(()) => state.unsynced = false,
                Err(e) => result = Err(e.into()),
            }
        }
        let broken = match &result {
            Err(OrderError::Storage(e)) => Some(e.clone()),
            _ => None,
        };
        let _ = reply.send(result);
        if let Some(e) = broken {
            // The store refused a write: reload from disk.
            return Err(format!("order storage failed: {e}").into());
        }
        if (state.order.status == OrderStatus::Failed && !state.unreleased)
            || state.unwritten.is_some()
        {
            // Nothing more will happen to it; a later request loads it again.
            myself.stop(None);
            return Ok(());
        }
        self.resume_later(myself, state);
        Ok(())
    }

    fn notify(&self, order: &Order, kind: NotificationKind) {
        let n = Notification::new(order.user.clone(), kind, order.id.clone());
        self.notifications
            .cast(NotificationMessage::Publish(n, tracing::Span::current()));
    }

    /// Makes `change` durable, with every step committed before it, then adopts it: what the
    /// caller is told never runs ahead of the disk, and a change and its notification are
    /// recorded together (a crash cannot lose one without the other).
    async fn save(&self, state: &mut OrderState, change: Change) -> Result<(), OrderError> {
        let (batch, next, outbox) = change.into_batch(&self.channels)?;
        self.store.commit(batch)?.await?;
        state.unsynced = false;
        self.adopt(state, next, outbox);
        Ok(())
    }

    /// Commits `change` and adopts it without waiting for the sync: for a step that a later
    /// [`OrderActor::save`] covers (the store is durable in commit order), or that may be lost
    /// in a crash without anyone having been told it happened (a failed hold).
    fn record(&self, state: &mut OrderState, change: Change) -> Result<(), OrderError> {
        let (batch, next, outbox) = change.into_batch(&self.channels)?;
        self.store.record(batch)?;
        state.unsynced = true;
        self.adopt(state, next, outbox);
        Ok(())
    }

    fn adopt(&self, state: &mut OrderState, next: Order, outbox: Vec<Delivery>) {
        state.order = next;
        if !outbox.is_empty() {
            self.notifications.cast(NotificationMessage::Deliver(
                outbox,
                tracing::Span::current(),
            ));
        }
    }

    /// Writes a new order (`pending`) and its Idempotency-Key, if the key is still free. The
    /// write is not waited for: the order is in the log before any flight is asked for seats,
    /// so no hold can become durable without it.
    async fn write_new(
        &self,
        state: &mut OrderState,
        key: Option<(String, KeyRecord)>,
    ) -> Result<(), OrderError> {
        let order = &state.order;
        // No index entry: the order's id carries its customer's tag, under which the
        // customer's orders are listed (`keys::orders_tagged`).
        let mut batch = WriteBatch::new();
        batch.put(&keys::order(&order.id), order)?;
        let Some((key, record)) = key else {
            self.store.record(batch)?;
            state.unsynced = true;
            return Ok(());
        };
        match self.store.record_if_absent(&key, &record, batch).await? {
            Ok(()) => {
                state.unsynced = true;
                state.key = Some(key);
                Ok(())
            }
            Err(first) if first.same_request(&record.fingerprint) => {
                Err(OrderError::PlacedAs(first.order))
            }
            Err(_) => Err(OrderError::KeyReused),
        }
    }

    /// `state.order` after `event`, not yet adopted.
    fn after(order: &Order, event: OrderEvent) -> Result<Order, OrderError> {
        let mut next = order.clone();
        next.apply(event)
            .map_err(|e| OrderError::Unavailable(e.to_string()))?;
        Ok(next)
    }

    /// Finishes a saga step that was interrupted (by a crash, or a participant that could not
    /// be reached).
    async fn recover(&self, state: &mut OrderState) -> Result<Order, OrderError> {
        if state.unreleased {
            self.release_again(state).await?;
        }
        match state.order.status {
            OrderStatus::Pending => {
                tracing::warn!(order = %state.order.id, "compensating an interrupted hold");
                let released = self.release_all(&state.order).await;
                let mut failed = Self::after(&state.order, OrderEvent::HoldFailed)?;
                failed.failure = Some(HoldFailure::Unavailable(
                    "the booking was interrupted; nothing is held".into(),
                ));
                let extra = hold::reminder(&failed.id, released)?;
                self.save(state, Change::to(failed).with(extra)).await?;
                state.unreleased = !released;
                Ok(state.order.clone())
            }
            OrderStatus::Paying => self.finish_payment(state).await,
            OrderStatus::Refunding => {
                self.finish_refund(state, NotificationKind::OrderCancelled)
                    .await?;
                Ok(state.order.clone())
            }
            _ => Ok(state.order.clone()),
        }
    }
}

impl Actor for OrderActor {
    type Msg = OrderMessage;
    type State = OrderState;
    type Arguments = OrderStart;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        start: OrderStart,
    ) -> Result<Self::State, ActorProcessingErr> {
        let (order, unwritten, unreleased) = match start {
            OrderStart::New(order, key) => (*order, Some(key), false),
            OrderStart::Load(id) => {
                // A previous incarnation's last writes may still be on their way to the engine.
                self.store.caught_up().await?;
                let order: Order = self
                    .store
                    .get(&keys::order(&id))?
                    .ok_or_else(|| format!("order {id} does not exist"))?;
                // Only an ended order can have a reminder (it is written with the end): the
                // orders a payment or a cancellation loads need no second read.
                let ended = matches!(
                    order.status,
                    OrderStatus::Failed | OrderStatus::Expired | OrderStatus::Cancelled
                );
                let unreleased = ended && self.store.contains(&keys::release(&id))?;
                (order, None, unreleased)
            }
        };
        if order.status == OrderStatus::Held {
            self.deadlines.at(order.expires_at, order.id.clone());
        }
        // An unfinished saga step is resumed shortly. This also covers a `pending` order whose
        // actor was restarted after a crash mid-hold: its `Resume` compensates it. A `Place`
        // that activated it is handled first (one message at a time), after which `Resume`
        // finds nothing to do. A new order has nothing unfinished.
        let unfinished = unwritten.is_none()
            && (unreleased
                || matches!(
                    order.status,
                    OrderStatus::Pending | OrderStatus::Paying | OrderStatus::Refunding
                ));
        if unfinished {
            myself.send_after(RESUME_AFTER, || OrderMessage::Resume);
        }
        let mut state = OrderState {
            order,
            last_active: Instant::now(),
            resume_armed: unfinished,
            tick_armed: false,
            unwritten,
            key: None,
            unsynced: false,
            unreleased,
        };
        self.idle_later(&myself, &mut state, self.idle_time());
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            OrderMessage::Command(cmd, reply, span) => {
                self.command(&myself, state, cmd, reply)
                    .instrument(span)
                    .await?;
            }
            OrderMessage::Resume => {
                state.resume_armed = false;
                if let Err(e) = self.recover(state).await {
                    tracing::warn!(order = %state.order.id, error = %e, "saga step not finished yet; retrying");
                }
                self.resume_later(&myself, state);
            }
            OrderMessage::Tick => {
                state.tick_armed = false;
                let idle = state.last_active.elapsed();
                if state.resume_armed || idle < self.idle_time() {
                    // Busy finishing a saga step, or used lately: look again later.
                    let wait = self.idle_time().saturating_sub(idle);
                    self.idle_later(&myself, state, wait.max(Duration::from_millis(10)));
                } else {
                    // Messages already queued are still handled; later ones activate it again.
                    myself.drain()?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{KeyRecord, fingerprint};
    use crate::domain::ids::OrderId;

    fn record(fingerprint: String) -> KeyRecord {
        KeyRecord {
            fingerprint,
            order: OrderId::generate_in("0123456789abcdef"),
            outcome: None,
        }
    }

    #[test]
    fn a_fingerprint_is_short_whatever_the_request() {
        let long = format!("{{\"passengers\":[{{\"name\":\"{}\"}}]}}", "x".repeat(4000));
        for request in ["", "{}", long.as_str()] {
            let f = fingerprint(request);
            assert_eq!(f.len(), 32, "{f}");
            assert!(f.bytes().all(|b| b.is_ascii_hexdigit()), "{f}");
        }
        assert_ne!(fingerprint("{\"a\":1}"), fingerprint("{\"a\":2}"));
    }

    #[test]
    fn a_key_matches_its_own_request_only() {
        let first = record(fingerprint("{\"a\":1}"));
        assert!(first.same_request(&fingerprint("{\"a\":1}")));
        assert!(!first.same_request(&fingerprint("{\"a\":2}")));
    }

    #[test]
    fn a_key_recorded_with_the_whole_request_still_matches_its_retry() {
        // Records written before fingerprints were digests hold the request itself.
        let legacy = record("{\"a\":1}".to_owned());
        assert!(legacy.same_request(&fingerprint("{\"a\":1}")));
        assert!(!legacy.same_request(&fingerprint("{\"a\":2}")));
    }
}
