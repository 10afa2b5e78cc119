//! The membership loops of a clustered node: heartbeats to every peer (a peer silent for
//! `down_after` counts as down), reconnects with backoff to seeds and members (the transport
//! does not reconnect by itself), joining through a seed until this node is a member, and
//! publishing this node's flights to the search read model of every peer.

use super::wire::{CallBody, Cast, GatewayMessage, encode};
use super::{Cluster, GATEWAYS, Transport, gateway_group};
use crate::actors::search_index::SharedIndex;
use crate::actors::services::Services;
use crate::actors::stateless::Stateless;
use ractor::ActorRef;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// First and largest delay between connection attempts to one address.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(250), Duration::from_secs(5));
/// Flights per search-index message.
const INDEX_CHUNK: usize = 500;

/// Starts the loops; they run until the returned tasks are aborted.
pub fn spawn(
    cluster: Cluster,
    transport: Transport,
    seeds: Vec<String>,
    services: Services,
) -> Vec<JoinHandle<()>> {
    let mut loops = vec![
        tokio::spawn(heartbeats(cluster.clone(), services.index.clone())),
        tokio::spawn(connections(cluster.clone(), transport, seeds)),
        tokio::spawn(super::replicas::follow_view(cluster.clone())),
        tokio::spawn(super::roster::follow(cluster.clone())),
    ];
    loops.extend(super::leadership::follow(&cluster, &services));
    loops.push(tokio::spawn(join(cluster)));
    loops
}

/// Casts one message to every peer gateway except blocked ones (and this node's own).
pub fn broadcast(cluster: &Cluster, cast: &Cast) {
    let Ok(bytes) = encode(cast) else { return };
    for gateway in peer_gateways(cluster) {
        let _ = gateway.cast(GatewayMessage::Cast(bytes.clone()));
    }
}

/// Sends a heartbeat (this node's id, address and view) to every peer now.
pub fn announce(cluster: &Cluster) {
    broadcast(
        cluster,
        &Cast::Heartbeat {
            from: cluster.node().to_owned(),
            addr: cluster.addr().to_owned(),
            view: cluster.view(),
            leads: cluster
                .replication()
                .map(super::raft::Replication::led_here)
                .unwrap_or_default(),
        },
    );
}

fn peer_gateways(cluster: &Cluster) -> Vec<ActorRef<GatewayMessage>> {
    let mut excluded: BTreeSet<ractor::ActorId> = BTreeSet::new();
    excluded.extend(
        ractor::pg::get_members(&gateway_group(cluster.node()))
            .iter()
            .map(|c| c.get_id()),
    );
    for node in cluster.blocked() {
        excluded.extend(
            ractor::pg::get_members(&gateway_group(&node))
                .iter()
                .map(|c| c.get_id()),
        );
    }
    ractor::pg::get_members(&GATEWAYS.to_owned())
        .into_iter()
        .filter(|c| !excluded.contains(&c.get_id()))
        .map(ActorRef::from)
        .collect()
}

async fn heartbeats(cluster: Cluster, index: SharedIndex) {
    let mut every = tokio::time::interval(cluster.timing().heartbeat);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen: BTreeSet<String> = BTreeSet::new();
    loop {
        every.tick().await;
        announce(&cluster);
        // A peer that comes up (first contact or after an outage) gets this node's flights
        // for its search read model; later changes follow as they happen.
        let up: BTreeSet<String> = cluster.peers_up().into_iter().collect();
        if up.iter().any(|p| !seen.contains(p)) {
            publish_owned(&cluster, &index);
        }
        metrics::gauge!("contrail_cluster_members_up")
            .set(cluster.members().iter().filter(|(_, _, up)| *up).count() as f64);
        seen = up;
    }
}

/// Sends the listings of the flights whose partitions this node leads to every peer.
pub fn publish_owned(cluster: &Cluster, index: &SharedIndex) {
    use crate::actors::router::Router;
    let owned: Vec<_> = index
        .read()
        .all()
        .filter(|l| cluster.owns(l.id().tag()))
        .cloned()
        .collect();
    for chunk in owned.chunks(INDEX_CHUNK) {
        broadcast(cluster, &Cast::Index(chunk.to_vec()));
    }
}

async fn connections(cluster: Cluster, transport: Transport, seeds: Vec<String>) {
    let mut next_try: HashMap<String, (Instant, Duration)> = HashMap::new();
    let mut every = tokio::time::interval(BACKOFF.0);
    loop {
        every.tick().await;
        let now = Instant::now();
        let wanted = cluster.addresses_to_connect(&seeds);
        next_try.retain(|addr, _| wanted.contains(addr));
        for addr in wanted {
            let (at, delay) = next_try.get(&addr).copied().unwrap_or((now, BACKOFF.0));
            if at > now {
                continue;
            }
            let connect = async {
                match &transport.tls {
                    Some(tls) => tls.connect(&transport.server, &addr).await,
                    None => ractor_cluster::client_connect(&transport.server, &addr)
                        .await
                        .map_err(|e| e.to_string()),
                }
            };
            let attempt = tokio::time::timeout(BACKOFF.1, connect).await;
            if let Ok(Err(e)) = &attempt {
                tracing::debug!(%addr, error = %e, "cluster connection failed; retrying with backoff");
            }
            next_try.insert(addr, (now + delay, (delay * 2).min(BACKOFF.1)));
        }
    }
}

async fn join(cluster: Cluster) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        every.tick().await;
        if cluster.view().contains(cluster.node()) {
            return;
        }
        let Some(peer) = cluster.peers_up().into_iter().next() else {
            continue;
        };
        let Some(gateway) = cluster.peer_gateway(&peer) else {
            continue;
        };
        tracing::info!(through = %peer, "asking to join the cluster");
        let body = CallBody::Join {
            node: cluster.node().to_owned(),
            addr: cluster.addr().to_owned(),
        };
        if let Err(e) = cluster.call(&peer, &gateway, body).await {
            tracing::warn!(through = %peer, error = %e, "join refused for now; retrying");
        }
    }
}

/// Sends the listings this node's search index publishes (its flights' changes) to every
/// peer. Subscribed to the search index actor's output port, so the actors never name the
/// cluster.
#[derive(Clone)]
pub struct IndexPublisher {
    /// Membership (who the peers are).
    pub cluster: Cluster,
}

/// What the index publisher handles.
pub enum PublisherMessage {
    /// A listing this node changed.
    Publish(crate::domain::search::Listing),
    /// Fault injection for supervision tests: panics inside the actor.
    InjectPanic,
}

// Local only: with ractor's `cluster` feature every message type opts in explicitly.
impl ractor::Message for PublisherMessage {}

impl crate::actors::root::InjectPanic for PublisherMessage {
    fn inject_panic() -> Self {
        Self::InjectPanic
    }
}

impl Stateless for IndexPublisher {
    type Msg = PublisherMessage;

    async fn handle(&self, message: PublisherMessage) {
        match message {
            PublisherMessage::Publish(listing) => {
                broadcast(&self.cluster, &Cast::Index(vec![listing]));
            }
            PublisherMessage::InjectPanic => panic!("injected fault in the index publisher"),
        }
    }
}
