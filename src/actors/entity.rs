//! What makes an actor an *entity*: one live instance per id (ractor's name registry admits one
//! actor per name), activated from disk on demand, supervised, passivated when idle. Flights,
//! orders and tickets share this shape, and the same [`Directory`]
//! and [`EntitySupervisor`](super::supervisor::EntitySupervisor) serve them all.

use super::CallError;
use super::directory::Directory;
use super::request::Request;
use super::router::Operation;
use super::services::Services;
use crate::domain::ids::EntityId;
use crate::persistence::{Store, StoreError};
use ractor::{Actor, RpcReplyPort};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt::Display;
use std::hash::Hash;

/// An actor that owns one entity.
pub trait Entity: Actor<Arguments = <Self as Entity>::Start> + Clone {
    /// The entity's id.
    type Id: EntityId
        + Clone
        + Eq
        + Hash
        + Display
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static;
    /// What an actor starts from: the id of an entity to load from disk, or (for entities
    /// created by their own actor) the new entity itself.
    type Start: Send + 'static;
    /// A request (a plain serde type, so it can cross nodes).
    type Command: Clone + Serialize + DeserializeOwned + Send + 'static;
    /// The answer to a request (a serde type too).
    type Reply: Serialize + DeserializeOwned + Send + 'static;

    /// Kind name: registry-name prefix and metrics label (`flight`, `order`, `ticket`).
    const KIND: &'static str;

    /// The start of an actor that loads entity `id` from disk.
    fn load(id: Self::Id) -> Self::Start;

    /// Whether the actor may answer `command` before the change it made is durable. Its
    /// answer then reaches callers outside the saga only once the store has synced (see
    /// [`Directory::call`](super::directory::Directory::call)).
    fn answers_before_durable(command: &Self::Command) -> bool;

    /// Whether the entity exists in the store (checked before activating it).
    fn exists(store: &Store, id: &Self::Id) -> Result<bool, StoreError>;

    /// The node's directory of this kind.
    fn directory(services: &Services) -> &Directory<Self>;

    /// The command's name (for spans).
    fn command_name(command: &Self::Command) -> &'static str;

    /// Wraps a request into the actor's message, with the span the actor does its work in (a
    /// child of the caller's, so the work joins the caller's trace).
    fn request(
        command: Self::Command,
        reply: RpcReplyPort<Self::Reply>,
        span: tracing::Span,
    ) -> Self::Msg;
}

/// The registry name of an entity's actor.
pub fn actor_name<E: Entity>(id: &E::Id) -> String {
    format!("{}/{id}", E::KIND)
}

/// The entity id behind a registry name, if it names an entity of kind `E`.
pub fn id_of<E: Entity>(name: &str) -> Option<E::Id> {
    name.strip_prefix(E::KIND)
        .and_then(|rest| rest.strip_prefix('/'))
        .and_then(E::Id::parse)
}

/// "Entity `id`, do `command`": the request that reaches an entity's actor on the node that
/// owns it, answered once whatever it changed is durable.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub struct EntityCall<E: Entity> {
    /// The entity.
    pub id: E::Id,
    /// What it is asked.
    pub command: E::Command,
}

impl<E: Entity> Clone for EntityCall<E> {
    fn clone(&self) -> Self {
        Self {
            id: self.id.clone(),
            command: self.command.clone(),
        }
    }
}

impl<E: Entity> Operation for EntityCall<E>
where
    Request: From<EntityCall<E>>,
{
    type Reply = Result<E::Reply, CallError>;
    type Handler = Directory<E>;

    fn tag(&self) -> std::borrow::Cow<'_, str> {
        self.id.tag().into()
    }

    fn handler(services: &Services) -> &Directory<E> {
        E::directory(services)
    }

    fn handle(
        self,
        directory: &Directory<E>,
    ) -> impl Future<Output = Result<E::Reply, CallError>> + Send {
        directory.serve(self.id, self.command)
    }
}
