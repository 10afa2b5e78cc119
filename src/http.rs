//! The thin warp layer: authenticate, validate, send one message, map the reply.
//!
//! One `routes(ctx)` per resource, combined here with the cross-cutting filters: rate limits,
//! request spans, metrics and the single error mapping.

mod accounts;
mod aircraft;
mod airports;
pub mod auth;
pub mod body;
mod cluster;
pub mod error;
mod flights;
pub mod openapi;
mod ops;
mod orders;
mod outbox;
pub mod rate_limit;
mod telemetry;
mod templates;
mod web;

use crate::actors::services::Services;
use crate::cluster::Cluster;
use crate::settings::Settings;
use auth::TokenKeys;
use rate_limit::RateLimits;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

/// What every handler may use; shared by all requests.
pub struct AppContext {
    /// The node's settings.
    pub settings: Arc<Settings>,
    /// Membership, placement and forwarding (the operator's cluster endpoints).
    pub cluster: Cluster,
    /// Everything requests are served with: accounts, catalog, flights, orders, tickets, the
    /// search read model and the store.
    pub services: Services,
    /// JWT signing and verification.
    pub tokens: TokenKeys,
    /// Token buckets.
    pub limits: RateLimits,
    /// Renders `/metrics`.
    pub metrics: crate::metrics_catalog::Exporter,
    /// Set once storage is open and recovery is done; cleared when shutting down.
    pub ready: Arc<AtomicBool>,
    /// The seat maps the site's pages are watching.
    pub live: LiveSeats,
}

pub use web::live::LiveSeats;

/// The shared context as handlers receive it.
pub type Ctx = Arc<AppContext>;

/// The reply every handler produces.
pub type Response = warp::reply::Response;

/// Every route of the API, with limits, spans, metrics and error mapping.
pub fn routes(
    ctx: Ctx,
) -> impl Filter<Extract = (impl Reply,), Error = std::convert::Infallible> + Clone {
    let api = rate_limit::limit(ctx.clone()).and(
        accounts::routes(ctx.clone())
            .or(airports::routes(ctx.clone()))
            .unify()
            .or(aircraft::routes(ctx.clone()))
            .unify()
            .or(flights::routes(ctx.clone()))
            .unify()
            .or(orders::routes(ctx.clone()))
            .unify()
            .or(cluster::routes(ctx.clone()))
            .unify()
            .or(outbox::routes(ctx.clone()))
            .unify(),
    );
    let cors = cors_policy(&ctx.settings.http.cors_origins);
    // The site before the API: a page's request is rate-limited once, by the page's own check.
    // An API request skips the site's routes at once (the booking path passes no page filter).
    let site = not_api().and(web::routes(ctx.clone()));
    let served = ops::routes(ctx).or(site).unify().or(api).unify();
    let served = match cors {
        Some(cors) => served.with(cors).map(Reply::into_response).boxed(),
        None => served.boxed(),
    };
    let served = served.recover(error::recover).unify();
    warp::path::full()
        .and(
            warp::header::optional::<String>("x-request-id")
                .or(warp::any().map(|| None))
                .unify(),
        )
        .and(served)
        .map(finish)
        .with(warp::log::custom(telemetry::record))
        .with(warp::trace(telemetry::span))
}

/// Passes every path outside `/api/`.
fn not_api() -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::path::full()
        .and_then(|path: warp::path::FullPath| async move {
            if path.as_str().starts_with("/api/") {
                Err(warp::reject::not_found())
            } else {
                Ok(())
            }
        })
        .untuple_one()
}

/// Cross-origin requests from the configured origins only; none configured, no CORS headers
/// (browsers then allow only same-origin pages, such as the node's own).
fn cors_policy(origins: &[String]) -> Option<warp::cors::Builder> {
    if origins.is_empty() {
        return None;
    }
    Some(
        warp::cors()
            .allow_origins(origins.iter().map(String::as_str))
            .allow_methods(["GET", "POST", "PUT", "DELETE"])
            .allow_headers([
                "authorization",
                "content-type",
                "idempotency-key",
                "x-request-id",
                "traceparent",
            ])
            .expose_headers(["retry-after", "location", "x-request-id", "traceparent"])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

/// Headers every response carries: its request's `X-Request-Id` (the client's, or the one
/// made for it, as in the logs), its `traceparent` when traces are on, `nosniff` (a JSON body is never sniffed into HTML), and
/// `no-store` on the API (tokens and personal data stay out of caches); a 405 names the
/// methods the path does serve (RFC 9110 §15.5.6).
fn finish(
    path: warp::path::FullPath,
    client_id: Option<String>,
    mut response: Response,
) -> Response {
    use warp::http::HeaderValue;
    use warp::http::header::{CACHE_CONTROL, X_CONTENT_TYPE_OPTIONS};
    let headers = response.headers_mut();
    if let Ok(id) = HeaderValue::from_str(&telemetry::request_id(client_id.as_deref())) {
        headers.insert("x-request-id", id);
    }
    if let Some(parent) = crate::telemetry::traceparent(&tracing::Span::current())
        .and_then(|p| HeaderValue::from_str(&p).ok())
    {
        headers.insert(crate::telemetry::TRACEPARENT, parent);
    }
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if path.as_str().starts_with("/api/") {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if response.status() == StatusCode::METHOD_NOT_ALLOWED {
        let allow = templates::allowed(path.as_str())
            .and_then(|methods| warp::http::HeaderValue::from_str(&methods).ok());
        if let Some(allow) = allow {
            response
                .headers_mut()
                .insert(warp::http::header::ALLOW, allow);
        }
    }
    response
}

/// Passes the context to a handler.
fn with(ctx: Ctx) -> impl Filter<Extract = (Ctx,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || ctx.clone())
}

/// A JSON response with a status.
fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    warp::reply::with_status(warp::reply::json(value), status).into_response()
}

/// Handler results.
type Handled = Result<Response, Rejection>;
