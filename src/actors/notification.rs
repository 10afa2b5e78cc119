//! NotificationActor: the node's outbox dispatcher. A notification is recorded for its customer
//! with one delivery per configured channel (an e-mail, a webhook POST), in the same write as
//! the change it reports (see `domain::outbox` for a delivery's life); this actor delivers each
//! on a task of its own, retrying with backoff, and resumes every open delivery after a
//! restart. Publishers only `cast`, so a slow or dead receiver never blocks a booking.

use super::flight::{FlightCommand, FlightReply};
use super::router::{RouterRef, Share};
use super::services::Services;
use super::stateless::Stateless;
use crate::channels::Channels;
use crate::channels::email::{FlightLine, Letter, TicketLine};
use crate::domain::ids::{OrderId, UserId};
use crate::domain::order::{Order, TicketRecord};
use crate::domain::outbox::{Channel, Delivery, DeliveryState, RetryPolicy};
use crate::domain::user::User;
use crate::persistence::{Store, StoreError, WriteBatch, keys};
use chrono::{DateTime, SecondsFormat, Utc};
use dashmap::DashMap;
use lettre::message::Mailbox;
use ractor::ActorRef;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;
use tracing::Instrument;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// Paid and ticketed.
    OrderConfirmed,
    /// A payment attempt was declined.
    PaymentDeclined,
    /// The hold lapsed.
    OrderExpired,
    /// Cancelled (and refunded if paid).
    OrderCancelled,
    /// The airline cancelled a flight of the order.
    FlightCancelled,
}

/// One notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Its id.
    pub id: String,
    /// Who it is for.
    pub user: UserId,
    /// What happened.
    pub kind: NotificationKind,
    /// The order concerned.
    pub order_id: OrderId,
    /// When.
    pub created_at: DateTime<Utc>,
}

impl Notification {
    /// Its record's key.
    pub fn key(&self) -> String {
        keys::notification(
            &self.user,
            self.created_at.timestamp_nanos_opt().unwrap_or_default(),
            &self.id,
        )
    }

    /// A new notification.
    pub fn new(user: UserId, kind: NotificationKind, order_id: OrderId) -> Self {
        Self {
            id: format!(
                "ntf_{}{}",
                user.tag(),
                &uuid::Uuid::new_v4().simple().to_string()[..16]
            ),
            user,
            kind,
            order_id,
            created_at: Utc::now(),
        }
    }
}

/// Messages to the notification actor.
pub enum NotificationMessage {
    /// Record a notification with its deliveries, then deliver them (with the publisher's
    /// span: the deliveries join its trace).
    Publish(Notification, tracing::Span),
    /// Deliver what a publisher recorded atomically with the change it reports.
    Deliver(Vec<Delivery>, tracing::Span),
    /// Take up every open delivery of this node that nobody works on: sent at start (a crash
    /// interrupted them), then every [`SWEEP_EVERY`] (a membership change brings others).
    Sweep,
    /// Fault injection for supervision tests: panics inside the actor. Not reachable over HTTP.
    InjectPanic,
}

// Local only: with ractor's `cluster` feature every message type opts in explicitly.
impl ractor::Message for NotificationMessage {}

/// How often open deliveries nobody works on are looked for.
pub const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// The actor: the node's outbox dispatcher. Each delivery runs on a task of its own, so a
/// slow or dead receiver never blocks a booking or another delivery (publishers only `cast`).
#[derive(Clone)]
pub struct NotificationActor {
    /// What the dispatcher shares with its delivery tasks.
    pub dispatch: Arc<Dispatch>,
}

/// The dispatcher's state, shared by its delivery tasks.
pub struct Dispatch {
    /// Where notifications and deliveries are recorded.
    pub store: Store,
    /// Where they go.
    pub channels: Channels,
    /// How patiently.
    pub policy: RetryPolicy,
    /// The node's facades (for an e-mail's flights, which may live on another node). Weak:
    /// the facades hold this dispatcher, and a cycle would keep the store open after the node
    /// stops.
    services: Weak<OnceLock<Services>>,
    /// Placement: a node delivers only what it owns.
    pub router: RouterRef,
    /// Deliveries a task works on now.
    working: DashMap<String, ()>,
}

impl Dispatch {
    /// A dispatcher over `store`.
    pub fn new(
        store: Store,
        channels: Channels,
        policy: RetryPolicy,
        services: Arc<OnceLock<Services>>,
        router: RouterRef,
    ) -> Self {
        Self {
            store,
            channels,
            policy,
            services: Arc::downgrade(&services),
            router,
            working: DashMap::new(),
        }
    }

    /// The channels every notification goes out on.
    pub fn enabled(&self) -> Vec<Channel> {
        self.channels.enabled()
    }

    /// Starts a task for `delivery` unless one works on it already.
    fn start(self: &Arc<Self>, delivery: Delivery, span: &tracing::Span) {
        if self.working.insert(delivery.id.clone(), ()).is_some() {
            return;
        }
        self.spawn(delivery, span);
    }

    /// Runs a task for `delivery`, which the caller has claimed in `working`.
    fn spawn(self: &Arc<Self>, delivery: Delivery, span: &tracing::Span) {
        let span = tracing::info_span!(
            parent: span,
            "deliver",
            delivery = %delivery.id,
            channel = delivery.channel.as_str(),
        );
        tokio::spawn(Self::run(Arc::downgrade(self), delivery).instrument(span));
    }

    /// Attempts `d` until it is delivered or fails, recording each outcome. Between attempts
    /// the task holds the dispatcher weakly: a node that stops ends its deliveries' tasks (they
    /// resume from the store when it starts again).
    async fn run(this: Weak<Self>, mut d: Delivery) {
        loop {
            if let Some(at) = d.next_attempt_at {
                let wait = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                tokio::time::sleep(wait).await;
            }
            let Some(dispatch) = this.upgrade() else {
                return;
            };
            if dispatch.attempt_once(&mut d).await {
                dispatch.working.remove(&d.id);
                return;
            }
        }
    }

    /// One attempt of `d`, recorded; whether `d` is finished (delivered, failed, or no longer
    /// this node's to record).
    async fn attempt_once(&self, d: &mut Delivery) -> bool {
        let before = d.state;
        let outcome = self.attempt(d).await;
        let now = Utc::now();
        let channel = d.channel.as_str();
        match &outcome {
            Ok(()) => d.delivered(now),
            Err(e) => {
                d.attempt_failed(now, e, &self.policy, fastrand::f64());
                tracing::warn!(delivery = %d.id, attempt = d.attempts, error = %e, "delivery attempt failed");
            }
        }
        let result = if outcome.is_ok() { "ok" } else { "error" };
        metrics::counter!("contrail_outbox_attempts_total", "channel" => channel, "result" => result)
            .increment(1);
        if let Err(e) = self.save(d, before) {
            // Fenced (the customer's records moved to another node, which takes it up) or the
            // store failed: either way this task is done.
            tracing::warn!(delivery = %d.id, error = %e, "delivery not recorded; left to the owner");
            return true;
        }
        match d.state {
            DeliveryState::Delivered => {
                let waited = (now - d.created_at).to_std().unwrap_or(Duration::ZERO);
                metrics::histogram!("contrail_outbox_delivery_seconds", "channel" => channel)
                    .record(waited.as_secs_f64());
                metrics::counter!("contrail_outbox_finished_total", "channel" => channel, "state" => "delivered")
                    .increment(1);
                true
            }
            DeliveryState::Failed => {
                metrics::counter!("contrail_outbox_finished_total", "channel" => channel, "state" => "failed")
                    .increment(1);
                tracing::error!(delivery = %d.id, attempts = d.attempts, error = d.last_error.as_deref().unwrap_or_default(), "delivery failed; an operator can retry it");
                true
            }
            DeliveryState::Pending | DeliveryState::Retrying => false,
        }
    }

    /// Records `d`, which was in state `before`, under the prefix of its state (removing it
    /// from the old one), ordered before every later write of the node and durable with the
    /// next sync.
    fn save(&self, d: &Delivery, before: DeliveryState) -> Result<(), StoreError> {
        let mut batch = WriteBatch::new();
        if keys::outbox(before) != keys::outbox(d.state) {
            batch.delete(&keys::delivery(&d.id, before));
        }
        batch.put(&keys::delivery(&d.id, d.state), d)?;
        self.store.record(batch)
    }

    /// One attempt.
    async fn attempt(&self, d: &Delivery) -> Result<(), String> {
        let n: Notification = self
            .store
            .get(&d.notification_key)
            .map_err(|e| e.to_string())?
            .ok_or("the notification's record is missing")?;
        match d.channel {
            Channel::Webhook => match &self.channels.webhook {
                Some(webhook) => webhook.send(&d.id, &n).await,
                None => Err("no webhook is configured".into()),
            },
            Channel::Email => match &self.channels.email {
                Some(mailer) => {
                    let (to, letter) = self.letter(&n).await?;
                    mailer.send(&d.id, to, &letter).await
                }
                None => Err("no SMTP server is configured".into()),
            },
        }
    }

    /// The customer's address and what the e-mail about `n` says.
    async fn letter(&self, n: &Notification) -> Result<(Mailbox, Letter), String> {
        let slot = self.services.upgrade().ok_or("the node is stopping")?;
        let services = slot.get().ok_or("the node is starting")?;
        let read = |e: StoreError| e.to_string();
        let user: User = self
            .store
            .get(&keys::user(&n.user))
            .map_err(read)?
            .ok_or("the customer's account is missing")?;
        let order: Order = self
            .store
            .get(&keys::order(&n.order_id))
            .map_err(read)?
            .ok_or("the order is missing")?;
        let to = user
            .email
            .as_str()
            .parse()
            .map(|address| Mailbox::new(Some(user.name.clone()), address))
            .map_err(|e| format!("the customer's address: {e}"))?;
        let mut flights = BTreeMap::new();
        let mut lines = Vec::new();
        for segment in &order.segments {
            let flight = match services
                .flights
                .call(&segment.flight_id, FlightCommand::Get)
                .await
            {
                Ok(Ok(FlightReply::Summary(summary))) => summary.flight,
                Ok(Ok(_)) => return Err("the flight answered out of turn".into()),
                Ok(Err(e)) => return Err(e.to_string()),
                Err(e) => return Err(format!("flight {}: {e}", segment.flight_id)),
            };
            let line = FlightLine {
                flight_number: flight.flight_number.as_str().to_owned(),
                route: format!("{} → {}", flight.origin, flight.destination),
                departs: flight.departs_at.to_rfc3339_opts(SecondsFormat::Secs, true),
                arrives: flight.arrives_at.to_rfc3339_opts(SecondsFormat::Secs, true),
                seats: segment
                    .seats
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            };
            flights.insert(segment.flight_id.clone(), line.clone());
            lines.push(line);
        }
        let mut tickets = Vec::new();
        for id in &order.tickets {
            let Some(ticket) = self
                .store
                .get::<TicketRecord>(&keys::ticket(id))
                .map_err(read)?
            else {
                continue;
            };
            let Some(flight) = flights.get(&ticket.flight_id) else {
                continue;
            };
            tickets.push(TicketLine {
                id: ticket.id.to_string(),
                passenger: ticket.passenger_name.clone(),
                seat: ticket.seat.to_string(),
                flight_number: flight.flight_number.clone(),
                route: flight.route.clone(),
                departs: flight.departs.clone(),
                arrives: flight.arrives.clone(),
            });
        }
        let total = match &order.currency {
            Some(currency) => format!(
                "{}.{:02} {currency}",
                order.total_cents / 100,
                order.total_cents % 100
            ),
            None => "nothing".to_owned(),
        };
        let letter = Letter {
            kind: n.kind,
            customer: user.name,
            order_id: order.id.to_string(),
            total,
            flights: lines,
            tickets,
        };
        Ok((to, letter))
    }

    /// Starts every open delivery this node owns that no task works on, and refreshes the
    /// depth gauges.
    fn sweep(self: &Arc<Self>) {
        if self
            .services
            .upgrade()
            .is_none_or(|slot| slot.get().is_none())
        {
            return;
        }
        let mut depth =
            BTreeMap::from([(DeliveryState::Pending, 0u64), (DeliveryState::Retrying, 0)]);
        for item in self.store.scan::<Delivery>(keys::OUTBOX_OPEN) {
            let (_, delivery) = match item {
                Ok(found) => found,
                Err(e) => {
                    tracing::error!(error = %e, "unreadable delivery skipped");
                    continue;
                }
            };
            let owned = self.router.owns(delivery.tag());
            if !owned {
                continue;
            }
            *depth.entry(delivery.state).or_default() += 1;
            self.start(delivery, &tracing::Span::none());
        }
        let resumed = depth.values().sum::<u64>();
        tracing::debug!(open = resumed, working = self.working.len(), "outbox swept");
        for (state, n) in depth {
            metrics::gauge!("contrail_outbox_depth", "state" => state.as_str()).set(n as f64);
        }
        // Counted, not read: dead letters are few, and their values are not decoded.
        metrics::gauge!("contrail_outbox_depth", "state" => "failed")
            .set(self.store.count_prefix(keys::OUTBOX_FAILED) as f64);
    }

    /// Records `n` and its deliveries (one per enabled channel), for a publisher whose change
    /// did not carry them.
    fn record(&self, n: &Notification) -> Result<Vec<Delivery>, StoreError> {
        let mut batch = WriteBatch::new();
        batch.put(&n.key(), n)?;
        let deliveries = deliveries(n, &self.enabled());
        for d in &deliveries {
            batch.put(&keys::delivery(&d.id, d.state), d)?;
        }
        self.store.record(batch)?;
        counted(n);
        Ok(deliveries)
    }

    /// An operator retries failed delivery `id`: it starts over now. `None`: no such delivery
    /// on this node; `Err`: it is not failed (its state).
    pub async fn retry(self: &Arc<Self>, id: &str) -> Result<Option<Delivery>, RetryError> {
        // Claimed first: of two retries at once (or a retry racing the sweep), one wins; the
        // other finds it pending.
        if self.working.insert(id.to_owned(), ()).is_some() {
            return Err(RetryError::NotFailed(DeliveryState::Pending));
        }
        // Read after every write before: a delivery whose attempt just ended (and let its
        // claim go) may not be visible as it ended yet, and would look failed still — two
        // retries one after the other would both start it over.
        let retried = match self.store.caught_up().await {
            Ok(()) => self.restart(id),
            Err(e) => Err(e.into()),
        };
        match &retried {
            Ok(Some(delivery)) => self.spawn(delivery.clone(), &tracing::Span::current()),
            _ => {
                self.working.remove(id);
            }
        }
        retried
    }

    /// Makes failed delivery `id` pending again, on disk.
    fn restart(&self, id: &str) -> Result<Option<Delivery>, RetryError> {
        let failed = self
            .store
            .get::<Delivery>(&keys::delivery(id, DeliveryState::Failed))?;
        let Some(mut delivery) = failed else {
            for state in [DeliveryState::Pending, DeliveryState::Delivered] {
                if let Some(other) = self.store.get::<Delivery>(&keys::delivery(id, state))? {
                    return Err(RetryError::NotFailed(other.state));
                }
            }
            return Ok(None);
        };
        delivery.retry(Utc::now()).map_err(RetryError::NotFailed)?;
        self.save(&delivery, DeliveryState::Failed)?;
        Ok(Some(delivery))
    }

    /// This node's share of the deliveries in `state` (any, if `None`): those of the partitions
    /// it serves, newest first, at most `limit`.
    pub fn list(
        &self,
        state: Option<DeliveryState>,
        limit: usize,
    ) -> Result<Share<Delivery>, StoreError> {
        if !self.router.member() {
            return Ok(Share {
                shards: Vec::new(),
                items: Vec::new(),
            });
        }
        let prefixes = match state {
            Some(s) => vec![keys::outbox(s)],
            None => vec![
                keys::OUTBOX_OPEN,
                keys::OUTBOX_FAILED,
                keys::OUTBOX_DELIVERED,
            ],
        };
        let scan = || {
            let mut found = Vec::new();
            for prefix in prefixes {
                for item in self.store.scan::<Delivery>(prefix) {
                    let (_, d) = item?;
                    if state.is_none_or(|s| s == d.state) {
                        found.push(d);
                    }
                }
            }
            Ok::<_, StoreError>(found)
        };
        // Replicas of partitions other nodes lead are theirs to list.
        let mut share = self.router.share(scan, |d: &Delivery| d.tag())?;
        share
            .items
            .sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        share.items.truncate(limit);
        Ok(share)
    }
}

/// Why a delivery was not retried.
#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    /// Only a failed delivery is retried; this one is in another state.
    #[error("the delivery is {}, not failed", .0.as_str())]
    NotFailed(DeliveryState),
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StoreError),
}

/// Counts a recorded notification.
pub fn counted(n: &Notification) {
    metrics::counter!("contrail_notifications_total", "kind" => format!("{:?}", n.kind))
        .increment(1);
}

/// The deliveries of `n`, one per channel, pending.
pub fn deliveries(n: &Notification, channels: &[Channel]) -> Vec<Delivery> {
    channels
        .iter()
        .map(|channel| Delivery::new(*channel, &n.id, n.key(), n.created_at))
        .collect()
}

impl Stateless for NotificationActor {
    type Msg = NotificationMessage;

    fn started(&self, myself: &ActorRef<NotificationMessage>) {
        let _ = myself.cast(NotificationMessage::Sweep);
        myself.send_interval(SWEEP_EVERY, || NotificationMessage::Sweep);
    }

    async fn handle(&self, message: NotificationMessage) {
        let (deliveries, publisher) = match message {
            NotificationMessage::InjectPanic => panic!("injected fault in the notifications actor"),
            NotificationMessage::Sweep => return self.dispatch.sweep(),
            NotificationMessage::Deliver(deliveries, publisher) => (deliveries, publisher),
            NotificationMessage::Publish(n, publisher) => {
                // A notification that cannot be recorded is logged, never allowed to fail a
                // booking.
                match self.dispatch.record(&n) {
                    Ok(deliveries) => (deliveries, publisher),
                    Err(e) => {
                        tracing::error!(notification = %n.id, error = %e, "notification not recorded");
                        return;
                    }
                }
            }
        };
        let span = tracing::info_span!(parent: &publisher, "notify");
        for delivery in deliveries {
            self.dispatch.start(delivery, &span);
        }
    }
}

/// A user's notifications, newest first.
pub fn list(
    store: &Store,
    user: &UserId,
) -> Result<Vec<Notification>, crate::persistence::StoreError> {
    let mut all = store
        .scan::<Notification>(&keys::notifications_of(user))
        .map(|r| r.map(|(_, n)| n))
        .collect::<Result<Vec<_>, _>>()?;
    all.reverse();
    Ok(all)
}

impl super::root::InjectPanic for NotificationMessage {
    fn inject_panic() -> Self {
        Self::InjectPanic
    }
}

/// This node's share of the outbox listing (a node-wide read, gathered from every member).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboxList {
    /// Only deliveries in this state, if set.
    pub state: Option<DeliveryState>,
    /// At most this many.
    pub limit: usize,
}
super::router::operation!(OutboxList => Result<Share<Delivery>, String>, by outbox: Arc<Dispatch>,
    tag |_r| "", |r| outbox.list(r.state, r.limit).map_err(|e| e.to_string()));

/// An operator retries a failed delivery (served by the node that owns it: its customer's).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RetryDelivery(pub String);

/// What became of a [`RetryDelivery`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Retried {
    /// It starts over, pending.
    Pending(Delivery),
    /// No such delivery.
    NotFound,
    /// Only a failed delivery is retried.
    NotFailed(DeliveryState),
    /// The store failed.
    Storage(String),
}
super::router::operation!(RetryDelivery => Retried, by outbox: Arc<Dispatch>,
tag |r| crate::domain::outbox::tag_of_id(&r.0).to_owned(),
|r| match outbox.retry(&r.0).await {
    Ok(Some(d)) => Retried::Pending(d),
    Ok(None) => Retried::NotFound,
    Err(RetryError::NotFailed(state)) => Retried::NotFailed(state),
    Err(RetryError::Storage(e)) => Retried::Storage(e.to_string()),
});

/// Every member's deliveries in `state` (any, if `None`), newest first, at most `limit`.
pub async fn list_all(
    outbox: &Arc<Dispatch>,
    state: Option<DeliveryState>,
    limit: usize,
) -> Result<Vec<Delivery>, super::CallError> {
    let shares = outbox
        .router
        .gather(OutboxList { state, limit }, outbox)
        .await?;
    let shares = shares
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(super::CallError::Unavailable)?;
    // Refused (503) rather than partial while a partition changes leaders.
    let mut all = outbox.router.join(shares, |d: &Delivery| d.tag())?;
    all.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
    all.truncate(limit);
    Ok(all)
}

/// Retries failed delivery `id` on the node that owns it.
pub async fn retry_anywhere(outbox: &Arc<Dispatch>, id: &str) -> Result<Retried, super::CallError> {
    if !crate::domain::outbox::is_delivery_id(id) {
        return Ok(Retried::NotFound);
    }
    outbox
        .router
        .ask(RetryDelivery(id.to_owned()), outbox)
        .await
}
