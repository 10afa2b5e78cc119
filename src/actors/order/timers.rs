//! An order actor's own timers: a retry of an unfinished saga step, and its passivation.
//! (Hold deadlines are not here: one node-level timer serves them all, see `deadlines`.)

use super::OrderActor;
use super::OrderMessage;
use super::OrderState;
use crate::domain::order::OrderStatus;
use ractor::ActorRef;
use std::time::Duration;

/// How soon an unfinished saga step (a charged order not yet confirmed, a refund under way,
/// an interrupted hold, seats still to be released) is retried when a participant could not
/// be reached.
pub(super) const RESUME_AFTER: Duration = Duration::from_secs(2);
/// How long an order's actor stays after its last command (at most `passivate_after`).
const ORDER_IDLE: Duration = Duration::from_secs(1);

impl OrderActor {
    /// Schedules a retry of an unfinished saga step, once.
    pub(super) fn resume_later(&self, myself: &ActorRef<OrderMessage>, state: &mut OrderState) {
        // A `pending` order that is not being placed any more (its hold failed to finish, or
        // its compensation did) is compensated on retry.
        let interrupted = state.order.status == OrderStatus::Pending && state.unwritten.is_none();
        let unfinished = state.unreleased
            || interrupted
            || matches!(
                state.order.status,
                OrderStatus::Paying | OrderStatus::Refunding
            );
        if unfinished && !state.resume_armed {
            state.resume_armed = true;
            myself.send_after(RESUME_AFTER, || OrderMessage::Resume);
        }
    }

    /// Schedules a passivation check, once: an order's actor lives while it works, and a moment
    /// after (a payment right after the hold finds it warm).
    pub(super) fn idle_later(
        &self,
        myself: &ActorRef<OrderMessage>,
        state: &mut OrderState,
        after: Duration,
    ) {
        if !state.tick_armed {
            state.tick_armed = true;
            myself.send_after(after, || OrderMessage::Tick);
        }
    }

    /// How long an order's actor stays after its last command.
    pub(super) fn idle_time(&self) -> Duration {
        self.passivate_after.min(ORDER_IDLE)
    }
}
