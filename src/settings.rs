//! Typed configuration: `config.toml`, overridden by `CONTRAIL__SECTION__KEY` variables.
//!
//! Every default is a named constant; secrets are [`SecretString`]s, which never print.

use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Default HTTP listen address.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
/// Default storage directory.
pub const DEFAULT_STORAGE_PATH: &str = "./data";
/// Default size of the storage engine's block cache in MiB.
pub const DEFAULT_STORAGE_CACHE_MIB: u64 = 128;
/// Default longest time a write nobody waits for stays unsynced (it normally rides along with
/// the sync of the next write somebody waits for).
pub const DEFAULT_MAX_UNSYNCED_MS: u64 = 5;
/// Default hold lifetime.
pub const DEFAULT_HOLD_TTL_SECS: u64 = 600;
/// Default seats one user may hold on one flight.
pub const DEFAULT_MAX_SEATS_PER_USER_PER_FLIGHT: u16 = 9;
/// Default number of bookings and payments one node works on at once (more get 503).
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 4096;
/// Default token lifetime.
pub const DEFAULT_TOKEN_TTL_SECS: u64 = 3600;
/// Shortest JWT secret accepted.
pub const MIN_JWT_SECRET_LEN: usize = 32;
/// The secret shipped in `config.toml` for local development; a node outside development mode
/// refuses to start with it.
pub const DEV_JWT_SECRET: &str = "DEVELOPMENT-ONLY-contrail-jwt-secret-do-not-deploy";
/// The first admin's password shipped in `config.toml` and `cluster/` (development only).
pub const DEV_ADMIN_PASSWORD: &str = "change-me-admin";
/// The cluster cookie shipped in `cluster/` (development only).
pub const DEV_CLUSTER_COOKIE: &str = "DEVELOPMENT-ONLY-cluster-cookie";
/// Default sustained requests per second per authenticated user.
pub const DEFAULT_USER_RPS: u32 = 200;
/// Default burst per authenticated user.
pub const DEFAULT_USER_BURST: u32 = 400;
/// Default sustained requests per second per client address for anonymous requests; high,
/// because a load test or a NAT puts many users behind one address.
pub const DEFAULT_ANONYMOUS_RPS: u32 = 50_000;
/// Default burst per client address for anonymous requests.
pub const DEFAULT_ANONYMOUS_BURST: u32 = 50_000;
/// Default failed signins per (client address, account) per minute.
pub const DEFAULT_SIGNIN_FAILURES_PER_MINUTE: u32 = 5;
/// Default failed signins per client address per minute, whatever the account.
pub const DEFAULT_SIGNIN_FAILURES_PER_ADDRESS_PER_MINUTE: u32 = 30;
/// Default signins and signups that may wait for a password-hashing slot (one runs per CPU);
/// more are refused with 503 + Retry-After. Sized so a burst of 48 signups (tests/auth.rs)
/// fits.
pub const DEFAULT_HASHING_QUEUE: usize = 64;
/// Default accept queue of the HTTP listener (tokio's own default is 1024).
pub const DEFAULT_LISTEN_BACKLOG: u32 = 8192;
/// Default log filter. Requests are logged by our own request span and metrics (4xx at DEBUG,
/// 5xx at WARN); warp's own trace filter would log every 5xx at ERROR, and its server logs a
/// client that closes its connection as an ERROR, so both are off.
pub const DEFAULT_LOG_FILTER: &str = "info,warp::filters::trace=off,warp::server=off";
/// Default deadline of one HTTP-to-actor call.
pub const DEFAULT_CALL_TIMEOUT_MS: u64 = 5_000;
/// Default idle time after which an entity actor passivates.
pub const DEFAULT_PASSIVATE_AFTER_SECS: u64 = 300;
/// Default restarts allowed per entity actor within the restart window.
pub const DEFAULT_MAX_RESTARTS: u32 = 5;
/// Default restart window.
pub const DEFAULT_RESTART_WINDOW_SECS: u64 = 60;

/// How a node is run. Only development mode accepts the secrets published in this repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Every secret must be the operator's own (the default).
    #[default]
    Production,
    /// Local development: the shipped `config.toml` and `cluster/` files, public secrets and all.
    Development,
}

/// All of a node's settings.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// `production` (default) or `development`.
    pub mode: Mode,
    /// HTTP listener and request limits.
    pub http: HttpSettings,
    /// Where the store lives.
    pub storage: StorageSettings,
    /// Booking rules.
    pub booking: BookingSettings,
    /// Tokens and the first admin.
    pub auth: AuthSettings,
    /// The payment simulator.
    pub payments: PaymentSettings,
    /// Outgoing notifications.
    pub notifications: NotificationSettings,
    /// Cluster membership (absent: a single-node cluster).
    pub cluster: ClusterSettings,
    /// Entity actor lifecycle.
    pub actors: ActorSettings,
    /// Logging.
    pub log: LogSettings,
    /// Distributed traces.
    pub telemetry: TelemetrySettings,
}

/// `[http]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// Listen address; port 0 picks a free port.
    pub bind: SocketAddr,
    /// Sustained requests per second per authenticated user.
    pub user_rps: u32,
    /// Burst per authenticated user.
    pub user_burst: u32,
    /// Sustained anonymous requests per second per client address.
    pub anonymous_rps: u32,
    /// Anonymous burst per client address.
    pub anonymous_burst: u32,
    /// Failed signins allowed per (client address, account) per minute; the failure after
    /// them locks the pair until the bucket refills.
    pub signin_failures_per_minute: u32,
    /// Failed signins allowed per client address per minute, whatever the account.
    pub signin_failures_per_address_per_minute: u32,
    /// Origins (`https://app.example.com`) whose pages may call the API from a browser; empty
    /// (the default): no cross-origin access.
    pub cors_origins: Vec<String>,
    /// Connections the kernel queues before the server accepts them (capped by the kernel's
    /// `net.core.somaxconn`). Connections beyond it are dropped and retried by the client after
    /// 1 s, 3 s, 7 s…: an on-sale rush of thousands of new connections needs a deep queue.
    pub listen_backlog: u32,
    /// Mark the web site's cookies (session, CSRF) `Secure`, so a browser sends them over
    /// HTTPS only: set it when the node is reached through a TLS-terminating proxy.
    pub secure_cookies: bool,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            bind: DEFAULT_BIND
                .parse()
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080))),
            user_rps: DEFAULT_USER_RPS,
            user_burst: DEFAULT_USER_BURST,
            anonymous_rps: DEFAULT_ANONYMOUS_RPS,
            anonymous_burst: DEFAULT_ANONYMOUS_BURST,
            signin_failures_per_minute: DEFAULT_SIGNIN_FAILURES_PER_MINUTE,
            signin_failures_per_address_per_minute: DEFAULT_SIGNIN_FAILURES_PER_ADDRESS_PER_MINUTE,
            cors_origins: Vec::new(),
            listen_backlog: DEFAULT_LISTEN_BACKLOG,
            secure_cookies: false,
        }
    }
}

/// `[storage]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSettings {
    /// The data directory.
    pub path: PathBuf,
    /// Most memory the engine's block cache keeps, in MiB.
    pub cache_mib: u64,
    /// Longest time a write nobody waits for stays unsynced, in milliseconds.
    pub max_unsynced_ms: u64,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            path: PathBuf::from(DEFAULT_STORAGE_PATH),
            cache_mib: DEFAULT_STORAGE_CACHE_MIB,
            max_unsynced_ms: DEFAULT_MAX_UNSYNCED_MS,
        }
    }
}

/// `[booking]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BookingSettings {
    /// How long a held order keeps its seats.
    pub hold_ttl_secs: u64,
    /// Most seats one user may hold on one flight.
    pub max_seats_per_user_per_flight: u16,
    /// Most bookings and payments this node works on at once; beyond it a request is answered
    /// 503 + Retry-After at once instead of queueing past its deadline. (A booking for a full
    /// cabin is refused before it counts.)
    pub max_in_flight: u32,
}

impl Default for BookingSettings {
    fn default() -> Self {
        Self {
            hold_ttl_secs: DEFAULT_HOLD_TTL_SECS,
            max_seats_per_user_per_flight: DEFAULT_MAX_SEATS_PER_USER_PER_FLIGHT,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        }
    }
}

/// `[auth]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// HS256 key; required, at least [`MIN_JWT_SECRET_LEN`] bytes.
    pub jwt_secret: Option<SecretString>,
    /// Token lifetime.
    pub token_ttl_secs: u64,
    /// The first admin's email, created at start-up if missing.
    pub admin_email: Option<String>,
    /// The first admin's password.
    pub admin_password: Option<SecretString>,
    /// Signins and signups that may wait for a password-hashing slot; more get 503.
    pub hashing_queue: usize,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            token_ttl_secs: DEFAULT_TOKEN_TTL_SECS,
            admin_email: None,
            admin_password: None,
            hashing_queue: DEFAULT_HASHING_QUEUE,
        }
    }
}

/// `[payments]`
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PaymentSettings {
    /// Simulated gateway latency.
    pub latency_ms: u64,
    /// Share of approvals turned into declines, 0.0 to 1.0.
    pub decline_rate: f64,
}

/// Default delivery attempts before a notification's delivery fails.
pub const DEFAULT_DELIVERY_ATTEMPTS: u32 = 10;
/// Default wait after a delivery's first failed attempt (doubled after each further one).
pub const DEFAULT_DELIVERY_FIRST_BACKOFF_MS: u64 = 1_000;
/// Default longest wait between two attempts of a delivery.
pub const DEFAULT_DELIVERY_MAX_BACKOFF_MS: u64 = 300_000;

/// `[notifications]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationSettings {
    /// Where notifications are POSTed (`http://` or `https://`), if anywhere.
    pub webhook_url: Option<String>,
    /// The HMAC-SHA256 key every webhook delivery is signed with (required with `webhook_url`).
    pub webhook_secret: Option<SecretString>,
    /// A PEM file of extra certificate authorities trusted for `https` webhooks (a private CA,
    /// or a receiver's self-signed certificate).
    pub webhook_ca_file: Option<PathBuf>,
    /// The SMTP server e-mails go through, if any: `smtp://host:port` (plain, for local
    /// relays and tests), `smtp://host:port?tls=required` (STARTTLS required) or
    /// `smtps://host:port`; credentials as `smtp://user:password@host`.
    pub smtp_url: Option<SecretString>,
    /// The sender of e-mails (required with `smtp_url`).
    pub email_from: Option<String>,
    /// Attempts before a delivery fails (a dead letter an operator can retry).
    pub max_attempts: u32,
    /// Wait after a delivery's first failed attempt; doubled after each further one.
    pub first_backoff_ms: u64,
    /// The longest wait between two attempts.
    pub max_backoff_ms: u64,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        Self {
            webhook_url: None,
            webhook_secret: None,
            webhook_ca_file: None,
            smtp_url: None,
            email_from: None,
            max_attempts: DEFAULT_DELIVERY_ATTEMPTS,
            first_backoff_ms: DEFAULT_DELIVERY_FIRST_BACKOFF_MS,
            max_backoff_ms: DEFAULT_DELIVERY_MAX_BACKOFF_MS,
        }
    }
}

impl NotificationSettings {
    /// The retry policy of every delivery.
    pub fn retry_policy(&self) -> crate::domain::outbox::RetryPolicy {
        crate::domain::outbox::RetryPolicy {
            max_attempts: self.max_attempts,
            first_backoff: std::time::Duration::from_millis(self.first_backoff_ms),
            max_backoff: std::time::Duration::from_millis(self.max_backoff_ms),
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        if let Some(url) = &self.webhook_url {
            if !http_url(url) {
                bail!("notifications.webhook_url: {url:?} is not an http(s) URL");
            }
            match &self.webhook_secret {
                Some(s) if s.expose_secret().len() >= MIN_WEBHOOK_SECRET_LEN => {}
                _ => bail!(
                    "notifications.webhook_secret (at least {MIN_WEBHOOK_SECRET_LEN} bytes) is required with notifications.webhook_url: deliveries are signed"
                ),
            }
        }
        if self.smtp_url.is_some() {
            let from = self.email_from.as_deref().unwrap_or_default();
            if from.parse::<lettre::message::Mailbox>().is_err() {
                bail!(
                    "notifications.email_from must be a sender address (such as \"Contrail <tickets@example.com>\") when notifications.smtp_url is set"
                );
            }
        }
        if !(1..=100).contains(&self.max_attempts) {
            bail!("notifications.max_attempts must be between 1 and 100");
        }
        if self.first_backoff_ms == 0 || self.first_backoff_ms > self.max_backoff_ms {
            bail!("notifications.first_backoff_ms must be positive and at most max_backoff_ms");
        }
        if self.max_backoff_ms > 86_400_000 {
            bail!("notifications.max_backoff_ms must be at most a day");
        }
        Ok(())
    }
}

/// Whether `raw` is an absolute `http` or `https` URL with a host.
fn http_url(raw: &str) -> bool {
    raw.parse::<warp::http::Uri>()
        .is_ok_and(|uri| matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some())
}

/// Shortest webhook signing secret accepted.
pub const MIN_WEBHOOK_SECRET_LEN: usize = 16;

/// Default interval between heartbeats to each peer.
pub const DEFAULT_HEARTBEAT_MS: u64 = 300;
/// Partitions of the placement tags.
pub const DEFAULT_PARTITIONS: u16 = 64;
/// A partition leader's heartbeat interval.
pub const DEFAULT_RAFT_HEARTBEAT_MS: u64 = 250;
/// The shortest silence after which a partition replica stands for election.
pub const DEFAULT_ELECTION_TIMEOUT_MS: u64 = 1_000;
/// Default silence after which a peer counts as down.
pub const DEFAULT_DOWN_AFTER_MS: u64 = 2_000;

/// `[cluster]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSettings {
    /// This node's name; none means a single-node cluster.
    pub node_id: Option<String>,
    /// host:port for node-to-node traffic.
    pub listen: Option<String>,
    /// Nodes to join through.
    pub seeds: Vec<String>,
    /// Shared secret of the cluster.
    pub cookie: Option<SecretString>,
    /// Interval between heartbeats to each peer.
    pub heartbeat_ms: u64,
    /// Silence after which a peer counts as down.
    pub down_after_ms: u64,
    /// Enables `POST /api/v1/cluster/faults` (drops traffic with chosen peers), for partition
    /// tests. Never enable in production.
    pub fault_injection: bool,
    /// PEM file of this node's certificate (chain) for node-to-node TLS; it must name the IP
    /// of `listen`. With `tls_key` and `tls_ca`, every node-to-node byte is encrypted and
    /// every peer must present a certificate signed by `tls_ca`.
    pub tls_cert: Option<PathBuf>,
    /// PEM file of the private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// PEM file of the CA that signs every member's certificate.
    pub tls_ca: Option<PathBuf>,
    /// Allows a plaintext listener on an address other than loopback (a network the operator
    /// trusts completely). Off: such a node refuses to start without TLS.
    pub allow_plaintext: bool,
    /// Left from releases where replication was optional: a clustered node always replicates
    /// its records by consensus now (each partition an openraft group of up to `replicas`
    /// replicas). `true` changes nothing; `false` is refused, so a node configured for the
    /// removed non-replicated mode does not start as something else silently.
    pub replication: Option<bool>,
    /// How many partitions the placement tags map to (every member must agree).
    pub partitions: u16,
    /// How many replicas each partition has (fewer only while the cluster is smaller): a
    /// partition survives the loss of fewer than half of them (3: one; 5: two).
    pub replicas: u8,
    /// Interval between a partition leader's heartbeats.
    pub raft_heartbeat_ms: u64,
    /// A replica that hears no leader for this long (up to 1.5×, at random) stands for election.
    pub election_timeout_ms: u64,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        Self {
            node_id: None,
            listen: None,
            seeds: Vec::new(),
            cookie: None,
            heartbeat_ms: DEFAULT_HEARTBEAT_MS,
            down_after_ms: DEFAULT_DOWN_AFTER_MS,
            fault_injection: false,
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
            allow_plaintext: false,
            replication: None,
            partitions: DEFAULT_PARTITIONS,
            replicas: 3,
            raft_heartbeat_ms: DEFAULT_RAFT_HEARTBEAT_MS,
            election_timeout_ms: DEFAULT_ELECTION_TIMEOUT_MS,
        }
    }
}

/// `[actors]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActorSettings {
    /// Deadline of one HTTP-to-actor call.
    pub call_timeout_ms: u64,
    /// Idle time after which an entity actor stops (it is re-activated from disk on demand).
    pub passivate_after_secs: u64,
    /// Restarts allowed per actor within `restart_window_secs` before it is left stopped.
    pub max_restarts: u32,
    /// The restart-counting window.
    pub restart_window_secs: u64,
}

impl Default for ActorSettings {
    fn default() -> Self {
        Self {
            call_timeout_ms: DEFAULT_CALL_TIMEOUT_MS,
            passivate_after_secs: DEFAULT_PASSIVATE_AFTER_SECS,
            max_restarts: DEFAULT_MAX_RESTARTS,
            restart_window_secs: DEFAULT_RESTART_WINDOW_SECS,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `text` or `json`.
    pub format: LogFormat,
    /// An `EnvFilter` directive, e.g. `info,contrail=debug`; `RUST_LOG` wins if set.
    pub filter: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            filter: DEFAULT_LOG_FILTER.into(),
        }
    }
}

/// Default share of new traces that are recorded and exported.
pub const DEFAULT_SAMPLING_RATIO: f64 = 1.0;

/// `[telemetry]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySettings {
    /// Base URL of an OTLP/HTTP collector (e.g. `http://127.0.0.1:4318`; spans go to
    /// `…/v1/traces`). None (the default): no traces leave the node.
    pub otlp_endpoint: Option<String>,
    /// Share of traces started here that are recorded, 0.0 to 1.0. A request that arrives
    /// with a `traceparent` follows its caller's decision.
    pub sampling_ratio: f64,
    /// The `service.name` of the node's spans; by default the cluster node id, or `contrail`.
    pub service_name: Option<String>,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            sampling_ratio: DEFAULT_SAMPLING_RATIO,
            service_name: None,
        }
    }
}

impl Settings {
    /// The name this node's spans carry: `telemetry.service_name`, else the cluster node id,
    /// else `contrail`.
    pub fn service_name(&self) -> &str {
        self.telemetry
            .service_name
            .as_deref()
            .or(self.cluster.node_id.as_deref())
            .unwrap_or("contrail")
    }

    /// Loads `path` (if given), applies `CONTRAIL__SECTION__KEY` overrides, and validates.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let mut builder = config::Config::builder();
        if let Some(path) = path {
            builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
        }
        let settings: Settings = builder
            .add_source(
                config::Environment::with_prefix("CONTRAIL")
                    .prefix_separator("__")
                    .separator("__")
                    .list_separator(",")
                    .with_list_parse_key("cluster.seeds")
                    .with_list_parse_key("http.cors_origins")
                    .try_parsing(true),
            )
            .build()
            .context("reading configuration")?
            .try_deserialize()
            .context("invalid configuration")?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks rules that types alone cannot express.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(1..=65_535).contains(&self.http.listen_backlog) {
            bail!("http.listen_backlog must be between 1 and 65535");
        }
        if !(8..=65_536).contains(&self.storage.cache_mib) {
            bail!("storage.cache_mib must be between 8 and 65536");
        }
        if !(1..=10_000).contains(&self.storage.max_unsynced_ms) {
            bail!("storage.max_unsynced_ms must be between 1 and 10000");
        }
        match &self.auth.jwt_secret {
            None => bail!("auth.jwt_secret is required (at least {MIN_JWT_SECRET_LEN} bytes)"),
            Some(s) if s.expose_secret().len() < MIN_JWT_SECRET_LEN => {
                bail!("auth.jwt_secret must be at least {MIN_JWT_SECRET_LEN} bytes")
            }
            Some(_) => {}
        }
        if self.auth.admin_email.is_some() != self.auth.admin_password.is_some() {
            bail!("auth.admin_email and auth.admin_password go together");
        }
        // Checked here, not when the admin is made: on a cluster that happens only once the
        // email's owner reaches a majority, too late to refuse the configuration.
        if let Some(email) = &self.auth.admin_email {
            crate::domain::user::Email::parse(email)
                .map_err(|e| anyhow::anyhow!("auth.admin_email {}", e.reason))?;
        }
        if let Some(password) = &self.auth.admin_password {
            crate::domain::user::Password::parse(password.expose_secret().to_owned())
                .map_err(|e| anyhow::anyhow!("auth.admin_password {}", e.reason))?;
        }
        for origin in &self.http.cors_origins {
            let parsed = warp::http::HeaderValue::from_str(origin)
                .ok()
                .and_then(|_| origin.parse::<warp::http::Uri>().ok());
            let ok = parsed.is_some_and(|uri| {
                matches!(uri.scheme_str(), Some("http" | "https"))
                    && uri.host().is_some()
                    && uri.path() == "/"
                    && !origin.ends_with('/')
            });
            if !ok {
                bail!(
                    "http.cors_origins: {origin:?} is not an origin such as https://app.example.com"
                );
            }
        }
        if self.mode == Mode::Production {
            self.refuse_published_secrets()?;
        }
        if self.auth.token_ttl_secs == 0 || self.booking.hold_ttl_secs == 0 {
            bail!("auth.token_ttl_secs and booking.hold_ttl_secs must be positive");
        }
        if !(1..=1_000_000).contains(&self.booking.max_in_flight) {
            bail!("booking.max_in_flight must be between 1 and 1000000");
        }
        self.notifications.validate()?;
        if !(0.0..=1.0).contains(&self.telemetry.sampling_ratio) {
            bail!("telemetry.sampling_ratio must be between 0.0 and 1.0");
        }
        if let Some(endpoint) = &self.telemetry.otlp_endpoint
            && !http_url(endpoint)
        {
            bail!(
                "telemetry.otlp_endpoint: {endpoint:?} is not a URL such as http://127.0.0.1:4318"
            );
        }
        if !(0.0..=1.0).contains(&self.payments.decline_rate) {
            bail!("payments.decline_rate must be between 0.0 and 1.0");
        }
        let h = &self.http;
        if [
            h.user_rps,
            h.user_burst,
            h.anonymous_rps,
            h.anonymous_burst,
            h.signin_failures_per_minute,
            h.signin_failures_per_address_per_minute,
        ]
        .contains(&0)
        {
            bail!("http rate limits must be positive");
        }
        if self.actors.call_timeout_ms == 0 || self.actors.passivate_after_secs == 0 {
            bail!("actors.call_timeout_ms and actors.passivate_after_secs must be positive");
        }
        let c = &self.cluster;
        if let Some(node) = &c.node_id {
            let name_ok = !node.is_empty()
                && node.len() <= 64
                && node
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !name_ok {
                bail!("cluster.node_id must be 1-64 letters, digits, '-' or '_'");
            }
            let Some(listen) = &c.listen else {
                bail!("cluster.listen is required with cluster.node_id");
            };
            let Ok(addr) = listen.parse::<std::net::SocketAddr>() else {
                bail!("cluster.listen must be an ip:port such as 127.0.0.1:7101");
            };
            let tls = [&c.tls_cert, &c.tls_key, &c.tls_ca];
            let configured = tls.iter().filter(|t| t.is_some()).count();
            if configured != 0 && configured != tls.len() {
                bail!("cluster.tls_cert, cluster.tls_key and cluster.tls_ca go together");
            }
            if configured == 0 && !addr.ip().is_loopback() && !c.allow_plaintext {
                bail!(
                    "cluster.listen {listen} is not a loopback address, and node-to-node \
                     traffic (orders, password hashes) would cross the network unencrypted: \
                     set cluster.tls_cert, cluster.tls_key and cluster.tls_ca (see the README), \
                     or cluster.allow_plaintext = true on a network you trust completely"
                );
            }
            if c.cookie
                .as_ref()
                .is_none_or(|k| k.expose_secret().is_empty())
            {
                bail!("cluster.cookie is required with cluster.node_id");
            }
            if c.heartbeat_ms == 0 || c.down_after_ms <= c.heartbeat_ms {
                bail!("cluster.down_after_ms must exceed cluster.heartbeat_ms (> 0)");
            }
            if c.replication == Some(false) {
                bail!(
                    "cluster.replication = false is no longer supported: every clustered node \
                     replicates its records by consensus (remove the setting; a data directory \
                     of a non-replicated cluster is refused at start-up, see the README)"
                );
            }
            if !(1..=1024).contains(&c.partitions) {
                bail!("cluster.partitions must be 1-1024");
            }
            if !(1..=7).contains(&c.replicas) {
                bail!("cluster.replicas must be 1-7");
            }
            if c.raft_heartbeat_ms == 0 || c.election_timeout_ms < 3 * c.raft_heartbeat_ms {
                bail!(
                    "cluster.election_timeout_ms must be at least 3 × cluster.raft_heartbeat_ms (> 0)"
                );
            }
        } else if c.listen.is_some()
            || !c.seeds.is_empty()
            || c.cookie.is_some()
            || c.tls_cert.is_some()
            || c.tls_key.is_some()
            || c.tls_ca.is_some()
        {
            bail!(
                "cluster.listen, cluster.seeds, cluster.cookie and cluster.tls_* need cluster.node_id"
            );
        }
        Ok(())
    }

    /// Outside development mode, the secrets this repository publishes are refused: anyone can
    /// read them, so a node using them would accept forged admin tokens and rogue cluster peers.
    fn refuse_published_secrets(&self) -> anyhow::Result<()> {
        let published = |secret: Option<&SecretString>, value: &str| {
            secret.is_some_and(|s| s.expose_secret() == value)
        };
        let advice = "it is published in this repository; set your own, or mode = \"development\" for local use";
        if published(self.auth.jwt_secret.as_ref(), DEV_JWT_SECRET) {
            bail!("auth.jwt_secret is the development secret: {advice}");
        }
        if published(self.auth.admin_password.as_ref(), DEV_ADMIN_PASSWORD) {
            bail!("auth.admin_password is the development password: {advice}");
        }
        if published(self.cluster.cookie.as_ref(), DEV_CLUSTER_COOKIE) {
            bail!("cluster.cookie is the development cookie: {advice}");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> Settings {
        let mut s = Settings::default();
        s.auth.jwt_secret = Some(SecretString::from("x".repeat(32)));
        s
    }

    #[test]
    fn short_or_missing_secrets_are_refused() {
        assert!(valid().validate().is_ok());
        let mut s = valid();
        s.auth.jwt_secret = Some(SecretString::from("short"));
        assert!(s.validate().is_err());
        s.auth.jwt_secret = None;
        assert!(s.validate().is_err());
    }

    /// Whether `valid()`, changed by `adjust`, passes validation.
    fn accepts(adjust: impl FnOnce(&mut Settings)) -> bool {
        let mut s = valid();
        adjust(&mut s);
        s.validate().is_ok()
    }

    #[test]
    fn the_first_admin_is_validated_with_the_settings() {
        let admin = |email: &str, password: &str| {
            let (email, password) = (email.to_owned(), SecretString::from(password.to_owned()));
            accepts(|s| {
                s.auth.admin_email = Some(email);
                s.auth.admin_password = Some(password);
            })
        };
        assert!(admin("boss@example.com", "operator-password"));
        assert!(!admin("not-an-email", "operator-password"));
        assert!(!admin("boss@example.com", "short"));
    }

    #[test]
    fn notification_channels_come_complete_and_retries_are_bounded() {
        let secret = || Some(SecretString::from("a-webhook-secret-long-enough"));
        assert!(accepts(|s| {
            s.notifications.webhook_url = Some("https://hooks.example.com/contrail".into());
            s.notifications.webhook_secret = secret();
        }));
        assert!(!accepts(|s| {
            s.notifications.webhook_url = Some("https://hooks.example.com/contrail".into())
        }));
        assert!(!accepts(|s| {
            s.notifications.webhook_url = Some("https://hooks.example.com/contrail".into());
            s.notifications.webhook_secret = Some(SecretString::from("short"));
        }));
        assert!(!accepts(|s| {
            s.notifications.webhook_url = Some("hooks.example.com".into());
            s.notifications.webhook_secret = secret();
        }));
        let smtp = || Some(SecretString::from("smtp://127.0.0.1:2525"));
        assert!(accepts(|s| {
            s.notifications.smtp_url = smtp();
            s.notifications.email_from = Some("Contrail <tickets@example.com>".into());
        }));
        assert!(!accepts(|s| s.notifications.smtp_url = smtp()));
        assert!(!accepts(|s| {
            s.notifications.smtp_url = smtp();
            s.notifications.email_from = Some("not an address".into());
        }));
        assert!(!accepts(|s| s.notifications.max_attempts = 0));
        assert!(!accepts(|s| s.notifications.first_backoff_ms = 0));
        assert!(!accepts(|s| {
            s.notifications.first_backoff_ms = 10_000;
            s.notifications.max_backoff_ms = 1_000;
        }));
    }

    #[test]
    fn the_trace_exporter_is_checked_and_named_after_the_node() {
        let endpoint = |url: &str| {
            let url = url.to_owned();
            accepts(|s| s.telemetry.otlp_endpoint = Some(url))
        };
        assert!(endpoint("http://127.0.0.1:4318"));
        assert!(endpoint("https://collector.example.com/otlp"));
        assert!(!endpoint("127.0.0.1:4318"));
        assert!(!endpoint("ftp://collector"));
        assert!(!endpoint("http://"));
        for (ratio, ok) in [
            (0.0, true),
            (0.25, true),
            (1.0, true),
            (-0.1, false),
            (1.5, false),
        ] {
            assert_eq!(
                accepts(|s| s.telemetry.sampling_ratio = ratio),
                ok,
                "{ratio}"
            );
        }
        assert!(!accepts(|s| s.telemetry.sampling_ratio = f64::NAN));
        let mut s = valid();
        assert_eq!(s.service_name(), "contrail");
        s.cluster.node_id = Some("node-b".into());
        assert_eq!(s.service_name(), "node-b");
        s.telemetry.service_name = Some("booking-eu".into());
        assert_eq!(s.service_name(), "booking-eu");
    }

    #[test]
    fn the_page_cache_and_the_listen_backlog_are_bounded() {
        for (mib, ok) in [
            (8, true),
            (256, true),
            (65_536, true),
            (0, false),
            (7, false),
            (65_537, false),
        ] {
            assert_eq!(
                accepts(|s| s.storage.cache_mib = mib),
                ok,
                "cache_mib = {mib}"
            );
        }
        for (n, ok) in [(1, true), (4096, true), (0, false), (1_000_001, false)] {
            assert_eq!(
                accepts(|s| s.booking.max_in_flight = n),
                ok,
                "max_in_flight = {n}"
            );
        }
        for (backlog, ok) in [
            (1, true),
            (8192, true),
            (65_535, true),
            (0, false),
            (65_536, false),
        ] {
            assert_eq!(
                accepts(|s| s.http.listen_backlog = backlog),
                ok,
                "listen_backlog = {backlog}"
            );
        }
    }

    #[test]
    fn secrets_never_print() {
        let mut s = valid();
        s.auth.jwt_secret = Some(SecretString::from("topsecret-topsecret-topsecret-xx"));
        s.auth.admin_password = Some(SecretString::from("hunter2hunter2"));
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("topsecret") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn the_shipped_config_loads() {
        let s = Settings::load(Some(Path::new("config.toml"))).expect("config.toml is valid");
        assert!(
            s.auth
                .jwt_secret
                .as_ref()
                .is_some_and(|k| k.expose_secret() == DEV_JWT_SECRET)
        );
        assert_eq!(s.mode, Mode::Development);
    }

    #[test]
    fn a_cluster_listener_off_loopback_needs_tls_or_an_explicit_opt_out() {
        let node = |listen: &str| {
            let listen = listen.to_owned();
            move |s: &mut Settings| {
                s.cluster.node_id = Some("node-a".into());
                s.cluster.listen = Some(listen.clone());
                s.cluster.cookie = Some(SecretString::from("a-cookie-of-our-own"));
            }
        };
        let tls = |s: &mut Settings| {
            s.cluster.tls_cert = Some("node.pem".into());
            s.cluster.tls_key = Some("node.key".into());
            s.cluster.tls_ca = Some("ca.pem".into());
        };
        assert!(accepts(node("127.0.0.1:7101")));
        assert!(accepts(node("[::1]:7101")));
        assert!(!accepts(node("10.0.0.5:7101")));
        assert!(!accepts(node("0.0.0.0:7101")));
        assert!(accepts(|s| {
            node("10.0.0.5:7101")(s);
            tls(s);
        }));
        assert!(accepts(|s| {
            node("10.0.0.5:7101")(s);
            s.cluster.allow_plaintext = true;
        }));
        // Half a TLS configuration is a mistake, not plaintext.
        assert!(!accepts(|s| {
            node("127.0.0.1:7101")(s);
            tls(s);
            s.cluster.tls_ca = None;
        }));
        // TLS files without a cluster mean nothing.
        assert!(!accepts(tls));
    }

    #[test]
    fn published_secrets_are_refused_outside_development_mode() {
        let published: [fn(&mut Settings); 3] = [
            |s| s.auth.jwt_secret = Some(SecretString::from(DEV_JWT_SECRET)),
            |s| {
                s.auth.admin_email = Some("admin@example.com".into());
                s.auth.admin_password = Some(SecretString::from(DEV_ADMIN_PASSWORD));
            },
            |s| {
                s.cluster.node_id = Some("node-a".into());
                s.cluster.listen = Some("127.0.0.1:7101".into());
                s.cluster.cookie = Some(SecretString::from(DEV_CLUSTER_COOKIE));
            },
        ];
        for (i, set) in published.into_iter().enumerate() {
            assert!(!accepts(set), "published secret {i} accepted in production");
            assert!(
                accepts(|s| {
                    s.mode = Mode::Development;
                    set(s);
                }),
                "published secret {i} refused in development"
            );
        }
    }
}
