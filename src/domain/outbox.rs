//! The outbox: one delivery per notification and channel, and its life.
//!
//! ```text
//! pending ──attempt ok──▶ delivered
//!    │ attempt failed
//!    ▼
//! retrying (attempt n, next try at t) ──…──▶ delivered | failed (after `max_attempts`)
//!                                                          │ an operator retries
//!                                                          ▼
//!                                                       pending
//! ```
//!
//! A delivery is written atomically with the notification it carries, so a crash never loses
//! one; the dispatcher resumes every open delivery after a restart, at its recorded attempt.
//! Delivery is at least once: a crash between a send and its record sends again, with the
//! same delivery id for the receiver to de-duplicate on.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Where a notification goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// An e-mail to the customer.
    Email,
    /// A signed POST to the configured webhook.
    Webhook,
}

impl Channel {
    /// Its name in ids, metrics and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Webhook => "webhook",
        }
    }
}

/// Where a delivery is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Not tried yet.
    Pending,
    /// Tried and failed; tried again at `next_attempt_at`.
    Retrying,
    /// Accepted by the receiver.
    Delivered,
    /// Given up after the configured attempts (a dead letter, until an operator retries it).
    Failed,
}

impl DeliveryState {
    /// Every state, in the order of a delivery's life.
    pub const ALL: [Self; 4] = [Self::Pending, Self::Retrying, Self::Delivered, Self::Failed];

    /// Its name in metrics and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Retrying => "retrying",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    /// Parses a state's name.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// Whether the dispatcher still works on it.
    pub fn open(self) -> bool {
        matches!(self, Self::Pending | Self::Retrying)
    }
}

/// How often and how patiently a delivery is tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts before a delivery fails (at least 1).
    pub max_attempts: u32,
    /// Wait after the first failure; doubled after each further one.
    pub first_backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// The wait after failed attempt `attempt` (1-based), before jitter: `first_backoff`
    /// doubled per earlier failure, at most `max_backoff`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(32);
        self.first_backoff
            .saturating_mul(1 << doublings.min(31))
            .min(self.max_backoff)
    }

    /// The wait after failed attempt `attempt` with `jitter` in 0.0..=1.0 applied: between
    /// half the backoff and all of it, so receivers that come back are not hit by every
    /// sender at once.
    pub fn jittered(&self, attempt: u32, jitter: f64) -> Duration {
        let full = self.backoff(attempt);
        full.mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0)
    }
}

/// One notification on its way over one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// Its id (`dlv_…`), the same on every attempt: receivers de-duplicate on it.
    pub id: String,
    /// How it goes.
    pub channel: Channel,
    /// The notification it carries.
    pub notification_id: String,
    /// That notification's record.
    pub notification_key: String,
    /// Where it is.
    pub state: DeliveryState,
    /// Attempts made so far.
    pub attempts: u32,
    /// When it is tried next (while retrying).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// The placement tag of delivery id `id` (its customer's).
pub fn tag_of_id(id: &str) -> &str {
    crate::domain::ids::tag_of(id.strip_prefix("dlv_").unwrap_or(id))
}

/// Whether `raw` has the shape of a delivery id (`dlv_`, 32 hex digits, `-` and a channel).
pub fn is_delivery_id(raw: &str) -> bool {
    let Some((body, channel)) = raw
        .strip_prefix("dlv_")
        .and_then(|rest| rest.split_once('-'))
    else {
        return false;
    };
    body.len() == 32
        && body.bytes().all(|b| b.is_ascii_hexdigit())
        && [Channel::Email, Channel::Webhook]
            .iter()
            .any(|c| c.as_str() == channel)
}

/// The longest error kept with a delivery (a receiver's answer can be anything).
pub const MAX_ERROR_CHARS: usize = 300;

impl Delivery {
    /// A new pending delivery of notification `notification_id` (`ntf_…`, placed with its
    /// user) over `channel`; its id is derived from both, so it is placed with the user too.
    pub fn new(
        channel: Channel,
        notification_id: &str,
        notification_key: String,
        now: DateTime<Utc>,
    ) -> Self {
        let body = notification_id
            .split_once('_')
            .map_or(notification_id, |(_, b)| b);
        Self {
            id: format!("dlv_{body}-{}", channel.as_str()),
            channel,
            notification_id: notification_id.to_owned(),
            notification_key,
            state: DeliveryState::Pending,
            attempts: 0,
            next_attempt_at: None,
            last_error: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// Its placement tag: its customer's (every record of a customer lives on one node).
    pub fn tag(&self) -> &str {
        tag_of_id(&self.id)
    }

    /// Whether it should be tried at `now`.
    pub fn due(&self, now: DateTime<Utc>) -> bool {
        self.state.open() && self.next_attempt_at.is_none_or(|at| at <= now)
    }

    /// The receiver accepted it.
    pub fn delivered(&mut self, now: DateTime<Utc>) {
        self.attempts += 1;
        self.state = DeliveryState::Delivered;
        self.next_attempt_at = None;
        self.last_error = None;
        self.updated_at = now;
    }

    /// An attempt failed with `error`: retry after a jittered backoff (`jitter` in 0.0..=1.0),
    /// or give up once `policy.max_attempts` attempts were made.
    pub fn attempt_failed(
        &mut self,
        now: DateTime<Utc>,
        error: &str,
        policy: &RetryPolicy,
        jitter: f64,
    ) {
        self.attempts += 1;
        self.last_error = Some(error.chars().take(MAX_ERROR_CHARS).collect());
        self.updated_at = now;
        if self.attempts >= policy.max_attempts.max(1) {
            self.state = DeliveryState::Failed;
            self.next_attempt_at = None;
        } else {
            self.state = DeliveryState::Retrying;
            let wait = policy.jittered(self.attempts, jitter);
            self.next_attempt_at =
                Some(now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX));
        }
    }

    /// An operator retries a failed delivery: it starts over, pending. Only a failed one.
    pub fn retry(&mut self, now: DateTime<Utc>) -> Result<(), DeliveryState> {
        if self.state != DeliveryState::Failed {
            return Err(self.state);
        }
        self.state = DeliveryState::Pending;
        self.attempts = 0;
        self.next_attempt_at = None;
        self.updated_at = now;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy(max_attempts: u32, first_ms: u64, max_ms: u64) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            first_backoff: Duration::from_millis(first_ms),
            max_backoff: Duration::from_millis(max_ms),
        }
    }

    fn delivery() -> Delivery {
        Delivery::new(
            Channel::Webhook,
            "ntf_0123456789abcdef0123456789abcdef",
            "notification/x".into(),
            Utc::now(),
        )
    }

    #[test]
    fn a_delivery_is_placed_with_its_notification_and_named_by_its_channel() {
        let d = delivery();
        assert_eq!(d.id, "dlv_0123456789abcdef0123456789abcdef-webhook");
        assert_eq!(d.tag(), "0123456789abcdef");
        assert!(is_delivery_id(&d.id));
        for bad in [
            "",
            "dlv_",
            "dlv_0123-webhook",
            "ntf_0123456789abcdef0123456789abcdef",
            "dlv_0123456789abcdef0123456789abcdef-fax",
            "dlv_0123456789abcdef0123456789abcdeg-email",
        ] {
            assert!(!is_delivery_id(bad), "{bad}");
        }
        assert!(d.due(Utc::now()));
    }

    #[test]
    fn only_a_failed_delivery_is_retried_and_it_starts_over() {
        let p = policy(2, 10, 100);
        let now = Utc::now();
        let mut d = delivery();
        assert_eq!(d.retry(now), Err(DeliveryState::Pending));
        d.attempt_failed(now, "refused", &p, 0.5);
        assert_eq!(d.retry(now), Err(DeliveryState::Retrying));
        d.attempt_failed(now, "refused", &p, 0.5);
        assert_eq!(d.state, DeliveryState::Failed);
        assert_eq!(d.retry(now), Ok(()));
        assert_eq!((d.state, d.attempts), (DeliveryState::Pending, 0));
        assert!(d.due(now));
        d.delivered(now);
        assert_eq!(d.retry(now), Err(DeliveryState::Delivered));
        assert!(!d.due(now));
    }

    proptest! {
        #[test]
        fn backoff_doubles_up_to_its_cap_and_jitter_stays_within_half_of_it(
            first in 1u64..10_000, cap in 1u64..1_000_000, attempt in 1u32..100, jitter in 0.0f64..=1.0,
        ) {
            let p = policy(10, first, cap);
            let b = p.backoff(attempt);
            prop_assert!(b <= p.max_backoff);
            prop_assert!(p.backoff(attempt + 1) >= b);
            if attempt == 1 {
                prop_assert_eq!(b, p.first_backoff.min(p.max_backoff));
            }
            let j = p.jittered(attempt, jitter);
            prop_assert!(j <= b && j >= b / 2 - Duration::from_nanos(1));
        }

        #[test]
        fn a_delivery_fails_after_exactly_max_attempts_and_waits_between(
            max in 1u32..20, failures in 0u32..30, jitter in 0.0f64..=1.0,
        ) {
            let p = policy(max, 100, 10_000);
            let mut d = delivery();
            let mut now = Utc::now();
            for n in 1..=failures.min(max) {
                prop_assert!(d.due(now));
                d.attempt_failed(now, &"x".repeat(1000), &p, jitter);
                prop_assert_eq!(d.attempts, n);
                prop_assert!(d.last_error.as_ref().is_some_and(|e| e.chars().count() == MAX_ERROR_CHARS));
                if n < max {
                    prop_assert_eq!(d.state, DeliveryState::Retrying);
                    let next = d.next_attempt_at.expect("a next attempt");
                    prop_assert!(next > now && !d.due(now));
                    now = next;
                } else {
                    prop_assert_eq!(d.state, DeliveryState::Failed);
                    prop_assert!(!d.due(now));
                }
            }
        }
    }
}
