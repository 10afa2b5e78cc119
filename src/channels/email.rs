//! E-mail deliveries through the operator's SMTP server (lettre), with a plain-text and an HTML
//! part rendered from the templates beside this file (minijinja; the HTML template escapes every
//! value, so a passenger named `<script>` is text).

use crate::actors::notification::NotificationKind;
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use minijinja::Environment;
use serde::Serialize;
use std::time::Duration;

/// Deadline of one SMTP conversation.
const TIMEOUT: Duration = Duration::from_secs(15);

/// What an e-mail says (the templates' context).
#[derive(Debug, Clone, Serialize)]
pub struct Letter {
    /// What happened.
    pub kind: NotificationKind,
    /// The customer's name.
    pub customer: String,
    /// The order.
    pub order_id: String,
    /// The order's total, e.g. `129.00 USD`.
    pub total: String,
    /// The order's flights.
    pub flights: Vec<FlightLine>,
    /// Its tickets (once issued).
    pub tickets: Vec<TicketLine>,
}

/// One flight of an order.
#[derive(Debug, Clone, Serialize)]
pub struct FlightLine {
    /// E.g. `AI101`.
    pub flight_number: String,
    /// E.g. `DEL → BOM`.
    pub route: String,
    /// Departure, RFC 3339 in UTC.
    pub departs: String,
    /// Arrival, RFC 3339 in UTC.
    pub arrives: String,
    /// The seats held or sold on it, e.g. `12A, 12B`.
    pub seats: String,
}

/// One e-ticket.
#[derive(Debug, Clone, Serialize)]
pub struct TicketLine {
    /// The ticket id.
    pub id: String,
    /// Who flies.
    pub passenger: String,
    /// The seat.
    pub seat: String,
    /// The flight (as in [`FlightLine`]).
    pub flight_number: String,
    /// Its route.
    pub route: String,
    /// Its departure.
    pub departs: String,
    /// Its arrival.
    pub arrives: String,
}

impl Letter {
    /// The e-mail's subject.
    pub fn subject(&self) -> String {
        let order = &self.order_id;
        match self.kind {
            NotificationKind::OrderConfirmed => format!("Your e-tickets (order {order})"),
            NotificationKind::PaymentDeclined => format!("Payment declined for order {order}"),
            NotificationKind::OrderExpired => {
                format!("Your held seats were released (order {order})")
            }
            NotificationKind::OrderCancelled => format!("Order {order} cancelled"),
            NotificationKind::FlightCancelled => {
                format!("A flight of your order {order} was cancelled")
            }
        }
    }
}

/// The configured SMTP relay and the templates.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    templates: Environment<'static>,
}

impl Mailer {
    /// A mailer sending through `url` (see `notifications.smtp_url`) as `from`.
    pub fn new(url: &str, from: &str) -> anyhow::Result<Self> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)?
            .timeout(Some(TIMEOUT))
            .build();
        Ok(Self {
            transport,
            from: from.parse()?,
            templates: templates()?,
        })
    }

    /// One attempt to send `letter` to `to` as delivery `delivery_id` (its Message-ID, so a
    /// repeat is recognisable as one).
    pub async fn send(
        &self,
        delivery_id: &str,
        to: Mailbox,
        letter: &Letter,
    ) -> Result<(), String> {
        let message = self.compose(delivery_id, to, letter)?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| format!("the SMTP server refused or is unreachable: {e}"))
    }

    fn compose(&self, delivery_id: &str, to: Mailbox, letter: &Letter) -> Result<Message, String> {
        let render = |name: &str| {
            self.templates
                .get_template(name)
                .and_then(|t| t.render(minijinja::value::Serde(letter)))
                .map_err(|e| format!("template {name}: {e}"))
        };
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(letter.subject())
            .message_id(Some(format!("<{delivery_id}@contrail>")))
            .multipart(MultiPart::alternative_plain_html(
                render("email.txt")?,
                render("email.html")?,
            ))
            .map_err(|e| format!("composing the e-mail: {e}"))
    }
}

/// The templates, compiled into the binary; `.html` ones escape every value.
fn templates() -> anyhow::Result<Environment<'static>> {
    let mut env = Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.add_template("email.txt", include_str!("templates/email.txt"))?;
    env.add_template("email.html", include_str!("templates/email.html"))?;
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(kind: NotificationKind, passenger: &str) -> Letter {
        Letter {
            kind,
            customer: passenger.to_owned(),
            order_id: "ord_1".into(),
            total: "129.00 USD".into(),
            flights: vec![FlightLine {
                flight_number: "AI101".into(),
                route: "DEL → BOM".into(),
                departs: "2031-03-01T08:00:00Z".into(),
                arrives: "2031-03-01T10:00:00Z".into(),
                seats: "12A".into(),
            }],
            tickets: vec![TicketLine {
                id: "tkt_1".into(),
                passenger: passenger.to_owned(),
                seat: "12A".into(),
                flight_number: "AI101".into(),
                route: "DEL → BOM".into(),
                departs: "2031-03-01T08:00:00Z".into(),
                arrives: "2031-03-01T10:00:00Z".into(),
            }],
        }
    }

    fn rendered(letter: &Letter) -> (String, String) {
        let env = templates().expect("templates");
        let text = env
            .get_template("email.txt")
            .and_then(|t| t.render(minijinja::value::Serde(letter)));
        let html = env
            .get_template("email.html")
            .and_then(|t| t.render(minijinja::value::Serde(letter)));
        (text.expect("text"), html.expect("html"))
    }

    #[test]
    fn every_kind_renders_in_both_parts() {
        for kind in [
            NotificationKind::OrderConfirmed,
            NotificationKind::PaymentDeclined,
            NotificationKind::OrderExpired,
            NotificationKind::OrderCancelled,
            NotificationKind::FlightCancelled,
        ] {
            let l = letter(kind, "Ann Lee");
            let (text, html) = rendered(&l);
            assert!(text.contains("ord_1") && html.contains("ord_1"), "{kind:?}");
            assert!(text.contains("AI101") && html.contains("AI101"), "{kind:?}");
            assert!(!l.subject().is_empty());
        }
        let (text, html) = rendered(&letter(NotificationKind::OrderConfirmed, "Ann Lee"));
        for part in [&text, &html] {
            for needle in [
                "tkt_1",
                "12A",
                "Ann Lee",
                "DEL → BOM",
                "2031-03-01T08:00:00Z",
            ] {
                assert!(part.contains(needle), "{needle} missing from\n{part}");
            }
        }
    }

    #[test]
    fn what_customers_typed_is_text_in_the_html_part() {
        let (_, html) = rendered(&letter(
            NotificationKind::OrderConfirmed,
            "<script>alert(1)</script>",
        ));
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
    }
}
