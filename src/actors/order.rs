//! OrderActor: runs one order's booking saga — hold seats on every flight (all or none), take
//! the payment, confirm the seats and issue tickets — and its expiry, cancellation and refund.
//!
//! The actor is the only writer of its order record. A new order starts in memory; its actor
//! writes it (`pending`, with its Idempotency-Key) before asking any flight for seats.
//!
//! Every step is committed before the next, and the store is one log that becomes durable in
//! commit order, so what survives a crash is always a prefix of the steps: a `pending` order
//! found at start-up releases whatever it may hold, a `held` one re-arms its expiry timer, a
//! `paying` one (charged) finishes confirming. That is why a step's own write needs no wait:
//! the saga waits for durability once, before it answers its caller — one group commit per
//! booking and per payment. (A participant on another node is not covered by this node's log;
//! see [`Directory::call_in_saga`](super::directory::Directory::call_in_saga).) The actor talks
//! to flights, payment, tickets and notifications only by messages.

use super::CallError;
use super::deadlines::Deadlines;
use super::entity::Entity;
use super::flight::{FlightCommand, FlightDirectory, FlightError, FlightReply};
use super::notification::{Notification, NotificationKind, NotificationMessage};
use super::payment::{PaymentCommand, PaymentMessage, PaymentReply};
use super::root::Slot;
use super::ticket::{TicketCommand, TicketDirectory};
use crate::domain::flight::Currency;
use crate::domain::ids::{OrderId, TicketId};
use crate::domain::order::{
    HoldFailure, Order, OrderEvent, OrderStatus, TicketRecord, TicketStatus,
};
use crate::domain::seat_map::{HoldError, Holder};
use crate::persistence::{Store, StoreError, WriteBatch, keys};
use chrono::Utc;
use futures::future::join_all;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use tracing::Instrument;

/// How soon an unfinished saga step (a charged order not yet confirmed, a refund under way)
/// is retried when a participant could not be reached.
const RESUME_AFTER: Duration = Duration::from_secs(2);
/// How long an order's actor stays after its last command (at most `passivate_after`).
const ORDER_IDLE: Duration = Duration::from_secs(1);

/// A request to an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderCommand {
    /// Run the hold saga of a new (pending) order; for any other status, answer as it is.
    Place,
    /// The order as it is.
    Get,
    /// Pay with a card token.
    Pay {
        /// The card token.
        token: String,
    },
    /// Cancel: a held order is released, a paid one refunded (before departure).
    Cancel,
    /// The airline cancelled one of the order's flights: cancel or refund, whatever the time.
    FlightCancelled,
    /// Finish an interrupted saga step (sent at start-up).
    Recover,
    /// The hold's deadline passed (sent by [`Deadlines`]): expire a held order; for any other
    /// status, answer as it is.
    Expire,
}

/// Why an order request did not succeed. The order is in a consistent state either way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum OrderError {
    /// Not all seats could be held; nothing is held.
    #[error("{0}")]
    SeatsUnavailable(String),
    /// The customer already holds as many seats on a flight as allowed.
    #[error("{0}")]
    HoldLimit(String),
    /// The request does not fit the flights.
    #[error("{0}")]
    Invalid(String),
    /// The order cannot be paid in its state.
    #[error("{0}")]
    NotPayable(String),
    /// The order cannot be cancelled in its state.
    #[error("{0}")]
    NotCancellable(String),
    /// The card was declined; the order stays held.
    #[error("payment declined: {0}")]
    PaymentDeclined(String),
    /// The gateway timed out; nothing was charged, the order stays held.
    #[error("the payment gateway timed out; nothing was charged")]
    PaymentTimeout,
    /// A participant could not be reached; retrying is safe.
    #[error("{0}")]
    Unavailable(String),
    /// Storage refused a write; the order is unchanged (its actor reloads from disk).
    #[error("storage is unavailable: {0}")]
    Storage(String),
    /// No such order.
    #[error("not found")]
    NotFound,
    /// The Idempotency-Key was used before with a different request.
    #[error("this Idempotency-Key was used with a different request")]
    KeyReused,
    /// Between [`Orders`](super::orders::Orders) and a new order's actor only: a concurrent
    /// request with the same Idempotency-Key placed this order first, so the new one was never
    /// written; `Orders` answers with the first order instead.
    #[error("placed first as order {0}")]
    PlacedAs(OrderId),
}

/// What an Idempotency-Key remembers: the request's fingerprint, its order, and (for payments)
/// the first final outcome, which retries get again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyRecord {
    /// A digest of the request the key was first used with.
    pub fingerprint: String,
    /// The order it placed (or paid).
    pub order: OrderId,
    /// For payments: the first final outcome.
    pub outcome: Option<Result<(), OrderError>>,
}

/// What an order actor starts from.
pub enum OrderStart {
    /// An order on disk.
    Load(OrderId),
    /// A new order, not written yet (its actor writes it when told to `Place` it), and the
    /// Idempotency-Key that must be free for it to be written (its store key and record).
    New(Box<Order>, Option<(String, KeyRecord)>),
}

impl From<HoldFailure> for OrderError {
    fn from(f: HoldFailure) -> Self {
        match f {
            HoldFailure::SeatsUnavailable(m) => OrderError::SeatsUnavailable(m),
            HoldFailure::HoldLimit(m) => OrderError::HoldLimit(m),
            HoldFailure::Invalid(m) => OrderError::Invalid(m),
            HoldFailure::Unavailable(m) => OrderError::Unavailable(m),
        }
    }
}

impl From<StoreError> for OrderError {
    fn from(e: StoreError) -> Self {
        if let StoreError::Fenced { .. } = e {
            // Not a storage fault: this node may not write the order now (see `Fence`).
            tracing::warn!(error = %e, "order write refused");
            return OrderError::Unavailable(e.to_string());
        }
        tracing::error!(error = %e, "order storage failed");
        OrderError::Storage(e.to_string())
    }
}

impl From<CallError> for OrderError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::NotFound => OrderError::NotFound,
            other => OrderError::Unavailable(other.to_string()),
        }
    }
}

type Reply = RpcReplyPort<Result<Order, OrderError>>;

/// Messages an OrderActor handles.
pub enum OrderMessage {
    /// A command with the port for its answer.
    Command(OrderCommand, Reply),
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

    /// An order makes its changes durable before it reports success (see [`OrderActor::save`]).
    fn answers_before_durable(_: &OrderCommand) -> bool {
        false
    }

    fn exists(store: &Store, id: &OrderId) -> Result<bool, StoreError> {
        store.contains(&keys::order(id))
    }

    fn parse_id(raw: &str) -> Option<OrderId> {
        OrderId::parse(raw)
    }

    fn tag(id: &OrderId) -> &str {
        id.tag()
    }

    fn directory(services: &super::services::Services) -> &super::directory::Directory<Self> {
        services.orders.directory()
    }

    fn request(command: OrderCommand, reply: Reply) -> OrderMessage {
        OrderMessage::Command(command, reply)
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
    let span = tracing::info_span!("saga", order = %order, step = name);
    let out = work.instrument(span).await;
    metrics::histogram!("contrail_saga_step_seconds", "step" => name)
        .record(started.elapsed().as_secs_f64());
    out
}

fn hold_failure(index: usize, flight: &str, e: FlightError) -> HoldFailure {
    match e {
        FlightError::Hold(HoldError::CapExceeded { cap }) => {
            HoldFailure::HoldLimit(format!("flight {flight}: at most {cap} seats per customer"))
        }
        FlightError::Hold(
            e @ (HoldError::UnknownSeat(_)
            | HoldError::DuplicateSeat(_)
            | HoldError::NoSuchCabin(_)
            | HoldError::Empty),
        ) => HoldFailure::Invalid(format!("segments[{index}]: {e}")),
        FlightError::Hold(e) => HoldFailure::SeatsUnavailable(format!("flight {flight}: {e}")),
        FlightError::NotScheduled(_) => {
            HoldFailure::SeatsUnavailable(format!("flight {flight} is cancelled"))
        }
        other => HoldFailure::Unavailable(format!("flight {flight}: {other}")),
    }
}

impl OrderActor {
    fn notify(&self, order: &Order, kind: NotificationKind) {
        let n = Notification::new(order.user.clone(), kind, order.id.clone());
        self.notifications.cast(NotificationMessage::Publish(n));
    }

    /// Makes `next` (with `extra`, and the notification of the change if any) durable, with
    /// every step committed before it, then adopts it: what the caller is told never runs
    /// ahead of the disk, and a change and its notification are recorded together (a crash
    /// cannot lose one without the other).
    async fn save(
        &self,
        state: &mut OrderState,
        next: Order,
        extra: WriteBatch,
        note: Option<NotificationKind>,
    ) -> Result<(), OrderError> {
        let (batch, note) = Self::batch(&next, extra, note)?;
        self.store.commit(batch)?.await?;
        state.unsynced = false;
        self.adopt(state, next, note);
        Ok(())
    }

    /// Commits `next` and adopts it without waiting for the sync: for a step that a later
    /// [`OrderActor::save`] covers (the store is durable in commit order), or that may be lost
    /// in a crash without anyone having been told it happened (a failed hold).
    fn record(
        &self,
        state: &mut OrderState,
        next: Order,
        extra: WriteBatch,
        note: Option<NotificationKind>,
    ) -> Result<(), OrderError> {
        let (batch, note) = Self::batch(&next, extra, note)?;
        self.store.record(batch)?;
        state.unsynced = true;
        self.adopt(state, next, note);
        Ok(())
    }

    /// `next`'s record, with `extra` and the notification of the change, if any.
    fn batch(
        next: &Order,
        extra: WriteBatch,
        note: Option<NotificationKind>,
    ) -> Result<(WriteBatch, Option<Notification>), OrderError> {
        let mut batch = extra;
        batch.put(&keys::order(&next.id), next)?;
        let note = note.map(|kind| Notification::new(next.user.clone(), kind, next.id.clone()));
        if let Some(n) = &note {
            batch.put(&n.key(), n)?;
        }
        Ok((batch, note))
    }

    fn adopt(&self, state: &mut OrderState, next: Order, note: Option<Notification>) {
        state.order = next;
        if let Some(n) = note {
            self.notifications.cast(NotificationMessage::Deliver(n));
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
        let mut batch = WriteBatch::new();
        batch.put(&keys::order(&order.id), order)?.put(
            &keys::order_of(&order.user, order.created_at.timestamp_millis(), &order.id),
            &order.id,
        )?;
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
            Err(first) if first.fingerprint == record.fingerprint => {
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

    /// Releases the order's seats on every flight (idempotent). A flight that cannot be reached
    /// keeps the hold until its deadline, when the flight itself returns it to sale.
    async fn release_all(&self, order: &Order) -> bool {
        let calls = order.segments.iter().map(|seg| {
            self.flights.call_in_saga(
                &seg.flight_id,
                FlightCommand::Release {
                    order: order.id.clone(),
                },
            )
        });
        let mut all = true;
        for (seg, r) in order.segments.iter().zip(join_all(calls).await) {
            if !matches!(r, Ok(Ok(_))) {
                all = false;
                tracing::warn!(order = %order.id, flight = %seg.flight_id, outcome = ?r, "release failed");
            }
        }
        all
    }

    async fn place(&self, state: &mut OrderState) -> Result<Order, OrderError> {
        match state.order.status {
            OrderStatus::Pending => {}
            OrderStatus::Failed => {
                let failure = state.order.failure.clone();
                return Err(failure.map_or_else(
                    || OrderError::SeatsUnavailable("seats unavailable".into()),
                    Into::into,
                ));
            }
            _ => return Ok(state.order.clone()),
        }
        if let Some(key) = state.unwritten.take()
            && let Err(e) = self.write_new(state, key).await
        {
            // Never written: the actor stops once it has answered.
            state.unwritten = Some(None);
            return Err(e);
        }
        metrics::counter!("contrail_bookings_attempted_total").increment(1);
        let mut next = state.order.clone();
        let holder = Holder {
            order: next.id.clone(),
            user: next.user.clone(),
        };
        let calls = next.segments.iter().map(|seg| {
            self.flights.call_in_saga(
                &seg.flight_id,
                FlightCommand::Hold {
                    holder: holder.clone(),
                    request: seg.request.clone(),
                    expires_at: next.expires_at,
                },
            )
        });
        let results = step(&next.id, "hold", join_all(calls)).await;
        let mut failure: Option<HoldFailure> = None;
        let mut currency: Option<Currency> = None;
        for (i, (seg, result)) in next.segments.iter_mut().zip(results).enumerate() {
            let flight = seg.flight_id.to_string();
            let outcome = match result {
                Ok(Ok(FlightReply::Held {
                    seats,
                    price_cents,
                    currency: c,
                    departs_at,
                })) => {
                    seg.seats = seats;
                    seg.price_cents = price_cents;
                    seg.departs_at = Some(departs_at);
                    match &currency {
                        Some(first) if *first != c => Err(HoldFailure::Invalid(
                            "all flights of an order must share one currency".into(),
                        )),
                        _ => {
                            currency = Some(c);
                            Ok(())
                        }
                    }
                }
                Ok(Ok(other)) => Err(HoldFailure::Unavailable(format!(
                    "flight {flight} answered {other:?}"
                ))),
                Ok(Err(e)) => Err(hold_failure(i, &flight, e)),
                Err(CallError::NotFound) => Err(HoldFailure::Invalid(format!(
                    "segments[{i}].flight_id: no such flight"
                ))),
                Err(e) => Err(HoldFailure::Unavailable(format!("flight {flight}: {e}"))),
            };
            if let Err(f) = outcome {
                failure.get_or_insert(f);
            }
        }
        if let Some(failure) = failure {
            return Err(self.fail(state, &next, failure).await);
        }
        next.total_cents = next.segments.iter().map(|s| s.price_cents).sum();
        next.currency = currency;
        next.apply(OrderEvent::Held)
            .map_err(|e| OrderError::Unavailable(e.to_string()))?;
        self.save(state, next, WriteBatch::new(), None).await?;
        state.key = None;
        metrics::counter!("contrail_bookings_succeeded_total").increment(1);
        self.deadlines
            .at(state.order.expires_at, state.order.id.clone());
        Ok(state.order.clone())
    }

    /// All or nothing: releases every segment (including any whose answer was lost) and
    /// records the order as failed. Nothing waits for the disk here — a sold-out flight answers
    /// at once — because nothing is acknowledged: should a crash lose the record, the order is
    /// found `pending` at start-up and compensated again. A transient failure frees the
    /// Idempotency-Key with the same write, so that the client's retry really retries.
    async fn fail(&self, state: &mut OrderState, held: &Order, failure: HoldFailure) -> OrderError {
        step(&held.id, "compensate", self.release_all(held)).await;
        let reason = match &failure {
            HoldFailure::SeatsUnavailable(_) => "seats_unavailable",
            HoldFailure::HoldLimit(_) => "hold_limit",
            HoldFailure::Invalid(_) => "invalid",
            HoldFailure::Unavailable(_) => "unavailable",
        };
        metrics::counter!("contrail_bookings_failed_total", "reason" => reason).increment(1);
        let mut extra = WriteBatch::new();
        if let (HoldFailure::Unavailable(_), Some(key)) = (&failure, state.key.take()) {
            extra.delete(&key);
        }
        let recorded = Self::after(&state.order, OrderEvent::HoldFailed).and_then(|mut failed| {
            failed.failure = Some(failure.clone());
            self.record(state, failed, extra, None)
        });
        match recorded {
            Ok(()) => failure.into(),
            Err(e) => e,
        }
    }

    /// Ends a held order (expired or cancelled): any charge a lost or late gateway answer may
    /// have taken is refunded, the seats are released, then the end is saved (which makes the
    /// releases durable with it). A release that fails lapses at the hold's deadline, when the
    /// flight frees the seats itself.
    async fn end_hold(
        &self,
        state: &mut OrderState,
        event: OrderEvent,
        note: NotificationKind,
    ) -> Result<(), OrderError> {
        self.refund(&state.order).await?;
        step(&state.order.id, "release", self.release_all(&state.order)).await;
        let next = Self::after(&state.order, event)?;
        self.save(state, next, WriteBatch::new(), Some(note)).await
    }

    async fn expire(&self, state: &mut OrderState) -> Result<(), OrderError> {
        if state.order.status != OrderStatus::Held {
            return Ok(());
        }
        step(
            &state.order.id.clone(),
            "expire",
            self.end_hold(state, OrderEvent::Expired, NotificationKind::OrderExpired),
        )
        .await?;
        metrics::counter!("contrail_orders_expired_total").increment(1);
        tracing::info!(order = %state.order.id, "hold expired");
        Ok(())
    }

    async fn pay(&self, state: &mut OrderState, token: String) -> Result<Order, OrderError> {
        match state.order.status {
            OrderStatus::Confirmed => return Ok(state.order.clone()),
            OrderStatus::Paying => return self.finish_payment(state).await,
            OrderStatus::Held => {}
            other => {
                return Err(OrderError::NotPayable(format!(
                    "the order is {}",
                    other.label()
                )));
            }
        }
        if Utc::now() >= state.order.expires_at {
            self.expire(state).await?;
            return Err(OrderError::NotPayable("the hold has expired".into()));
        }
        let order = &state.order;
        let Some(currency) = order.currency.clone() else {
            return Err(OrderError::NotPayable("the order has no price".into()));
        };
        let charge = PaymentCommand::Charge {
            order: order.id.clone(),
            amount_cents: order.total_cents,
            currency,
            token,
        };
        let answer = step(
            &order.id,
            "charge",
            self.payments
                .ask(|p| PaymentMessage::Command(charge, p), self.call_timeout),
        )
        .await;
        match answer {
            // The outcome is unknown: a retry gets the same charge (one per order), and an
            // order that ends without payment refunds whatever was taken.
            Err(_) => Err(OrderError::Unavailable(
                "the payment service did not answer in time; retrying is safe".into(),
            )),
            Ok(PaymentReply::Failed(_)) | Ok(PaymentReply::Refunded) => {
                Err(OrderError::Unavailable(
                    "the payment could not be recorded; nothing was charged".into(),
                ))
            }
            Ok(PaymentReply::Declined { reason }) => {
                self.notify(order, NotificationKind::PaymentDeclined);
                Err(OrderError::PaymentDeclined(reason))
            }
            Ok(PaymentReply::TimedOut) => Err(OrderError::PaymentTimeout),
            Ok(PaymentReply::Approved { charge_id }) => {
                // Committed, not waited for: the confirmation's save covers it, and a crash
                // before that loses the charge record with it (a prefix of the log survives).
                let mut next = Self::after(&state.order, OrderEvent::Charged)?;
                next.charge_id = Some(charge_id);
                self.record(state, next, WriteBatch::new(), None)?;
                self.finish_payment(state).await
            }
        }
    }

    /// After the charge: sell the seats and issue tickets, or, if a hold lapsed (or a flight was
    /// cancelled) meanwhile, refund and end the order. Safe to repeat: every step is idempotent.
    async fn finish_payment(&self, state: &mut OrderState) -> Result<Order, OrderError> {
        let order = &state.order;
        let calls = order.segments.iter().map(|seg| {
            self.flights.call_in_saga(
                &seg.flight_id,
                FlightCommand::Confirm {
                    order: order.id.clone(),
                    seats: seg.seats.clone(),
                },
            )
        });
        let results = step(&order.id, "confirm", join_all(calls)).await;
        let cancelled = results
            .iter()
            .any(|r| matches!(r, Ok(Err(FlightError::NotScheduled(_)))));
        let lapsed = results
            .iter()
            .any(|r| matches!(r, Ok(Err(FlightError::Confirm(_)))));
        if cancelled || lapsed {
            // Never sell a seat that may be resold, nor one on a cancelled flight.
            self.refund(&state.order).await?;
            if !self.release_all(&state.order).await {
                return Err(OrderError::Unavailable(
                    "the charge was refunded; releasing the seats resumes automatically".into(),
                ));
            }
            let (event, kind, why) = if cancelled {
                (
                    OrderEvent::Cancelled,
                    NotificationKind::FlightCancelled,
                    "a flight was cancelled",
                )
            } else {
                (
                    OrderEvent::Expired,
                    NotificationKind::OrderExpired,
                    "the hold expired",
                )
            };
            let next = Self::after(&state.order, event)?;
            self.save(state, next, WriteBatch::new(), Some(kind))
                .await?;
            return Err(OrderError::NotPayable(format!(
                "{why} before the payment completed; the charge was refunded"
            )));
        }
        if !results.iter().all(|r| matches!(r, Ok(Ok(_)))) {
            return Err(OrderError::Unavailable(
                "a flight could not be reached; the payment is kept and confirmation resumes automatically".into(),
            ));
        }
        let now = Utc::now();
        let mut batch = WriteBatch::new();
        let mut next = Self::after(&state.order, OrderEvent::Confirmed)?;
        for seg in &state.order.segments {
            for (passenger, seat) in state.order.passengers.iter().zip(&seg.seats) {
                let ticket = TicketRecord {
                    id: TicketId::generate_in(state.order.id.tag()),
                    order_id: state.order.id.clone(),
                    user: state.order.user.clone(),
                    flight_id: seg.flight_id.clone(),
                    seat: *seat,
                    passenger_name: passenger.name.clone(),
                    status: TicketStatus::Issued,
                    issued_at: now,
                };
                batch.put(&keys::ticket(&ticket.id), &ticket)?;
                batch.put(&keys::ticket_of(&ticket.user, &ticket.id), &ticket.id)?;
                next.tickets.push(ticket.id);
            }
        }
        let id = state.order.id.clone();
        step(
            &id,
            "issue_tickets",
            self.save(state, next, batch, Some(NotificationKind::OrderConfirmed)),
        )
        .await?;
        // Each ticket's actor is activated by the ticket's first request, like every entity.
        tracing::info!(order = %state.order.id, "order confirmed");
        Ok(state.order.clone())
    }

    /// Refunds the order's charge, if there is one (idempotent; a no-op without a charge).
    async fn refund(&self, order: &Order) -> Result<(), OrderError> {
        let refund = PaymentCommand::Refund {
            order: order.id.clone(),
        };
        let answer = step(
            &order.id,
            "refund",
            self.payments
                .ask(|p| PaymentMessage::Command(refund, p), self.call_timeout),
        )
        .await;
        match answer {
            Ok(PaymentReply::Refunded) => Ok(()),
            other => Err(OrderError::Unavailable(format!(
                "the refund did not complete ({other:?}); it resumes automatically"
            ))),
        }
    }

    /// Cancels an order: a held one is released; a paid one refunded (tickets void, seats
    /// released). `by_airline` skips the departure check and notifies `flight_cancelled`.
    async fn cancel(&self, state: &mut OrderState, by_airline: bool) -> Result<Order, OrderError> {
        let kind = if by_airline {
            NotificationKind::FlightCancelled
        } else {
            NotificationKind::OrderCancelled
        };
        match state.order.status {
            OrderStatus::Held => self.end_hold(state, OrderEvent::Cancelled, kind).await?,
            OrderStatus::Paying => {
                self.refund(&state.order).await?;
                if !self.release_all(&state.order).await {
                    return Err(OrderError::Unavailable(
                        "a flight could not be reached; cancelling resumes automatically".into(),
                    ));
                }
                let next = Self::after(&state.order, OrderEvent::Cancelled)?;
                self.save(state, next, WriteBatch::new(), Some(kind))
                    .await?;
            }
            OrderStatus::Confirmed | OrderStatus::Refunding => {
                let now = Utc::now();
                let departed = state
                    .order
                    .segments
                    .iter()
                    .any(|s| s.departs_at.is_some_and(|d| d <= now));
                if state.order.status == OrderStatus::Confirmed {
                    if departed && !by_airline {
                        return Err(OrderError::NotCancellable(
                            "a flight of this order has departed".into(),
                        ));
                    }
                    // Persisted first, so a crash in the middle resumes the refund.
                    let next = Self::after(&state.order, OrderEvent::RefundStarted)?;
                    self.save(state, next, WriteBatch::new(), None).await?;
                }
                self.finish_refund(state, kind).await?;
            }
            OrderStatus::Cancelled | OrderStatus::Refunded | OrderStatus::Expired if by_airline => {
                return Ok(state.order.clone());
            }
            other => {
                return Err(OrderError::NotCancellable(format!(
                    "the order is {}",
                    other.label()
                )));
            }
        }
        tracing::info!(order = %state.order.id, status = state.order.status.label(), "order cancelled");
        Ok(state.order.clone())
    }

    /// Refunds, voids the tickets and releases the seats of a `refunding` order, then marks it
    /// refunded. Every step is idempotent, so repeating it completes it.
    async fn finish_refund(
        &self,
        state: &mut OrderState,
        note: NotificationKind,
    ) -> Result<(), OrderError> {
        self.refund(&state.order).await?;
        let voids = state
            .order
            .tickets
            .iter()
            .map(|t| self.tickets.call(t, TicketCommand::Void));
        if !step(&state.order.id, "void_tickets", join_all(voids))
            .await
            .iter()
            .all(|r| matches!(r, Ok(Ok(_))))
        {
            return Err(OrderError::Unavailable(
                "a ticket could not be voided yet; the refund resumes automatically".into(),
            ));
        }
        if !step(&state.order.id, "release", self.release_all(&state.order)).await {
            return Err(OrderError::Unavailable(
                "a flight could not be reached yet; the refund resumes automatically".into(),
            ));
        }
        let next = Self::after(&state.order, OrderEvent::Refunded)?;
        self.save(state, next, WriteBatch::new(), Some(note)).await
    }

    /// Finishes a saga step that was interrupted (by a crash, or a participant that could not
    /// be reached).
    async fn recover(&self, state: &mut OrderState) -> Result<Order, OrderError> {
        match state.order.status {
            OrderStatus::Pending => {
                tracing::warn!(order = %state.order.id, "compensating an interrupted hold");
                self.release_all(&state.order).await;
                let mut failed = Self::after(&state.order, OrderEvent::HoldFailed)?;
                failed.failure = Some(HoldFailure::Unavailable(
                    "the booking was interrupted; nothing is held".into(),
                ));
                self.save(state, failed, WriteBatch::new(), None).await?;
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

    /// Expires a held order whose deadline has passed (an early call re-registers it).
    async fn expire_if_due(&self, state: &mut OrderState) -> Result<Order, OrderError> {
        if state.order.status == OrderStatus::Held {
            if Utc::now() >= state.order.expires_at {
                self.expire(state).await?;
            } else {
                self.deadlines
                    .at(state.order.expires_at, state.order.id.clone());
            }
        }
        Ok(state.order.clone())
    }
}

impl OrderActor {
    /// Schedules a retry of an unfinished saga step, once.
    fn resume_later(&self, myself: &ActorRef<OrderMessage>, state: &mut OrderState) {
        let unfinished = matches!(
            state.order.status,
            OrderStatus::Paying | OrderStatus::Refunding
        );
        if unfinished && !state.resume_armed {
            state.resume_armed = true;
            myself.send_after(RESUME_AFTER, || OrderMessage::Resume);
        }
    }
}

impl OrderActor {
    /// Schedules a passivation check, once: an order's actor lives while it works, and a moment
    /// after (a payment right after the hold finds it warm).
    fn idle_later(&self, myself: &ActorRef<OrderMessage>, state: &mut OrderState, after: Duration) {
        if !state.tick_armed {
            state.tick_armed = true;
            myself.send_after(after, || OrderMessage::Tick);
        }
    }

    /// How long an order's actor stays after its last command.
    fn idle_time(&self) -> Duration {
        self.passivate_after.min(ORDER_IDLE)
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
        let (order, unwritten) = match start {
            OrderStart::New(order, key) => (*order, Some(key)),
            OrderStart::Load(id) => {
                // A previous incarnation's last writes may still be on their way to the engine.
                self.store.caught_up().await?;
                let order: Order = self
                    .store
                    .get(&keys::order(&id))?
                    .ok_or_else(|| format!("order {id} does not exist"))?;
                (order, None)
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
            && matches!(
                order.status,
                OrderStatus::Pending | OrderStatus::Paying | OrderStatus::Refunding
            );
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
            OrderMessage::Command(cmd, reply) => {
                state.last_active = Instant::now();
                let mut result = match cmd {
                    OrderCommand::Place => self.place(state).await,
                    OrderCommand::Get => Ok(state.order.clone()),
                    OrderCommand::Pay { token } => self.pay(state, token).await,
                    OrderCommand::Cancel => self.cancel(state, false).await,
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
                if state.order.status == OrderStatus::Failed || state.unwritten.is_some() {
                    // Nothing more will happen to it; a later request loads it again.
                    myself.stop(None);
                    return Ok(());
                }
                self.resume_later(&myself, state);
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
