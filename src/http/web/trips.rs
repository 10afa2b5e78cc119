//! "My trips", one trip (countdown, pay, e-tickets, cancel).

use super::super::error::ApiError;
use super::super::flights::{FlightView, flight_view};
use super::super::orders::{
    OrderView, PayRequest, cancel_order, notification_list, order_list, order_view, pay_order,
};
use super::super::{Ctx, Response};
use super::form::Form;
use super::render::{html, plain_words, redirect, to_value};
use super::session::{Visitor, check_csrf, new_token};
use super::{finish, page, post, signed_in};
use minijinja::context;
use std::collections::BTreeMap;
use warp::http::StatusCode;
use warp::{Filter, Rejection};

/// The simulator's test cards, as the pay form offers them.
const CARDS: [(&str, &str); 3] = [
    ("tok_visa", "Test Visa ending 4242 (approved)"),
    ("tok_declined", "Test card ending 0002 (declined)"),
    (
        "tok_timeout",
        "Test card ending 0119 (the bank does not answer)",
    ),
];

pub(super) fn routes(ctx: Ctx) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let list = warp::path!("trips").and(page(ctx.clone())).then(list);
    let trip = warp::path!("trips" / String)
        .and(page(ctx.clone()))
        .and(super::form::query())
        .then(|id: String, v: Visitor, ctx: Ctx, query: Form| async move {
            let notice = query.get("done").and_then(|done| match done {
                "paid" => Some("Payment received. Your e-tickets are below."),
                "cancelled" => Some("Your trip is cancelled."),
                _ => None,
            });
            let outcome = trip_page(&v, &ctx, &id, notice, None).await;
            finish(&v, outcome)
        });
    let pay = warp::path!("trips" / String / "pay")
        .and(post(ctx.clone()))
        .and_then(|id: String, v: Visitor, ctx: Ctx, form: Form| async move {
            check_csrf(&v, form.get("csrf"))?;
            Ok::<Response, Rejection>(pay(id, v, ctx, form).await)
        });
    let cancel = warp::path!("trips" / String / "cancel")
        .and(post(ctx))
        .and_then(|id: String, v: Visitor, ctx: Ctx, form: Form| async move {
            check_csrf(&v, form.get("csrf"))?;
            Ok::<Response, Rejection>(cancel(id, v, ctx).await)
        });
    list.or(trip).unify().or(pay).unify().or(cancel).unify()
}

/// The flights of these orders, by id (a flight that cannot be reached now is left out).
async fn flights_of(ctx: &Ctx, orders: &[&OrderView]) -> BTreeMap<String, FlightView> {
    let ids: std::collections::BTreeSet<&str> = orders
        .iter()
        .flat_map(|o| o.segments.iter().map(|s| s.flight_id.as_str()))
        .collect();
    let found = futures::future::join_all(ids.iter().map(|id| flight_view(ctx, id))).await;
    ids.into_iter()
        .zip(found)
        .filter_map(|(id, flight)| flight.ok().map(|f| (id.to_owned(), f)))
        .collect()
}

async fn list(v: Visitor, ctx: Ctx) -> Response {
    let outcome = async {
        let user = signed_in(&v)?;
        // An admin's trips are their own here (everyone's orders are the API's admin view).
        let orders = order_list(user, false, &ctx).await?.orders;
        let notifications = notification_list(user, &ctx).await?.notifications;
        let flights = flights_of(&ctx, &orders.iter().collect::<Vec<_>>()).await;
        html(
            &v,
            StatusCode::OK,
            "trips.html",
            context! {
                title => "My trips",
                orders => to_value(&orders),
                flights => to_value(&flights),
                notifications => to_value(&notifications),
            },
        )
    }
    .await;
    finish(&v, outcome)
}

async fn trip_page(
    v: &Visitor,
    ctx: &Ctx,
    id: &str,
    notice: Option<&str>,
    error: Option<ApiError>,
) -> Result<Response, ApiError> {
    let user = signed_in(v)?;
    let order = order_view(user, ctx, id).await?;
    let flights = flights_of(ctx, &[&order]).await;
    let status = error.as_ref().map_or(StatusCode::OK, ApiError::status);
    html(
        v,
        status,
        "trip.html",
        context! {
            title => format!("Trip {}", order.id),
            order => to_value(&order),
            flights => to_value(&flights),
            cards => CARDS.iter().map(|(token, label)| context! { token => *token, label => *label }).collect::<Vec<_>>(),
            key => new_token(),
            notice => notice,
            error => error.as_ref().map(plain_words),
        },
    )
}

async fn pay(id: String, v: Visitor, ctx: Ctx, form: Form) -> Response {
    let outcome = async {
        let user = signed_in(&v)?;
        let card = form.get("card").unwrap_or_default().to_owned();
        let key = form
            .get("key")
            .map(|k| format!("web-pay-{k}"))
            .filter(|k| k.len() <= 255);
        let request = PayRequest {
            payment_token: card,
        };
        match pay_order(user, &ctx, &id, key, request).await {
            Ok(order) => Ok(redirect(&format!("/trips/{}?done=paid", order.id))),
            Err(e @ (ApiError::NotFound | ApiError::Unauthorized(_))) => Err(e),
            // Declined, timed out, expired: the trip page again, saying so.
            Err(e) => trip_page(&v, &ctx, &id, None, Some(e)).await,
        }
    }
    .await;
    finish(&v, outcome)
}

async fn cancel(id: String, v: Visitor, ctx: Ctx) -> Response {
    let outcome = async {
        let user = signed_in(&v)?;
        match cancel_order(user, &ctx, &id).await {
            Ok(order) => Ok(redirect(&format!("/trips/{}?done=cancelled", order.id))),
            Err(e @ (ApiError::NotFound | ApiError::Unauthorized(_))) => Err(e),
            Err(e) => trip_page(&v, &ctx, &id, None, Some(e)).await,
        }
    }
    .await;
    finish(&v, outcome)
}
