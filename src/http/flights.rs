//! `/api/v1/flights`: create (airline/admin), search (read model), one flight and its seats
//! (from the flight's actor).

use super::auth::with_role;
use super::error::ApiError;
use super::openapi::{FareCents, SortOrder};
use super::{Ctx, Handled, Response, body, json, with};
use crate::actors::flight::{FlightCommand, FlightReply};
use crate::domain::ValidationError;
use crate::domain::aircraft::Cabin;
use crate::domain::airport::AirportCode;
use crate::domain::flight::{FlightDraft, FlightNumber, FlightStatus};
use crate::domain::ids::{AircraftId, FlightId};
use crate::domain::search::{
    Cursor, DEFAULT_LIMIT, FlightSummary, Listing, MAX_LIMIT, SearchQuery, SortKey,
};
use crate::domain::user::{Role, User};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use utoipa::ToSchema;
use warp::http::StatusCode;
use warp::{Filter, Rejection};

/// Most passengers one search may ask seats for.
const MAX_PASSENGERS: u16 = 50;

/// Body of `POST /api/v1/flights`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"flight_number": "AI101", "aircraft_id": "acf_3f1c0a9be2d84c0b9a3f6d2e71c5b8a4",
    "origin": "DEL", "destination": "BOM", "departs_at": "2027-03-01T06:00:00Z", "arrives_at": "2027-03-01T08:10:00Z",
    "fares": {"business": 2500000, "economy": 650000}, "currency": "INR"}))]
pub(super) struct FlightRequest {
    /// A two-character airline code and 1 to 4 digits, e.g. `AI101`; an airline account may
    /// only use its own carrier's code.
    #[schema(pattern = r"^([A-Z][A-Z0-9]|[0-9][A-Z])[0-9]{1,4}$")]
    pub(super) flight_number: String,
    /// An aircraft from `POST /api/v1/aircraft`.
    #[schema(pattern = r"^acf_[A-Za-z0-9_]{0,60}$")]
    pub(super) aircraft_id: String,
    /// A known airport's code.
    #[schema(pattern = r"^[A-Z]{3}$")]
    pub(super) origin: String,
    /// A known airport's code, not the origin.
    #[schema(pattern = r"^[A-Z]{3}$")]
    pub(super) destination: String,
    pub(super) departs_at: DateTime<Utc>,
    /// After `departs_at`, at most 24 hours later.
    pub(super) arrives_at: DateTime<Utc>,
    /// Fare in minor units (0 to 100 000 000) for every cabin of the aircraft.
    #[schema(value_type = BTreeMap<Cabin, FareCents>)]
    pub(super) fares: BTreeMap<Cabin, u64>,
    /// ISO 4217 code.
    #[schema(pattern = r"^[A-Z]{3}$")]
    pub(super) currency: String,
}

/// Seats of one cabin.
#[derive(Serialize, ToSchema)]
pub(super) struct AvailabilityView {
    pub(super) total: u32,
    pub(super) available: u32,
}

/// A flight with its seat counts.
#[derive(Serialize, ToSchema)]
pub(super) struct FlightView {
    pub(super) id: String,
    pub(super) flight_number: String,
    pub(super) aircraft_id: String,
    pub(super) origin: String,
    pub(super) destination: String,
    pub(super) departs_at: DateTime<Utc>,
    pub(super) arrives_at: DateTime<Utc>,
    pub(super) duration_minutes: i64,
    pub(super) status: FlightStatus,
    pub(super) currency: String,
    pub(super) fares: BTreeMap<Cabin, u64>,
    pub(super) availability: BTreeMap<Cabin, AvailabilityView>,
    /// In search results: the per-passenger fare that matched the query.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) price_cents: Option<u64>,
}

impl FlightView {
    fn new(l: &Listing, price_cents: Option<u64>) -> Self {
        Self {
            id: l.id().to_string(),
            flight_number: l.flight_number().to_owned(),
            aircraft_id: l.aircraft_id().to_string(),
            origin: l.origin.to_string(),
            destination: l.destination.to_string(),
            departs_at: l.departs_at,
            arrives_at: l.arrives_at,
            duration_minutes: l.duration().num_minutes(),
            status: l.status,
            currency: l.currency().to_owned(),
            fares: l.cabins().map(|(c, s)| (c, s.fare_cents)).collect(),
            availability: l
                .cabins()
                .map(|(c, s)| {
                    let seats = AvailabilityView {
                        total: s.total,
                        available: s.available,
                    };
                    (c, seats)
                })
                .collect(),
            price_cents,
        }
    }

    /// A flight as its actor describes it.
    fn of(s: &FlightSummary) -> Result<Self, ApiError> {
        Listing::new(&s.flight, &s.availability)
            .map(|l| Self::new(&l, None))
            .ok_or_else(|| ApiError::Internal(format!("flight {} has a foreign id", s.flight.id)))
    }
}

/// A page of search results.
#[derive(Serialize, ToSchema)]
pub(super) struct FlightPage {
    pub(super) flights: Vec<FlightView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub(super) next_cursor: Option<String>,
}

/// One seat.
#[derive(Serialize, ToSchema)]
pub(super) struct SeatView {
    pub(super) seat: String,
    pub(super) cabin: Cabin,
    /// `available`, `held` or `sold`.
    pub(super) status: String,
}

/// `{"seats": [...]}`
#[derive(Serialize, ToSchema)]
pub(super) struct SeatList {
    pub(super) seats: Vec<SeatView>,
}

pub(super) fn routes(ctx: Ctx) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let create = warp::path!("api" / "v1" / "flights")
        .and(warp::post())
        .and(with_role(ctx.clone(), Role::Airline))
        .and(with(ctx.clone()))
        .and(body::json())
        .and_then(create);
    let search = warp::path!("api" / "v1" / "flights")
        .and(warp::get())
        .and(with(ctx.clone()))
        .and(warp::query::<HashMap<String, String>>())
        .and_then(search);
    let get = warp::path!("api" / "v1" / "flights" / String)
        .and(warp::get())
        .and(with(ctx.clone()))
        .and_then(get);
    let seats = warp::path!("api" / "v1" / "flights" / String / "seats")
        .and(warp::get())
        .and(with(ctx.clone()))
        .and_then(seats);
    let cancel = warp::path!("api" / "v1" / "flights" / String / "cancel")
        .and(warp::post())
        .and(with_role(ctx.clone(), Role::Airline))
        .and(with(ctx))
        .and_then(cancel);
    create
        .or(search)
        .unify()
        .or(get)
        .unify()
        .or(seats)
        .unify()
        .or(cancel)
        .unify()
}

/// Schedule a flight (an admin, or an airline account for its own carrier's flight numbers);
/// its FlightActor starts at once.
#[utoipa::path(post, path = "/api/v1/flights", operation_id = "create_flight", tag = "catalog", security(("bearer" = [])), request_body = FlightRequest,
    responses((status = 201, body = FlightView), (status = 400), (status = 403)))]
async fn create(user: User, ctx: Ctx, req: FlightRequest) -> Handled {
    Ok(json(
        StatusCode::CREATED,
        &create_flight(&user, &ctx, req).await?,
    ))
}

/// Schedules a flight for `user` (an airline account of its carrier, or an admin).
pub(super) async fn create_flight(
    user: &User,
    ctx: &Ctx,
    req: FlightRequest,
) -> Result<FlightView, ApiError> {
    let number = FlightNumber::parse(&req.flight_number).map_err(ApiError::from)?;
    if !user.manages(&number) {
        return Err(not_your_flight(&number));
    }
    let aircraft_id = AircraftId::parse(&req.aircraft_id)
        .ok_or_else(|| ApiError::from(ValidationError::new("aircraft_id", "no such aircraft")))?;
    let draft = FlightDraft {
        flight_number: req.flight_number,
        aircraft_id,
        origin: req.origin,
        destination: req.destination,
        departs_at: req.departs_at,
        arrives_at: req.arrives_at,
        fares: req.fares,
        currency: req.currency,
    };
    let summary = ctx
        .services
        .catalog
        .create_flight(draft)
        .await
        .map_err(ApiError::from)?;
    FlightView::of(&summary)
}

/// Parses search parameters; unknown parameters are refused so typos do not go unnoticed.
fn parse_query(params: &HashMap<String, String>) -> Result<SearchQuery, ValidationError> {
    const KNOWN: [&str; 9] = [
        "origin",
        "destination",
        "date",
        "passengers",
        "cabin",
        "max_price_cents",
        "sort",
        "limit",
        "cursor",
    ];
    if let Some(unknown) = params.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(ValidationError::new(
            unknown.as_str(),
            "unknown query parameter",
        ));
    }
    let get = |k: &str| params.get(k).map(String::as_str);
    let airport = |field: &str| {
        get(field)
            .map(|v| AirportCode::parse(v).map_err(|e| ValidationError::new(field, e.reason)))
            .transpose()
    };
    let number = |field: &str, min: u64, max: u64| {
        get(field)
            .map(|v| {
                v.parse::<u64>()
                    .ok()
                    .filter(|n| (min..=max).contains(n))
                    .ok_or_else(|| {
                        ValidationError::new(
                            field,
                            format!("must be a whole number from {min} to {max}"),
                        )
                    })
            })
            .transpose()
    };
    let sort = get("sort")
        .map(SortKey::parse)
        .transpose()?
        .unwrap_or_default();
    Ok(SearchQuery {
        origin: airport("origin")?,
        destination: airport("destination")?,
        date: get("date")
            .map(|d| {
                let four_digit_year =
                    d.len() == 10 && d.bytes().take(4).all(|b| b.is_ascii_digit());
                NaiveDate::parse_from_str(d, "%Y-%m-%d")
                    .ok()
                    .filter(|_| four_digit_year)
                    .ok_or_else(|| ValidationError::new("date", "must be a date YYYY-MM-DD"))
            })
            .transpose()?,
        passengers: number("passengers", 1, u64::from(MAX_PASSENGERS))?.map_or(1, |n| n as u16),
        cabin: get("cabin").map(str::parse::<Cabin>).transpose()?,
        max_price_cents: number("max_price_cents", 0, i64::MAX as u64)?,
        sort,
        limit: number("limit", 1, MAX_LIMIT as u64)?.map_or(DEFAULT_LIMIT, |n| n as usize),
        after: get("cursor").map(|c| Cursor::decode(c, sort)).transpose()?,
    })
}

/// Search flights (reads the node's search index; availability may lag bookings by
/// milliseconds, a booking is always decided by the flight itself).
#[utoipa::path(get, path = "/api/v1/flights", operation_id = "search_flights", tag = "catalog",
    params(
        ("origin" = Option<String>, Query, pattern = r"^[A-Z]{3}$", example = "DEL"),
        ("destination" = Option<String>, Query, pattern = r"^[A-Z]{3}$", example = "BOM"),
        ("date" = Option<String>, Query, format = Date, pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
            description = "Departure day (UTC), YYYY-MM-DD", example = "2027-03-01"),
        ("passengers" = Option<u16>, Query, minimum = 1, maximum = 50, description = "Seats needed (default 1)"),
        ("cabin" = Option<Cabin>, Query),
        ("max_price_cents" = Option<u64>, Query, maximum = 9223372036854775807_u64, description = "Highest fare per passenger, in minor units"),
        ("sort" = Option<SortOrder>, Query),
        ("limit" = Option<u16>, Query, minimum = 1, maximum = 100, description = "Results per page (default 20)"),
        ("cursor" = Option<String>, Query, pattern = r"^[pdu]\.-?[0-9]{1,18}\.-?[0-9]{1,18}\.flt_[0-9a-f]{32}$",
            description = "`next_cursor` of the previous page of the same search (same `sort`)")),
    responses((status = 200, body = FlightPage), (status = 400)))]
async fn search(ctx: Ctx, params: HashMap<String, String>) -> Handled {
    Ok(json(StatusCode::OK, &search_page(&ctx, &params)?))
}

/// One page of a search, from the read model.
pub(super) fn search_page(
    ctx: &Ctx,
    params: &HashMap<String, String>,
) -> Result<FlightPage, ApiError> {
    let query = parse_query(params).map_err(ApiError::from)?;
    let page = {
        let index = ctx.services.index.read();
        let page = index.search(&query, Utc::now());
        FlightPage {
            flights: page
                .flights
                .iter()
                .map(|(s, fare)| FlightView::new(s, Some(*fare)))
                .collect(),
            next_cursor: page.next.map(|c| c.encode()),
        }
    };
    Ok(page)
}

/// An airline account reaching for another carrier's flight.
fn not_your_flight(number: &FlightNumber) -> ApiError {
    ApiError::Forbidden(format!(
        "only an admin or an airline account of carrier {} may manage flight {}",
        number.carrier(),
        number.as_str()
    ))
}

async fn ask_flight(ctx: &Ctx, id: &str, cmd: FlightCommand) -> Result<FlightReply, ApiError> {
    let id = FlightId::parse(id).ok_or(ApiError::NotFound)?;
    Ok(ctx.services.flights.call(&id, cmd).await??)
}

/// One flight with live seat counts (from its actor).
#[utoipa::path(get, path = "/api/v1/flights/{id}", operation_id = "get_flight", tag = "catalog", params(("id" = String, Path)),
    responses((status = 200, body = FlightView), (status = 404), (status = 503)))]
async fn get(id: String, ctx: Ctx) -> Handled {
    Ok(json(StatusCode::OK, &flight_view(&ctx, &id).await?))
}

/// One flight, from its actor.
pub(super) async fn flight_view(ctx: &Ctx, id: &str) -> Result<FlightView, ApiError> {
    match ask_flight(ctx, id, FlightCommand::Get).await? {
        FlightReply::Summary(s) => FlightView::of(&s),
        _ => Err(ApiError::Internal(
            "flight answered Get with something else".into(),
        )),
    }
}

/// The seat map (from the flight's actor).
#[utoipa::path(get, path = "/api/v1/flights/{id}/seats", operation_id = "get_seats", tag = "catalog", params(("id" = String, Path)),
    responses((status = 200, body = SeatList), (status = 404), (status = 503)))]
async fn seats(id: String, ctx: Ctx) -> Handled {
    Ok(json(StatusCode::OK, &seat_list(&ctx, &id).await?))
}

/// Every seat of a flight and its state, from the flight's actor.
pub(super) async fn seat_list(ctx: &Ctx, id: &str) -> Result<SeatList, ApiError> {
    match ask_flight(ctx, id, FlightCommand::Seats).await? {
        FlightReply::Seats(seats) => Ok(SeatList {
            seats: seats
                .into_iter()
                .map(|s| SeatView {
                    seat: s.seat.to_string(),
                    cabin: s.cabin,
                    status: s.status,
                })
                .collect(),
        }),
        _ => Err(ApiError::Internal(
            "flight answered Seats with something else".into(),
        )),
    }
}

/// Cancel a flight (an admin, or an airline account of its carrier): every order on it is cancelled or refunded, tickets are
/// voided and owners notified. Repeating it finishes a cascade that was interrupted.
#[utoipa::path(post, path = "/api/v1/flights/{id}/cancel", operation_id = "cancel_flight", tag = "catalog",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = FlightView), (status = 403), (status = 404), (status = 503)))]
async fn cancel(id: String, user: User, ctx: Ctx) -> Handled {
    let cascade = cancel_flight(&user, &ctx, &id).await?;
    if cascade.unfinished > 0 {
        return Err(ApiError::Unavailable(format!(
            "the flight is cancelled but {} of {} orders are not yet; retry to finish",
            cascade.unfinished, cascade.orders
        ))
        .into());
    }
    get(id, ctx).await
}

/// What cancelling a flight did to the orders on it.
pub(super) struct Cascade {
    /// Orders on the flight.
    pub(super) orders: usize,
    /// Of those, the ones not reached yet (repeating the cancel finishes them).
    pub(super) unfinished: usize,
}

/// Cancels a flight and every order on it.
pub(super) async fn cancel_flight(user: &User, ctx: &Ctx, id: &str) -> Result<Cascade, ApiError> {
    let FlightReply::Summary(flight) = ask_flight(ctx, id, FlightCommand::Get).await? else {
        return Err(ApiError::Internal(
            "flight answered Get with something else".into(),
        ));
    };
    if !user.manages(&flight.flight.flight_number) {
        return Err(not_your_flight(&flight.flight.flight_number));
    }
    let orders = match ask_flight(ctx, id, FlightCommand::Cancel).await? {
        FlightReply::Cancelled(orders) => orders,
        _ => {
            return Err(ApiError::Internal(
                "flight answered Cancel with something else".into(),
            ));
        }
    };
    let cascade = orders.iter().map(|o| {
        ctx.services
            .orders
            .call(o, crate::actors::order::OrderCommand::FlightCancelled)
    });
    let results = futures::future::join_all(cascade).await;
    let unfinished = results
        .iter()
        .filter(|r| {
            !matches!(
                r,
                Ok(_) | Err(crate::actors::order::OrderError::NotCancellable(_))
            )
        })
        .count();
    Ok(Cascade {
        orders: orders.len(),
        unfinished,
    })
}
