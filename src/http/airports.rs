//! `/api/v1/airports`.

use super::auth::with_role;
use super::error::ApiError;
use super::openapi::Text;
use super::{Ctx, Handled, Response, body, json, with};
use crate::domain::airport::Airport;
use crate::domain::user::{Role, User};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warp::http::StatusCode;
use warp::{Filter, Rejection};

/// Body of `POST /api/v1/airports`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"code": "DEL", "name": "Indira Gandhi International", "city": "Delhi", "country": "India"}))]
pub(super) struct AirportRequest {
    /// Three uppercase letters (IATA).
    #[schema(pattern = r"^[A-Z]{3}$")]
    pub(super) code: String,
    #[schema(value_type = Text)]
    pub(super) name: String,
    #[schema(value_type = Text)]
    pub(super) city: String,
    #[schema(value_type = Text)]
    pub(super) country: String,
}

/// An airport.
#[derive(Serialize, ToSchema)]
pub(super) struct AirportView {
    pub(super) code: String,
    pub(super) name: String,
    pub(super) city: String,
    pub(super) country: String,
}

impl From<&Airport> for AirportView {
    fn from(a: &Airport) -> Self {
        Self {
            code: a.code.to_string(),
            name: a.name.clone(),
            city: a.city.clone(),
            country: a.country.clone(),
        }
    }
}

/// `{"airports": [...]}`
#[derive(Serialize, ToSchema)]
pub(super) struct AirportList {
    pub(super) airports: Vec<AirportView>,
}

pub(super) fn routes(ctx: Ctx) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let create = warp::path!("api" / "v1" / "airports")
        .and(warp::post())
        .and(with_role(ctx.clone(), Role::Airline))
        .and(with(ctx.clone()))
        .and(body::json())
        .and_then(create);
    let list = warp::path!("api" / "v1" / "airports")
        .and(warp::get())
        .and(with(ctx))
        .and_then(list);
    create.or(list).unify()
}

/// Add an airport (airline or admin).
#[utoipa::path(post, path = "/api/v1/airports", operation_id = "create_airport", tag = "catalog", security(("bearer" = [])), request_body = AirportRequest,
    responses((status = 201, body = AirportView), (status = 400), (status = 403), (status = 409, description = "airport_exists")))]
async fn create(_user: User, ctx: Ctx, req: AirportRequest) -> Handled {
    Ok(json(StatusCode::CREATED, &create_airport(&ctx, req).await?))
}

/// Adds an airport (the caller's role already checked).
pub(super) async fn create_airport(
    ctx: &Ctx,
    req: AirportRequest,
) -> Result<AirportView, ApiError> {
    let airport =
        Airport::new(&req.code, &req.name, &req.city, &req.country).map_err(ApiError::from)?;
    let airport = ctx
        .services
        .catalog
        .create_airport(airport)
        .await
        .map_err(ApiError::from)?;
    Ok(AirportView::from(&airport))
}

/// Every airport.
#[utoipa::path(get, path = "/api/v1/airports", operation_id = "list_airports", tag = "catalog", responses((status = 200, body = AirportList)))]
async fn list(ctx: Ctx) -> Handled {
    Ok(json(StatusCode::OK, &airport_list(&ctx).await?))
}

/// Every airport.
pub(super) async fn airport_list(ctx: &Ctx) -> Result<AirportList, ApiError> {
    let airports = ctx
        .services
        .catalog
        .list_airports()
        .await
        .map_err(ApiError::from)?;
    Ok(AirportList {
        airports: airports.iter().map(AirportView::from).collect(),
    })
}
