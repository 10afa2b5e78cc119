//! FlightActor: the only writer of one flight's seat map.
//!
//! Commands and replies are plain serde types, so the same enum serves local calls and, through
//! a shard gateway, remote ones. A change is committed to the store's log before the actor
//! answers; the answer does not wait for the sync. Callers that acknowledge to the outside
//! world wait for it ([`Directory::call`](super::directory::Directory::call)); an order's saga
//! needs not, because its own next durable write covers the flight's (one log, durable in
//! commit order) — which is how a booking waits for one group commit instead of three.

use super::entity::Entity;
use super::root::Slot;
use super::search_index::SearchIndexMessage;
use super::sold_out::SoldOut;
use crate::domain::aircraft::{Cabin, SeatName};
use crate::domain::flight::{Currency, Flight, FlightStatus};
use crate::domain::ids::{FlightId, OrderId};
use crate::domain::search::FlightSummary;
use crate::domain::seat_map::{ConfirmError, HoldError, Holder, SeatMap, SeatRequest, SeatStatus};
use crate::persistence::{Store, StoreError, WriteBatch, keys};
use chrono::{DateTime, Utc};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// Availability changes of one flight reach the search index at most this often.
const PUBLISH_EVERY: Duration = Duration::from_millis(50);

/// How long the next availability event waits, `since` the last one: `None` to publish now.
/// The caller reads the clock once (read twice, the second reading could be past
/// `PUBLISH_EVERY` and a plain subtraction would panic: it did, under load).
fn publish_wait(since: Option<Duration>) -> Option<Duration> {
    since
        .and_then(|since| PUBLISH_EVERY.checked_sub(since))
        .filter(|wait| !wait.is_zero())
}

/// A request to a flight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FlightCommand {
    /// The schedule, fares and seat counts.
    Get,
    /// Every seat with its state.
    Seats,
    /// Hold seats for an order, all or none, until `expires_at`.
    Hold {
        /// The order and its customer.
        holder: Holder,
        /// Which seats.
        request: SeatRequest,
        /// When the hold lapses.
        expires_at: DateTime<Utc>,
    },
    /// Mark seats the order holds as sold.
    Confirm {
        /// The holder.
        order: OrderId,
        /// Seats to sell.
        seats: Vec<SeatName>,
    },
    /// Free every seat of the order.
    Release {
        /// The holder.
        order: OrderId,
    },
    /// Cancel the flight: no new holds; answers with the orders that must be cancelled.
    Cancel,
}

/// One seat as clients see it (without the holder).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatView {
    /// Seat name.
    pub seat: SeatName,
    /// Its cabin.
    pub cabin: Cabin,
    /// `available`, `held` or `sold`.
    pub status: String,
}

/// A flight's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FlightReply {
    /// For `Get`.
    Summary(FlightSummary),
    /// For `Seats`.
    Seats(Vec<SeatView>),
    /// For `Hold`: the seats now held, and what they cost.
    Held {
        /// The seats, in layout order.
        seats: Vec<SeatName>,
        /// Sum of the seats' fares, in minor units.
        price_cents: u64,
        /// Currency of the fares.
        currency: Currency,
        /// The flight's departure.
        departs_at: DateTime<Utc>,
    },
    /// For `Cancel`: the orders that still hold or own seats on the (now cancelled) flight.
    Cancelled(Vec<OrderId>),
    /// Seats now sold (for `Confirm`) or released (for `Release`).
    Changed(Vec<SeatName>),
}

/// Why a flight refused a command. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum FlightError {
    /// The hold could not be granted.
    #[error(transparent)]
    Hold(#[from] HoldError),
    /// The confirmation could not be applied.
    #[error(transparent)]
    Confirm(#[from] ConfirmError),
    /// The flight is cancelled.
    #[error("flight {0} is cancelled")]
    NotScheduled(FlightId),
    /// The change could not be made durable.
    #[error("storage failed: {0}")]
    Storage(String),
    /// This node may not change the flight now (it does not lead the flight's partition, or
    /// is handing it over); retrying is safe.
    #[error("{0}")]
    Unavailable(String),
}

/// Messages a FlightActor handles.
pub enum FlightMessage {
    /// A command with the port for its answer and the span to work in.
    Command(
        FlightCommand,
        RpcReplyPort<Result<FlightReply, FlightError>>,
        tracing::Span,
    ),
    /// Sweep lapsed holds, passivate when idle (scheduled for the earliest hold deadline and
    /// for the end of the idle time, never periodically: 10 000 idle flights cost no wake-ups).
    Tick,
    /// Send the coalesced availability to the search index.
    Publish,
    /// Fault injection for supervision tests: panics inside the actor. Not reachable over HTTP.
    InjectPanic,
}

// Local only: with ractor's `cluster` feature every message type opts in explicitly.
impl ractor::Message for FlightMessage {}

/// Why a flight could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// No such flight in the store.
    #[error("flight {0} does not exist")]
    NotFound(FlightId),
    /// The store failed or holds unreadable records.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Stored seats do not fit the flight's layout.
    #[error("flight {0}: {1}")]
    Inconsistent(FlightId, String),
}

/// The actor; its fields are the fixed handles every flight shares.
#[derive(Clone)]
pub struct FlightActor {
    /// The node's store.
    pub store: Store,
    /// Where availability changes are published.
    pub index: Slot<SearchIndexMessage>,
    /// Idle time before passivation.
    pub passivate_after: Duration,
    /// Most live seats one customer may have on one flight (`booking.max_seats_per_user_per_flight`).
    pub hold_cap: Option<u16>,
    /// Where the flight says which of its cabins are full, for bookings to be refused early.
    pub sold_out: SoldOut,
}

/// A live flight: its schedule and seats, as committed.
pub struct FlightState {
    flight: Flight,
    seats: SeatMap,
    last_active: Instant,
    /// When availability was last sent to the search index.
    published_at: Option<Instant>,
    /// When the next `Tick` is due, if one is scheduled.
    next_tick: Option<Instant>,
    /// A coalesced `Publish` is scheduled.
    publish_pending: bool,
}

/// Loads a flight and its seats from the store.
pub fn load(store: &Store, id: &FlightId) -> Result<(Flight, SeatMap), LoadError> {
    let flight: Flight = store
        .get(&keys::flight(id))?
        .ok_or_else(|| LoadError::NotFound(id.clone()))?;
    let stored = store
        .scan::<SeatStatus>(&keys::seats_of(id))
        .map(|item| {
            let (name, status) = item?;
            let seat = SeatName::parse(&name)
                .map_err(|e| LoadError::Inconsistent(id.clone(), e.reason))?;
            Ok((seat, status))
        })
        .collect::<Result<Vec<_>, LoadError>>()?;
    let seats = SeatMap::restore(&flight.layout, stored)
        .map_err(|e| LoadError::Inconsistent(id.clone(), e.to_string()))?;
    Ok((flight, seats))
}

impl FlightState {
    fn summary(&self) -> FlightSummary {
        FlightSummary {
            flight: self.flight.clone(),
            availability: self.seats.availability(),
        }
    }

    fn seat_views(&self) -> Vec<SeatView> {
        self.seats
            .seats()
            .iter()
            .map(|s| SeatView {
                seat: s.name,
                cabin: s.cabin,
                status: s.status.label().to_owned(),
            })
            .collect()
    }

    /// Applies a command to memory; returns the reply and the seats it changed.
    fn apply(
        &mut self,
        cmd: FlightCommand,
        now: DateTime<Utc>,
        cap: Option<u16>,
    ) -> Result<(FlightReply, Vec<SeatName>), FlightError> {
        match cmd {
            FlightCommand::Get => Ok((FlightReply::Summary(self.summary()), vec![])),
            FlightCommand::Seats => Ok((FlightReply::Seats(self.seat_views()), vec![])),
            FlightCommand::Hold {
                holder,
                request,
                expires_at,
            } => {
                if self.flight.status != FlightStatus::Scheduled {
                    return Err(FlightError::NotScheduled(self.flight.id.clone()));
                }
                let held = self.seats.hold(&request, &holder, expires_at, now, cap)?;
                let price_cents = held
                    .iter()
                    .filter_map(|seat| self.flight.layout.cabin_of(*seat))
                    .filter_map(|cabin| self.flight.fares.get(&cabin))
                    .sum();
                let reply = FlightReply::Held {
                    seats: held.clone(),
                    price_cents,
                    currency: self.flight.currency.clone(),
                    departs_at: self.flight.departs_at,
                };
                Ok((reply, held))
            }
            FlightCommand::Confirm { order, seats } => {
                if self.flight.status != FlightStatus::Scheduled {
                    return Err(FlightError::NotScheduled(self.flight.id.clone()));
                }
                let sold = self.seats.confirm(&order, &seats, now)?;
                Ok((FlightReply::Changed(seats), sold))
            }
            FlightCommand::Release { order } => {
                let freed = self.seats.release(&order);
                Ok((FlightReply::Changed(freed.clone()), freed))
            }
            // Handled by `FlightActor::cancel`, which also writes the flight record.
            FlightCommand::Cancel => Ok((FlightReply::Cancelled(self.seats.orders()), vec![])),
        }
    }

    /// The seat records to write for `changed` seats.
    fn batch_for(&self, changed: &[SeatName]) -> Result<WriteBatch, StoreError> {
        let mut batch = WriteBatch::new();
        for &seat in changed {
            let key = keys::seat(&self.flight.id, seat);
            match self.seats.status(seat) {
                Some(SeatStatus::Available) | None => {
                    batch.delete(&key);
                }
                Some(status) => {
                    batch.put(&key, status)?;
                }
            }
        }
        Ok(batch)
    }
}

impl FlightActor {
    /// Cancels the flight (once) and answers with the orders holding seats on it.
    fn cancel(
        &self,
        myself: &ActorRef<FlightMessage>,
        state: &mut FlightState,
        reply: RpcReplyPort<Result<FlightReply, FlightError>>,
    ) -> Result<(), ActorProcessingErr> {
        let orders = FlightReply::Cancelled(state.seats.orders());
        if state.flight.status == FlightStatus::Cancelled {
            let _ = reply.send(Ok(orders));
            return Ok(());
        }
        let mut flight = state.flight.clone();
        flight.status = FlightStatus::Cancelled;
        let mut batch = WriteBatch::new();
        batch.put(&keys::flight(&flight.id), &flight)?;
        if let Err(refused) = self.commit(myself, batch)? {
            let _ = reply.send(Err(refused));
            return Ok(());
        }
        state.flight = flight;
        // It takes no bookings at all now; that answer comes from the actor.
        self.sold_out.forget(&state.flight.id);
        self.index.cast(SearchIndexMessage::Upsert(state.summary()));
        tracing::info!(flight = %state.flight.id, "flight cancelled");
        let _ = reply.send(Ok(orders));
        Ok(())
    }

    /// Commits `batch` to the store's log: ordered before every later write of the node, and
    /// durable with its group's sync, which this actor does not wait for (should the sync
    /// fail, the store refuses every later write and whoever waits for durability is told).
    ///
    /// A write the store refuses because this node may not make it now (the flight is being
    /// handed over, or this node no longer leads its partition) comes back as `Unavailable`
    /// for the caller, and the actor stops: its memory holds the refused change. That is not a
    /// fault, so it does not count toward quarantine; the next request activates the flight
    /// from disk, wherever it then lives. Any other refusal is a fault: the actor crashes and
    /// is restarted from disk.
    fn commit(
        &self,
        myself: &ActorRef<FlightMessage>,
        batch: WriteBatch,
    ) -> Result<Result<(), FlightError>, StoreError> {
        match self.store.record(batch) {
            Ok(()) => Ok(Ok(())),
            Err(e @ StoreError::Fenced { .. }) => {
                tracing::warn!(error = %e, "flight write refused; the actor steps down");
                myself.stop(Some("write fenced".into()));
                Ok(Err(FlightError::Unavailable(e.to_string())))
            }
            Err(e) => Err(e),
        }
    }

    /// Tells the search index about the flight's availability, at most once per
    /// [`PUBLISH_EVERY`]: a busy flight's changes are coalesced into one event.
    fn publish(&self, myself: &ActorRef<FlightMessage>, state: &mut FlightState) {
        if state.publish_pending {
            return;
        }
        match publish_wait(state.published_at.map(|at| at.elapsed())) {
            Some(wait) => {
                state.publish_pending = true;
                myself.send_after(wait, || FlightMessage::Publish);
            }
            None => self.publish_now(state),
        }
    }

    fn publish_now(&self, state: &mut FlightState) {
        state.publish_pending = false;
        state.published_at = Some(Instant::now());
        let event =
            SearchIndexMessage::Availability(state.flight.id.clone(), state.seats.availability());
        // The index is best effort: it lags or misses an event only if it is restarting.
        self.index.cast(event);
    }

    /// Writes `changed` seats and answers.
    fn persist_then_reply(
        &self,
        myself: &ActorRef<FlightMessage>,
        state: &mut FlightState,
        changed: &[SeatName],
        reply: RpcReplyPort<Result<FlightReply, FlightError>>,
        value: FlightReply,
    ) -> Result<(), ActorProcessingErr> {
        let answer = self
            .commit(myself, state.batch_for(changed)?)?
            .map(|()| value);
        if answer.is_ok() {
            self.post_full_cabins(myself, state);
            self.publish(myself, state);
        }
        let _ = reply.send(answer);
        Ok(())
    }

    /// Puts the flight's full cabins on the node's board (see [`SoldOut`]); a flight that takes
    /// no bookings at all has none there, its own answer says why.
    fn post_full_cabins(&self, myself: &ActorRef<FlightMessage>, state: &mut FlightState) {
        if state.flight.status == FlightStatus::Scheduled {
            self.sold_out
                .update(&state.flight.id, myself.get_cell(), &state.seats);
        } else {
            self.sold_out.forget(&state.flight.id);
        }
    }

    /// Schedules the next `Tick`, unless one is due sooner already: at the earliest hold
    /// deadline while seats are held (such a flight stays active whatever its idle time), else
    /// at the end of the idle time.
    fn schedule_tick(&self, myself: &ActorRef<FlightMessage>, state: &mut FlightState) {
        let due = match state.seats.earliest_hold() {
            Some(deadline) => {
                let wait = (deadline - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                Instant::now() + wait
            }
            None => state.last_active + self.passivate_after,
        };
        self.tick_at(myself, state, due);
    }

    fn tick_at(&self, myself: &ActorRef<FlightMessage>, state: &mut FlightState, due: Instant) {
        if state.next_tick.is_some_and(|next| next <= due) {
            return;
        }
        state.next_tick = Some(due);
        // A moment after the deadline, so the hold has lapsed when the tick looks.
        let wait = due.saturating_duration_since(Instant::now()) + Duration::from_millis(5);
        myself.send_after(wait, || FlightMessage::Tick);
    }

    fn tick(
        &self,
        myself: &ActorRef<FlightMessage>,
        state: &mut FlightState,
    ) -> Result<(), ActorProcessingErr> {
        if state.next_tick.is_some_and(|due| Instant::now() < due) {
            // An earlier schedule's tick; the one that is due comes later.
            return Ok(());
        }
        state.next_tick = None;
        let freed = state.seats.sweep_expired(Utc::now());
        if !freed.is_empty() {
            tracing::info!(flight = %state.flight.id, seats = freed.len(), "released lapsed holds");
            metrics::counter!("contrail_holds_expired_total").increment(freed.len() as u64);
            if self.commit(myself, state.batch_for(&freed)?)?.is_err() {
                return Ok(());
            }
            self.post_full_cabins(myself, state);
            self.publish(myself, state);
        }
        // A flight with holds stays active: its tick is what returns lapsed holds to sale.
        if state.last_active.elapsed() >= self.passivate_after && !state.seats.has_holds() {
            tracing::debug!(flight = %state.flight.id, "passivating idle flight actor");
            // Drain: messages already queued are still handled; later ones re-activate it.
            myself.drain()?;
            return Ok(());
        }
        self.schedule_tick(myself, state);
        Ok(())
    }
}

impl Entity for FlightActor {
    type Id = FlightId;
    type Command = FlightCommand;
    type Reply = Result<FlightReply, FlightError>;
    type Start = FlightId;
    const KIND: &'static str = "flight";

    fn load(id: FlightId) -> FlightId {
        id
    }

    /// A flight answers as soon as its change is committed (see `FlightActor::commit`).
    fn answers_before_durable(command: &FlightCommand) -> bool {
        !matches!(command, FlightCommand::Get | FlightCommand::Seats)
    }

    fn exists(store: &Store, id: &FlightId) -> Result<bool, StoreError> {
        store.contains(&keys::flight(id))
    }

    fn directory(services: &super::services::Services) -> &super::directory::Directory<Self> {
        &services.flights
    }

    fn command_name(command: &FlightCommand) -> &'static str {
        match command {
            FlightCommand::Get => "get",
            FlightCommand::Seats => "seats",
            FlightCommand::Hold { .. } => "hold",
            FlightCommand::Confirm { .. } => "confirm",
            FlightCommand::Release { .. } => "release",
            FlightCommand::Cancel => "cancel",
        }
    }

    fn request(
        command: FlightCommand,
        reply: RpcReplyPort<Self::Reply>,
        span: tracing::Span,
    ) -> FlightMessage {
        FlightMessage::Command(command, reply, span)
    }
}

/// Finds flight actors.
pub type FlightDirectory = super::directory::Directory<FlightActor>;

impl Actor for FlightActor {
    type Msg = FlightMessage;
    type State = FlightState;
    type Arguments = FlightId;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        id: FlightId,
    ) -> Result<Self::State, ActorProcessingErr> {
        // A previous incarnation (crashed, or passivated a moment ago) may have writes still on
        // their way to the engine: load after them, or a seat it sold could look free.
        self.store.caught_up().await?;
        let (flight, seats) = load(&self.store, &id)?;
        let state = FlightState {
            flight,
            seats,
            last_active: Instant::now(),
            published_at: None,
            next_tick: None,
            publish_pending: false,
        };
        self.index.cast(SearchIndexMessage::Upsert(state.summary()));
        let mut state = state;
        self.post_full_cabins(&myself, &mut state);
        self.schedule_tick(&myself, &mut state);
        Ok(state)
    }

    async fn post_stop(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        self.sold_out.retire(&state.flight.id, &myself.get_cell());
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            FlightMessage::Command(cmd, reply, span) => {
                // Nothing below awaits: the guard is dropped before the actor yields.
                let _working = span.enter();
                state.last_active = Instant::now();
                if reply.is_closed() && matches!(cmd, FlightCommand::Hold { .. }) {
                    // The caller gave up: do not hold seats for nobody. (Releases, confirms and
                    // cancels still run: they are compensations the caller will rely on.)
                    return Ok(());
                }
                if cmd == FlightCommand::Cancel {
                    return self.cancel(&myself, state, reply);
                }
                // A new hold's deadline: the flight's tick must come by then. (Every older hold
                // has its tick scheduled already, by its own hold or by the last tick's sweep.)
                let deadline = match &cmd {
                    FlightCommand::Hold { expires_at, .. } => Some(*expires_at),
                    _ => None,
                };
                match state.apply(cmd, Utc::now(), self.hold_cap) {
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                    Ok((value, changed)) if changed.is_empty() => {
                        let _ = reply.send(Ok(value));
                    }
                    Ok((value, changed)) => {
                        if let Some(deadline) = deadline {
                            let wait = (deadline - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                            self.tick_at(&myself, state, Instant::now() + wait);
                        }
                        self.persist_then_reply(&myself, state, &changed, reply, value)?
                    }
                }
                Ok(())
            }
            FlightMessage::Tick => self.tick(&myself, state),
            FlightMessage::Publish => {
                self.publish_now(state);
                Ok(())
            }
            FlightMessage::InjectPanic => panic!("injected fault in flight {}", state.flight.id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_availability_event_waits_out_the_interval_and_never_underflows() {
        let ms = Duration::from_millis;
        assert_eq!(publish_wait(None), None);
        assert_eq!(publish_wait(Some(ms(0))), Some(PUBLISH_EVERY));
        assert_eq!(publish_wait(Some(ms(20))), Some(PUBLISH_EVERY - ms(20)));
        assert_eq!(publish_wait(Some(PUBLISH_EVERY)), None);
        assert_eq!(publish_wait(Some(PUBLISH_EVERY + ms(1))), None);
        assert_eq!(publish_wait(Some(Duration::MAX)), None);
    }
}
