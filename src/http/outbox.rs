//! `/api/v1/admin/outbox` (admin): the notification deliveries by state, across the cluster —
//! what a queue dashboard shows — and retrying a failed one.

use super::auth::with_role;
use super::error::ApiError;
use super::{Ctx, Handled, Response, json, with};
use crate::actors::notification::{self, Retried};
use crate::domain::ValidationError;
use crate::domain::outbox::{Delivery, DeliveryState};
use crate::domain::user::{Role, User};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashMap;
use utoipa::ToSchema;
use warp::http::StatusCode;
use warp::{Filter, Rejection};

/// Deliveries listed when the query does not say.
const DEFAULT_LIMIT: usize = 100;
/// The most deliveries one listing returns.
const MAX_LIMIT: usize = 1000;

/// One delivery of one notification over one channel.
#[derive(Serialize, ToSchema)]
pub(super) struct DeliveryView {
    /// The delivery id (`Contrail-Delivery` on webhooks, the Message-ID of e-mails).
    pub(super) id: String,
    /// `email` or `webhook`.
    #[schema(value_type = String, pattern = "^(email|webhook)$")]
    pub(super) channel: &'static str,
    pub(super) notification_id: String,
    /// `pending`, `retrying`, `delivered` or `failed`.
    #[schema(value_type = String, pattern = "^(pending|retrying|delivered|failed)$")]
    pub(super) state: &'static str,
    /// Attempts made so far.
    pub(super) attempts: u32,
    /// When it is tried next (while retrying).
    pub(super) next_attempt_at: Option<DateTime<Utc>>,
    /// Why the last attempt failed.
    pub(super) last_error: Option<String>,
    pub(super) created_at: DateTime<Utc>,
    pub(super) updated_at: DateTime<Utc>,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        Self {
            id: d.id,
            channel: d.channel.as_str(),
            notification_id: d.notification_id,
            state: d.state.as_str(),
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at,
            last_error: d.last_error,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

/// `{"deliveries": [...]}`, newest first.
#[derive(Serialize, ToSchema)]
pub(super) struct DeliveryList {
    pub(super) deliveries: Vec<DeliveryView>,
}

pub(super) fn routes(ctx: Ctx) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let list = warp::path!("api" / "v1" / "admin" / "outbox")
        .and(warp::get())
        .and(with_role(ctx.clone(), Role::Admin))
        .and(with(ctx.clone()))
        .and(warp::query::<HashMap<String, String>>())
        .and_then(list);
    let retry = warp::path!("api" / "v1" / "admin" / "outbox" / String / "retry")
        .and(warp::post())
        .and(with_role(ctx.clone(), Role::Admin))
        .and(with(ctx))
        .and_then(retry);
    list.or(retry).unify()
}

/// `state` and `limit`, checked; any other parameter is refused.
fn parse_query(
    params: &HashMap<String, String>,
) -> Result<(Option<DeliveryState>, usize), ValidationError> {
    if let Some(unknown) = params
        .keys()
        .find(|k| !matches!(k.as_str(), "state" | "limit"))
    {
        return Err(ValidationError::new(
            unknown.as_str(),
            "unknown query parameter",
        ));
    }
    let state = params
        .get("state")
        .map(|raw| {
            DeliveryState::parse(raw).ok_or_else(|| {
                ValidationError::new("state", "must be pending, retrying, delivered or failed")
            })
        })
        .transpose()?;
    let limit = params
        .get("limit")
        .map(|raw| {
            raw.parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| ValidationError::new("limit", "must be between 1 and 1000"))
        })
        .transpose()?
        .unwrap_or(DEFAULT_LIMIT);
    Ok((state, limit))
}

/// The outbox.
#[utoipa::path(get, path = "/api/v1/admin/outbox", operation_id = "list_outbox", tag = "ops", security(("bearer" = [])),
    params(
        ("state" = Option<String>, Query, pattern = "^(pending|retrying|delivered|failed)$",
            description = "Only deliveries in this state"),
        ("limit" = Option<u16>, Query, minimum = 1, maximum = 1000, description = "At most this many (default 100)")),
    responses((status = 200, body = DeliveryList), (status = 400), (status = 403)))]
async fn list(_admin: User, ctx: Ctx, params: HashMap<String, String>) -> Handled {
    Ok(json(StatusCode::OK, &delivery_list(&ctx, &params).await?))
}

/// Deliveries of every member's outbox, filtered as the query says.
pub(super) async fn delivery_list(
    ctx: &Ctx,
    params: &HashMap<String, String>,
) -> Result<DeliveryList, ApiError> {
    let (state, limit) = parse_query(params).map_err(ApiError::from)?;
    let deliveries = notification::list_all(&ctx.services.outbox, state, limit)
        .await
        .map_err(ApiError::from)?;
    let deliveries = deliveries.into_iter().map(DeliveryView::from).collect();
    Ok(DeliveryList { deliveries })
}

/// Retries a failed delivery: it starts over, pending, now.
#[utoipa::path(post, path = "/api/v1/admin/outbox/{id}/retry", operation_id = "retry_delivery", tag = "ops", security(("bearer" = [])),
    params(("id" = String, Path, pattern = "^dlv_[0-9a-f]{32}-(email|webhook)$")),
    responses((status = 200, body = DeliveryView), (status = 403), (status = 404),
        (status = 409, description = "`not_failed`: only a failed delivery is retried")))]
async fn retry(id: String, _admin: User, ctx: Ctx) -> Handled {
    Ok(json(StatusCode::OK, &retry_delivery(&ctx, &id).await?))
}

/// Starts a failed delivery over.
pub(super) async fn retry_delivery(ctx: &Ctx, id: &str) -> Result<DeliveryView, ApiError> {
    match notification::retry_anywhere(&ctx.services.outbox, id)
        .await
        .map_err(ApiError::from)?
    {
        Retried::Pending(d) => Ok(DeliveryView::from(d)),
        Retried::NotFound => Err(ApiError::NotFound),
        Retried::NotFailed(state) => Err(ApiError::Conflict {
            code: "not_failed",
            message: format!(
                "delivery {id} is {}: only a failed delivery is retried",
                state.as_str()
            ),
        }),
        Retried::Storage(e) => Err(ApiError::Unavailable(e)),
    }
}
