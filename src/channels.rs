//! How a delivery reaches its receiver: a signed POST to the operator's webhook
//! ([`webhook`]), or an e-mail to the customer through the operator's SMTP server ([`email`]).
//! Each answers one attempt with `Ok` or the reason it failed; retrying is the dispatcher's
//! business (`actors::notification`).

pub mod email;
pub mod webhook;

use crate::domain::outbox::Channel;
use crate::settings::NotificationSettings;
use anyhow::Context as _;
use secrecy::ExposeSecret;

/// The configured channels.
pub struct Channels {
    /// The webhook, if configured.
    pub webhook: Option<webhook::Webhook>,
    /// The SMTP relay, if configured.
    pub email: Option<email::Mailer>,
}

impl Channels {
    /// The channels `settings` configure (validated with the settings).
    pub fn from_settings(settings: &NotificationSettings) -> anyhow::Result<Self> {
        let webhook = match (&settings.webhook_url, &settings.webhook_secret) {
            (Some(url), Some(secret)) => Some(
                webhook::Webhook::new(url, secret.clone(), settings.webhook_ca_file.as_deref())
                    .context("notifications.webhook_url")?,
            ),
            _ => None,
        };
        let email = match (&settings.smtp_url, &settings.email_from) {
            (Some(url), Some(from)) => Some(
                email::Mailer::new(url.expose_secret(), from).context("notifications.smtp_url")?,
            ),
            _ => None,
        };
        Ok(Self { webhook, email })
    }

    /// The channels every notification goes out on.
    pub fn enabled(&self) -> Vec<Channel> {
        let mut on = Vec::new();
        if self.email.is_some() {
            on.push(Channel::Email);
        }
        if self.webhook.is_some() {
            on.push(Channel::Webhook);
        }
        on
    }
}
