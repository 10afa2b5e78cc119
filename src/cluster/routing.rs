//! Where a request goes: this node's side of the actors' router. A tag is served by the
//! leader of its partition, and only while that leader holds its lease; a node without
//! `[cluster]` serves every tag.

use super::Cluster;
use super::wire::{Answer, Call, CallBody, GatewayMessage, Request, decode, encode};
use crate::actors::CallError;
use crate::actors::router::{Location, Router};
use futures::future::BoxFuture;
use ractor::ActorRef;
use serde::Serialize;
use tokio::time::Instant;
use tracing::Instrument;

/// Where a request for a placement tag goes.
pub enum Route {
    /// This node leads the tag's partition (or is alone) and may serve it.
    Local,
    /// Another node leads it and is reachable.
    Remote {
        /// The leader.
        node: String,
        /// Its gateway.
        gateway: ActorRef<GatewayMessage>,
    },
    /// Nobody can serve it right now (why).
    Unavailable(String),
}

impl Cluster {
    /// Whether another node leads `tag`'s partition.
    pub fn is_remote(&self, tag: &str) -> bool {
        self.replication().is_some_and(|replication| {
            replication
                .leader(replication.partition_of(tag))
                .is_some_and(|leader| leader.name != self.inner.node)
        })
    }

    /// Where a request for `tag` goes: to the leader of its partition, which serves it only
    /// while it holds its lease; nowhere while the partition has none.
    pub fn route(&self, tag: &str) -> Route {
        let Some(replication) = self.replication() else {
            return if self.inner.clustered {
                Route::Unavailable("this node is still starting its partitions".into())
            } else {
                Route::Local
            };
        };
        match self.group_leader(replication.partition_of(tag)) {
            Ok(None) => Route::Local,
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
        if replication.serves(group) {
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
    /// 503: the retry routes to the partition's new leader).
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
            other => CallError::Unavailable(format!("node {node} is unreachable ({other})")),
        })?;
        match decode::<Answer>(&answer) {
            Ok(Answer::Done(reply)) => Ok(reply),
            Ok(Answer::NotOwner) => Err(CallError::Unavailable(
                "the partition's leader changed; retry shortly".into(),
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

/// The cluster as the actors' router: a tag is served by the leader of its partition.
impl Router for Cluster {
    fn owns(&self, tag: &str) -> bool {
        match self.replication() {
            Some(replication) => replication.serves(replication.partition_of(tag)),
            None => !self.inner.clustered,
        }
    }

    fn member(&self) -> bool {
        self.view().contains(self.node())
    }

    fn route(&self, tag: &str) -> Location {
        match Cluster::route(self, tag) {
            Route::Local => Location::Here,
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
                // The leader changed since the request was routed; the retry routes afresh.
                Route::Local => Err(CallError::Unavailable(
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

    fn shard_of(&self, tag: &str) -> (u16, u16) {
        match self.replication() {
            Some(replication) => (replication.partition_count(), replication.partition_of(tag)),
            // Nothing is served until the partitions run: one shard nobody covers.
            None => (1, 0),
        }
    }

    fn serving(&self) -> Vec<u16> {
        match self.replication() {
            Some(replication) => (0..replication.partition_count())
                .filter(|partition| replication.serves(*partition))
                .collect(),
            None if !self.inner.clustered => vec![0],
            None => Vec::new(),
        }
    }
}
