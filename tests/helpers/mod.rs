//! Shared test harness: starts a real node (real storage in a temp dir, real HTTP on 127.0.0.1
//! with a random port) through the same `startup::start` the binary uses, with the typed API
//! client (`contrail-client`) and its seeding helper; raw requests (status and body) remain for
//! the tests that send what a typed client cannot (malformed, oversized, unauthorized).
#![allow(dead_code, unreachable_pub)]

pub mod binary;

use contrail::settings::Settings;
use contrail::startup::{self, Node};
use contrail_client::{Client, Signup, seed};
use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::{Value, json};
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
    contrail::telemetry::init(&contrail::settings::LogSettings {
        filter: std::env::var("TEST_LOG")
            .unwrap_or_else(|_| "warn,warp::filters::trace=error".into()),
        ..Default::default()
    });
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

pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
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

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = self
            .client
            .request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        to_reply(req.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.request(Method::GET, path, token, None).await
    }

    /// POST without a body (cancellations).
    pub async fn post_empty(&self, path: &str, token: Option<&str>) -> Reply {
        self.request(Method::POST, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.request(Method::POST, path, token, Some(body)).await
    }

    pub async fn signup(&self, email: &str, password: &str) -> Reply {
        self.post(
            "/api/v1/auth/signup",
            None,
            json!({"email": email, "password": password, "name": "Test User"}),
        )
        .await
    }

    pub async fn signin(&self, email: &str, password: &str) -> Reply {
        self.post(
            "/api/v1/auth/signin",
            None,
            json!({"email": email, "password": password}),
        )
        .await
    }

    /// The typed API client of this node (anonymous; see [`Client::with_token`]).
    pub fn api(&self) -> Client {
        Client::with_http(&self.base, self.client.clone())
    }

    /// The typed client of this node signed in as `email`.
    pub async fn signed_in(&self, email: &str, password: &str) -> Client {
        self.api().with_token(&self.token(email, password).await)
    }

    pub async fn token(&self, email: &str, password: &str) -> String {
        let token = self.api().signin(email, password).await;
        token
            .unwrap_or_else(|e| panic!("signin as {email}: {e}"))
            .token
    }

    pub async fn admin_token(&self) -> String {
        self.token(ADMIN_EMAIL, ADMIN_PASSWORD).await
    }

    /// A new customer account and its token.
    pub async fn customer(&self) -> (String, String) {
        let signup = Signup {
            email: format!("c{}@example.com", uuid_like()),
            password: "customer-password".into(),
            name: "Test User".into(),
        };
        let account = self.api().signup(&signup).await;
        let account = account.unwrap_or_else(|e| panic!("signup: {e}"));
        (
            account.id,
            self.token(&signup.email, &signup.password).await,
        )
    }

    pub async fn airport(&self, token: &str, code: &str) {
        let r = self
            .post("/api/v1/airports", Some(token), json!({"code": code, "name": format!("{code} Intl"), "city": "City", "country": "IN"}))
            .await;
        assert!(
            r.status == StatusCode::CREATED || r.status == StatusCode::CONFLICT,
            "airport: {}",
            r.body
        );
    }

    /// An aircraft with `rows` economy rows of `letters` seats; returns its id.
    pub async fn aircraft(&self, token: &str, rows: u16, letters: &str) -> String {
        let r = self
            .post(
                "/api/v1/aircraft",
                Some(token),
                json!({"model": "T1", "cabins": [{"cabin": "economy", "rows": [1, rows], "seats": letters}]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "aircraft: {}", r.body);
        r.body["id"].as_str().expect("id").to_owned()
    }

    /// A flight body departing `days` from now.
    pub fn flight_body(
        aircraft_id: &str,
        origin: &str,
        destination: &str,
        departs: &str,
        minutes: i64,
        fare: u64,
    ) -> Value {
        let departs_at = chrono::DateTime::parse_from_rfc3339(departs).expect("rfc3339");
        let arrives_at = departs_at + chrono::Duration::minutes(minutes);
        json!({
            "flight_number": "AI101",
            "aircraft_id": aircraft_id,
            "origin": origin,
            "destination": destination,
            "departs_at": departs_at.to_rfc3339(),
            "arrives_at": arrives_at.to_rfc3339(),
            "fares": {"economy": fare},
            "currency": "USD",
        })
    }

    pub async fn flight(&self, token: &str, body: Value) -> String {
        let r = self.post("/api/v1/flights", Some(token), body).await;
        assert_eq!(r.status, StatusCode::CREATED, "flight: {}", r.body);
        r.body["id"].as_str().expect("id").to_owned()
    }

    /// Airports DEL and BOM, a `rows`×`letters` aircraft and one flight (DEL → BOM on
    /// 2031-03-01 at 08:00 UTC, 120 minutes, economy $50); returns (admin token, flight id).
    pub async fn one_flight(&self, rows: u16, letters: &str) -> (String, String) {
        let admin = self.admin_token().await;
        let plan = seed::Plan {
            letters: letters.to_owned(),
            first_departure: "2031-03-01T08:00:00Z".parse().expect("rfc3339"),
            minutes: 120,
            fare_cents: 5000,
            ..seed::Plan::new(1, rows)
        };
        let catalog = seed::catalog(&self.api().with_token(&admin), &plan).await;
        let mut flights = catalog.unwrap_or_else(|e| panic!("seeding: {e}")).flights;
        (admin, flights.remove(0))
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

impl TestApp {
    /// Places an order for `passengers` seats in economy on each flight.
    pub async fn order(
        &self,
        token: &str,
        flights: &[&str],
        passengers: usize,
        key: Option<&str>,
    ) -> Reply {
        let body = json!({
            "segments": flights.iter().map(|f| json!({"flight_id": f, "cabin": "economy", "count": passengers})).collect::<Vec<_>>(),
            "passengers": (0..passengers).map(|i| json!({"name": format!("Passenger {i}")})).collect::<Vec<_>>(),
        });
        self.order_body(token, body, key).await
    }

    /// Places an order with a raw body.
    pub async fn order_body(&self, token: &str, body: Value, key: Option<&str>) -> Reply {
        let mut req = self
            .client
            .post(format!("{}/api/v1/orders", self.base))
            .bearer_auth(token)
            .json(&body);
        if let Some(k) = key {
            req = req.header("idempotency-key", k);
        }
        to_reply(req.send().await.expect("sent")).await
    }

    /// Pays an order.
    pub async fn pay(
        &self,
        token: &str,
        order: &str,
        payment_token: &str,
        key: Option<&str>,
    ) -> Reply {
        let mut req = self
            .client
            .post(format!("{}/api/v1/orders/{order}/pay", self.base))
            .bearer_auth(token)
            .json(&json!({"payment_token": payment_token}));
        if let Some(k) = key {
            req = req.header("idempotency-key", k);
        }
        to_reply(req.send().await.expect("sent")).await
    }

    /// Seat statuses of a flight as `seat -> status`.
    pub async fn seat_statuses(&self, flight: &str) -> std::collections::BTreeMap<String, String> {
        let seats = self.api().seats(flight).await;
        let seats = seats.unwrap_or_else(|e| panic!("seats of {flight}: {e}"));
        seats.into_iter().map(|s| (s.seat, s.status)).collect()
    }

    /// Many customers at once (signups run concurrently).
    pub async fn customers(&self, n: usize) -> Vec<(String, String)> {
        futures::future::join_all((0..n).map(|_| self.customer())).await
    }
}

pub async fn to_reply(resp: reqwest::Response) -> Reply {
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Reply {
        status,
        headers,
        body,
    }
}
