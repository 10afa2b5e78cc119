//! EntitySupervisor: the restart policy for entity actors (flights, orders, tickets).
//!
//! ractor restarts nothing by itself, so this is ours: an entity actor that fails (panic or
//! error) is restarted from disk at once, up to `max_restarts` times per `restart_window`;
//! beyond that the entity is quarantined (its requests get 503) until the window has passed,
//! so a poison record cannot spin the node. Other entities are never affected.

use super::entity::{Entity, id_of};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Entities that failed too often (by registry name), and until when they stay down.
#[derive(Clone, Default)]
pub struct Quarantine(Arc<Mutex<HashMap<String, Instant>>>);

impl Quarantine {
    /// Whether the entity with this registry name may be activated now.
    pub fn blocks(&self, name: &str) -> bool {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(name) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                map.remove(name);
                false
            }
            None => false,
        }
    }

    fn insert(&self, name: String, until: Instant) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name, until);
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

/// The supervisor of one kind of entity; its fields are what it needs to restart one.
pub struct EntitySupervisor<E: Entity> {
    /// How to build an entity actor.
    pub template: E,
    /// Restart limits.
    pub policy: RestartPolicy,
    /// Entities left stopped after too many failures.
    pub quarantine: Quarantine,
}

impl<E: Entity> Clone for EntitySupervisor<E> {
    fn clone(&self) -> Self {
        Self {
            template: self.template.clone(),
            policy: self.policy,
            quarantine: self.quarantine.clone(),
        }
    }
}

/// Requests to a supervisor.
pub enum SupervisorMessage {
    /// How many children are running.
    ActiveCount(RpcReplyPort<usize>),
    /// Fault injection for supervision tests: panics inside the actor. Not reachable over HTTP.
    InjectPanic,
}

// Local only: with ractor's `cluster` feature every message type opts in explicitly.
impl ractor::Message for SupervisorMessage {}

/// Live children and recent failures.
#[derive(Default)]
pub struct SupervisorState {
    active: usize,
    failures: HashMap<String, VecDeque<Instant>>,
}

impl<E: Entity> EntitySupervisor<E> {
    fn set_active(state: &mut SupervisorState, active: usize) {
        state.active = active;
        metrics::gauge!("contrail_entity_actors_active", "kind" => E::KIND).set(active as f64);
        if E::KIND == "flight" {
            metrics::gauge!("contrail_flight_actors_active").set(active as f64);
        }
    }

    async fn on_failure(
        &self,
        myself: &ActorRef<SupervisorMessage>,
        state: &mut SupervisorState,
        name: String,
        id: E::Id,
    ) {
        metrics::counter!("contrail_actor_restarts_total", "kind" => E::KIND).increment(1);
        let now = Instant::now();
        let recent = state.failures.entry(name.clone()).or_default();
        recent.retain(|t| now.duration_since(*t) < self.policy.window);
        recent.push_back(now);
        if recent.len() > self.policy.max_restarts as usize {
            tracing::error!(kind = E::KIND, %id, failures = recent.len(), "actor keeps failing; quarantined");
            self.quarantine.insert(name, now + self.policy.window);
            return;
        }
        let spawned = Actor::spawn_linked(
            Some(name),
            self.template.clone(),
            E::load(id.clone()),
            myself.get_cell(),
        )
        .await;
        match spawned {
            Ok(_) => tracing::info!(kind = E::KIND, %id, "actor restarted from disk"),
            // Already re-activated by a request in the meantime: nothing to do.
            Err(ractor::SpawnErr::ActorAlreadyRegistered(_)) => {}
            Err(e) => {
                tracing::error!(kind = E::KIND, %id, error = %e, "actor could not be restarted")
            }
        }
    }
}

impl<E: Entity> Actor for EntitySupervisor<E> {
    type Msg = SupervisorMessage;
    type State = SupervisorState;
    type Arguments = ();

    async fn pre_start(
        &self,
        _: ActorRef<Self::Msg>,
        _: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        // The series exists (at 0) before the first restart, for dashboards and alerts.
        drop(metrics::counter!("contrail_actor_restarts_total", "kind" => E::KIND));
        Ok(SupervisorState::default())
    }

    async fn handle(
        &self,
        _: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMessage::InjectPanic => {
                panic!("injected fault in the entity supervisor actor")
            }
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
                tracing::error!(kind = E::KIND, actor = ?cell.get_name(), error = %error, "actor failed");
                let name = cell.get_name();
                if let Some((name, id)) = name.and_then(|n| id_of::<E>(&n).map(|id| (n, id))) {
                    self.on_failure(&myself, state, name, id).await;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl super::root::InjectPanic for SupervisorMessage {
    fn inject_panic() -> Self {
        Self::InjectPanic
    }
}
