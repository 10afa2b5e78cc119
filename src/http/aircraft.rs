//! `/api/v1/aircraft`.

use super::auth::with_role;
use super::error::ApiError;
use super::openapi::ModelText;
use super::{Ctx, Handled, Response, body, json, with};
use crate::domain::aircraft::{Aircraft, Cabin};
use crate::domain::user::{Role, User};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warp::http::StatusCode;
use warp::{Filter, Rejection};

/// One cabin of a new aircraft.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CabinRequest {
    pub(super) cabin: Cabin,
    /// `[first_row, last_row]`, inclusive, 1 ≤ first ≤ last ≤ 999; no two cabins share a row.
    #[schema(value_type = Vec<u16>, min_items = 2, max_items = 2)]
    pub(super) rows: [u16; 2],
    /// Seat letters of each row, 1 to 12 distinct uppercase letters, e.g. `ABCDEF`.
    #[schema(pattern = r"^[A-Z]{1,12}$")]
    pub(super) seats: String,
}

/// Body of `POST /api/v1/aircraft`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"model": "A320neo", "cabins": [
    {"cabin": "business", "rows": [1, 3], "seats": "ACDF"},
    {"cabin": "economy", "rows": [4, 30], "seats": "ABCDEF"}]}))]
pub(super) struct AircraftRequest {
    #[schema(value_type = ModelText)]
    pub(super) model: String,
    /// 1 to 4 cabins, each cabin at most once, at most 1 000 seats in all.
    #[schema(min_items = 1, max_items = 4)]
    pub(super) cabins: Vec<CabinRequest>,
}

/// An aircraft type.
#[derive(Serialize, ToSchema)]
pub(super) struct AircraftView {
    pub(super) id: String,
    pub(super) model: String,
    pub(super) capacity: usize,
    pub(super) cabins: Vec<CabinRequest>,
}

pub(super) fn routes(ctx: Ctx) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "v1" / "aircraft")
        .and(warp::post())
        .and(with_role(ctx.clone(), Role::Airline))
        .and(with(ctx))
        .and(body::json())
        .and_then(create)
}

/// Add an aircraft type with its cabin layout (airline or admin).
#[utoipa::path(post, path = "/api/v1/aircraft", operation_id = "create_aircraft", tag = "catalog", security(("bearer" = [])), request_body = AircraftRequest,
    responses((status = 201, body = AircraftView), (status = 400), (status = 403)))]
async fn create(_user: User, ctx: Ctx, req: AircraftRequest) -> Handled {
    Ok(json(
        StatusCode::CREATED,
        &create_aircraft(&ctx, req).await?,
    ))
}

/// Adds an aircraft type (the caller's role already checked).
pub(super) async fn create_aircraft(
    ctx: &Ctx,
    req: AircraftRequest,
) -> Result<AircraftView, ApiError> {
    let cabins = req
        .cabins
        .into_iter()
        .map(|c| (c.cabin, c.rows, c.seats))
        .collect();
    let aircraft = Aircraft::new(&req.model, cabins).map_err(ApiError::from)?;
    let aircraft = ctx
        .services
        .catalog
        .create_aircraft(aircraft)
        .await
        .map_err(ApiError::from)?;
    Ok(AircraftView::from(&aircraft))
}

/// Every aircraft type.
pub(super) async fn aircraft_list(ctx: &Ctx) -> Result<Vec<AircraftView>, ApiError> {
    let all = ctx
        .services
        .catalog
        .list_aircraft()
        .await
        .map_err(ApiError::from)?;
    Ok(all.iter().map(AircraftView::from).collect())
}

impl From<&Aircraft> for AircraftView {
    fn from(aircraft: &Aircraft) -> Self {
        AircraftView {
            id: aircraft.id.to_string(),
            model: aircraft.model.clone(),
            capacity: aircraft.layout.capacity(),
            cabins: aircraft
                .layout
                .cabins()
                .iter()
                .map(|c| CabinRequest {
                    cabin: c.cabin,
                    rows: [c.first_row, c.last_row],
                    seats: c.letters.iter().collect(),
                })
                .collect(),
        }
    }
}
