//! The hold step: every segment held on its flight, all or none; and the hold's end when it
//! lapses (released, the order expired) or the saga gives up.

use super::Change;
use super::OrderActor;
use super::OrderError;
use super::OrderState;
use super::hold_failure;
use super::step;
use crate::actors::CallError;
use crate::actors::flight::FlightCommand;
use crate::actors::flight::FlightDirectory;
use crate::actors::flight::FlightReply;
use crate::actors::notification::NotificationKind;
use crate::domain::flight::Currency;
use crate::domain::order::HoldFailure;
use crate::domain::order::Order;
use crate::domain::order::OrderEvent;
use crate::domain::order::OrderStatus;
use crate::domain::seat_map::Holder;
use crate::persistence::WriteBatch;
use chrono::Utc;
use futures::future::join_all;
use std::time::Duration;

/// First and longest wait between retries of a failed order's release.
const RELEASE_RETRY: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(5));

/// Releases `order`'s seats on every flight; whether every flight answered.
async fn release_segments(flights: &FlightDirectory, order: &Order) -> bool {
    let calls = order.segments.iter().map(|seg| {
        flights.call_in_saga(
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

impl OrderActor {
    /// Releases the order's seats on every flight (idempotent). A flight that cannot be reached
    /// keeps the hold until its deadline, when the flight itself returns it to sale.
    pub(super) async fn release_all(&self, order: &Order) -> bool {
        release_segments(&self.flights, order).await
    }

    /// Keeps releasing the seats of `order`, which failed or ended durably while a flight could
    /// not be reached (a failover, say), until every flight has let them go or the hold lapses
    /// by itself. Safe only because the end is on disk: such an order never holds again (a
    /// retry of a failed request makes a new order), so no later hold can be undone by mistake.
    fn release_later(&self, order: Order) {
        let flights = self.flights.clone();
        tokio::spawn(async move {
            let mut wait = RELEASE_RETRY.0;
            while Utc::now() < order.expires_at {
                tokio::time::sleep(wait).await;
                if release_segments(&flights, &order).await {
                    tracing::info!(order = %order.id, "seats of a failed order released on retry");
                    return;
                }
                wait = (wait * 2).min(RELEASE_RETRY.1);
            }
        });
    }

    pub(super) async fn place(&self, state: &mut OrderState) -> Result<Order, OrderError> {
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
        self.save(state, Change::to(next)).await?;
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
    pub(super) async fn fail(
        &self,
        state: &mut OrderState,
        held: &Order,
        failure: HoldFailure,
    ) -> OrderError {
        let released = step(&held.id, "compensate", self.release_all(held)).await;
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
        let failed = Self::after(&state.order, OrderEvent::HoldFailed).map(|mut failed| {
            failed.failure = Some(failure.clone());
            Change::to(failed).with(extra)
        });
        let recorded = match failed {
            // Nothing left held: the failure need not wait for the disk.
            Ok(change) if released => self.record(state, change),
            // Seats left held: the failure must be durable before they are released later.
            Ok(change) => self.save(state, change).await,
            Err(e) => Err(e),
        };
        match recorded {
            Ok(()) => {
                if !released {
                    self.release_later(held.clone());
                }
                failure.into()
            }
            Err(e) => e,
        }
    }

    /// Ends a held order (expired or cancelled): any charge a lost or late gateway answer may
    /// have taken is refunded, the seats are released, then the end is saved (which makes the
    /// releases durable with it). A release that fails is retried once the end is saved, until
    /// the hold's deadline, when the flight frees the seats itself.
    pub(super) async fn end_hold(
        &self,
        state: &mut OrderState,
        event: OrderEvent,
        note: NotificationKind,
    ) -> Result<(), OrderError> {
        self.refund(&state.order).await?;
        let released = step(&state.order.id, "release", self.release_all(&state.order)).await;
        let ended = state.order.clone();
        let next = Self::after(&state.order, event)?;
        self.save(state, Change::to(next).noting(note)).await?;
        if !released {
            // Ended on disk: the order never holds again, so a later release is safe.
            self.release_later(ended);
        }
        Ok(())
    }

    pub(super) async fn expire(&self, state: &mut OrderState) -> Result<(), OrderError> {
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

    /// Expires a held order whose deadline has passed (an early call re-registers it).
    pub(super) async fn expire_if_due(&self, state: &mut OrderState) -> Result<Order, OrderError> {
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
