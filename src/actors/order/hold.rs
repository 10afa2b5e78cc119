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
use crate::domain::ids::OrderId;
use crate::domain::order::HoldFailure;
use crate::domain::order::Order;
use crate::domain::order::OrderEvent;
use crate::domain::order::OrderStatus;
use crate::domain::seat_map::Holder;
use crate::persistence::WriteBatch;
use crate::persistence::keys;
use chrono::Utc;
use futures::future::join_all;

/// The reminder an order that ended with seats perhaps still held writes with its end (nothing
/// when every flight let them go).
pub(super) fn reminder(order: &OrderId, released: bool) -> Result<WriteBatch, OrderError> {
    let mut batch = WriteBatch::new();
    if !released {
        batch.put(&keys::release(order), &())?;
    }
    Ok(batch)
}

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
    /// Releases the order's seats on every flight (idempotent); whether every flight answered.
    /// A flight that cannot be reached keeps the hold until a retry or its deadline, when the
    /// flight itself returns it to sale.
    pub(super) async fn release_all(&self, order: &Order) -> bool {
        release_segments(&self.flights, order).await
    }

    /// Releases the seats of an order that ended while a flight could not be reached (its
    /// reminder, [`keys::release`], says so), then drops the reminder — also once the hold's
    /// deadline has passed, when the flights have let the held seats go by themselves. Safe
    /// only because the end is on disk: such an order never holds again (a retry of a failed
    /// request makes a new order), so no later hold can be undone by mistake.
    pub(super) async fn release_again(&self, state: &mut OrderState) -> Result<(), OrderError> {
        let released = step(&state.order.id, "release", self.release_all(&state.order)).await;
        if !released && Utc::now() < state.order.expires_at {
            return Err(OrderError::Unavailable(
                "a flight could not be reached yet; releasing the seats resumes automatically"
                    .into(),
            ));
        }
        let mut done = WriteBatch::new();
        done.delete(&keys::release(&state.order.id));
        // Lost in a crash, the reminder only makes the (idempotent) release run once more.
        self.store.record(done)?;
        state.unreleased = false;
        tracing::info!(order = %state.order.id, "seats of an ended order released on retry");
        Ok(())
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
        let key = match (&failure, state.key.take()) {
            (HoldFailure::Unavailable(_), Some(key)) => Some(key),
            _ => None,
        };
        let failed = Self::after(&state.order, OrderEvent::HoldFailed).and_then(|mut failed| {
            failed.failure = Some(failure.clone());
            let mut extra = reminder(&failed.id, released)?;
            if let Some(key) = &key {
                extra.delete(key);
            }
            Ok(Change::to(failed).with(extra))
        });
        let recorded = match failed {
            // Nothing left held: the failure need not wait for the disk.
            Ok(change) if released => self.record(state, change),
            // Seats left held: the failure and its reminder must be durable before the
            // release is retried.
            Ok(change) => self.save(state, change).await,
            Err(e) => Err(e),
        };
        match recorded {
            Ok(()) => {
                state.unreleased = !released;
                failure.into()
            }
            Err(e) => e,
        }
    }

    /// Ends a held (or paying) order (expired or cancelled): any charge a lost or late gateway answer may
    /// have taken is refunded, the seats are released, then the end is saved (which makes the
    /// releases durable with it). A release that fails is retried once the end is saved (see
    /// [`OrderActor::release_again`]).
    pub(super) async fn end_hold(
        &self,
        state: &mut OrderState,
        event: OrderEvent,
        note: NotificationKind,
    ) -> Result<(), OrderError> {
        self.refund(&state.order).await?;
        let released = step(&state.order.id, "release", self.release_all(&state.order)).await;
        let next = Self::after(&state.order, event)?;
        let extra = reminder(&next.id, released)?;
        self.save(state, Change::to(next).noting(note).with(extra))
            .await?;
        state.unreleased = !released;
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
