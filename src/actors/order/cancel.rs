//! Cancellation by the customer or the airline: release or void the seats, refund what was
//! paid, and finish an interrupted refund.

use super::Change;
use super::OrderActor;
use super::OrderError;
use super::OrderState;
use super::step;
use crate::actors::notification::NotificationKind;
use crate::actors::ticket::TicketCommand;
use crate::domain::order::Order;
use crate::domain::order::OrderEvent;
use crate::domain::order::OrderStatus;
use chrono::Utc;
use futures::future::join_all;

impl OrderActor {
    /// Cancels an order: a held one is released; a paid one refunded (tickets void, seats
    /// released). `by_airline` skips the departure check and notifies `flight_cancelled`.
    pub(super) async fn cancel(
        &self,
        state: &mut OrderState,
        by_airline: bool,
    ) -> Result<Order, OrderError> {
        let kind = if by_airline {
            NotificationKind::FlightCancelled
        } else {
            NotificationKind::OrderCancelled
        };
        match state.order.status {
            // A paying order is refunded and ended at once (its seats released, or reminded to
            // be): left `paying`, its resumption would confirm the seats after the refund.
            OrderStatus::Held | OrderStatus::Paying => {
                self.end_hold(state, OrderEvent::Cancelled, kind).await?
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
                    self.save(state, Change::to(next)).await?;
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
    pub(super) async fn finish_refund(
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
        self.save(state, Change::to(next).noting(note)).await
    }
}
