//! The root of a node's supervision tree: it starts every long-lived actor of the node (the
//! entity supervisors and the singletons), restarts one that fails, and stops them in reverse
//! order at shutdown.
//!
//! Why a restart needs more than ractor gives: a restarted actor is a new actor with a new
//! [`ActorRef`], and everything that talks to it holds a reference. So each supervised actor
//! is reached through a [`Slot`], which the root points at the current incarnation; callers
//! look it up per message (a read lock and a reference count). A failure is restarted at
//! once, up to `max_restarts` per `window`; beyond that, once the window has passed (so a
//! poisoned start cannot spin the node), and its callers get 503 in between.

use super::CallError;
use super::supervisor::RestartPolicy;
use futures::future::BoxFuture;
use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, Message, RpcReplyPort, SpawnErr,
    SupervisionEvent,
};
use std::collections::VecDeque;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Why a root child was stopped at shutdown (not restarted).
const SHUTDOWN: &str = "shutdown";

/// The current incarnation of a supervised actor.
pub struct Slot<M: Message>(Arc<RwLock<Option<ActorRef<M>>>>);

impl<M: Message> Clone for Slot<M> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<M: Message> Slot<M> {
    /// A slot for an actor that nobody restarts (benches, tests of one actor).
    pub fn of(actor: ActorRef<M>) -> Self {
        Self(Arc::new(RwLock::new(Some(actor))))
    }

    fn empty() -> Self {
        Self(Arc::new(RwLock::new(None)))
    }

    fn set(&self, actor: ActorRef<M>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Some(actor);
    }

    /// The running incarnation ([`CallError::Stopped`] before the first start).
    pub fn get(&self) -> Result<ActorRef<M>, CallError> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(CallError::Stopped)
    }

    /// Sends a message that needs no answer; lost if the actor is between incarnations.
    pub fn cast(&self, message: M) {
        if let Ok(actor) = self.get() {
            let _ = actor.cast(message);
        }
    }

    /// Sends a request and waits at most `timeout` for the answer (see [`super::ask`]).
    pub async fn ask<T: Send + 'static>(
        &self,
        build: impl FnOnce(RpcReplyPort<T>) -> M,
        timeout: Duration,
    ) -> Result<T, CallError> {
        super::ask(&self.get()?, build, timeout).await
    }
}

/// How to start one child (again): spawns it linked to the given supervisor, points its slot
/// at it, and returns its cell.
type Recipe =
    Box<dyn Fn(ActorCell) -> BoxFuture<'static, Result<ActorCell, SpawnErr>> + Send + Sync>;

/// One supervised child.
struct Child {
    name: &'static str,
    start: Recipe,
    /// Sends the running incarnation its [`InjectPanic`] message.
    inject_panic: fn(&ActorCell),
    /// The running incarnation, if any.
    cell: Option<ActorCell>,
    failures: VecDeque<Instant>,
}

/// Requests to the root.
pub enum RootMessage {
    /// Start a child under the root.
    Start(
        &'static str,
        Recipe,
        fn(&ActorCell),
        RpcReplyPort<Result<(), String>>,
    ),
    /// Fault injection for supervision tests: makes the named child panic.
    InjectPanic(String),
    /// Start a child again after its restart budget's window (its index among the children).
    Restart(usize),
    /// Stop every child, the last started first, without restarting them.
    Shutdown(Duration, RpcReplyPort<()>),
    /// The names of the children and their running cells (for fault-injection tests).
    Children(RpcReplyPort<Vec<(&'static str, Option<ActorCell>)>>),
}

// Local only: with ractor's `cluster` feature every message type opts in explicitly.
impl Message for RootMessage {}

/// The root supervisor.
pub struct RootSupervisor {
    /// Restart limits for every child.
    pub policy: RestartPolicy,
}

/// The root's children, in start order, and whether it is stopping them.
#[derive(Default)]
pub struct RootState {
    children: Vec<Child>,
    stopping: bool,
}

impl RootSupervisor {
    /// Starts `child`; false if it could not be started.
    async fn start_child(myself: &ActorRef<RootMessage>, child: &mut Child) -> bool {
        match (child.start)(myself.get_cell()).await {
            Ok(cell) => {
                child.cell = Some(cell);
                tracing::info!(actor = child.name, "started");
                // The series exists (at 0) before the first restart, for dashboards and alerts.
                drop(metrics::counter!("contrail_actor_restarts_total", "kind" => child.name));
                true
            }
            Err(e) => {
                tracing::error!(actor = child.name, error = %e, "could not be started");
                false
            }
        }
    }

    async fn on_exit(
        &self,
        myself: &ActorRef<RootMessage>,
        state: &mut RootState,
        id: ActorId,
        why: String,
    ) {
        let Some(index) = state
            .children
            .iter()
            .position(|c| c.cell.as_ref().is_some_and(|cell| cell.get_id() == id))
        else {
            return;
        };
        let child = &mut state.children[index];
        child.cell = None;
        if state.stopping {
            return;
        }
        tracing::error!(actor = child.name, reason = %why, "actor failed");
        metrics::counter!("contrail_actor_restarts_total", "kind" => child.name).increment(1);
        let now = Instant::now();
        child
            .failures
            .retain(|t| now.duration_since(*t) < self.policy.window);
        child.failures.push_back(now);
        if child.failures.len() > self.policy.max_restarts as usize {
            tracing::error!(
                actor = child.name,
                failures = child.failures.len(),
                "actor keeps failing; restarting it once its window has passed"
            );
            myself.send_after(self.policy.window, move || RootMessage::Restart(index));
            return;
        }
        if !Self::start_child(myself, child).await {
            myself.send_after(self.policy.window, move || RootMessage::Restart(index));
        }
    }
}

impl Actor for RootSupervisor {
    type Msg = RootMessage;
    type State = RootState;
    type Arguments = ();

    async fn pre_start(
        &self,
        _: ActorRef<Self::Msg>,
        _: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(RootState::default())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RootMessage::Start(name, start, inject_panic, reply) => {
                let mut child = Child {
                    name,
                    start,
                    inject_panic,
                    cell: None,
                    failures: VecDeque::new(),
                };
                Self::start_child(&myself, &mut child).await;
                let started = match child.cell {
                    Some(_) => Ok(()),
                    None => Err(format!("{name} could not be started")),
                };
                state.children.push(child);
                let _ = reply.send(started);
            }
            RootMessage::Restart(index) => {
                if let Some(child) = state.children.get_mut(index)
                    && child.cell.is_none()
                    && !state.stopping
                    && !Self::start_child(&myself, child).await
                {
                    let window = self.policy.window;
                    myself.send_after(window, move || RootMessage::Restart(index));
                }
            }
            RootMessage::Shutdown(grace, reply) => {
                state.stopping = true;
                for child in state.children.iter().rev() {
                    if let Some(cell) = &child.cell {
                        cell.stop_children_and_wait(Some(SHUTDOWN.into()), Some(grace))
                            .await;
                        let _ = cell.stop_and_wait(Some(SHUTDOWN.into()), Some(grace)).await;
                    }
                }
                let _ = reply.send(());
            }
            RootMessage::InjectPanic(name) => {
                for child in state.children.iter().filter(|c| c.name == name) {
                    if let Some(cell) = &child.cell {
                        (child.inject_panic)(cell);
                    }
                }
            }
            RootMessage::Children(reply) => {
                let _ = reply.send(
                    state
                        .children
                        .iter()
                        .map(|c| (c.name, c.cell.clone()))
                        .collect(),
                );
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
            SupervisionEvent::ActorFailed(cell, error) => {
                self.on_exit(&myself, state, cell.get_id(), error.to_string())
                    .await;
            }
            // A child stops only at shutdown; stopped otherwise (killed), it is restarted.
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                let why = reason.unwrap_or_else(|| "stopped".into());
                self.on_exit(&myself, state, cell.get_id(), why).await;
            }
            _ => {}
        }
        Ok(())
    }
}

/// Starts `actor` under the root as `name` and returns the slot through which it is reached.
/// `started` runs after every start, with the new incarnation (e.g. to subscribe it to a port).
pub async fn supervise<A>(
    root: &ActorRef<RootMessage>,
    name: &'static str,
    actor: A,
    args: A::Arguments,
    started: impl Fn(&ActorRef<A::Msg>) + Send + Sync + 'static,
) -> Result<Slot<A::Msg>, CallError>
where
    A: Actor + Clone + Sync,
    A::Msg: InjectPanic,
    A::Arguments: Clone + Sync,
{
    let slot = Slot::empty();
    let target = slot.clone();
    let started = Arc::new(started);
    let start: Recipe = Box::new(move |supervisor| {
        let (actor, args, slot, started) =
            (actor.clone(), args.clone(), target.clone(), started.clone());
        Box::pin(async move {
            let (actor, _) = Actor::spawn_linked(None, actor, args, supervisor).await?;
            slot.set(actor.clone());
            started(&actor);
            Ok(actor.get_cell())
        })
    });
    let inject_panic: fn(&ActorCell) = |cell| {
        let _ = cell.send_message(<A::Msg as InjectPanic>::inject_panic());
    };
    root.call(
        |port| RootMessage::Start(name, start, inject_panic, port),
        None,
    )
    .await
    .map_err(|_| CallError::Stopped)
    .and_then(|answer| match answer {
        ractor::rpc::CallResult::Success(result) => result.map_err(CallError::Unavailable),
        _ => Err(CallError::Stopped),
    })?;
    Ok(slot)
}

/// Messages of supervised actors carry a fault-injection variant, so a test can make any of
/// them panic and watch the root restart it.
pub trait InjectPanic: Message {
    /// The message that makes the actor panic.
    fn inject_panic() -> Self;
}
