//! A typed async client of Contrail's REST API: every endpoint of `docs/API.md`, typed
//! requests and replies, and the API's error shape as a typed error.
//!
//! ```no_run
//! # async fn demo() -> Result<(), contrail_client::Error> {
//! use contrail_client::{Client, NewOrder, Passenger, SegmentRequest};
//! let anonymous = Client::new("http://127.0.0.1:8080");
//! let token = anonymous.signin("ada@example.com", "a-long-password").await?;
//! let me = anonymous.with_token(&token.token);
//! let order = NewOrder {
//!     segments: vec![SegmentRequest::in_cabin("flt_…", "economy", 1)],
//!     passengers: vec![Passenger { name: "Ada Lovelace".into() }],
//! };
//! let placed = me.place_order(&order, None).await?;
//! me.pay(&placed.order.id, "tok_visa", None).await?;
//! # Ok(()) }
//! ```
//!
//! The load generator and the integration tests speak to nodes through it; a request that
//! must be malformed on purpose is sent with [`Client::http`] instead.

pub mod seed;
mod types;

pub use types::*;

use reqwest::header::RETRY_AFTER;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// Why a call produced no typed answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with the API's error shape.
    #[error("{status} {code}: {message}")]
    Api {
        /// HTTP status.
        status: StatusCode,
        /// The stable machine-readable code (`seats_unavailable`, `unauthorized`, …).
        code: String,
        /// What went wrong, in words.
        message: String,
        /// `Retry-After`, in seconds, on 429 and 503.
        retry_after: Option<u64>,
    },
    /// The request did not reach the server, or its answer did not arrive.
    #[error("transport: {0}")]
    Transport(#[from] reqwest::Error),
    /// The server answered something that is not the documented shape.
    #[error("unexpected answer ({status}): {detail}")]
    Unexpected {
        /// HTTP status.
        status: StatusCode,
        /// What did not match.
        detail: String,
    },
}

impl Error {
    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Error::Api { status, .. } | Error::Unexpected { status, .. } => Some(*status),
            Error::Transport(e) => e.status(),
        }
    }

    /// The API error code, when the server answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The API error message, when the server answered with one.
    pub fn message(&self) -> Option<&str> {
        match self {
            Error::Api { message, .. } => Some(message),
            _ => None,
        }
    }

    /// `Retry-After`, in seconds, when the server answered an API error with one.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Error::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The answer of a call.
pub type Result<T> = std::result::Result<T, Error>;

/// A client of one node; cheap to clone (clones share connections).
#[derive(Debug, Clone)]
pub struct Client {
    base: Arc<str>,
    http: reqwest::Client,
    token: Option<Arc<str>>,
}

impl Client {
    /// A client of the node at `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: &str) -> Self {
        Self::with_http(base, reqwest::Client::new())
    }

    /// A client of the node at `base` over a configured HTTP client (timeouts, pool).
    pub fn with_http(base: &str, http: reqwest::Client) -> Self {
        Self {
            base: base.trim_end_matches('/').into(),
            http,
            token: None,
        }
    }

    /// The same client, signed in with `token`.
    pub fn with_token(&self, token: &str) -> Self {
        Self {
            token: Some(token.into()),
            ..self.clone()
        }
    }

    /// The token this client signs its requests with.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The node's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The underlying HTTP client, for requests the typed API cannot express (a malformed body
    /// on purpose).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// A request to `path` with this client's token.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends `request`, expects 200 OK and decodes the body as `T`.
    async fn send<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T> {
        Ok(self.exchange(request, &[StatusCode::OK]).await?.1)
    }

    /// Sends `request` and decodes a success as `T`, with its status. A success other than
    /// the documented ones (`expected`) is [`Error::Unexpected`]: the API's contract changed.
    async fn exchange<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
        expected: &[StatusCode],
    ) -> Result<(StatusCode, T)> {
        let response = ok(request.send().await?).await?;
        let status = response.status();
        if !expected.contains(&status) {
            return Err(Error::Unexpected {
                status,
                detail: format!("expected {expected:?}"),
            });
        }
        let bytes = response.bytes().await?;
        serde_json::from_slice(&bytes)
            .map(|value| (status, value))
            .map_err(|e| Error::Unexpected {
                status,
                detail: e.to_string(),
            })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.send(self.request(Method::GET, path)).await
    }

    async fn post<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T> {
        self.send(self.request(Method::POST, path).json(body)).await
    }

    /// POSTs a new resource, which the API answers with 201 Created.
    async fn create<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T> {
        let request = self.request(Method::POST, path).json(body);
        Ok(self.exchange(request, &[StatusCode::CREATED]).await?.1)
    }

    // --- accounts ---

    /// Creates a customer account.
    pub async fn signup(&self, signup: &Signup) -> Result<Account> {
        self.create("/api/v1/auth/signup", signup).await
    }

    /// Signs in.
    pub async fn signin(&self, email: &str, password: &str) -> Result<Token> {
        let body = serde_json::json!({ "email": email, "password": password });
        self.post("/api/v1/auth/signin", &body).await
    }

    /// The signed-in account.
    pub async fn me(&self) -> Result<Account> {
        self.get("/api/v1/auth/me").await
    }

    /// Replaces an account's roles (admin).
    pub async fn set_roles(&self, user_id: &str, roles: &[&str]) -> Result<Account> {
        let body = serde_json::json!({ "roles": roles });
        let request = self.request(Method::PUT, &format!("/api/v1/users/{user_id}/roles"));
        self.send(request.json(&body)).await
    }

    /// Makes an account an airline account managing `carrier`'s flights (admin).
    pub async fn set_airline(&self, user_id: &str, carrier: &str) -> Result<Account> {
        let body = serde_json::json!({ "roles": ["airline"], "carrier": carrier });
        let request = self.request(Method::PUT, &format!("/api/v1/users/{user_id}/roles"));
        self.send(request.json(&body)).await
    }

    /// Disables an account, or enables it again (admin).
    pub async fn set_disabled(&self, user_id: &str, disabled: bool) -> Result<Account> {
        let body = serde_json::json!({ "disabled": disabled });
        let request = self.request(Method::PUT, &format!("/api/v1/users/{user_id}/disabled"));
        self.send(request.json(&body)).await
    }

    /// Changes the signed-in account's password; earlier tokens stop working and a new one
    /// is returned.
    pub async fn change_password(&self, current: &str, new: &str) -> Result<Token> {
        let body = serde_json::json!({ "current_password": current, "new_password": new });
        self.post("/api/v1/auth/password", &body).await
    }

    // --- catalog ---

    /// Adds an airport (airline or admin).
    pub async fn create_airport(&self, airport: &Airport) -> Result<Airport> {
        self.create("/api/v1/airports", airport).await
    }

    /// Every airport.
    pub async fn airports(&self) -> Result<Vec<Airport>> {
        #[derive(serde::Deserialize)]
        struct List {
            airports: Vec<Airport>,
        }
        Ok(self.get::<List>("/api/v1/airports").await?.airports)
    }

    /// Adds an aircraft type (airline or admin).
    pub async fn create_aircraft(&self, aircraft: &NewAircraft) -> Result<Aircraft> {
        self.create("/api/v1/aircraft", aircraft).await
    }

    /// Schedules a flight (airline or admin).
    pub async fn create_flight(&self, flight: &NewFlight) -> Result<Flight> {
        self.create("/api/v1/flights", flight).await
    }

    /// Searches flights.
    pub async fn search(&self, search: &Search) -> Result<FlightPage> {
        self.send(self.request(Method::GET, "/api/v1/flights").query(search))
            .await
    }

    /// One flight with live seat counts.
    pub async fn flight(&self, id: &str) -> Result<Flight> {
        self.get(&format!("/api/v1/flights/{id}")).await
    }

    /// A flight's seat map.
    pub async fn seats(&self, id: &str) -> Result<Vec<Seat>> {
        #[derive(serde::Deserialize)]
        struct List {
            seats: Vec<Seat>,
        }
        Ok(self
            .get::<List>(&format!("/api/v1/flights/{id}/seats"))
            .await?
            .seats)
    }

    /// Cancels a flight and every order on it (airline or admin).
    pub async fn cancel_flight(&self, id: &str) -> Result<Flight> {
        self.send(self.request(Method::POST, &format!("/api/v1/flights/{id}/cancel")))
            .await
    }

    // --- orders ---

    /// Places an order: every segment held, or none. With `idempotency_key`, a retry answers
    /// the first request's order ([`Placed::replayed`]).
    pub async fn place_order(
        &self,
        order: &NewOrder,
        idempotency_key: Option<&str>,
    ) -> Result<Placed> {
        let mut request = self.request(Method::POST, "/api/v1/orders").json(order);
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        let accepted = [StatusCode::CREATED, StatusCode::OK];
        let (status, order) = self.exchange(request, &accepted).await?;
        Ok(Placed {
            order,
            replayed: status == StatusCode::OK,
        })
    }

    /// One of the caller's orders.
    pub async fn order(&self, id: &str) -> Result<Order> {
        self.get(&format!("/api/v1/orders/{id}")).await
    }

    /// The caller's orders (every order, for an admin), newest first.
    pub async fn orders(&self) -> Result<Vec<Order>> {
        #[derive(serde::Deserialize)]
        struct List {
            orders: Vec<Order>,
        }
        Ok(self.get::<List>("/api/v1/orders").await?.orders)
    }

    /// Pays a held order with a card token (`tok_visa`; `tok_declined` and `tok_timeout`
    /// simulate failures).
    pub async fn pay(
        &self,
        id: &str,
        payment_token: &str,
        idempotency_key: Option<&str>,
    ) -> Result<Order> {
        let body = serde_json::json!({ "payment_token": payment_token });
        let mut request = self
            .request(Method::POST, &format!("/api/v1/orders/{id}/pay"))
            .json(&body);
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        self.send(request).await
    }

    /// Cancels an order (a paid one is refunded).
    pub async fn cancel_order(&self, id: &str) -> Result<Order> {
        self.send(self.request(Method::POST, &format!("/api/v1/orders/{id}/cancel")))
            .await
    }

    /// The caller's tickets.
    pub async fn tickets(&self) -> Result<Vec<Ticket>> {
        #[derive(serde::Deserialize)]
        struct List {
            tickets: Vec<Ticket>,
        }
        Ok(self.get::<List>("/api/v1/tickets").await?.tickets)
    }

    /// One ticket.
    pub async fn ticket(&self, id: &str) -> Result<Ticket> {
        self.get(&format!("/api/v1/tickets/{id}")).await
    }

    /// The caller's notifications, oldest first.
    pub async fn notifications(&self) -> Result<Vec<Notification>> {
        #[derive(serde::Deserialize)]
        struct List {
            notifications: Vec<Notification>,
        }
        Ok(self
            .get::<List>("/api/v1/notifications")
            .await?
            .notifications)
    }

    // --- operations ---

    /// `GET /healthz`: the process answers.
    pub async fn health(&self) -> Result<()> {
        self.get::<serde_json::Value>("/healthz").await.map(drop)
    }

    /// `GET /readyz`: the node serves (an error while starting, stopping or cut off).
    pub async fn ready(&self) -> Result<()> {
        self.get::<serde_json::Value>("/readyz").await.map(drop)
    }

    /// The Prometheus exposition of `/metrics`.
    pub async fn metrics(&self) -> Result<String> {
        let response = ok(self.request(Method::GET, "/metrics").send().await?).await?;
        Ok(response.text().await?)
    }

    /// The OpenAPI document.
    pub async fn openapi(&self) -> Result<serde_json::Value> {
        self.get("/openapi.json").await
    }

    /// The cluster's members (admin).
    pub async fn cluster(&self) -> Result<ClusterView> {
        self.get("/api/v1/cluster").await
    }

    /// Moves a member's entities to the others and removes it (admin).
    pub async fn drain(&self, node_id: &str) -> Result<ClusterView> {
        let body = serde_json::json!({ "node_id": node_id });
        self.post("/api/v1/cluster/drain", &body).await
    }

    /// Takes a member that is gone for good out of the cluster; its replicas are rebuilt on
    /// the others (admin; replicated clusters only).
    pub async fn remove_node(&self, node_id: &str) -> Result<ClusterView> {
        let body = serde_json::json!({ "node_id": node_id });
        self.post("/api/v1/cluster/remove", &body).await
    }

    /// Drops traffic with some peers for a while (fault injection, when enabled).
    pub async fn inject_faults(&self, faults: &Faults) -> Result<()> {
        self.post::<serde_json::Value>("/api/v1/cluster/faults", faults)
            .await
            .map(drop)
    }
}

/// The response if it is a success, or the API error it carries.
async fn ok(response: Response) -> Result<Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let bytes = response.bytes().await?;
    #[derive(serde::Deserialize)]
    struct Body {
        error: Detail,
    }
    #[derive(serde::Deserialize)]
    struct Detail {
        code: String,
        message: String,
    }
    match serde_json::from_slice::<Body>(&bytes) {
        Ok(Body { error }) => Err(Error::Api {
            status,
            code: error.code,
            message: error.message,
            retry_after,
        }),
        Err(_) => Err(Error::Unexpected {
            status,
            detail: String::from_utf8_lossy(&bytes).chars().take(200).collect(),
        }),
    }
}
