//! TicketActor: owns one issued ticket's lifecycle (issued → void).
//!
//! A ticket is an entity of its own, not a field of its order: it outlives the saga that
//! issued it (a traveller shows it, an airline voids it when the flight is cancelled), and its
//! single writer keeps a void and a concurrent read from disagreeing.

use super::entity::Entity;
use crate::domain::ids::TicketId;
use crate::domain::order::{TicketRecord, TicketStatus};
use crate::persistence::{Store, StoreError, WriteBatch, keys};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// How often an idle ticket actor checks whether to passivate.
const TICK: Duration = Duration::from_secs(5);

/// A request to a ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TicketCommand {
    /// The ticket.
    Get,
    /// Void it (refund or flight cancellation); voiding a void ticket changes nothing.
    Void,
}

/// Messages a TicketActor handles.
pub enum TicketMessage {
    /// A command with the port for its answer and the span to work in.
    Command(
        TicketCommand,
        RpcReplyPort<Result<TicketRecord, String>>,
        tracing::Span,
    ),
    /// Periodic passivation check.
    Tick,
}

// Local only: with ractor's `cluster` feature every message type opts in explicitly.
impl ractor::Message for TicketMessage {}

/// The actor; its fields are the fixed handles every ticket shares.
#[derive(Clone)]
pub struct TicketActor {
    /// The node's store.
    pub store: Store,
    /// Idle time before passivation.
    pub passivate_after: Duration,
}

/// A live ticket.
pub struct TicketState {
    ticket: TicketRecord,
    last_active: Instant,
}

impl Entity for TicketActor {
    type Id = TicketId;
    type Command = TicketCommand;
    type Reply = Result<TicketRecord, String>;
    type Start = TicketId;
    const KIND: &'static str = "ticket";

    fn load(id: TicketId) -> TicketId {
        id
    }

    /// A ticket answers once its change is durable.
    fn answers_before_durable(_: &TicketCommand) -> bool {
        false
    }

    fn exists(store: &Store, id: &TicketId) -> Result<bool, StoreError> {
        store.contains(&keys::ticket(id))
    }

    fn directory(services: &super::services::Services) -> &super::directory::Directory<Self> {
        &services.tickets
    }

    fn command_name(command: &TicketCommand) -> &'static str {
        match command {
            TicketCommand::Get => "get",
            TicketCommand::Void => "void",
        }
    }

    fn request(
        command: TicketCommand,
        reply: RpcReplyPort<Self::Reply>,
        span: tracing::Span,
    ) -> TicketMessage {
        TicketMessage::Command(command, reply, span)
    }
}

/// Finds ticket actors.
pub type TicketDirectory = super::directory::Directory<TicketActor>;

impl Actor for TicketActor {
    type Msg = TicketMessage;
    type State = TicketState;
    type Arguments = TicketId;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        id: TicketId,
    ) -> Result<Self::State, ActorProcessingErr> {
        // A previous incarnation's last writes may still be on their way to the engine.
        self.store.caught_up().await?;
        let ticket: TicketRecord = self
            .store
            .get(&keys::ticket(&id))?
            .ok_or_else(|| format!("ticket {id} does not exist"))?;
        myself.send_interval(TICK, || TicketMessage::Tick);
        Ok(TicketState {
            ticket,
            last_active: Instant::now(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            TicketMessage::Command(TicketCommand::Get, reply, _) => {
                state.last_active = Instant::now();
                let _ = reply.send(Ok(state.ticket.clone()));
            }
            TicketMessage::Command(TicketCommand::Void, reply, span) => {
                state.last_active = Instant::now();
                if state.ticket.status == TicketStatus::Void {
                    let _ = reply.send(Ok(state.ticket.clone()));
                    return Ok(());
                }
                let mut voided = state.ticket.clone();
                voided.status = TicketStatus::Void;
                let mut batch = WriteBatch::new();
                batch.put(&keys::ticket(&voided.id), &voided)?;
                // Waiting here keeps the actor's memory equal to the disk; voids are rare.
                // A write refused now (the ticket is being handed over, or the node is cut
                // off) is answered like a failed one: the ticket is unchanged.
                let written = match span.in_scope(|| self.store.commit(batch)) {
                    Ok(durable) => durable.await,
                    Err(e) => Err(e),
                };
                match written {
                    Ok(()) => {
                        state.ticket = voided;
                        let _ = reply.send(Ok(state.ticket.clone()));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.to_string()));
                    }
                }
            }
            TicketMessage::Tick => {
                if state.last_active.elapsed() >= self.passivate_after {
                    myself.drain()?;
                }
            }
        }
        Ok(())
    }
}
