//! The directory: finds the actor for an entity id, activating it from disk when it is not
//! running, and delivers one command to it with a deadline.
//!
//! Activation goes through ractor's name registry, which admits one actor per name, so two
//! requests racing to activate the same flight end up at the same actor (single writer).

use super::flight::{
    FlightActor, FlightCommand, FlightError, FlightMessage, FlightReply, actor_name,
};
use super::supervisor::{Quarantine, SupervisorMessage};
use super::{CallError, ask};
use crate::domain::ids::FlightId;
use crate::persistence::{Store, keys};
use ractor::{Actor, ActorRef, SpawnErr};
use std::time::Duration;
use tokio::time::Instant;

/// How long to wait between attempts while a passivating actor still holds its name.
const REACTIVATE_BACKOFF: Duration = Duration::from_millis(2);

/// Locates entity actors on this node.
#[derive(Clone)]
pub struct Directory {
    store: Store,
    supervisor: ActorRef<SupervisorMessage>,
    template: FlightActor,
    quarantine: Quarantine,
    timeout: Duration,
}

impl Directory {
    /// A directory activating flights as children of `supervisor`.
    pub fn new(
        store: Store,
        supervisor: ActorRef<SupervisorMessage>,
        template: FlightActor,
        quarantine: Quarantine,
        timeout: Duration,
    ) -> Self {
        Self {
            store,
            supervisor,
            template,
            quarantine,
            timeout,
        }
    }

    /// The deadline of one call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends `cmd` to flight `id`, activating its actor if needed.
    ///
    /// If the actor is gone before the command was delivered (passivated or restarting), the
    /// command is delivered to its next activation. If it stops after delivery, the caller gets
    /// [`CallError::Stopped`] (the command may or may not have been applied; every flight
    /// command is idempotent per order, so the client may retry).
    pub async fn flight(
        &self,
        id: &FlightId,
        cmd: FlightCommand,
    ) -> Result<Result<FlightReply, FlightError>, CallError> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let Some(actor) = self.find_or_activate(id).await? else {
                if Instant::now() >= deadline {
                    return Err(CallError::Timeout);
                }
                tokio::time::sleep(REACTIVATE_BACKOFF).await;
                continue;
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(CallError::Timeout);
            }
            let command = cmd.clone();
            match actor
                .call(
                    |port| FlightMessage::Command(command, port),
                    Some(remaining),
                )
                .await
            {
                Ok(ractor::rpc::CallResult::Success(reply)) => return Ok(reply),
                Ok(ractor::rpc::CallResult::Timeout) => return Err(CallError::Timeout),
                Ok(ractor::rpc::CallResult::SenderError) => return Err(CallError::Stopped),
                // Not delivered: the actor had stopped. Try its next activation.
                Err(_) if Instant::now() < deadline => tokio::time::sleep(REACTIVATE_BACKOFF).await,
                Err(_) => return Err(CallError::Timeout),
            }
        }
    }

    /// Fault injection for supervision tests: makes the flight's actor panic.
    pub async fn inject_panic(&self, id: &FlightId) -> Result<(), CallError> {
        let actor = self.find_or_activate(id).await?.ok_or(CallError::Stopped)?;
        actor
            .cast(FlightMessage::InjectPanic)
            .map_err(|_| CallError::Stopped)
    }

    /// How many flight actors run on this node.
    pub async fn active_flights(&self) -> Result<usize, CallError> {
        ask(
            &self.supervisor,
            SupervisorMessage::ActiveCount,
            self.timeout,
        )
        .await
    }

    /// The running actor, a fresh activation, or `None` when the name is briefly taken by an
    /// actor that is stopping (try again shortly).
    async fn find_or_activate(
        &self,
        id: &FlightId,
    ) -> Result<Option<ActorRef<FlightMessage>>, CallError> {
        let name = actor_name(id);
        if let Some(actor) = ActorRef::<FlightMessage>::where_is(name.clone()) {
            return Ok(Some(actor));
        }
        if self.quarantine.blocks(id) {
            return Err(CallError::Unavailable(format!(
                "flight {id} is restarting too often"
            )));
        }
        if !self.store.contains(&keys::flight(id)).map_err(|e| {
            tracing::error!(flight = %id, error = %e, "storage read failed");
            CallError::Unavailable("storage is unavailable".into())
        })? {
            return Err(CallError::NotFound);
        }
        match Actor::spawn_linked(
            Some(name.clone()),
            self.template.clone(),
            id.clone(),
            self.supervisor.get_cell(),
        )
        .await
        {
            Ok((actor, _)) => Ok(Some(actor)),
            // Someone else activated it first, or it is still draining: use theirs or wait.
            Err(SpawnErr::ActorAlreadyRegistered(_)) => {
                Ok(ActorRef::<FlightMessage>::where_is(name))
            }
            Err(e) => {
                tracing::error!(flight = %id, error = %e, "flight actor could not be activated");
                Err(CallError::Unavailable(format!(
                    "flight {id} could not be loaded"
                )))
            }
        }
    }
}
