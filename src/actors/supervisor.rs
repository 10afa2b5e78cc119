//! FlightSupervisor: the restart policy for flight actors.
//!
//! ractor restarts nothing by itself, so this is ours: a flight actor that fails (panic or
//! error) is restarted from disk at once, up to `max_restarts` times per `restart_window`;
//! beyond that the flight is quarantined (its requests get 503) until the window has passed,
//! so a poison record cannot spin the node. Other flights are never affected.

use super::flight::{FlightActor, actor_name};
use crate::domain::ids::FlightId;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Flights that failed too often, and until when they stay down. Shared with the directory.
#[derive(Clone, Default)]
pub struct Quarantine(Arc<Mutex<HashMap<FlightId, Instant>>>);

impl Quarantine {
    /// Whether `id` may be activated now.
    pub fn blocks(&self, id: &FlightId) -> bool {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(id) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                map.remove(id);
                false
            }
            None => false,
        }
    }

    fn insert(&self, id: FlightId, until: Instant) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, until);
    }
}

/// The restart policy.
#[derive(Clone, Copy, Debug)]
pub struct RestartPolicy {
    /// Restarts allowed within `window`.
    pub max_restarts: u32,
    /// The counting window.
    pub window: Duration,
}

/// The supervisor; its fields are what it needs to restart a flight.
pub struct FlightSupervisor {
    /// How to build a flight actor.
    pub template: FlightActor,
    /// Restart limits.
    pub policy: RestartPolicy,
    /// Flights left stopped after too many failures.
    pub quarantine: Quarantine,
}

/// Requests to the supervisor.
pub enum SupervisorMessage {
    /// How many flight actors are running.
    ActiveCount(RpcReplyPort<usize>),
}

/// Live children and recent failures.
#[derive(Default)]
pub struct SupervisorState {
    active: usize,
    failures: HashMap<FlightId, VecDeque<Instant>>,
}

fn flight_of(cell: &ractor::ActorCell) -> Option<FlightId> {
    cell.get_name()
        .and_then(|name| name.strip_prefix("flight/").and_then(FlightId::parse))
}

impl FlightSupervisor {
    fn set_active(state: &mut SupervisorState, active: usize) {
        state.active = active;
        metrics::gauge!("contrail_flight_actors_active").set(active as f64);
    }

    async fn on_failure(
        &self,
        myself: &ActorRef<SupervisorMessage>,
        state: &mut SupervisorState,
        id: FlightId,
    ) {
        metrics::counter!("contrail_actor_restarts_total", "kind" => "flight").increment(1);
        let now = Instant::now();
        let recent = state.failures.entry(id.clone()).or_default();
        recent.retain(|t| now.duration_since(*t) < self.policy.window);
        recent.push_back(now);
        if recent.len() > self.policy.max_restarts as usize {
            tracing::error!(flight = %id, failures = recent.len(), "flight actor keeps failing; quarantined");
            self.quarantine.insert(id, now + self.policy.window);
            return;
        }
        let spawned = Actor::spawn_linked(
            Some(actor_name(&id)),
            self.template.clone(),
            id.clone(),
            myself.get_cell(),
        )
        .await;
        match spawned {
            Ok(_) => tracing::info!(flight = %id, "flight actor restarted from disk"),
            // Already re-activated by a request in the meantime: nothing to do.
            Err(ractor::SpawnErr::ActorAlreadyRegistered(_)) => {}
            Err(e) => {
                tracing::error!(flight = %id, error = %e, "flight actor could not be restarted")
            }
        }
    }
}

impl Actor for FlightSupervisor {
    type Msg = SupervisorMessage;
    type State = SupervisorState;
    type Arguments = ();

    async fn pre_start(
        &self,
        _: ActorRef<Self::Msg>,
        _: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(SupervisorState::default())
    }

    async fn handle(
        &self,
        _: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMessage::ActiveCount(reply) => {
                let _ = reply.send(state.active);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorStarted(_) => Self::set_active(state, state.active + 1),
            SupervisionEvent::ActorTerminated(..) => {
                Self::set_active(state, state.active.saturating_sub(1))
            }
            SupervisionEvent::ActorFailed(cell, error) => {
                Self::set_active(state, state.active.saturating_sub(1));
                tracing::error!(actor = ?cell.get_name(), error = %error, "flight actor failed");
                if let Some(id) = flight_of(&cell) {
                    self.on_failure(&myself, state, id).await;
                }
            }
            _ => {}
        }
        Ok(())
    }
}
