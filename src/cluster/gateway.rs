//! GatewayActor: the one cluster-capable actor of a node. Peers send it requests for the
//! entities of the partitions this node leads, consensus messages for its replicas and
//! membership requests; it checks that it still leads the partition, hands the request to the
//! local actor or store through the same facades HTTP uses, and sends the reply back. Each call is
//! served on its own task, so a slow saga never blocks the gateway's mailbox.

use super::wire::{
    Answer, Call, CallBody, Cast, GatewayMessage, Request, WireError, decode, encode,
};
use super::{Cluster, GATEWAYS, Route, done, gateway_group, roster};
use crate::actors::services::Services;
use crate::actors::stateless::Stateless;
use ractor::ActorRef;
use std::sync::{Arc, OnceLock};
use tracing::Instrument;

/// The gateway actor.
#[derive(Clone)]
pub struct GatewayActor {
    /// Membership.
    pub cluster: Cluster,
    /// The local facades, set once the node has built them.
    pub services: Arc<OnceLock<Services>>,
}

impl Stateless for GatewayActor {
    type Msg = GatewayMessage;

    fn started(&self, myself: &ActorRef<GatewayMessage>) {
        if self.cluster.clustered() {
            ractor::pg::join(GATEWAYS.to_owned(), vec![myself.get_cell()]);
            ractor::pg::join(gateway_group(self.cluster.node()), vec![myself.get_cell()]);
        }
        self.cluster.set_gateway(myself.clone());
    }

    async fn handle(&self, message: GatewayMessage) {
        let Some(services) = self.services.get().cloned() else {
            // Still starting: callers time out or get "unreachable" and retry.
            return;
        };
        match message {
            GatewayMessage::InjectPanic => panic!("injected fault in the gateway actor"),
            GatewayMessage::Call(bytes, reply) => {
                let cluster = self.cluster.clone();
                tokio::spawn(async move {
                    let answer = answer(&cluster, &services, &bytes).await;
                    let bytes = encode(&answer).unwrap_or_default();
                    let _ = reply.send(bytes);
                });
            }
            GatewayMessage::Cast(bytes) => match decode::<Cast>(&bytes) {
                Ok(Cast::Heartbeat {
                    from,
                    addr,
                    view,
                    leads,
                }) if !self.cluster.blocks(&from) => {
                    if let Some(replication) = self.cluster.replication() {
                        replication.heard_leads(&from, &addr, &leads);
                    }
                    // Gossip of the member list its group decided (a newer one is adopted).
                    roster::adopt(&self.cluster, view);
                    self.cluster.heard(&from, &addr);
                }
                Ok(Cast::Index(listings)) => services.index.insert(listings),
                Ok(Cast::Heartbeat { .. }) => {}
                Err(e) => tracing::warn!(error = %e, "undecodable message from a peer dropped"),
            },
        }
    }
}

async fn answer(cluster: &Cluster, services: &Services, bytes: &[u8]) -> Answer {
    let call: Call = match decode(bytes) {
        Ok(call) => call,
        Err(e) => return Answer::Unavailable(e.to_string()),
    };
    if cluster.blocks(&call.from) {
        return Answer::Unavailable("link blocked".into());
    }
    let span = tracing::info_span!(
        "serve",
        from = %call.from,
        kind = call.body.kind(),
        otel.kind = "server",
    );
    crate::telemetry::continue_trace(&span, call.trace.as_deref());
    serve_call(cluster, services, call).instrument(span).await
}

async fn serve_call(cluster: &Cluster, services: &Services, call: Call) -> Answer {
    match call.body {
        CallBody::Serve { tag, request } => match cluster.route(&tag) {
            Route::Local => served(request.serve(services).await),
            Route::Remote { .. } => Answer::NotOwner,
            Route::Unavailable(why) => Answer::Unavailable(why),
        },
        // Node-wide reads only: anything else must be routed to its owner (and checked there).
        CallBody::Gather(
            request @ (Request::AllOrders(_) | Request::Counts(_) | Request::OutboxList(_)),
        ) => served(request.serve(services).await),
        CallBody::Gather(request) => {
            Answer::Unavailable(format!("{request:?} is not a node-wide read"))
        }
        CallBody::Join { node, addr } => {
            let edit = roster::Edit::Join { node, addr };
            change_answer(roster::change(cluster, edit).await)
        }
        CallBody::Drain { node } => {
            let edit = roster::Edit::Leave { node };
            change_answer(roster::change(cluster, edit).await)
        }
        CallBody::Raft { partition, message } => match cluster.replication() {
            Some(replication) => Answer::Done(replication.serve(partition, &message).await),
            None => Answer::Unavailable("this node runs no replicated partitions".into()),
        },
    }
}

fn change_answer(result: Result<super::View, String>) -> Answer {
    match result {
        Ok(view) => done(&view),
        Err(why) => Answer::Unavailable(why),
    }
}

/// The answer carrying a served request's encoded reply.
fn served(reply: Result<Vec<u8>, WireError>) -> Answer {
    match reply {
        Ok(bytes) => Answer::Done(bytes),
        Err(e) => Answer::Unavailable(e.to_string()),
    }
}
