//! Webhook deliveries: a JSON POST per notification, signed so the receiver can tell it from a
//! forgery, and carrying its delivery id so the receiver can drop a repeat.
//!
//! Headers of every delivery:
//!
//! - `Contrail-Delivery`: the delivery id (the same on every attempt);
//! - `Contrail-Timestamp`: seconds since the Unix epoch when the attempt was made;
//! - `Contrail-Signature`: `v1=` and the lowercase hex HMAC-SHA256, keyed with
//!   `notifications.webhook_secret`, of the timestamp, a `.`, and the raw body.
//!
//! A receiver recomputes the signature over the bytes it received, compares in constant time,
//! and refuses a timestamp more than a few minutes old (a replay).

use crate::actors::notification::{Notification, NotificationKind};
use anyhow::Context as _;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

/// Deadline of one attempt.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The configured webhook.
pub struct Webhook {
    url: String,
    secret: SecretString,
    client: reqwest::Client,
}

/// The JSON body of a delivery.
#[derive(Serialize)]
struct Body<'a> {
    /// The notification's id.
    id: &'a str,
    /// The delivery's id (as in `Contrail-Delivery`).
    delivery_id: &'a str,
    kind: NotificationKind,
    user_id: &'a str,
    order_id: &'a str,
    created_at: DateTime<Utc>,
}

impl Webhook {
    /// A webhook at `url` (http or https), signing with `secret`, trusting the certificate
    /// authorities in `ca_file` besides the system's.
    pub fn new(url: &str, secret: SecretString, ca_file: Option<&Path>) -> anyhow::Result<Self> {
        let mut client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("contrail/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = ca_file {
            let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("{} is not a PEM bundle", path.display()))?
            {
                client = client.add_root_certificate(cert);
            }
        }
        Ok(Self {
            url: url.to_owned(),
            secret,
            client: client.build().context("building the webhook client")?,
        })
    }

    /// One attempt to deliver `n` as delivery `delivery_id`.
    pub async fn send(&self, delivery_id: &str, n: &Notification) -> Result<(), String> {
        let body = serde_json::to_vec(&Body {
            id: &n.id,
            delivery_id,
            kind: n.kind,
            user_id: n.user.as_str(),
            order_id: n.order_id.as_str(),
            created_at: n.created_at,
        })
        .map_err(|e| e.to_string())?;
        let timestamp = Utc::now().timestamp();
        let signature = sign(self.secret.expose_secret().as_bytes(), timestamp, &body);
        let mut request = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("contrail-delivery", delivery_id)
            .header("contrail-timestamp", timestamp.to_string())
            .header("contrail-signature", signature);
        if let Some(parent) = crate::telemetry::traceparent(&tracing::Span::current()) {
            request = request.header(crate::telemetry::TRACEPARENT, parent);
        }
        match request.body(body).send().await {
            Ok(answer) if answer.status().is_success() => Ok(()),
            Ok(answer) => Err(format!("the webhook answered {}", answer.status())),
            Err(e) => Err(format!("the webhook is unreachable: {e}")),
        }
    }
}

/// `v1=` and the hex HMAC-SHA256 of `{timestamp}.{body}` under `secret`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    use aws_lc_rs::hmac;
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut context = hmac::Context::with_key(&key);
    context.update(timestamp.to_string().as_bytes());
    context.update(b".");
    context.update(body);
    let tag = context.sign();
    let mut out = String::with_capacity(3 + 64);
    out.push_str("v1=");
    for byte in tag.as_ref() {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::sign;

    #[test]
    fn the_signature_is_the_hmac_sha256_of_timestamp_dot_body() {
        // As Python's standard library computes it (the README's receiver):
        // hmac.new(b"whsec-test-secret", b'1700000000.{"id":"ntf_1"}', hashlib.sha256).hexdigest()
        assert_eq!(
            sign(b"whsec-test-secret", 1_700_000_000, br#"{"id":"ntf_1"}"#),
            "v1=461f2ee46155a38ea4fef888cc3f8991d2bb5c763d073f793cedc048acd40378"
        );
        assert_ne!(
            sign(b"whsec-test-secret", 1_700_000_001, br#"{"id":"ntf_1"}"#),
            sign(b"whsec-test-secret", 1_700_000_000, br#"{"id":"ntf_1"}"#)
        );
    }
}
