//! The directory: finds the actor for an entity id, activating it from disk when it is not
//! running, and delivers one command to it with a deadline.
//!
//! Activation goes through ractor's name registry, which admits one actor per name, so two
//! requests racing to activate the same entity end up at the same actor (single writer).

use super::CallError;
use super::entity::{Entity, EntityCall, actor_name};
use super::request::Request;
use super::root::Slot;
use super::router::{Location, RouterRef};
use super::supervisor::{Quarantine, SupervisorMessage};
use crate::domain::ids::EntityId;
use crate::persistence::Store;
use ractor::{Actor, ActorRef, SpawnErr};
use std::time::Duration;
use tokio::time::Instant;
use tracing::Instrument;

/// How long to wait between attempts while a passivating actor still holds its name.
const REACTIVATE_BACKOFF: Duration = Duration::from_millis(2);

/// Locates the actors of one kind of entity on this node.
#[derive(Clone)]
pub struct Directory<E: Entity> {
    store: Store,
    supervisor: Slot<SupervisorMessage>,
    template: E,
    quarantine: Quarantine,
    timeout: Duration,
    router: RouterRef,
}

impl<E: Entity> Directory<E> {
    /// A directory activating entities from `template` as children of `supervisor`.
    pub fn new(
        store: Store,
        supervisor: Slot<SupervisorMessage>,
        template: E,
        quarantine: Quarantine,
        timeout: Duration,
        router: RouterRef,
    ) -> Self {
        Self {
            store,
            supervisor,
            template,
            quarantine,
            timeout,
            router,
        }
    }

    /// The deadline of one call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends `cmd` to entity `id` on the node that owns it and answers once whatever it
    /// changed is durable: for callers that acknowledge to the outside world.
    pub async fn call(&self, id: &E::Id, cmd: E::Command) -> Result<E::Reply, CallError>
    where
        Request: From<EntityCall<E>>,
    {
        let call = EntityCall {
            id: id.clone(),
            command: cmd,
        };
        self.router.ask(call, self).await?
    }

    /// [`Directory::call`] for a step of a saga whose own next durable write covers this one.
    ///
    /// On this node the answer comes as soon as the entity has committed its change: the store
    /// is one log, durable in commit order, so the caller's later write cannot become durable
    /// without it (not so with replicated partitions, each with its own log: there the caller's
    /// writes are made durable first, and the entity's change before it answers). Another node's log is not covered, so there this node's log is made durable
    /// first (the other node never keeps a change for something a crash here could lose), and
    /// that node answers once the change is durable on it.
    pub async fn call_in_saga(&self, id: &E::Id, cmd: E::Command) -> Result<E::Reply, CallError>
    where
        Request: From<EntityCall<E>>,
    {
        match self.router.route(id.tag()) {
            // Replicated records of different entities live in different logs: like with
            // another node, neither may become durable without what the saga wrote before.
            Location::Here if self.store.replicated() => {
                self.flushed().await?;
                let reply = self.deliver(id, cmd).await?;
                self.flushed().await?;
                Ok(reply)
            }
            Location::Here => self.deliver(id, cmd).await,
            Location::Elsewhere => {
                self.flushed().await?;
                self.call(id, cmd).await
            }
            Location::Unavailable(why) => Err(CallError::Unavailable(why)),
        }
    }

    /// Waits until everything this node committed before is durable.
    async fn flushed(&self) -> Result<(), CallError> {
        self.store
            .flush()
            .await
            .map_err(|e| CallError::Unavailable(e.to_string()))
    }

    /// Serves [`EntityCall`] on the node that owns the entity: delivers `cmd` to its actor and
    /// answers once whatever it changed is durable.
    pub(crate) async fn serve(&self, id: E::Id, cmd: E::Command) -> Result<E::Reply, CallError> {
        let sync = E::answers_before_durable(&cmd);
        let reply = self.deliver(&id, cmd).await?;
        if sync {
            self.store
                .flush()
                .await
                .map_err(|e| CallError::Unavailable(e.to_string()))?;
        }
        Ok(reply)
    }

    /// Starts the actor of a new entity from `start` (it writes the entity itself) and sends
    /// it `cmd`, answering once its change is durable.
    pub async fn create(
        &self,
        id: &E::Id,
        start: E::Start,
        cmd: E::Command,
    ) -> Result<E::Reply, CallError> {
        let name = actor_name::<E>(id);
        Actor::spawn_linked(
            Some(name),
            self.template.clone(),
            start,
            self.supervisor.get()?.get_cell(),
        )
        .await
        .map_err(|e| {
            tracing::error!(kind = E::KIND, %id, error = %e, "new actor could not be started");
            CallError::Unavailable(format!("{} {id} could not be started", E::KIND))
        })?;
        self.serve(id.clone(), cmd).await
    }

    /// Delivers `cmd` to entity `id` on this node, activating its actor if needed, and answers
    /// as the actor does.
    ///
    /// If the actor is gone before the command was delivered (passivated or restarting), the
    /// command is delivered to its next activation. If it stops after delivery, the caller gets
    /// [`CallError::Stopped`]: the command may or may not have been applied (entity commands are
    /// idempotent, so the client may retry).
    async fn deliver(&self, id: &E::Id, cmd: E::Command) -> Result<E::Reply, CallError> {
        let name = E::command_name(&cmd);
        let span = tracing::info_span!(
            "entity",
            kind = E::KIND,
            %id,
            command = name,
            otel.name = format_args!("{}.{name}", E::KIND),
        );
        self.deliver_in(id, cmd, span.clone())
            .instrument(span)
            .await
    }

    async fn deliver_in(
        &self,
        id: &E::Id,
        cmd: E::Command,
        span: tracing::Span,
    ) -> Result<E::Reply, CallError> {
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
            let span = span.clone();
            match actor
                .call(|port| E::request(command, port, span), Some(remaining))
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

    /// Sends a message that needs no answer (fault injection, notifications to an entity).
    pub async fn tell(&self, id: &E::Id, message: E::Msg) -> Result<(), CallError> {
        let actor = self.find_or_activate(id).await?.ok_or(CallError::Stopped)?;
        actor.cast(message).map_err(|_| CallError::Stopped)
    }

    /// Starts the entity's actor if it is not running (e.g. to re-arm its timers).
    pub async fn activate(&self, id: &E::Id) -> Result<(), CallError> {
        self.find_or_activate(id).await.map(|_| ())
    }

    /// How many actors of this kind run on this node.
    pub async fn active(&self) -> Result<usize, CallError> {
        self.supervisor
            .ask(SupervisorMessage::ActiveCount, self.timeout)
            .await
    }

    /// The running actor, a fresh activation, or `None` when the name is briefly taken by an
    /// actor that is stopping (try again shortly).
    async fn find_or_activate(&self, id: &E::Id) -> Result<Option<ActorRef<E::Msg>>, CallError> {
        let name = actor_name::<E>(id);
        if let Some(actor) = ActorRef::<E::Msg>::where_is(name.clone()) {
            return Ok(Some(actor));
        }
        if self.quarantine.blocks(&name) {
            return Err(CallError::Unavailable(format!(
                "{} {id} is restarting too often",
                E::KIND
            )));
        }
        let exists = E::exists(&self.store, id).map_err(|e| {
            tracing::error!(kind = E::KIND, %id, error = %e, "storage read failed");
            CallError::Unavailable("storage is unavailable".into())
        })?;
        if !exists {
            return Err(CallError::NotFound);
        }
        let spawned = Actor::spawn_linked(
            Some(name.clone()),
            self.template.clone(),
            E::load(id.clone()),
            self.supervisor.get()?.get_cell(),
        )
        .await;
        match spawned {
            Ok((actor, _)) => Ok(Some(actor)),
            // Someone else activated it first, or it is still draining: use theirs or wait.
            Err(SpawnErr::ActorAlreadyRegistered(_)) => Ok(ActorRef::<E::Msg>::where_is(name)),
            Err(e) => {
                tracing::error!(kind = E::KIND, %id, error = %e, "actor could not be activated");
                Err(CallError::Unavailable(format!(
                    "{} {id} could not be loaded",
                    E::KIND
                )))
            }
        }
    }
}
