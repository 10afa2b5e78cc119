//! Operations: `/healthz`, `/readyz`, `/metrics`, `/openapi.json`, `/api/v1/cluster`.
//! Not rate limited: probes and scrapers must always get through.

use super::auth::with_role;
use super::error::ApiError;
use super::{Ctx, Response, json, openapi, with};
use crate::domain::user::{Role, User};
use serde::Serialize;
use std::sync::atomic::Ordering;
use utoipa::ToSchema;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

/// `{"status": "ok"}`
#[derive(Serialize, ToSchema)]
pub struct Status {
    status: &'static str,
}

/// One cluster member.
#[derive(Serialize, ToSchema)]
pub struct MemberView {
    node_id: String,
    addr: String,
    status: &'static str,
}

/// The operator's view of the cluster.
#[derive(Serialize, ToSchema)]
pub struct ClusterView {
    node_id: String,
    members: Vec<MemberView>,
}

pub fn routes(ctx: Ctx) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let health = warp::path!("healthz")
        .and(warp::get())
        .map(|| json(StatusCode::OK, &Status { status: "ok" }));
    let ready = warp::path!("readyz")
        .and(warp::get())
        .and(with(ctx.clone()))
        .map(|ctx: Ctx| {
            if ctx.ready.load(Ordering::Acquire) && ctx.store.healthy() {
                json(StatusCode::OK, &Status { status: "ready" })
            } else {
                ApiError::Unavailable("the node is starting or shutting down".into())
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
    let cluster = warp::path!("api" / "v1" / "cluster")
        .and(warp::get())
        .and(with_role(ctx.clone(), Role::Admin))
        .and(with(ctx))
        .map(cluster);
    health
        .or(ready)
        .unify()
        .or(metrics)
        .unify()
        .or(spec)
        .unify()
        .or(cluster)
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

/// The cluster's members (admin). A node without `[cluster]` is a cluster of one.
#[utoipa::path(get, path = "/api/v1/cluster", tag = "ops", security(("bearer" = [])),
    responses((status = 200, body = ClusterView), (status = 403)))]
fn cluster(_admin: User, ctx: Ctx) -> Response {
    let node_id = ctx
        .settings
        .cluster
        .node_id
        .clone()
        .unwrap_or_else(|| "local".into());
    let addr = ctx
        .settings
        .cluster
        .listen
        .clone()
        .unwrap_or_else(|| ctx.settings.http.bind.to_string());
    json(
        StatusCode::OK,
        &ClusterView {
            members: vec![MemberView {
                node_id: node_id.clone(),
                addr,
                status: "up",
            }],
            node_id,
        },
    )
}
