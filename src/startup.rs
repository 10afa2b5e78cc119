//! Builds and runs one node: storage, recovery, actors, HTTP. The binary and every
//! integration test start Contrail through [`start`], which runs a few named steps:
//! `open_storage`, `open_cluster`, `start_actors` (under one root supervisor), recovery,
//! and `serve_http`.

use crate::actors::accounts::{Accounts, AccountsActor};
use crate::actors::catalog::{Catalog, CatalogActor};
use crate::actors::deadlines::Deadlines;
use crate::actors::directory::Directory;
use crate::actors::entity::Entity;
use crate::actors::flight::{self, FlightActor};
use crate::actors::notification::{Dispatch, NotificationActor};
use crate::actors::order::OrderActor;
use crate::actors::order::desk::Orders;
use crate::actors::payment::PaymentActor;
use crate::actors::root::{RootMessage, RootSupervisor, supervise};
use crate::actors::router::{Alone, RouterRef};
use crate::actors::search_index::{SearchIndexActor, SharedIndex};
use crate::actors::services::Services;
use crate::actors::sold_out::SoldOut;
use crate::actors::stateless::StatelessActor;
use crate::actors::supervisor::{EntitySupervisor, Quarantine, RestartPolicy};
use crate::actors::ticket::TicketActor;
use crate::actors::{CallError, ask};
use crate::channels::Channels;
use crate::cluster::gateway::GatewayActor;
use crate::cluster::membership::{self, IndexPublisher, PublisherMessage};
use crate::cluster::{Cluster, Timing, Tls, Transport};
use crate::domain::flight::Flight;
use crate::domain::ids::FlightId;
use crate::domain::outbox::Channel;
use crate::domain::search::FlightSummary;
use crate::http::auth::TokenKeys;
use crate::http::rate_limit::RateLimits;
use crate::http::{AppContext, Ctx};
use crate::metrics_catalog::Exporter;
use crate::persistence::{Store, keys};
use crate::settings::Settings;
use anyhow::Context;
use ractor::{Actor, ActorCell, ActorRef, OutputPort};
use ractor_cluster::node::NodeConnectionMode;
use ractor_cluster::{NodeServer, NodeServerMessage};
use secrecy::ExposeSecret;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long shutdown waits for in-flight HTTP requests and for actors to stop.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// How many call timeouts a caller waits for an order's saga (hold plus compensation, or
/// charge plus confirmation).
const SAGA_TIMEOUT_FACTOR: u32 = 3;
/// How often periodic housekeeping (metrics upkeep, idle rate-limit keys) runs.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(10);

/// A running node.
pub struct Node {
    http_addr: SocketAddr,
    ctx: Ctx,
    store: Store,
    /// Signals the HTTP server to stop accepting and finish in-flight requests.
    stop_http: oneshot::Sender<()>,
    /// The HTTP server task.
    server: JoinHandle<()>,
    /// Metrics upkeep and rate-limit cleanup.
    housekeeping: JoinHandle<()>,
    /// The root of the supervision tree: every long-lived actor of the node is below it.
    root: ActorRef<RootMessage>,
    /// Hold expiry, and the membership loops (heartbeats, reconnects, joining) of a clustered
    /// node.
    background: Vec<JoinHandle<()>>,
    /// The node-to-node transport of a clustered node.
    node_server: Option<ActorCell>,
}

impl Node {
    /// The address the HTTP server is bound to (the real port when configured with port 0).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The node's flight actors (tests use it for fault injection).
    pub fn directory(&self) -> &crate::actors::flight::FlightDirectory {
        &self.ctx.services.flights
    }

    /// The root supervisor's children by name, with their running actors (for supervision
    /// tests).
    pub async fn supervised(&self) -> Result<Vec<(&'static str, Option<ActorCell>)>, CallError> {
        ask(&self.root, RootMessage::Children, SHUTDOWN_GRACE).await
    }

    /// Fault injection for supervision tests: makes the root's child `name` panic.
    pub fn inject_panic(&self, name: &str) {
        let _ = self.root.cast(RootMessage::InjectPanic(name.to_owned()));
    }

    /// Stops the node: stop accepting, finish in-flight requests, stop actors, flush storage.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        tracing::info!("shutting down");
        self.ctx.ready.store(false, Ordering::Release);
        let _ = self.stop_http.send(());
        if tokio::time::timeout(SHUTDOWN_GRACE, self.server)
            .await
            .is_err()
        {
            tracing::warn!("in-flight requests did not finish within {SHUTDOWN_GRACE:?}");
        }
        self.housekeeping.abort();
        let _ = self.housekeeping.await;
        for task in &self.background {
            task.abort();
        }
        if let Some(replication) = self.ctx.cluster.replication() {
            // Followers elect new leaders for the partitions this node led.
            replication.shutdown().await;
        }
        if let Some(server) = &self.node_server {
            let _ = server
                .stop_and_wait(Some("shutdown".into()), Some(SHUTDOWN_GRACE))
                .await;
        }
        // The last started first: entities before the singletons they call.
        let stopped = ask(
            &self.root,
            |port| RootMessage::Shutdown(SHUTDOWN_GRACE, port),
            2 * SHUTDOWN_GRACE,
        )
        .await;
        if let Err(e) = stopped {
            tracing::warn!(error = %e, "actors did not stop in time");
        }
        let _ = self
            .root
            .stop_and_wait(Some("shutdown".into()), Some(SHUTDOWN_GRACE))
            .await;
        drop(self.ctx);
        self.store.flush().await.context("final flush")?;
        // Actor tasks drop their store handles just after they report stopped; wait for that so
        // the database is closed (and its lock released) when this returns.
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        while self.store.handles() > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if self.store.handles() > 1 {
            tracing::warn!(
                handles = self.store.handles(),
                "storage still in use after shutdown"
            );
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Starts a node: opens storage, recovers the search index, starts actors and the HTTP server.
pub async fn start(settings: Settings) -> anyhow::Result<Node> {
    settings.validate()?;
    let settings = Arc::new(settings);
    // First, so that nothing recorded while starting (recovery, actors starting) is lost.
    let metrics = Exporter::install()?;
    let (store, index, with_holds) = open_storage(&settings)?;
    let timeout = Duration::from_millis(settings.actors.call_timeout_ms);
    let (cluster, node_server) = open_cluster(&settings, &store, timeout).await?;
    let (root, actors) = start_actors(&settings, &store, &index, &cluster).await?;
    // Before the node takes requests (the flights' list was gathered with the search index).
    // A replicated node activates each partition once it leads it (`cluster::leadership`).
    if !cluster.replicated() {
        actors.services.recover(with_holds).await;
    }
    let mut background = vec![actors.expiry];
    if let Some(transport) = &node_server {
        background.extend(membership::spawn(
            cluster.clone(),
            transport.clone(),
            settings.cluster.seeds.clone(),
            actors.services.clone(),
        ));
    }
    let secret = settings
        .auth
        .jwt_secret
        .as_ref()
        .context("auth.jwt_secret is required")?;
    let ctx: Ctx = Arc::new(AppContext {
        settings: settings.clone(),
        cluster,
        services: actors.services,
        tokens: TokenKeys::new(
            secret.expose_secret().as_bytes(),
            settings.auth.token_ttl_secs,
        ),
        limits: RateLimits::new(&settings.http),
        metrics,
        ready: Arc::new(AtomicBool::new(false)),
        live: Default::default(),
    });
    let (http_addr, stop_http, server) = serve_http(&settings, &ctx)?;
    let housekeeping = tokio::spawn(housekeeping(ctx.clone()));
    ctx.ready.store(true, Ordering::Release);
    tracing::info!(%http_addr, "contrail node listening");
    Ok(Node {
        http_addr,
        ctx,
        store,
        stop_http,
        server,
        housekeeping,
        root,
        background,
        node_server: node_server.map(|t| t.server.get_cell()),
    })
}

/// Opens the store and loads the search read model from it; also returns the flights that
/// have held seats (recovery releases their lapsed holds).
fn open_storage(settings: &Settings) -> anyhow::Result<(Store, SharedIndex, Vec<FlightId>)> {
    let store = Store::open_with(
        &settings.storage.path,
        settings.storage.cache_mib << 20,
        Duration::from_millis(settings.storage.max_unsynced_ms),
    )?;
    let index = SharedIndex::default();
    let with_holds = recover_index(&store, &index)?;
    tracing::info!(
        flights = index.read().len(),
        with_holds = with_holds.len(),
        path = %settings.storage.path.display(),
        "storage recovered"
    );
    Ok((store, index, with_holds))
}

/// What [`start_actors`] built.
struct Actors {
    /// The facades and directories requests are served with.
    services: Services,
    /// The hold-expiry task.
    expiry: JoinHandle<()>,
}

/// Starts the root supervisor and, under it, every long-lived actor of the node: the ones
/// others depend on first (the root stops them in reverse order).
async fn start_actors(
    settings: &Settings,
    store: &Store,
    index: &SharedIndex,
    cluster: &Cluster,
) -> anyhow::Result<(ActorRef<RootMessage>, Actors)> {
    let policy = RestartPolicy {
        max_restarts: settings.actors.max_restarts,
        window: Duration::from_secs(settings.actors.restart_window_secs),
    };
    let (root, _) = Actor::spawn(None, RootSupervisor { policy }, ()).await?;
    let timeout = Duration::from_millis(settings.actors.call_timeout_ms);
    let passivate_after = Duration::from_secs(settings.actors.passivate_after_secs);
    // Actors reach other nodes only through the router; a node without a cluster serves
    // everything itself, and has nobody to publish its listings to.
    let (router, listings) = if cluster.clustered() {
        let port = Arc::new(OutputPort::default());
        (RouterRef::new(cluster.clone()), Some(port))
    } else {
        (RouterRef::new(Alone), None)
    };

    let services_slot: Arc<OnceLock<Services>> = Arc::default();
    let gateway = GatewayActor {
        cluster: cluster.clone(),
        services: services_slot.clone(),
    };
    supervise(&root, "gateway", StatelessActor(gateway), (), |_| {}).await?;
    if let Some(port) = &listings {
        let publisher = IndexPublisher {
            cluster: cluster.clone(),
        };
        let port = port.clone();
        supervise(
            &root,
            "index_publisher",
            StatelessActor(publisher),
            (),
            move |actor| {
                port.subscribe(actor.clone(), |l| Some(PublisherMessage::Publish(l)));
            },
        )
        .await?;
    }
    let search = SearchIndexActor { listings };
    let search = supervise(&root, "search_index", search, index.clone(), |_| {}).await?;
    let payment = PaymentActor {
        store: store.clone(),
        latency: Duration::from_millis(settings.payments.latency_ms),
        decline_rate: settings.payments.decline_rate,
        in_progress: Default::default(),
    };
    let payments = supervise(&root, "payments", StatelessActor(payment), (), |_| {}).await?;
    let dispatch = Arc::new(Dispatch::new(
        store.clone(),
        Channels::from_settings(&settings.notifications)?,
        settings.notifications.retry_policy(),
        services_slot.clone(),
        router.clone(),
    ));
    let channels: Arc<[Channel]> = dispatch.enabled().into();
    let notification = NotificationActor {
        dispatch: dispatch.clone(),
    };
    let notifications = supervise(
        &root,
        "notifications",
        StatelessActor(notification),
        (),
        |_| {},
    )
    .await?;
    let accounts = AccountsActor {
        store: store.clone(),
    };
    let accounts = supervise(&root, "accounts", StatelessActor(accounts), (), |_| {}).await?;
    let accounts = Accounts::new(
        accounts,
        store.clone(),
        timeout,
        router.clone(),
        settings.auth.hashing_queue,
    )
    .await?;

    let sold_out = SoldOut::default();
    let flight = FlightActor {
        store: store.clone(),
        index: search,
        passivate_after,
        hold_cap: Some(settings.booking.max_seats_per_user_per_flight),
        sold_out: sold_out.clone(),
    };
    let entities = EntityStart {
        root: &root,
        store,
        policy,
        router: &router,
        services: &services_slot,
    };
    let flights = entities.start("flights", flight, timeout).await?;
    let catalog = CatalogActor {
        store: store.clone(),
        directory: flights.clone(),
        index: index.clone(),
    };
    let catalog = supervise(&root, "catalog", StatelessActor(catalog), (), |_| {}).await?;
    let catalog = Catalog::new(catalog, router.clone(), timeout);
    let ticket = TicketActor {
        store: store.clone(),
        passivate_after,
    };
    let tickets = entities.start("tickets", ticket, timeout).await?;
    let deadlines = Deadlines::default();
    let order = OrderActor {
        store: store.clone(),
        flights: flights.clone(),
        tickets: tickets.clone(),
        payments,
        notifications: notifications.clone(),
        channels,
        call_timeout: timeout,
        passivate_after,
        deadlines: deadlines.clone(),
    };
    // A saga makes several calls, each with the call timeout: give the caller room for them.
    let order_directory = entities
        .start("orders", order, SAGA_TIMEOUT_FACTOR * timeout)
        .await?;
    let expiry = deadlines.spawn(order_directory.clone());
    let orders = Orders::new(
        store.clone(),
        order_directory,
        Duration::from_secs(settings.booking.hold_ttl_secs),
        router,
        deadlines,
        sold_out,
        settings.booking.max_in_flight as usize,
    );
    let services = Services {
        flights,
        orders,
        tickets,
        accounts,
        catalog,
        index: index.clone(),
        store: store.clone(),
        outbox: dispatch,
        first_admin: settings
            .auth
            .admin_email
            .clone()
            .zip(settings.auth.admin_password.clone()),
        counted: Default::default(),
    };
    let _ = services_slot.set(services.clone());
    // Deliveries a crash interrupted resume now, not at the next periodic sweep.
    notifications.cast(crate::actors::notification::NotificationMessage::Sweep);
    Ok((root, Actors { services, expiry }))
}

/// Starts entity supervisors under the root.
struct EntityStart<'a> {
    root: &'a ActorRef<RootMessage>,
    store: &'a Store,
    policy: RestartPolicy,
    router: &'a RouterRef,
    /// Set once the node is built: a supervisor restarted after that runs recovery again.
    services: &'a Arc<OnceLock<Services>>,
}

impl EntityStart<'_> {
    /// A supervisor for entities of kind `E`, and the directory that activates them under it.
    async fn start<E: Entity + Sync>(
        &self,
        name: &'static str,
        template: E,
        timeout: Duration,
    ) -> anyhow::Result<Directory<E>> {
        let quarantine = Quarantine::default();
        let supervisor = EntitySupervisor {
            template: template.clone(),
            policy: self.policy,
            quarantine: quarantine.clone(),
        };
        // A failing supervisor takes its entity actors down with it: their unfinished sagas
        // and lapsed holds are picked up again as at start-up (nothing to do at the first start,
        // before the node is built).
        let services = self.services.clone();
        let recover = move |_: &ActorRef<_>| {
            if let Some(services) = services.get().cloned() {
                tokio::spawn(async move {
                    let flights = services.flights_with_holds();
                    services.recover(flights).await;
                });
            }
        };
        let supervisor = supervise(self.root, name, supervisor, (), recover).await?;
        Ok(Directory::new(
            self.store.clone(),
            supervisor,
            template,
            quarantine,
            timeout,
            self.router.clone(),
        ))
    }
}

/// Binds the HTTP listener and serves the API on it until the returned sender fires.
fn serve_http(
    settings: &Settings,
    ctx: &Ctx,
) -> anyhow::Result<(SocketAddr, oneshot::Sender<()>, JoinHandle<()>)> {
    let listener = listen(settings.http.bind, settings.http.listen_backlog)
        .with_context(|| format!("binding the HTTP listener to {}", settings.http.bind))?;
    let http_addr = listener.local_addr()?;
    let (stop_http, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(
        warp::serve(crate::http::routes(ctx.clone()))
            .incoming(listener)
            .graceful(async {
                let _ = stopped.await;
            })
            .run(),
    );
    Ok((http_addr, stop_http, server))
}

/// A TCP listener on `addr` with an accept queue of `backlog` connections.
fn listen(addr: std::net::SocketAddr, backlog: u32) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As `TcpListener::bind` does: a restarted node can bind while old connections linger.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Loads every flight's summary into the search index and returns the flights that have held
/// seats. A flight whose records cannot be read is logged and left out (requests for it get
/// 503), rather than shown with made-up seats.
fn recover_index(store: &Store, index: &SharedIndex) -> anyhow::Result<Vec<FlightId>> {
    let mut with_holds = Vec::new();
    for item in store.scan::<Flight>(keys::FLIGHTS) {
        let (id, _) = match item {
            Ok(entry) => entry,
            Err(e) => {
                tracing::error!(error = %e, "unreadable flight record left out of search");
                continue;
            }
        };
        let Some(id) = FlightId::parse(&id) else {
            tracing::error!(key = %id, "flight record with a malformed id left out of search");
            continue;
        };
        match flight::load(store, &id) {
            Ok((flight, seats)) => {
                if seats.has_holds() {
                    with_holds.push(id);
                }
                index.upsert(&FlightSummary {
                    flight,
                    availability: seats.availability(),
                });
            }
            Err(e) => tracing::error!(flight = %id, error = %e, "flight left out of search"),
        }
    }
    Ok(with_holds)
}

/// The node's membership, and its node-to-node transport when `[cluster]` is configured.
async fn open_cluster(
    settings: &Settings,
    store: &Store,
    call_timeout: Duration,
) -> anyhow::Result<(Cluster, Option<Transport>)> {
    let c = &settings.cluster;
    let timing = Timing {
        heartbeat: Duration::from_millis(c.heartbeat_ms),
        down_after: Duration::from_millis(c.down_after_ms),
        call_timeout,
    };
    let (Some(node), Some(listen), Some(cookie)) = (&c.node_id, &c.listen, &c.cookie) else {
        let cluster = Cluster::alone(store.clone(), call_timeout)?;
        // A node alone is a cluster of one that hears from itself.
        metrics::gauge!("contrail_cluster_members_up").set(1.0);
        return Ok((cluster, None));
    };
    let addr: SocketAddr = listen
        .parse()
        .with_context(|| format!("cluster.listen {listen}"))?;
    let legacy = store.legacy_cluster_epoch()?;
    if legacy > 1 {
        anyhow::bail!(
            "{} was written by a member of a cluster without replication (at epoch {legacy}), a \
             mode this release no longer runs: its records are on this disk only, and starting \
             it in a replicated cluster would hide them. Export them through the API with the \
             previous release and import them into a new cluster; see the README (Cluster, \
             upgrading from a cluster without replication)",
            settings.storage.path.display()
        );
    }
    if !c.seeds.is_empty() && Cluster::ran_alone_on(store)? {
        anyhow::bail!(
            "{} holds the data of a node that ran alone: it may found a cluster (start it \
             without cluster.seeds; the others then join it) but not join one, whose replicas \
             would replace its records",
            settings.storage.path.display()
        );
    }
    let cluster = Cluster::open(
        node,
        listen,
        store.clone(),
        timing,
        c.seeds.is_empty(),
        true,
    )?;
    let tls = match (&c.tls_cert, &c.tls_key, &c.tls_ca) {
        (Some(cert), Some(key), Some(ca)) => Some(Tls::load(cert, key, ca)?),
        _ => None,
    };
    let server = NodeServer::new(
        addr.port(),
        crate::cluster::wire::session_cookie(cookie.expose_secret()),
        node.clone(),
        "contrail".into(),
        tls.as_ref().map(Tls::incoming),
        Some(NodeConnectionMode::Isolated),
    )
    .with_listen_addr(addr.ip());
    let (server, _) = Actor::spawn(None, server, ())
        .await
        .context("starting the cluster transport")?;
    // A peer's session closing starts the elections of the groups it led (`raft::takeover`).
    server
        .cast(NodeServerMessage::SubscribeToEvents {
            id: "sessions".into(),
            subscription: Box::new(crate::cluster::Sessions::new(cluster.clone())),
        })
        .context("subscribing to the transport's sessions")?;
    let timing = crate::cluster::raft::Timing {
        heartbeat: Duration::from_millis(c.raft_heartbeat_ms),
        election: (
            Duration::from_millis(c.election_timeout_ms),
            Duration::from_millis(c.election_timeout_ms * 3 / 2),
        ),
        propose_timeout: call_timeout,
    };
    cluster
        .start_replication((c.partitions, usize::from(c.replicas)), timing)
        .await
        .context("starting the replicated partitions")?;
    let view = cluster.view();
    tracing::info!(node = %node, cluster_addr = %listen, epoch = view.epoch, member = view.contains(node), tls = tls.is_some(), "cluster transport listening");
    Ok((cluster, Some(Transport { server, tls })))
}

async fn housekeeping(ctx: Ctx) {
    let mut every = tokio::time::interval(HOUSEKEEPING_EVERY);
    loop {
        every.tick().await;
        ctx.metrics.run_upkeep();
        ctx.limits.forget_idle();
    }
}
