//! The payment step: charge once per order, then confirm every segment's seats and issue the
//! tickets; a charged order that cannot be confirmed is refunded.

use super::Change;
use super::OrderActor;
use super::OrderError;
use super::OrderState;
use super::step;
use crate::actors::flight::FlightCommand;
use crate::actors::flight::FlightError;
use crate::actors::notification::NotificationKind;
use crate::actors::payment::PaymentCommand;
use crate::actors::payment::PaymentMessage;
use crate::actors::payment::PaymentReply;
use crate::domain::ids::TicketId;
use crate::domain::order::Order;
use crate::domain::order::OrderEvent;
use crate::domain::order::OrderStatus;
use crate::domain::order::TicketRecord;
use crate::domain::order::TicketStatus;
use crate::persistence::WriteBatch;
use crate::persistence::keys;
use chrono::Utc;
use futures::future::join_all;

impl OrderActor {
    pub(super) async fn pay(
        &self,
        state: &mut OrderState,
        token: String,
    ) -> Result<Order, OrderError> {
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
                self.record(state, Change::to(next))?;
                self.finish_payment(state).await
            }
        }
    }

    /// After the charge: sell the seats and issue tickets, or, if a hold lapsed (or a flight was
    /// cancelled) meanwhile, refund and end the order. Safe to repeat: every step is idempotent.
    pub(super) async fn finish_payment(&self, state: &mut OrderState) -> Result<Order, OrderError> {
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
            // Refunded, released (or reminded to release), ended: never confirmed later.
            self.end_hold(state, event, kind).await?;
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
                // Listed under the customer's tag; indexed only if the order (from an earlier
                // build) does not carry it.
                if ticket.id.tag() != ticket.user.tag() {
                    batch.put(&keys::ticket_of(&ticket.user, &ticket.id), &ticket.id)?;
                }
                next.tickets.push(ticket.id);
            }
        }
        let id = state.order.id.clone();
        step(
            &id,
            "issue_tickets",
            self.save(
                state,
                Change::to(next)
                    .with(batch)
                    .noting(NotificationKind::OrderConfirmed),
            ),
        )
        .await?;
        // Each ticket's actor is activated by the ticket's first request, like every entity.
        tracing::info!(order = %state.order.id, "order confirmed");
        Ok(state.order.clone())
    }

    /// Refunds the order's charge, if there is one (idempotent; a no-op without a charge).
    pub(super) async fn refund(&self, order: &Order) -> Result<(), OrderError> {
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
}
