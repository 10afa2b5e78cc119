//! The router port: how a request reaches the node that serves its entity.
//!
//! Why a port: the actors and their facades must not know whether they run alone or in a
//! cluster. They describe each operation once, as a typed [`Operation`] (a serde request with
//! its reply type and the one handler that serves it), and hand it to a [`RouterRef`]. The
//! router decides where the request's placement tag is served: here (the handler runs in
//! place, nothing is encoded), on another node (the request travels encoded and that node runs
//! the same handler, see [`Request::serve`]), or nowhere right now (503 + Retry-After).
//!
//! [`Alone`] is the router of a node without a cluster: it serves every tag itself. `cluster/`
//! implements [`Router`] for many nodes. Layers point one way: `cluster` depends on `actors`,
//! never the reverse.

use super::CallError;
use super::request::{Request, decode};
use super::services::Services;
use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::sync::Arc;

/// One kind of request: what it carries, what it answers, and who serves it.
///
/// Adding a remote-capable operation is this: a request type, its `impl Operation` (the
/// handler), and one line in [`requests!`](super::request) naming it.
pub trait Operation: Into<Request> + Send + Sized + 'static {
    /// The answer (a serde type: it may travel back from another node).
    type Reply: Serialize + DeserializeOwned + Send + 'static;
    /// The node-local part that serves it (a facade or directory).
    type Handler: Sync + 'static;

    /// The placement tag of the entity it is about (which node serves it).
    fn tag(&self) -> Cow<'_, str>;

    /// Finds the handler among a node's services.
    fn handler(services: &Services) -> &Self::Handler;

    /// Serves the request on the node that owns its tag.
    fn handle(self, handler: &Self::Handler) -> impl Future<Output = Self::Reply> + Send;
}

/// Implements [`Operation`] for a request served by one of [`Services`]' facades:
///
/// ```text
/// operation!(GetTicket => Result<Option<TicketRecord>, OrderError>, by orders: Orders,
///     tag |r| r.0.tag(), |r| Ok(orders.store.get(&keys::ticket(&r.0))?));
/// ```
///
/// `by orders: Orders` names the field of [`Services`] that serves it (and binds it in the
/// body), `tag |r| …` computes the placement tag from the request, `|r| …` serves it.
macro_rules! operation {
    ($op:ty => $reply:ty, by $h:ident: $handler:ty, tag |$t:ident| $tag:expr, |$r:ident| $body:expr $(,)?) => {
        impl $crate::actors::router::Operation for $op {
            type Reply = $reply;
            type Handler = $handler;

            fn tag(&self) -> std::borrow::Cow<'_, str> {
                let $t = self;
                ($tag).into()
            }

            fn handler(services: &$crate::actors::services::Services) -> &$handler {
                &services.$h
            }

            async fn handle(self, $h: &$handler) -> $reply {
                let $r = self;
                $body
            }
        }
    };
}
pub(crate) use operation;

/// Where a request for a placement tag is served right now.
pub enum Location {
    /// On this node.
    Here,
    /// On another node: [`Router::forward`] takes it there.
    Elsewhere,
    /// Nowhere right now (why): the caller answers 503 + Retry-After.
    Unavailable(String),
}

/// What the actors need from placement and transport.
pub trait Router: Send + Sync + 'static {
    /// Whether this node is the owner of `tag` (whether or not it may serve it right now).
    fn owns(&self, tag: &str) -> bool;

    /// Whether this node is a member (its records count in node-wide reads: a node that is
    /// joining, or was drained, may hold copies that another member owns).
    fn member(&self) -> bool;

    /// Where a request for `tag` is served right now.
    fn route(&self, tag: &str) -> Location;

    /// Sends an encoded request for `tag` to the node that owns it and returns its encoded
    /// reply.
    fn forward(
        &self,
        tag: &str,
        request: Request,
    ) -> BoxFuture<'static, Result<Vec<u8>, CallError>>;

    /// Asks every other member for its share of a node-wide read and returns their encoded
    /// answers; fails if any member does not answer (a partial answer would look complete).
    fn gather(&self, request: Request) -> BoxFuture<'static, Result<Vec<Vec<u8>>, CallError>>;

    /// How many shards the tags fall into (a cluster's partitions), and the shard of `tag`.
    fn shard_of(&self, tag: &str) -> (u16, u16);

    /// The shards this node serves right now: a node-wide read is complete when the nodes'
    /// [`Share`]s together cover every shard.
    fn serving(&self) -> Vec<u16>;
}

/// One node's share of a node-wide read: the items of the shards it serves (see
/// [`RouterRef::share`] and [`RouterRef::join`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Share<T> {
    /// The shards whose items these are, all of them.
    pub shards: Vec<u16>,
    /// The items.
    pub items: Vec<T>,
}

/// A shared router; cheap to clone.
#[derive(Clone)]
pub struct RouterRef(Arc<dyn Router>);

impl RouterRef {
    /// Wraps a router.
    pub fn new(router: impl Router) -> Self {
        Self(Arc::new(router))
    }

    /// Whether this node owns `tag`.
    pub fn owns(&self, tag: &str) -> bool {
        self.0.owns(tag)
    }

    /// Whether this node is a member (see [`Router::member`]).
    pub fn member(&self) -> bool {
        self.0.member()
    }

    /// Where a request for `tag` is served right now.
    pub fn route(&self, tag: &str) -> Location {
        self.0.route(tag)
    }

    /// Serves `op` where its tag belongs: with `here` on this node, or on its owner.
    pub async fn ask<O: Operation>(&self, op: O, here: &O::Handler) -> Result<O::Reply, CallError> {
        match self.0.route(&op.tag()) {
            // Boxed: handlers nest (an order's placement calls its actor), and unboxed nested
            // futures grow with every level.
            Location::Here => Ok(Box::pin(op.handle(here)).await),
            Location::Elsewhere => {
                let tag = op.tag().into_owned();
                let bytes = self.0.forward(&tag, op.into()).await?;
                decode(&bytes).map_err(|e| CallError::Unavailable(e.to_string()))
            }
            Location::Unavailable(why) => Err(CallError::Unavailable(why)),
        }
    }

    /// [`RouterRef::ask`] for a fallible operation: "no answer" becomes the operation's own
    /// error.
    pub async fn call<O, T, E>(&self, op: O, here: &O::Handler) -> Result<T, E>
    where
        O: Operation<Reply = Result<T, E>>,
        E: From<CallError>,
    {
        self.ask(op, here).await.unwrap_or_else(|e| Err(E::from(e)))
    }

    /// This node's share of a node-wide read: those of the items `scan` reads (tagged by
    /// `tag`) in the shards it serves. Which shards it serves may change at any time: they are
    /// read once, before the scan (a shard this node came to serve has everything its
    /// predecessors decided applied by then).
    pub fn share<T, E>(
        &self,
        scan: impl FnOnce() -> Result<Vec<T>, E>,
        tag: impl Fn(&T) -> &str,
    ) -> Result<Share<T>, E> {
        let shards = self.0.serving();
        let items = scan()?
            .into_iter()
            .filter(|item| shards.contains(&self.0.shard_of(tag(item)).1))
            .collect();
        Ok(Share { shards, items })
    }

    /// The items of the nodes' `shares`, each shard's from one node; fails if some shard has
    /// no share (its leader is changing: a partial list would look complete).
    pub fn join<T>(
        &self,
        shares: Vec<Share<T>>,
        tag: impl Fn(&T) -> &str,
    ) -> Result<Vec<T>, CallError> {
        let mut covered = std::collections::BTreeSet::new();
        let mut items = Vec::new();
        for share in shares {
            let fresh: Vec<u16> = share
                .shards
                .into_iter()
                .filter(|shard| covered.insert(*shard))
                .collect();
            items.extend(
                share
                    .items
                    .into_iter()
                    .filter(|item| fresh.contains(&self.0.shard_of(tag(item)).1)),
            );
        }
        let count = self.0.shard_of("").0;
        match (0..count).find(|shard| !covered.contains(shard)) {
            None => Ok(items),
            Some(missing) => Err(CallError::Unavailable(format!(
                "partition {missing} is changing leaders; retry shortly"
            ))),
        }
    }

    /// Every node's answer to `op` (this node's by `here`), for reads that span the cluster.
    pub async fn gather<O: Operation + Clone>(
        &self,
        op: O,
        here: &O::Handler,
    ) -> Result<Vec<O::Reply>, CallError> {
        let remote = self.0.gather(op.clone().into()).await?;
        let mut replies = Vec::with_capacity(remote.len() + 1);
        for answer in remote {
            replies.push(decode(&answer).map_err(|e| CallError::Unavailable(e.to_string()))?);
        }
        if self.0.member() {
            replies.push(Box::pin(op.handle(here)).await);
        }
        Ok(replies)
    }
}

/// The router of a node without a cluster: every tag is served here.
#[derive(Debug, Clone, Copy, Default)]
pub struct Alone;

impl Router for Alone {
    fn owns(&self, _: &str) -> bool {
        true
    }

    fn member(&self) -> bool {
        true
    }

    fn route(&self, _: &str) -> Location {
        Location::Here
    }

    fn forward(&self, _: &str, _: Request) -> BoxFuture<'static, Result<Vec<u8>, CallError>> {
        Box::pin(async { Err(CallError::Unavailable("no other node to ask".into())) })
    }

    fn gather(&self, _: Request) -> BoxFuture<'static, Result<Vec<Vec<u8>>, CallError>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn shard_of(&self, _: &str) -> (u16, u16) {
        (1, 0)
    }

    fn serving(&self) -> Vec<u16> {
        vec![0]
    }
}
