//! The actor system of one node.
//!
//! Supervision tree, as [`startup`](crate::startup) builds it (`RootSupervisor` restarts a
//! child that fails, at once up to `actors.max_restarts` times per `actors.restart_window_secs`,
//! then once the window has passed; callers reach each child through a [`root::Slot`] that
//! follows its restarts):
//!
//! ```text
//! RootSupervisor (root.rs)
//! ├── GatewayActor ─────────── requests from other nodes (cluster/gateway.rs)
//! ├── IndexPublisher ───────── this node's listings to other nodes (clustered nodes only)
//! ├── SearchIndexActor ─────── applies flight events to the search read model
//! ├── PaymentActor ─────────── the payment simulator, one charge per order
//! ├── NotificationActor ────── records and delivers notifications
//! ├── AccountsActor ────────── single writer of users and the email index
//! ├── EntitySupervisor<FlightActor> ── restarts a failed flight from disk, quarantines
//! │   └── FlightActor flt_… (activated on demand by the Directory, passivated when idle)
//! ├── CatalogActor ─────────── single writer of airports, aircraft and new flights
//! ├── EntitySupervisor<TicketActor>
//! │   └── TicketActor tkt_…
//! └── EntitySupervisor<OrderActor>
//!     └── OrderActor ord_… (runs one order's saga)
//! ```
//!
//! The singletons keep no state between messages (what they own is in the store), so each is a
//! [`stateless::Stateless`] handler run by one generic actor.
//!
//! At shutdown the root stops its children the last started first: orders before the
//! flights, payments and notifications they call.
//!
//! Requests reach entities through a [`router::RouterRef`]: each remote-capable operation is a
//! typed [`router::Operation`] served by one handler, on whichever node owns its entity.
//! Business outcomes travel back in replies (`Result<_, FlightError>` and friends); an `Err`
//! returned from `handle`, or a panic, means the actor is broken and its supervisor takes over.

pub mod accounts;
pub mod catalog;
pub mod deadlines;
pub mod directory;
pub mod entity;
pub mod flight;
pub mod notification;
pub mod order;
pub mod payment;
pub mod request;
pub mod root;
pub mod router;
pub mod search_index;
pub mod services;
pub mod sold_out;
pub mod stateless;
pub mod supervisor;
pub mod ticket;

use crate::persistence::{Durable, StoreError};
use ractor::rpc::CallResult;
use ractor::{ActorRef, MessagingErr, RpcReplyPort};
use std::time::Duration;

/// Why a call into an actor produced no answer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, thiserror::Error)]
pub enum CallError {
    /// The actor did not answer within the deadline.
    #[error("the actor did not answer in time")]
    Timeout,
    /// The actor stopped (crashed or shut down) before answering.
    #[error("the actor stopped before answering")]
    Stopped,
    /// The entity cannot be served right now (e.g. restarting too often).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// No such entity.
    #[error("not found")]
    NotFound,
}

/// Sends one request to `actor` and waits at most `timeout` for its reply.
pub async fn ask<M, T>(
    actor: &ActorRef<M>,
    build: impl FnOnce(RpcReplyPort<T>) -> M,
    timeout: Duration,
) -> Result<T, CallError>
where
    M: ractor::Message,
    T: Send + 'static,
{
    match actor.call(build, Some(timeout)).await {
        Ok(CallResult::Success(value)) => Ok(value),
        Ok(CallResult::Timeout) => Err(CallError::Timeout),
        Ok(CallResult::SenderError) | Err(MessagingErr::ChannelClosed) => Err(CallError::Stopped),
        Err(_) => Err(CallError::Stopped),
    }
}

/// Answers `reply` with `value` once `durable` resolves, off the actor's mailbox loop, so the
/// actor handles its next message while the write is flushed (its later writes are ordered
/// after this one and share or follow the same flush). On a storage failure the caller gets
/// `on_error` and `on_failure` runs (entity actors use it to crash and reload from disk).
pub(crate) fn reply_when_durable<T, E>(
    durable: Durable,
    reply: RpcReplyPort<Result<T, E>>,
    value: T,
    on_error: impl FnOnce(&StoreError) -> E + Send + 'static,
    on_failure: impl FnOnce(StoreError) + Send + 'static,
) where
    T: Send + 'static,
    E: Send + 'static,
{
    tokio::spawn(async move {
        match durable.await {
            Ok(()) => {
                let _ = reply.send(Ok(value));
            }
            Err(e) => {
                let _ = reply.send(Err(on_error(&e)));
                on_failure(e);
            }
        }
    });
}

/// Answers a write request: with the value once its batch is durable, or with the error now.
/// For singleton actors whose state is the store itself (nothing to reload on failure).
pub(crate) fn answer<T, E>(result: Result<(Durable, T), E>, reply: RpcReplyPort<Result<T, E>>)
where
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
{
    match result {
        Ok((durable, value)) => {
            reply_when_durable(durable, reply, value, |e| E::from(e.clone()), |_| {});
        }
        Err(e) => {
            let _ = reply.send(Err(e));
        }
    }
}
