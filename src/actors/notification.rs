//! NotificationActor: records each user's notifications and, when `notifications.webhook_url`
//! is set, POSTs each one there, retrying with exponential backoff. Delivery runs on its own
//! task, so a slow or dead webhook never blocks a booking (publishers only `cast`).

use super::stateless::Stateless;
use crate::domain::ids::{OrderId, UserId};
use crate::persistence::{Store, WriteBatch, keys};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tracing::Instrument;

/// Delivery attempts per notification.
pub const WEBHOOK_ATTEMPTS: u32 = 6;
/// Delay before the first retry; doubled after each failure.
pub const WEBHOOK_FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Deadline of one delivery attempt.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);

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
            id: format!("ntf_{}", uuid::Uuid::new_v4().simple()),
            user,
            kind,
            order_id,
            created_at: Utc::now(),
        }
    }
}

/// Messages to the notification actor.
pub enum NotificationMessage {
    /// Record and deliver a notification (with the publisher's span: the delivery joins its
    /// trace).
    Publish(Notification, tracing::Span),
    /// Deliver a notification its publisher already recorded (atomically with the change it
    /// reports).
    Deliver(Notification, tracing::Span),
    /// Fault injection for supervision tests: panics inside the actor. Not reachable over HTTP.
    InjectPanic,
}

// Local only: with ractor's `cluster` feature every message type opts in explicitly.
impl ractor::Message for NotificationMessage {}

/// The actor.
#[derive(Clone)]
pub struct NotificationActor {
    /// Where notifications are recorded.
    pub store: Store,
    /// Where they are POSTed, if anywhere.
    pub webhook_url: Option<String>,
    /// The HTTP client for the webhook.
    pub client: reqwest::Client,
}

/// The JSON body POSTed to the webhook.
#[derive(Serialize)]
struct WebhookBody<'a> {
    id: &'a str,
    kind: NotificationKind,
    user_id: String,
    order_id: String,
    created_at: DateTime<Utc>,
}

async fn deliver(client: reqwest::Client, url: String, n: Notification) {
    let body = WebhookBody {
        id: &n.id,
        kind: n.kind,
        user_id: n.user.to_string(),
        order_id: n.order_id.to_string(),
        created_at: n.created_at,
    };
    let mut backoff = WEBHOOK_FIRST_BACKOFF;
    for attempt in 1..=WEBHOOK_ATTEMPTS {
        let sent = client
            .post(&url)
            .timeout(WEBHOOK_TIMEOUT)
            .json(&body)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {
                metrics::counter!("contrail_webhook_deliveries_total", "result" => "delivered")
                    .increment(1);
                return;
            }
            Ok(r) => {
                tracing::warn!(notification = %n.id, attempt, status = %r.status(), "webhook refused")
            }
            Err(e) => {
                tracing::warn!(notification = %n.id, attempt, error = %e, "webhook unreachable")
            }
        }
        if attempt < WEBHOOK_ATTEMPTS {
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
    }
    metrics::counter!("contrail_webhook_deliveries_total", "result" => "gave_up").increment(1);
    tracing::error!(notification = %n.id, "webhook delivery gave up after {WEBHOOK_ATTEMPTS} attempts");
}

impl Stateless for NotificationActor {
    type Msg = NotificationMessage;

    async fn handle(&self, message: NotificationMessage) {
        let (n, publisher) = match message {
            NotificationMessage::InjectPanic => panic!("injected fault in the notifications actor"),
            NotificationMessage::Deliver(n, publisher) => (n, publisher),
            NotificationMessage::Publish(n, publisher) => {
                // A notification that cannot be recorded is logged, never allowed to fail a
                // booking.
                let mut batch = WriteBatch::new();
                let recorded = batch
                    .put(&n.key(), &n)
                    .map(|_| ())
                    .and_then(|()| self.store.record(batch));
                if let Err(e) = recorded {
                    tracing::error!(notification = %n.id, error = %e, "notification not recorded");
                }
                (n, publisher)
            }
        };
        let span =
            tracing::info_span!(parent: &publisher, "notify", notification = %n.id, kind = ?n.kind);
        metrics::counter!("contrail_notifications_total", "kind" => format!("{:?}", n.kind))
            .increment(1);
        if let Some(url) = &self.webhook_url {
            tokio::spawn(deliver(self.client.clone(), url.clone(), n).instrument(span));
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
