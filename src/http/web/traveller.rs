//! Search, the flight page with its seat map, and holding seats.

use super::super::error::ApiError;
use super::super::flights::{FlightView, SeatView, flight_view, search_page, seat_list};
use super::super::orders::{OrderRequest, PassengerRequest, SegmentRequest, place};
use super::super::{Ctx, Response, airports};
use super::form::Form;
use super::render::{html, plain_words, redirect, to_value};
use super::session::{Visitor, check_csrf, new_token};
use super::{finish, page, post};
use crate::domain::aircraft::Cabin;
use crate::domain::order::MAX_PASSENGERS;
use minijinja::context;
use serde::Serialize;
use std::collections::BTreeMap;
use warp::http::StatusCode;
use warp::{Filter, Rejection};

pub(super) fn routes(ctx: Ctx) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let search = warp::path::end()
        .and(page(ctx.clone()))
        .and(super::form::query())
        .then(search);
    let flight = warp::path!("flights" / String)
        .and(page(ctx.clone()))
        .and(super::form::query())
        .then(flight);
    let hold = warp::path!("flights" / String / "hold")
        .and(post(ctx))
        .and_then(|id: String, v: Visitor, ctx: Ctx, form: Form| async move {
            check_csrf(&v, form.get("csrf"))?;
            Ok::<Response, Rejection>(hold(id, v, ctx, form).await)
        });
    search.or(flight).unify().or(hold).unify()
}

/// The name of a cabin as people say it.
pub(super) fn cabin_label(cabin: Cabin) -> &'static str {
    match cabin {
        Cabin::First => "First",
        Cabin::Business => "Business",
        Cabin::PremiumEconomy => "Premium economy",
        Cabin::Economy => "Economy",
    }
}

/// One search result.
#[derive(Serialize)]
struct Found<'a> {
    flight: &'a FlightView,
    seats_left: u32,
}

/// The passenger count a page was asked for (1 when absent or out of range).
fn passengers(query: &Form) -> usize {
    query
        .get("passengers")
        .and_then(|p| p.parse::<usize>().ok())
        .filter(|n| (1..=MAX_PASSENGERS).contains(n))
        .unwrap_or(1)
}

async fn search(v: Visitor, ctx: Ctx, query: Form) -> Response {
    let outcome = async {
        let mut params = query.pick(&[
            "origin",
            "destination",
            "date",
            "passengers",
            "cabin",
            "sort",
            "cursor",
        ]);
        for code in ["origin", "destination"] {
            if let Some(value) = params.get_mut(code) {
                *value = value.to_uppercase();
            }
        }
        let airports = airports::airport_list(&ctx)
            .await
            .map(|list| list.airports)
            .unwrap_or_default();
        let cabin = params.get("cabin").and_then(|c| c.parse::<Cabin>().ok());
        let (results, next, error) = match search_page(&ctx, &params) {
            Ok(page) => {
                let next = page.next_cursor.as_ref().map(|cursor| {
                    let mut next = params.clone();
                    next.insert("cursor".into(), cursor.clone());
                    format!("/?{}", encode(&next))
                });
                (page.flights, next, None)
            }
            Err(e) => (Vec::new(), None, Some(plain_words(&e))),
        };
        let results: Vec<Found<'_>> = results
            .iter()
            .map(|flight| Found {
                flight,
                seats_left: flight
                    .availability
                    .iter()
                    .filter(|(c, _)| cabin.is_none_or(|wanted| **c == wanted))
                    .map(|(_, a)| a.available)
                    .sum(),
            })
            .collect();
        let status = if error.is_some() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        };
        html(
            &v,
            status,
            "search.html",
            context! {
                title => "Find a flight",
                airports => to_value(&airports),
                q => to_value(&params),
                passengers => passengers(&query),
                results => to_value(&results),
                next => next,
                error => error,
            },
        )
    }
    .await;
    finish(&v, outcome)
}

/// Query-string text of `params`.
pub(super) fn encode(params: &std::collections::HashMap<String, String>) -> String {
    let mut sorted: Vec<_> = params.iter().collect();
    sorted.sort();
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(sorted)
        .finish()
}

/// A seat on the map.
#[derive(Serialize)]
struct Seat {
    name: String,
    status: String,
    picked: bool,
    /// An aisle comes before this seat.
    aisle: bool,
}

/// A row of seats.
#[derive(Serialize)]
struct Row {
    number: u16,
    seats: Vec<Seat>,
}

/// A cabin of the map, front to back.
#[derive(Serialize)]
struct CabinMap {
    cabin: Cabin,
    label: &'static str,
    fare_cents: u64,
    available: u32,
    rows: Vec<Row>,
}

/// The seat map: cabins front to back, rows, seats in letter order with the aisle in the
/// middle of each row.
fn seat_map(flight: &FlightView, seats: &[SeatView], picked: &[String]) -> Vec<CabinMap> {
    let mut rows: BTreeMap<u16, (Cabin, Vec<&SeatView>)> = BTreeMap::new();
    for seat in seats {
        let digits: String = seat.seat.chars().take_while(char::is_ascii_digit).collect();
        let Ok(number) = digits.parse::<u16>() else {
            continue;
        };
        rows.entry(number)
            .or_insert_with(|| (seat.cabin, Vec::new()))
            .1
            .push(seat);
    }
    let mut cabins: Vec<CabinMap> = Vec::new();
    for (number, (cabin, mut row)) in rows {
        row.sort_by(|a, b| a.seat.cmp(&b.seat));
        let middle = row.len().div_ceil(2);
        let row = Row {
            number,
            seats: row
                .iter()
                .enumerate()
                .map(|(i, s)| Seat {
                    name: s.seat.clone(),
                    status: s.status.clone(),
                    picked: picked.contains(&s.seat),
                    aisle: i == middle && i > 0,
                })
                .collect(),
        };
        match cabins.last_mut() {
            Some(last) if last.cabin == cabin => last.rows.push(row),
            _ => cabins.push(CabinMap {
                cabin,
                label: cabin_label(cabin),
                fare_cents: flight.fares.get(&cabin).copied().unwrap_or_default(),
                available: flight.availability.get(&cabin).map_or(0, |a| a.available),
                rows: vec![row],
            }),
        }
    }
    cabins
}

/// What the flight page shows besides the flight: the seats and names already chosen, and an
/// error from the last attempt.
struct Choice {
    passengers: usize,
    seats: Vec<String>,
    names: Vec<String>,
    error: Option<ApiError>,
}

async fn flight_page(
    v: &Visitor,
    ctx: &Ctx,
    id: &str,
    choice: Choice,
) -> Result<Response, ApiError> {
    let flight = flight_view(ctx, id).await?;
    let seats = seat_list(ctx, id).await?;
    let cabins = seat_map(&flight, &seats.seats, &choice.seats);
    let status = choice
        .error
        .as_ref()
        .map_or(StatusCode::OK, ApiError::status);
    let mut names = choice.names;
    names.resize(choice.passengers.max(names.len()), String::new());
    html(
        v,
        status,
        "flight.html",
        context! {
            title => format!("{} {} → {}", flight.flight_number, flight.origin, flight.destination),
            flight => to_value(&flight),
            cabins => to_value(&cabins),
            names => names,
            passengers => choice.passengers,
            key => new_token(),
            error => choice.error.as_ref().map(plain_words),
        },
    )
}

async fn flight(id: String, v: Visitor, ctx: Ctx, query: Form) -> Response {
    let choice = Choice {
        passengers: passengers(&query),
        seats: query
            .get("seats")
            .map(|s| {
                s.split(',')
                    .take(MAX_PASSENGERS)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        names: Vec::new(),
        error: None,
    };
    let outcome = flight_page(&v, &ctx, &id, choice).await;
    finish(&v, outcome)
}

async fn hold(id: String, v: Visitor, ctx: Ctx, form: Form) -> Response {
    let names: Vec<String> = form
        .all("passenger")
        .into_iter()
        .map(str::to_owned)
        .collect();
    let seats: Vec<String> = form.all("seat").into_iter().map(str::to_owned).collect();
    let auto = form.get("auto").is_some();
    let count = if auto {
        names.len()
    } else {
        seats.len().max(names.len())
    };
    let Some(user) = v.user.clone() else {
        // Sign in first, then come back to the same seats.
        let mut back = std::collections::HashMap::new();
        back.insert(
            "passengers".to_owned(),
            count.clamp(1, MAX_PASSENGERS).to_string(),
        );
        if !seats.is_empty() {
            back.insert("seats".to_owned(), seats.join(","));
        }
        let next = format!("/flights/{id}?{}", encode(&back));
        let next = form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>();
        return v.seal(redirect(&format!("/signin?next={next}")));
    };
    let invalid = |why: &str| Some(ApiError::InvalidRequest(why.to_owned()));
    let error = if names.is_empty() {
        invalid("enter the name of each passenger")
    } else if !auto && seats.len() != names.len() {
        invalid(&format!(
            "pick {} seat(s), one for each passenger, or let us choose",
            names.len()
        ))
    } else {
        None
    };
    let outcome = match error {
        Some(error) => Err(error),
        None => {
            let segment = SegmentRequest {
                flight_id: id.clone(),
                seats: (!auto).then(|| seats.clone()),
                cabin: if auto {
                    Some(
                        form.get("cabin")
                            .and_then(|c| c.parse::<Cabin>().ok())
                            .unwrap_or(Cabin::Economy),
                    )
                } else {
                    None
                },
                count: auto.then(|| u16::try_from(names.len()).unwrap_or(u16::MAX)),
            };
            let request = OrderRequest {
                segments: vec![segment],
                passengers: names
                    .iter()
                    .map(|name| PassengerRequest { name: name.clone() })
                    .collect(),
            };
            let key = form.get("key").map(|k| format!("web-{k}"));
            place(&user, &ctx, key.filter(|k| k.len() <= 255), &request)
                .await
                .map(|(_, order)| order.id)
        }
    };
    let response = match outcome {
        Ok(order) => Ok(redirect(&format!("/trips/{order}"))),
        Err(error @ (ApiError::Unauthorized(_) | ApiError::NotFound | ApiError::Internal(_))) => {
            Err(error)
        }
        Err(error) => {
            let choice = Choice {
                passengers: names.len().max(1),
                seats: if matches!(&error, ApiError::Conflict { .. }) {
                    Vec::new()
                } else {
                    seats
                },
                names,
                error: Some(error),
            };
            flight_page(&v, &ctx, &id, choice).await
        }
    };
    finish(&v, response)
}
