//! Where a request goes: this node's side of the actors' router. A tag is served by its
//! owner under the adopted view, only while that owner reaches a majority and the tag is not
//! moving; a request for a tag this node owns is counted in flight, so a membership change
//! waits for it.

use super::wire::{Answer, Call, CallBody, GatewayMessage, Request, decode, encode};
use super::{Cluster, Inner};
use crate::actors::CallError;
use crate::actors::router::{Location, Router, Serving};
use futures::future::BoxFuture;
use ractor::ActorRef;
use serde::Serialize;
use std::sync::Arc;
use tokio::time::Instant;
use tracing::Instrument;

/// Where a request for a placement tag goes.
pub enum Route {
    /// This node owns the tag and may serve it.
    Local(InFlight),
    /// Another node owns it and is reachable.
    Remote {
        /// The owner.
        node: String,
        /// Its gateway.
        gateway: ActorRef<GatewayMessage>,
    },
    /// Nobody can serve it right now (why).
    Unavailable(String),
}

impl Cluster {
    /// Whether another node owns `tag` under the adopted view (leads its partition, when
    /// replicated).
    pub fn is_remote(&self, tag: &str) -> bool {
        if let Some(replication) = self.replication() {
            let partition = replication.partition_of(tag);
            return replication
                .leader(partition)
                .is_some_and(|leader| leader.name != self.inner.node);
        }
        self.inner.clustered
            && self
                .read()
                .view
                .owner(tag)
                .is_some_and(|owner| owner != self.inner.node)
    }

    /// Where a request for `tag` goes.
    pub fn route(&self, tag: &str) -> Route {
        if self.replication().is_some() {
            return self.route_replicated(tag);
        }
        let state = self.read();
        let Some(owner) = state.view.owner(tag) else {
            return Route::Unavailable("this node has not joined a cluster yet".into());
        };
        if let Some(next) = &state.moving
            && next.owner(tag) != Some(owner)
        {
            return Route::Unavailable("moving to another node; retry shortly".into());
        }
        if owner == self.inner.node {
            if !self.quorum(&state) {
                return Route::Unavailable(
                    "this node is cut off from the majority of the cluster".into(),
                );
            }
            return Route::Local(InFlight::start(&self.inner, tag));
        }
        let owner = owner.to_owned();
        drop(state);
        match self.peer_gateway(&owner) {
            Some(gateway) => Route::Remote {
                node: owner,
                gateway,
            },
            None => Route::Unavailable(format!("node {owner} is unreachable")),
        }
    }

    /// Where a request for `tag` goes on a replicated node: to the leader of its partition,
    /// which serves it only while it holds its lease; nowhere while the partition has none.
    fn route_replicated(&self, tag: &str) -> Route {
        let Some(replication) = self.replication() else {
            return Route::Unavailable("this node runs no replicated partitions".into());
        };
        match self.group_leader(replication.partition_of(tag)) {
            Ok(None) => Route::Local(InFlight::start(&self.inner, tag)),
            Ok(Some((node, gateway))) => Route::Remote { node, gateway },
            Err(why) => Route::Unavailable(why),
        }
    }

    /// Who serves replicated group `group` (a partition, or the member list's): `None` if this
    /// node leads it, else its leader's id and gateway; why nobody can now.
    pub(crate) fn group_leader(
        &self,
        group: u16,
    ) -> Result<Option<(String, ActorRef<GatewayMessage>)>, String> {
        let Some(replication) = self.replication() else {
            return Err("this node runs no replicated partitions".into());
        };
        if replication.leads(group) {
            return Ok(None);
        }
        match replication.leader(group) {
            Some(leader) if leader.name == self.inner.node => Err(format!(
                "partition {group} is changing leaders; retry shortly"
            )),
            Some(leader) => match self.peer_gateway(&leader.name) {
                Some(gateway) => Ok(Some((leader.name, gateway))),
                None => Err(format!(
                    "node {} leads partition {group} and is unreachable; retry shortly",
                    leader.name
                )),
            },
            None => Err(format!(
                "partition {group} has no leader right now; retry shortly"
            )),
        }
    }

    /// Sends `body` to `node`'s gateway and returns the encoded reply (a `NotOwner` answer is a
    /// 503: the retry routes by the newer view, which the next heartbeat brings).
    pub async fn call(
        &self,
        node: &str,
        gateway: &ActorRef<GatewayMessage>,
        body: CallBody,
    ) -> Result<Vec<u8>, CallError> {
        let started = Instant::now();
        let span = tracing::info_span!(
            "call",
            peer = node,
            kind = body.kind(),
            otel.kind = "client"
        );
        let call = Call {
            from: self.inner.node.clone(),
            epoch: self.epoch(),
            trace: crate::telemetry::traceparent(&span),
            body,
        };
        let bytes = encode(&call).map_err(|e| CallError::Unavailable(e.to_string()))?;
        let answer = crate::actors::ask(
            gateway,
            |port| GatewayMessage::Call(bytes, port),
            self.inner.timing.call_timeout,
        )
        .instrument(span)
        .await;
        let outcome = match &answer {
            Ok(_) => "ok",
            Err(CallError::Timeout) => "timeout",
            Err(_) => "unreachable",
        };
        metrics::counter!("contrail_cluster_forwards_total", "result" => outcome).increment(1);
        metrics::histogram!("contrail_cluster_remote_call_seconds")
            .record(started.elapsed().as_secs_f64());
        let answer = answer.map_err(|e| match e {
            CallError::Timeout => CallError::Timeout,
            _ => CallError::Unavailable(format!("node {node} is unreachable")),
        })?;
        match decode::<Answer>(&answer) {
            Ok(Answer::Done(reply)) => Ok(reply),
            // The newer view arrives with the next heartbeat (adopting it here would skip the
            // handoff's settling of the local store).
            Ok(Answer::NotOwner(_)) => Err(CallError::Unavailable(
                "ownership changed; retry shortly".into(),
            )),
            Ok(Answer::Unavailable(why)) => Err(CallError::Unavailable(why)),
            Err(e) => Err(CallError::Unavailable(format!("node {node}: {e}"))),
        }
    }

    /// Sends `body` to every other member and collects their encoded answers. Fails if any
    /// member does not answer: a partial answer would look complete.
    pub async fn gather(&self, body: impl Fn() -> CallBody) -> Result<Vec<Vec<u8>>, CallError> {
        let view = self.view();
        let mut answers = Vec::with_capacity(view.members.len());
        for node in view.members.keys() {
            if *node == self.inner.node {
                continue;
            }
            let gateway = self
                .peer_gateway(node)
                .ok_or_else(|| CallError::Unavailable(format!("node {node} is unreachable")))?;
            answers.push(self.call(node, &gateway, body()).await?);
        }
        Ok(answers)
    }
}

/// Encodes a served reply.
pub(crate) fn done<T: Serialize>(value: &T) -> Answer {
    match encode(value) {
        Ok(bytes) => Answer::Done(bytes),
        Err(e) => Answer::Unavailable(e.to_string()),
    }
}

/// Marks a locally served request for a tag as in progress until dropped, so a membership
/// change can wait for the requests on the tags it moves. A cluster of one never changes
/// membership, so its requests skip the bookkeeping.
pub struct InFlight(Option<(Arc<Inner>, String)>);

impl InFlight {
    fn start(inner: &Arc<Inner>, tag: &str) -> Self {
        if !inner.clustered {
            return Self(None);
        }
        let mut map = inner
            .in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *map.entry(tag.to_owned()).or_default() += 1;
        Self(Some((inner.clone(), tag.to_owned())))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let Some((inner, tag)) = &self.0 else { return };
        let mut map = inner
            .in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = map.get_mut(tag) {
            *count -= 1;
            if *count == 0 {
                map.remove(tag);
            }
        }
    }
}

/// The cluster as the actors' router: a tag is served by its owner under the adopted view.
impl Router for Cluster {
    fn owns(&self, tag: &str) -> bool {
        if let Some(replication) = self.replication() {
            return replication.leads(replication.partition_of(tag));
        }
        !self.inner.clustered || self.read().view.owner(tag) == Some(self.inner.node.as_str())
    }

    fn member(&self) -> bool {
        self.view().contains(self.node())
    }

    fn route(&self, tag: &str) -> Location {
        match Cluster::route(self, tag) {
            Route::Local(in_flight) => Location::Here(Serving::tracked(in_flight)),
            Route::Remote { .. } => Location::Elsewhere,
            Route::Unavailable(why) => Location::Unavailable(why),
        }
    }

    fn forward(
        &self,
        tag: &str,
        request: Request,
    ) -> BoxFuture<'static, Result<Vec<u8>, CallError>> {
        let cluster = self.clone();
        let tag = tag.to_owned();
        Box::pin(async move {
            match Cluster::route(&cluster, &tag) {
                Route::Remote { node, gateway } => {
                    let body = CallBody::Serve { tag, request };
                    cluster.call(&node, &gateway, body).await
                }
                // The owner changed since the request was routed; the retry routes afresh.
                Route::Local(_) => Err(CallError::Unavailable(
                    "ownership changed; retry shortly".into(),
                )),
                Route::Unavailable(why) => Err(CallError::Unavailable(why)),
            }
        })
    }

    fn gather(&self, request: Request) -> BoxFuture<'static, Result<Vec<Vec<u8>>, CallError>> {
        let cluster = self.clone();
        Box::pin(async move { cluster.gather(|| CallBody::Gather(request.clone())).await })
    }
}
