//! Operations: `/healthz`, `/readyz`, `/metrics`, `/openapi.json`.
//! Not rate limited: probes and scrapers must always get through.

use super::error::ApiError;
use super::{Ctx, Response, json, openapi, with};
use serde::Serialize;
use std::sync::atomic::Ordering;
use utoipa::ToSchema;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

/// `{"status": "ok"}`
#[derive(Serialize, ToSchema)]
pub(super) struct Status {
    status: &'static str,
}

pub(super) fn routes(ctx: Ctx) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let health = warp::path!("healthz")
        .and(warp::get())
        .map(|| json(StatusCode::OK, &Status { status: "ok" }));
    let ready = warp::path!("readyz")
        .and(warp::get())
        .and(with(ctx.clone()))
        .map(|ctx: Ctx| {
            if ctx.ready.load(Ordering::Acquire) && ctx.services.store.healthy() && ctx.cluster.serving() {
                json(StatusCode::OK, &Status { status: "ready" })
            } else {
                ApiError::Unavailable(
                    "the node is starting, shutting down, not yet a cluster member, or cut off from the majority".into(),
                )
                    .into_response()
            }
        });
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(with(ctx.clone()))
        .map(|ctx: Ctx| {
            warp::reply::with_header(
                ctx.metrics.render(),
                "content-type",
                "text/plain; version=0.0.4",
            )
            .into_response()
        });
    let spec = warp::path!("openapi.json")
        .and(warp::get())
        .map(|| json(StatusCode::OK, &openapi::document()));
    health
        .or(ready)
        .unify()
        .or(metrics)
        .unify()
        .or(spec)
        .unify()
}

/// Liveness: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, body = Status)))]
#[allow(dead_code)]
fn healthz() {}

/// Readiness: storage is open and recovery is done.
#[utoipa::path(get, path = "/readyz", tag = "ops", responses((status = 200, body = Status), (status = 503)))]
#[allow(dead_code)]
fn readyz() {}

/// Prometheus metrics in text format.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, content_type = "text/plain")))]
#[allow(dead_code)]
fn metrics_doc() {}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", responses((status = 200)))]
#[allow(dead_code)]
fn openapi_doc() {}
