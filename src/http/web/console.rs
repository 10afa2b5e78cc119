//! The operator console: traffic, catalog (airports, aircraft, flights), cluster, outbox.
//! Admins see everything; an airline account sees the catalog, and manages its own flights.

use super::super::aircraft::{AircraftRequest, CabinRequest, aircraft_list, create_aircraft};
use super::super::airports::{AirportRequest, airport_list, create_airport};
use super::super::cluster::{cluster_view, drain_node, remove_node};
use super::super::error::ApiError;
use super::super::flights::{FlightRequest, cancel_flight, create_flight, search_page};
use super::super::outbox::{delivery_list, retry_delivery};
use super::super::{Ctx, Response};
use super::form::Form;
use super::live::traffic;
use super::render::{html, plain_words, redirect, to_value};
use super::session::{Visitor, check_csrf};
use super::traveller::cabin_label;
use super::{finish, page, post, signed_in};
use crate::domain::aircraft::Cabin;
use crate::domain::user::{Role, User};
use chrono::{NaiveDateTime, Utc};
use minijinja::context;
use std::collections::{BTreeMap, HashMap};
use warp::http::StatusCode;
use warp::{Filter, Rejection};

/// Flights on one page of the catalog.
const FLIGHTS_PER_PAGE: &str = "40";

const CABINS: [Cabin; 4] = [
    Cabin::First,
    Cabin::Business,
    Cabin::PremiumEconomy,
    Cabin::Economy,
];

pub(super) fn routes(ctx: Ctx) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let traffic_page = warp::path!("admin")
        .and(page(ctx.clone()))
        .then(|v: Visitor, ctx: Ctx| async move {
            let outcome = async {
                allowed(&v, Role::Admin)?;
                let figures = traffic(&ctx);
                html(
                    &v,
                    StatusCode::OK,
                    "console_traffic.html",
                    context! { title => "Traffic", section => "traffic", traffic => to_value(&figures) },
                )
            }
            .await;
            finish(&v, outcome)
        });
    let catalog = warp::path!("admin" / "catalog")
        .and(page(ctx.clone()))
        .and(super::form::query())
        .then(|v: Visitor, ctx: Ctx, query: Form| async move {
            let outcome = catalog_page(&v, &ctx, None, &query).await;
            finish(&v, outcome)
        });
    let change = warp::path!("admin" / String)
        .and(post(ctx.clone()))
        .and_then(
            |what: String, v: Visitor, ctx: Ctx, form: Form| async move {
                if !matches!(what.as_str(), "airports" | "aircraft" | "flights") {
                    return Err(warp::reject::not_found());
                }
                check_csrf(&v, form.get("csrf"))?;
                Ok::<Response, Rejection>(create(what, v, ctx, form).await)
            },
        );
    let cancel = warp::path!("admin" / "flights" / String / "cancel")
        .and(post(ctx.clone()))
        .and_then(|id: String, v: Visitor, ctx: Ctx, form: Form| async move {
            check_csrf(&v, form.get("csrf"))?;
            let outcome = async {
                let user = allowed(&v, Role::Airline)?;
                match cancel_flight(user, &ctx, &id).await {
                    Ok(done) if done.unfinished == 0 => Ok(redirect(&format!(
                        "/admin/catalog?cancelled={}",
                        done.orders
                    ))),
                    // Some of its orders could not be reached: say so; the button stays (as
                    // "Finish cancelling") and repeating it is safe.
                    Ok(done) => {
                        let e = ApiError::InvalidRequest(format!(
                            "the flight is cancelled, but {} of its {} orders could not be \
                             reached yet; press \"Finish cancelling\" to try them again",
                            done.unfinished, done.orders
                        ));
                        catalog_page(&v, &ctx, Some(e), &Form::default()).await
                    }
                    Err(e) => catalog_page(&v, &ctx, Some(e), &Form::default()).await,
                }
            }
            .await;
            Ok::<Response, Rejection>(finish(&v, outcome))
        });
    let cluster = warp::path!("admin" / "cluster")
        .and(page(ctx.clone()))
        .then(|v: Visitor, ctx: Ctx| async move {
            let outcome = cluster_page(&v, &ctx, None).await;
            finish(&v, outcome)
        });
    let drain = warp::path!("admin" / "cluster" / "drain")
        .and(post(ctx.clone()))
        .and_then(|v: Visitor, ctx: Ctx, form: Form| member_action(v, ctx, form, drain_node));
    let remove = warp::path!("admin" / "cluster" / "remove")
        .and(post(ctx.clone()))
        .and_then(|v: Visitor, ctx: Ctx, form: Form| member_action(v, ctx, form, remove_node));
    let outbox = warp::path!("admin" / "outbox")
        .and(page(ctx.clone()))
        .and(super::form::query())
        .then(|v: Visitor, ctx: Ctx, query: Form| async move {
            let outcome = outbox_page(&v, &ctx, &query, None).await;
            finish(&v, outcome)
        });
    let retry = warp::path!("admin" / "outbox" / String / "retry")
        .and(post(ctx))
        .and_then(|id: String, v: Visitor, ctx: Ctx, form: Form| async move {
            check_csrf(&v, form.get("csrf"))?;
            let outcome = async {
                allowed(&v, Role::Admin)?;
                match retry_delivery(&ctx, &id).await {
                    Ok(_) => Ok(redirect("/admin/outbox?state=failed")),
                    Err(e) => outbox_page(&v, &ctx, &Form::default(), Some(e)).await,
                }
            }
            .await;
            Ok::<Response, Rejection>(finish(&v, outcome))
        });
    traffic_page
        .or(catalog)
        .unify()
        .or(change)
        .unify()
        .or(cancel)
        .unify()
        .or(cluster)
        .unify()
        .or(drain)
        .unify()
        .or(remove)
        .unify()
        .or(outbox)
        .unify()
        .or(retry)
        .unify()
}

/// A cluster form's action (drain, remove) on its `node_id`, then back to the cluster page.
async fn member_action(
    v: Visitor,
    ctx: Ctx,
    form: Form,
    act: impl AsyncFnOnce(&Ctx, &str) -> Result<(), ApiError>,
) -> Result<Response, Rejection> {
    check_csrf(&v, form.get("csrf"))?;
    let outcome = async {
        allowed(&v, Role::Admin)?;
        let node = form.get("node_id").unwrap_or_default();
        match act(&ctx, node).await {
            Ok(()) => Ok(redirect("/admin/cluster")),
            Err(e) => cluster_page(&v, &ctx, Some(e)).await,
        }
    }
    .await;
    Ok(finish(&v, outcome))
}

/// The signed-in user if they have `role`.
fn allowed(v: &Visitor, role: Role) -> Result<&User, ApiError> {
    let user = signed_in(v)?;
    if user.may(role) {
        Ok(user)
    } else {
        Err(ApiError::Forbidden(
            "the console is for operators (admin) and airlines".into(),
        ))
    }
}

async fn catalog_page(
    v: &Visitor,
    ctx: &Ctx,
    error: Option<ApiError>,
    typed: &Form,
) -> Result<Response, ApiError> {
    let user = allowed(v, Role::Airline)?;
    let airports = airport_list(ctx).await?.airports;
    let aircraft = aircraft_list(ctx).await?;
    // A page of flights at a time: the page's HTML stays well under 50 KB.
    let mut params = HashMap::new();
    params.insert("sort".to_owned(), "departure".to_owned());
    params.insert("limit".to_owned(), FLIGHTS_PER_PAGE.to_owned());
    if let Some(cursor) = typed.get("cursor") {
        params.insert("cursor".to_owned(), cursor.to_owned());
    }
    let page = search_page(ctx, &params)?;
    let next = page.next_cursor.map(|cursor| {
        let query = HashMap::from([("cursor".to_owned(), cursor)]);
        format!("/admin/catalog?{}", super::traveller::encode(&query))
    });
    let mut flights = page.flights;
    flights.retain(|f| {
        crate::domain::flight::FlightNumber::parse(&f.flight_number).is_ok_and(|n| user.manages(&n))
    });
    let cabins: Vec<_> = CABINS
        .iter()
        .map(|c| context! { id => c.as_str(), label => cabin_label(*c) })
        .collect();
    let typed_fields = typed.pick(&[
        "code",
        "name",
        "city",
        "country",
        "model",
        "layout",
        "flight_number",
        "aircraft_id",
        "origin",
        "destination",
        "departs_at",
        "arrives_at",
        "currency",
        "fare_first",
        "fare_business",
        "fare_premium_economy",
        "fare_economy",
    ]);
    let notice = match (typed.get("added"), typed.get("cancelled")) {
        (Some("airports"), _) => Some("Airport added.".to_owned()),
        (Some("aircraft"), _) => Some("Aircraft added.".to_owned()),
        (Some("flights"), _) => Some("Flight scheduled; it is on sale now.".to_owned()),
        (_, Some(orders)) if orders.parse::<usize>().is_ok() => Some(format!(
            "Flight cancelled: {orders} order(s) on it cancelled, the paid ones refunded, \
             and their travellers notified."
        )),
        _ => None,
    };
    let status = error.as_ref().map_or(StatusCode::OK, ApiError::status);
    html(
        v,
        status,
        "console_catalog.html",
        context! {
            title => "Catalog",
            section => "catalog",
            airports => to_value(&airports),
            aircraft => to_value(&aircraft),
            flights => to_value(&flights),
            next => next,
            cabins => to_value(&cabins),
            typed => to_value(&typed_fields),
            notice => notice,
            error => error.as_ref().map(plain_words),
        },
    )
}

async fn create(what: String, v: Visitor, ctx: Ctx, form: Form) -> Response {
    let outcome = async {
        let user = allowed(&v, Role::Airline)?.clone();
        let done = match what.as_str() {
            "airports" => {
                let request = AirportRequest {
                    code: form.get("code").unwrap_or_default().to_uppercase(),
                    name: form.get("name").unwrap_or_default().to_owned(),
                    city: form.get("city").unwrap_or_default().to_owned(),
                    country: form.get("country").unwrap_or_default().to_owned(),
                };
                create_airport(&ctx, request).await.map(|_| ())
            }
            "aircraft" => match parse_layout(form.get("layout").unwrap_or_default()) {
                Ok(cabins) => {
                    let request = AircraftRequest {
                        model: form.get("model").unwrap_or_default().to_owned(),
                        cabins,
                    };
                    create_aircraft(&ctx, request).await.map(|_| ())
                }
                Err(e) => Err(e),
            },
            _ => match flight_request(&form) {
                Ok(request) => match create_flight(&user, &ctx, request).await {
                    Ok(view) => {
                        listed(&ctx, &view.id).await;
                        Ok(())
                    }
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            },
        };
        match done {
            Ok(()) => Ok(redirect(&format!("/admin/catalog?added={what}"))),
            Err(e @ (ApiError::Unauthorized(_) | ApiError::Internal(_))) => Err(e),
            Err(e) => catalog_page(&v, &ctx, Some(e), &form).await,
        }
    }
    .await;
    finish(&v, outcome)
}

/// Waits (a moment at most) until this node's search read model lists flight `id`: in a
/// cluster a flight created on another partition's leader reaches it asynchronously, and the
/// catalog page the console redirects to lists flights from it.
async fn listed(ctx: &Ctx, id: &str) {
    let Some(id) = crate::domain::ids::FlightId::parse(id) else {
        return;
    };
    for _ in 0..LISTED_POLLS {
        if ctx.services.index.read().get(&id).is_some() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// At most 2 s of [`listed`]'s 20 ms looks.
const LISTED_POLLS: usize = 100;

/// Cabin lines such as `business 1-4 ACDF`, one per cabin.
fn parse_layout(text: &str) -> Result<Vec<CabinRequest>, ApiError> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, line)| {
            let bad = || {
                ApiError::InvalidRequest(format!(
                    "cabin line {}: write it as `economy 5-30 ABCDEF` (cabin, rows, seat letters)",
                    i + 1
                ))
            };
            let parts: Vec<&str> = line.split_whitespace().collect();
            let [cabin, rows, seats] = parts.as_slice() else {
                return Err(bad());
            };
            let cabin = cabin.parse::<Cabin>().map_err(|_| bad())?;
            let (first, last) = rows.split_once('-').ok_or_else(bad)?;
            let first = first.parse::<u16>().map_err(|_| bad())?;
            let last = last.parse::<u16>().map_err(|_| bad())?;
            Ok(CabinRequest {
                cabin,
                rows: [first, last],
                seats: seats.to_uppercase(),
            })
        })
        .collect()
}

/// An amount typed as `129`, `129.5` or `129.50` → cents.
fn cents(text: &str) -> Option<u64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 2 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole = whole.parse::<u64>().ok()?;
    let fraction = format!("{fraction:0<2}").parse::<u64>().ok()?;
    whole.checked_mul(100)?.checked_add(fraction)
}

/// A time typed in a `datetime-local` field, read as UTC.
fn utc_time(field: &str, text: &str) -> Result<chrono::DateTime<Utc>, ApiError> {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S"))
        .map(|t| t.and_utc())
        .map_err(|_| ApiError::InvalidRequest(format!("{field}: give a date and time (UTC)")))
}

fn flight_request(form: &Form) -> Result<FlightRequest, ApiError> {
    let mut fares = BTreeMap::new();
    for cabin in CABINS {
        let field = format!("fare_{}", cabin.as_str());
        if let Some(text) = form.get(&field) {
            let amount = cents(text).ok_or_else(|| {
                ApiError::InvalidRequest(format!(
                    "{} fare: give an amount such as 129.00",
                    cabin_label(cabin)
                ))
            })?;
            fares.insert(cabin, amount);
        }
    }
    Ok(FlightRequest {
        flight_number: form.get("flight_number").unwrap_or_default().to_uppercase(),
        aircraft_id: form.get("aircraft_id").unwrap_or_default().to_owned(),
        origin: form.get("origin").unwrap_or_default().to_uppercase(),
        destination: form.get("destination").unwrap_or_default().to_uppercase(),
        departs_at: utc_time("departs", form.get("departs_at").unwrap_or_default())?,
        arrives_at: utc_time("arrives", form.get("arrives_at").unwrap_or_default())?,
        fares,
        currency: form.get("currency").unwrap_or("USD").to_uppercase(),
    })
}

async fn cluster_page(
    v: &Visitor,
    ctx: &Ctx,
    error: Option<ApiError>,
) -> Result<Response, ApiError> {
    allowed(v, Role::Admin)?;
    let view = cluster_view(ctx).await;
    let status = error.as_ref().map_or(StatusCode::OK, ApiError::status);
    html(
        v,
        status,
        "console_cluster.html",
        context! {
            title => "Cluster",
            section => "cluster",
            cluster => to_value(&view),
            clustered => ctx.settings.cluster.node_id.is_some(),
            error => error.as_ref().map(plain_words),
        },
    )
}

async fn outbox_page(
    v: &Visitor,
    ctx: &Ctx,
    query: &Form,
    error: Option<ApiError>,
) -> Result<Response, ApiError> {
    allowed(v, Role::Admin)?;
    let params = query.pick(&["state"]);
    let state = params.get("state").cloned();
    let mut limited = params;
    limited.insert("limit".into(), "200".into());
    // A member that cannot be reached keeps its outbox to itself until it is back: say so,
    // and keep the page (its filters and retry forms) usable.
    let (deliveries, error) = match delivery_list(ctx, &limited).await {
        Ok(list) => (list.deliveries, error),
        Err(e @ ApiError::Unavailable(_)) => (Vec::new(), error.or(Some(e))),
        Err(e) => return Err(e),
    };
    let status = error.as_ref().map_or(StatusCode::OK, ApiError::status);
    html(
        v,
        status,
        "console_outbox.html",
        context! {
            title => "Notification outbox",
            section => "outbox",
            state => state,
            deliveries => to_value(&deliveries),
            error => error.as_ref().map(|e| match e {
                ApiError::Unavailable(_) => "A member of the cluster cannot be reached, so the \
                    outbox cannot be listed in full; it is listed again once every member is up."
                    .to_owned(),
                other => plain_words(other),
            }),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_and_layouts_parse_or_say_why() {
        assert_eq!(cents("129"), Some(12900));
        assert_eq!(cents("129.5"), Some(12950));
        assert_eq!(cents("0.05"), Some(5));
        assert_eq!(cents("1.234"), None);
        assert_eq!(cents("-1"), None);
        assert_eq!(cents("abc"), None);
        let cabins = parse_layout("business 1-4 acdf\n\neconomy 5-30 ABCDEF").unwrap_or_default();
        assert_eq!(cabins.len(), 2);
        assert_eq!(cabins[0].rows, [1, 4]);
        assert_eq!(cabins[0].seats, "ACDF");
        assert!(parse_layout("economy 5 ABC").is_err());
        assert!(parse_layout("steerage 1-2 AB").is_err());
        assert!(utc_time("departs", "2027-03-01T06:00").is_ok());
        assert!(utc_time("departs", "tomorrow").is_err());
    }
}
