//! Shared test harness: starts a real node (real storage in a temp dir, real HTTP on 127.0.0.1
//! with a random port) through the same `startup::start` the binary uses, and speaks to it
//! through the typed API client (`contrail-client`) and its seeding helper (`seed`). Raw requests
//! ([`TestApp::request`], status and body) remain for the tests that send what a typed
//! client cannot (malformed, oversized, forged) or inspect the wire itself.
#![allow(dead_code, unreachable_pub)]

pub mod binary;
pub mod browser;
pub mod cluster;
pub mod smtp;
pub mod webhook;

use contrail::settings::Settings;
use contrail::startup::{self, Node};
use contrail_client::{
    Client, NewFlight, NewOrder, Order, Passenger, Placed, SegmentRequest, Signup, seed,
};
use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const SECRET: &str = "integration-test-secret-0123456789abcdef";
pub const ADMIN_EMAIL: &str = "admin@test.local";
pub const ADMIN_PASSWORD: &str = "admin-password-1";

/// Settings for a test node storing in `dir`.
pub fn settings(dir: &Path) -> Settings {
    let mut s = Settings::default();
    s.http.bind = "127.0.0.1:0".parse().expect("addr");
    s.storage.path = dir.to_path_buf();
    s.auth.jwt_secret = Some(SecretString::from(SECRET));
    s.auth.admin_email = Some(ADMIN_EMAIL.into());
    s.auth.admin_password = Some(SecretString::from(ADMIN_PASSWORD));
    s
}

pub struct TestApp {
    pub node: Option<Node>,
    pub base: String,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
    settings: Settings,
}

/// A client of a node started elsewhere (a child process), at `base`.
pub fn client_of(base: &str) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = settings(dir.path());
    TestApp {
        node: None,
        base: base.to_owned(),
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client"),
        dir,
        settings,
    }
}

impl TestApp {
    /// Another client of the same node (for concurrent tasks).
    pub fn clone_client(&self) -> TestApp {
        client_of(&self.base)
    }
}

/// A node with default test settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// A node with adjusted settings.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let log = contrail::settings::LogSettings {
        filter: std::env::var("TEST_LOG")
            .unwrap_or_else(|_| "warn,warp::filters::trace=error".into()),
        ..Default::default()
    };
    // No exporter: nothing to shut down.
    let _ = contrail::telemetry::init(&log, &Default::default(), "test").map(|t| t.shutdown());
    let dir = tempfile::tempdir().expect("temp dir");
    let mut s = settings(dir.path());
    adjust(&mut s);
    let node = startup::start(s.clone()).await.expect("node starts");
    TestApp {
        base: format!("http://{}", node.http_addr()),
        node: Some(node),
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client"),
        dir,
        settings: s,
    }
}

/// A raw answer: its status and its body as JSON (or as a string when it is not JSON).
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
}

impl Reply {
    /// The error code of an error reply (asserting the API's error shape).
    pub fn code(&self) -> &str {
        let code = self.body["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("not an error body: {}", self.body));
        assert!(
            self.body["error"]["message"].is_string(),
            "error without message: {}",
            self.body
        );
        code
    }
}

impl TestApp {
    pub fn node(&self) -> &Node {
        self.node.as_ref().expect("node running")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Stops the node gracefully and starts a new one on the same data directory.
    pub async fn restart(&mut self) {
        self.restart_with(|_| {}).await;
    }

    /// Like [`TestApp::restart`], with adjusted settings.
    pub async fn restart_with(&mut self, adjust: impl FnOnce(&mut Settings)) {
        adjust(&mut self.settings);
        if let Some(node) = self.node.take() {
            node.shutdown().await.expect("clean shutdown");
        }
        let node = startup::start(self.settings.clone())
            .await
            .expect("node restarts");
        self.base = format!("http://{}", node.http_addr());
        self.node = Some(node);
    }

    // --- raw requests, for what the typed client cannot send or the wire itself ---

    /// A raw request: `body` is sent as JSON as it is, `token` as a bearer token.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = self.api().request(method, path);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        to_reply(req.send().await.expect("request sent")).await
    }

    /// A raw GET.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.request(Method::GET, path, token, None).await
    }

    /// A raw POST of a JSON body.
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.request(Method::POST, path, token, Some(body)).await
    }

    // --- the typed client ---

    /// The typed API client of this node (anonymous; see [`TestApp::signed_as`]).
    pub fn api(&self) -> Client {
        Client::with_http(&self.base, self.client.clone())
    }

    /// The typed client of this node signed in as `email`.
    pub async fn signed_in(&self, email: &str, password: &str) -> Client {
        self.api().with_token(&self.token(email, password).await)
    }

    /// The typed client of this node with `user`'s token: the same account, through this node.
    pub fn signed_as(&self, user: &Client) -> Client {
        self.api()
            .with_token(user.token().expect("a signed-in client"))
    }

    /// The configured admin, signed in.
    pub async fn admin(&self) -> Client {
        self.signed_in(ADMIN_EMAIL, ADMIN_PASSWORD).await
    }

    /// Signs in, waiting out a node busy hashing passwords (503 + Retry-After).
    pub async fn token(&self, email: &str, password: &str) -> String {
        let api = self.api();
        let token = seed::patiently(|| api.signin(email, password)).await;
        token
            .unwrap_or_else(|e| panic!("signin as {email}: {e}"))
            .token
    }

    pub async fn admin_token(&self) -> String {
        self.token(ADMIN_EMAIL, ADMIN_PASSWORD).await
    }

    /// A new customer account: its id and its signed-in client.
    pub async fn customer(&self) -> (String, Client) {
        let signup = signup(
            &format!("c{}@example.com", uuid_like()),
            "customer-password",
        );
        let api = self.api();
        let account = match seed::patiently(|| api.signup(&signup)).await {
            Ok(account) => account.id,
            // A retry after a 503 whose write landed after all (the email is new, so it is
            // this signup's): the account exists; sign in as a client would.
            Err(e) if e.to_string().contains("email_taken") => {
                let client = self.signed_in(&signup.email, &signup.password).await;
                // As patient as the signup: a partition may be changing leaders (503).
                let me = seed::patiently(|| client.me()).await;
                me.unwrap_or_else(|e| panic!("me after a retried signup: {e}"))
                    .id
            }
            Err(e) => panic!("signup: {e}"),
        };
        (
            account,
            self.signed_in(&signup.email, &signup.password).await,
        )
    }

    /// Many customers at once (signups run concurrently).
    pub async fn customers(&self, n: usize) -> Vec<(String, Client)> {
        futures::future::join_all((0..n).map(|_| self.customer())).await
    }

    /// Airports DEL and BOM, a `rows`×`letters` aircraft and one flight (DEL → BOM on
    /// 2031-03-01 at 08:00 UTC, 120 minutes, economy $50); returns (the admin, flight id).
    pub async fn one_flight(&self, rows: u16, letters: &str) -> (Client, String) {
        let admin = self.admin().await;
        let plan = seed::Plan {
            letters: letters.to_owned(),
            first_departure: "2031-03-01T08:00:00Z".parse().expect("rfc3339"),
            minutes: 120,
            fare_cents: 5000,
            ..seed::Plan::new(1, rows)
        };
        let catalog = seed::catalog(&admin, &plan).await;
        let mut flights = catalog.unwrap_or_else(|e| panic!("seeding: {e}")).flights;
        (admin, flights.remove(0))
    }

    /// Seat statuses of a flight as `seat -> status` (retried while its partition changes
    /// leaders).
    pub async fn seat_statuses(&self, flight: &str) -> std::collections::BTreeMap<String, String> {
        // As a client honouring Retry-After: a partition changing leaders answers 503 a moment.
        let mut seats = self.api().seats(flight).await;
        for _ in 0..60 {
            match &seats {
                Err(e) if e.status() == Some(StatusCode::SERVICE_UNAVAILABLE) => {
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                    seats = self.api().seats(flight).await;
                }
                _ => break,
            }
        }
        let seats = seats.unwrap_or_else(|e| panic!("seats of {flight}: {e}"));
        seats.into_iter().map(|s| (s.seat, s.status)).collect()
    }
}

/// A signup named "Test User".
pub fn signup(email: &str, password: &str) -> Signup {
    Signup {
        email: email.to_owned(),
        password: password.to_owned(),
        name: "Test User".into(),
    }
}

/// The airport `code`, created by `admin` unless it exists (the seeding helper's).
pub async fn airport(admin: &Client, code: &str) {
    let created = seed::airport(admin, code).await;
    created.unwrap_or_else(|e| panic!("airport {code}: {e}"));
}

/// An aircraft with `rows` economy rows of `letters` seats (the seeding helper's); its id.
pub async fn aircraft(admin: &Client, rows: u16, letters: &str) -> String {
    let aircraft = seed::aircraft(admin, rows, letters).await;
    aircraft.unwrap_or_else(|e| panic!("aircraft: {e}")).id
}

/// Flight AI101 of `aircraft_id` from `origin` to `destination`, leaving at `departs` (RFC
/// 3339), `minutes` long, economy at `fare` cents.
pub fn flight_spec(
    aircraft_id: &str,
    origin: &str,
    destination: &str,
    departs: &str,
    minutes: i64,
    fare: u64,
) -> NewFlight {
    let departs_at: chrono::DateTime<chrono::Utc> = departs.parse().expect("rfc3339");
    NewFlight {
        flight_number: "AI101".into(),
        aircraft_id: aircraft_id.to_owned(),
        origin: origin.to_owned(),
        destination: destination.to_owned(),
        departs_at,
        arrives_at: departs_at + chrono::Duration::minutes(minutes),
        fares: [("economy".to_owned(), fare)].into(),
        currency: "USD".into(),
    }
}

/// Schedules `flight` as `admin`; its id.
pub async fn flight(admin: &Client, flight: &NewFlight) -> String {
    let created = admin.create_flight(flight).await;
    created.unwrap_or_else(|e| panic!("flight: {e}")).id
}

/// An order of `passengers` economy seats on each of `flights` ("Passenger 0", …).
pub fn economy(flights: &[&str], passengers: usize) -> NewOrder {
    let count = u16::try_from(passengers).expect("a few passengers");
    NewOrder {
        segments: flights
            .iter()
            .map(|f| SegmentRequest::in_cabin(f, "economy", count))
            .collect(),
        passengers: (0..passengers)
            .map(|i| Passenger {
                name: format!("Passenger {i}"),
            })
            .collect(),
    }
}

/// Places [`economy`]`(flights, passengers)` as `user`, which must answer 201 Created.
pub async fn book(user: &Client, flights: &[&str], passengers: usize) -> Order {
    let placed = user.place_order(&economy(flights, passengers), None).await;
    let placed = placed.unwrap_or_else(|e| panic!("order on {flights:?}: {e}"));
    assert!(!placed.replayed, "a new order answered 200 (a replay)");
    placed.order
}

/// The status a node answered an order with: 201 placed, 200 replayed, or the error's (a
/// request that got no answer fails the test).
pub fn status_of(placed: &contrail_client::Result<Placed>) -> StatusCode {
    match placed {
        Ok(p) if p.replayed => StatusCode::OK,
        Ok(_) => StatusCode::CREATED,
        Err(e) => e.status().unwrap_or_else(|| panic!("no answer: {e}")),
    }
}

/// A short unique string.
pub fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ) + &format!("{:x}", rand_nanos())
}

fn rand_nanos() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

/// Polls `check` until it returns true or `deadline` passes.
pub async fn eventually<F, Fut>(deadline: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + deadline;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn to_reply(resp: reqwest::Response) -> Reply {
    let status = resp.status();
    let text = resp.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Reply { status, body }
}
