//! `/api/v1/orders`, `/api/v1/tickets`, `/api/v1/notifications`: a customer sees and acts on
//! only their own (404 for anyone else's); admins see all.

use super::auth::caller;
use super::error::ApiError;
use super::openapi::{SeatNameText, Text};
use super::{Ctx, Handled, Response, body, json, with};
use crate::actors::notification::NotificationKind;
use crate::actors::order::OrderCommand;
use crate::actors::order::desk::{PayOrder, PlaceOrder};
use crate::domain::ValidationError;
use crate::domain::aircraft::{Cabin, SeatName};
use crate::domain::ids::{FlightId, OrderId, TicketId};
use crate::domain::order::{Order, TicketRecord, TicketStatus, Viewer, validate_request};
use crate::domain::seat_map::SeatRequest;
use crate::domain::user::{Role, User};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warp::http::StatusCode;
use warp::{Filter, Rejection};

/// One flight of a new order: either `seats`, or `cabin` and `count`.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SegmentRequest {
    #[schema(pattern = r"^flt_[A-Za-z0-9_]{0,60}$")]
    pub(super) flight_id: String,
    /// The seats, one per passenger, e.g. `["12A", "12B"]`; or give `cabin` and `count`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<SeatNameText>>, min_items = 1, max_items = 9)]
    pub(super) seats: Option<Vec<String>>,
    /// With `count`: any free seats of this cabin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) cabin: Option<Cabin>,
    /// With `cabin`: one per passenger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 9)]
    pub(super) count: Option<u16>,
}

/// A passenger of a new order.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PassengerRequest {
    #[schema(value_type = Text)]
    pub(super) name: String,
}

/// Body of `POST /api/v1/orders`.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"segments": [
    {"flight_id": "flt_0c9f3e1a7b5d4e2f8a6b1c3d5e7f9a0b", "seats": ["12A", "12B"]},
    {"flight_id": "flt_7d2e4f6a8b0c1d3e5f7a9b1c3d5e7f90", "cabin": "economy", "count": 2}],
    "passengers": [{"name": "Ada Lovelace"}, {"name": "Charles Babbage"}]}))]
pub(super) struct OrderRequest {
    /// 1 to 6 different flights, each asking one seat per passenger.
    #[schema(min_items = 1, max_items = 6)]
    pub(super) segments: Vec<SegmentRequest>,
    #[schema(min_items = 1, max_items = 9)]
    pub(super) passengers: Vec<PassengerRequest>,
}

/// Body of `POST /api/v1/orders/{id}/pay`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"payment_token": "tok_visa"}))]
pub(super) struct PayRequest {
    /// `tok_visa`, `tok_declined` or `tok_timeout` with the built-in simulator.
    #[schema(min_length = 1, max_length = 128)]
    pub(super) payment_token: String,
}

/// One flight of an order.
#[derive(Serialize, ToSchema)]
pub(super) struct SegmentView {
    pub(super) flight_id: String,
    pub(super) seats: Vec<String>,
    pub(super) price_cents: u64,
}

/// A passenger.
#[derive(Serialize, ToSchema)]
pub(super) struct PassengerView {
    name: String,
}

/// A ticket.
#[derive(Serialize, ToSchema)]
pub(super) struct TicketView {
    pub(super) id: String,
    pub(super) order_id: String,
    pub(super) flight_id: String,
    pub(super) seat: String,
    pub(super) passenger_name: String,
    /// `issued` or `void`.
    pub(super) status: &'static str,
    pub(super) issued_at: DateTime<Utc>,
}

impl From<&TicketRecord> for TicketView {
    fn from(t: &TicketRecord) -> Self {
        Self {
            id: t.id.to_string(),
            order_id: t.order_id.to_string(),
            flight_id: t.flight_id.to_string(),
            seat: t.seat.to_string(),
            passenger_name: t.passenger_name.clone(),
            status: match t.status {
                TicketStatus::Issued => "issued",
                TicketStatus::Void => "void",
            },
            issued_at: t.issued_at,
        }
    }
}

/// An order.
#[derive(Serialize, ToSchema)]
pub(super) struct OrderView {
    pub(super) id: String,
    /// `held`, `confirmed`, `expired`, `cancelled` or `refunded`.
    pub(super) status: &'static str,
    pub(super) created_at: DateTime<Utc>,
    pub(super) expires_at: DateTime<Utc>,
    pub(super) total_cents: u64,
    pub(super) currency: Option<String>,
    pub(super) segments: Vec<SegmentView>,
    pub(super) passengers: Vec<PassengerView>,
    pub(super) tickets: Vec<TicketView>,
}

/// `{"orders": [...]}`
#[derive(Serialize, ToSchema)]
pub(super) struct OrderList {
    pub(super) orders: Vec<OrderView>,
}

/// `{"tickets": [...]}`
#[derive(Serialize, ToSchema)]
pub(super) struct TicketList {
    tickets: Vec<TicketView>,
}

/// One notification.
#[derive(Serialize, ToSchema)]
pub(super) struct NotificationView {
    pub(super) id: String,
    pub(super) kind: NotificationKind,
    pub(super) order_id: String,
    pub(super) created_at: DateTime<Utc>,
}

/// `{"notifications": [...]}`
#[derive(Serialize, ToSchema)]
pub(super) struct NotificationList {
    pub(super) notifications: Vec<NotificationView>,
}

async fn view(ctx: &Ctx, order: &Order) -> Result<OrderView, ApiError> {
    let mut tickets = Vec::with_capacity(order.tickets.len());
    for id in &order.tickets {
        let ticket = ctx
            .services
            .orders
            .ticket(id)
            .await
            .map_err(ApiError::from)?;
        tickets.push(ticket.map(|t| TicketView::from(&t)));
    }
    Ok(OrderView {
        id: order.id.to_string(),
        status: order.status.label(),
        created_at: order.created_at,
        expires_at: order.expires_at,
        total_cents: order.total_cents,
        currency: order.currency.as_ref().map(|c| c.to_string()),
        segments: order
            .segments
            .iter()
            .map(|s| SegmentView {
                flight_id: s.flight_id.to_string(),
                seats: s.seats.iter().map(ToString::to_string).collect(),
                price_cents: s.price_cents,
            })
            .collect(),
        passengers: order
            .passengers
            .iter()
            .map(|p| PassengerView {
                name: p.name.clone(),
            })
            .collect(),
        tickets: tickets.into_iter().flatten().collect(),
    })
}

/// An `Idempotency-Key` header: 1 to 255 visible ASCII characters.
fn idempotency_key() -> impl Filter<Extract = (Option<String>,), Error = Rejection> + Clone {
    warp::header::optional::<String>("idempotency-key").and_then(|key: Option<String>| async move {
        match key {
            Some(k)
                if k.is_empty() || k.len() > 255 || !k.bytes().all(|b| b.is_ascii_graphic()) =>
            {
                Err(Rejection::from(ApiError::InvalidRequest(
                    "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
                )))
            }
            other => Ok(other),
        }
    })
}

pub(super) fn routes(ctx: Ctx) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let create = warp::path!("api" / "v1" / "orders")
        .and(warp::post())
        .and(caller(ctx.clone()))
        .and(with(ctx.clone()))
        .and(idempotency_key())
        .and(body::json())
        .and_then(create);
    let list = warp::path!("api" / "v1" / "orders")
        .and(warp::get())
        .and(caller(ctx.clone()))
        .and(with(ctx.clone()))
        .and_then(list);
    let get = warp::path!("api" / "v1" / "orders" / String)
        .and(warp::get())
        .and(caller(ctx.clone()))
        .and(with(ctx.clone()))
        .and_then(get);
    let pay = warp::path!("api" / "v1" / "orders" / String / "pay")
        .and(warp::post())
        .and(caller(ctx.clone()))
        .and(with(ctx.clone()))
        .and(idempotency_key())
        .and(body::json())
        .and_then(pay);
    let cancel = warp::path!("api" / "v1" / "orders" / String / "cancel")
        .and(warp::post())
        .and(caller(ctx.clone()))
        .and(with(ctx.clone()))
        .and_then(cancel);
    let tickets = warp::path!("api" / "v1" / "tickets")
        .and(warp::get())
        .and(caller(ctx.clone()))
        .and(with(ctx.clone()))
        .and_then(tickets);
    let ticket = warp::path!("api" / "v1" / "tickets" / String)
        .and(warp::get())
        .and(caller(ctx.clone()))
        .and(with(ctx.clone()))
        .and_then(ticket);
    let notifications = warp::path!("api" / "v1" / "notifications")
        .and(warp::get())
        .and(caller(ctx.clone()))
        .and(with(ctx))
        .and_then(notifications);
    create
        .or(list)
        .unify()
        .or(get)
        .unify()
        .or(pay)
        .unify()
        .or(cancel)
        .unify()
        .or(tickets)
        .unify()
        .or(ticket)
        .unify()
        .or(notifications)
        .unify()
}

fn parse_segments(req: &OrderRequest) -> Result<Vec<(FlightId, SeatRequest)>, ValidationError> {
    req.segments
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let flight = FlightId::parse(&s.flight_id).ok_or_else(|| {
                ValidationError::new(format!("segments[{i}].flight_id"), "no such flight")
            })?;
            let request = match (&s.seats, s.cabin, s.count) {
                (Some(seats), None, None) => SeatRequest::Seats(
                    seats
                        .iter()
                        .map(|seat| {
                            SeatName::parse(seat).map_err(|e| {
                                ValidationError::new(format!("segments[{i}].seats"), e.reason)
                            })
                        })
                        .collect::<Result<_, _>>()?,
                ),
                (None, Some(cabin), Some(count)) => SeatRequest::Cabin { cabin, count },
                _ => {
                    return Err(ValidationError::new(
                        format!("segments[{i}]"),
                        "give either seats, or cabin and count",
                    ));
                }
            };
            Ok((flight, request))
        })
        .collect()
}

/// An order id from a path: one of ours in shape, or 404.
fn order_id(id: &str) -> Result<OrderId, ApiError> {
    OrderId::parse(id).ok_or(ApiError::NotFound)
}

/// The caller, as an order sees them: someone else's order is not found (404), so ids cannot
/// be probed (see [`Order::visible_to`]).
fn viewer(user: &User) -> Viewer {
    Viewer {
        user: user.id.clone(),
        admin: user.may(Role::Admin),
    }
}

/// Place an order: hold one seat per passenger on every flight, all or none.
#[utoipa::path(post, path = "/api/v1/orders", operation_id = "create_order", tag = "orders", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, pattern = r"^[\x21-\x7e]{1,255}$", description = "Makes a retry safe: the same key and request give the first answer again")), request_body = OrderRequest,
    responses((status = 201, body = OrderView), (status = 200, description = "replayed by Idempotency-Key", body = OrderView),
        (status = 400), (status = 409, description = "seats_unavailable, hold_limit_exceeded"), (status = 422), (status = 503)))]
async fn create(user: User, ctx: Ctx, key: Option<String>, req: OrderRequest) -> Handled {
    let (replayed, order) = place(&user, &ctx, key, &req).await?;
    let status = if replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(json(status, &order))
}

/// Places an order for `user`: whether it was replayed by its key, and the order.
pub(super) async fn place(
    user: &User,
    ctx: &Ctx,
    key: Option<String>,
    req: &OrderRequest,
) -> Result<(bool, OrderView), ApiError> {
    let segments = parse_segments(req).map_err(ApiError::from)?;
    let names: Vec<String> = req.passengers.iter().map(|p| p.name.clone()).collect();
    let passengers = validate_request(&segments, &names).map_err(ApiError::from)?;
    let canonical = serde_json::to_string(req).map_err(|e| ApiError::Internal(e.to_string()))?;
    let fingerprint = crate::actors::order::fingerprint(&canonical);
    let placed = ctx
        .services
        .orders
        .place(PlaceOrder {
            user: user.id.clone(),
            segments,
            passengers,
            fingerprint,
            key,
        })
        .await
        .map_err(ApiError::from)?;
    Ok((placed.replayed, view(ctx, &placed.order).await?))
}

/// The caller's orders, newest first (an admin sees everyone's).
#[utoipa::path(get, path = "/api/v1/orders", operation_id = "list_orders", tag = "orders", security(("bearer" = [])),
    responses((status = 200, body = OrderList)))]
async fn list(user: User, ctx: Ctx) -> Handled {
    let everyone = user.may(Role::Admin);
    Ok(json(
        StatusCode::OK,
        &order_list(&user, everyone, &ctx).await?,
    ))
}

/// The user's orders, newest first, or with `everyone` (an admin's view) everyone's.
pub(super) async fn order_list(
    user: &User,
    everyone: bool,
    ctx: &Ctx,
) -> Result<OrderList, ApiError> {
    let orders = if everyone {
        ctx.services.orders.list_all(1000).await
    } else {
        ctx.services.orders.list(&user.id).await
    }
    .map_err(ApiError::from)?;
    let mut views = Vec::with_capacity(orders.len());
    for order in &orders {
        views.push(view(ctx, order).await?);
    }
    Ok(OrderList { orders: views })
}

/// One order.
#[utoipa::path(get, path = "/api/v1/orders/{id}", operation_id = "get_order", tag = "orders", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 200, body = OrderView), (status = 404)))]
async fn get(id: String, user: User, ctx: Ctx) -> Handled {
    Ok(json(StatusCode::OK, &order_view(&user, &ctx, &id).await?))
}

/// One of the user's orders, from its actor.
pub(super) async fn order_view(user: &User, ctx: &Ctx, id: &str) -> Result<OrderView, ApiError> {
    let order = ctx
        .services
        .orders
        .call(&order_id(id)?, OrderCommand::Get)
        .await
        .map_err(ApiError::from)?;
    if !order.visible_to(&viewer(user)) {
        return Err(ApiError::NotFound);
    }
    view(ctx, &order).await
}

/// Pay a held order; paying a confirmed order again returns it unchanged and charges nothing.
#[utoipa::path(post, path = "/api/v1/orders/{id}/pay", operation_id = "pay_order", tag = "orders", security(("bearer" = [])),
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header, pattern = r"^[\x21-\x7e]{1,255}$", description = "Makes a retry safe: the same key and request give the first answer again")), request_body = PayRequest,
    responses((status = 200, body = OrderView), (status = 402, description = "payment_declined"), (status = 404),
        (status = 409, description = "order_not_payable"), (status = 422), (status = 503, description = "payment_timeout")))]
async fn pay(id: String, user: User, ctx: Ctx, key: Option<String>, req: PayRequest) -> Handled {
    Ok(json(
        StatusCode::OK,
        &pay_order(&user, &ctx, &id, key, req).await?,
    ))
}

/// Pays one of the user's held orders.
pub(super) async fn pay_order(
    user: &User,
    ctx: &Ctx,
    id: &str,
    key: Option<String>,
    req: PayRequest,
) -> Result<OrderView, ApiError> {
    let order = order_id(id)?;
    if req.payment_token.is_empty() || req.payment_token.chars().count() > 128 {
        return Err(ApiError::from(ValidationError::new(
            "payment_token",
            "must be 1 to 128 characters",
        )));
    }
    // The order's actor checks that the caller may pay it before anything happens.
    let order = ctx
        .services
        .orders
        .pay(PayOrder {
            by: viewer(user),
            order,
            token: req.payment_token,
            key,
        })
        .await
        .map_err(ApiError::from)?;
    view(ctx, &order).await
}

/// Cancel: a held order is released; a confirmed one (before departure) refunded.
#[utoipa::path(post, path = "/api/v1/orders/{id}/cancel", operation_id = "cancel_order", tag = "orders", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 200, body = OrderView), (status = 404), (status = 409, description = "order_not_cancellable")))]
async fn cancel(id: String, user: User, ctx: Ctx) -> Handled {
    Ok(json(StatusCode::OK, &cancel_order(&user, &ctx, &id).await?))
}

/// Cancels one of the user's orders (released if held, refunded if confirmed).
pub(super) async fn cancel_order(user: &User, ctx: &Ctx, id: &str) -> Result<OrderView, ApiError> {
    let order = ctx
        .services
        .orders
        .call(&order_id(id)?, OrderCommand::Cancel { by: viewer(user) })
        .await
        .map_err(ApiError::from)?;
    view(ctx, &order).await
}

/// The caller's tickets.
#[utoipa::path(get, path = "/api/v1/tickets", operation_id = "list_tickets", tag = "orders", security(("bearer" = [])),
    responses((status = 200, body = TicketList)))]
async fn tickets(user: User, ctx: Ctx) -> Handled {
    let tickets = ctx
        .services
        .orders
        .tickets_of(&user.id)
        .await
        .map_err(ApiError::from)?;
    Ok(json(
        StatusCode::OK,
        &TicketList {
            tickets: tickets.iter().map(TicketView::from).collect(),
        },
    ))
}

/// One ticket (from its actor).
#[utoipa::path(get, path = "/api/v1/tickets/{id}", operation_id = "get_ticket", tag = "orders", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 200, body = TicketView), (status = 404)))]
async fn ticket(id: String, user: User, ctx: Ctx) -> Handled {
    let id = TicketId::parse(&id).ok_or(ApiError::NotFound)?;
    let stored = ctx
        .services
        .orders
        .ticket(&id)
        .await
        .map_err(ApiError::from)?
        .ok_or(ApiError::NotFound)?;
    if stored.user != user.id && !user.may(Role::Admin) {
        return Err(ApiError::NotFound.into());
    }
    let live = ctx
        .services
        .tickets
        .call(&id, crate::actors::ticket::TicketCommand::Get)
        .await
        .map_err(ApiError::from)?
        .map_err(ApiError::Unavailable)?;
    Ok(json(StatusCode::OK, &TicketView::from(&live)))
}

/// The caller's notifications, newest first.
#[utoipa::path(get, path = "/api/v1/notifications", operation_id = "list_notifications", tag = "orders", security(("bearer" = [])),
    responses((status = 200, body = NotificationList)))]
async fn notifications(user: User, ctx: Ctx) -> Handled {
    Ok(json(StatusCode::OK, &notification_list(&user, &ctx).await?))
}

/// The user's notifications, newest first.
pub(super) async fn notification_list(
    user: &User,
    ctx: &Ctx,
) -> Result<NotificationList, ApiError> {
    let all = ctx
        .services
        .orders
        .notifications_of(&user.id)
        .await
        .map_err(ApiError::from)?;
    let notifications = all
        .into_iter()
        .map(|n| NotificationView {
            id: n.id,
            kind: n.kind,
            order_id: n.order_id.to_string(),
            created_at: n.created_at,
        })
        .collect();
    Ok(NotificationList { notifications })
}
