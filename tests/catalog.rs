//! Airports, aircraft, flights, search and seat maps over real HTTP; malformed input.

mod helpers;

use contrail_client::{
    Airport, Availability, CabinLayout, Client, FlightPage, NewAircraft, NewFlight, Search,
};
use helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An airport named "a" in city "b" of country "c".
fn airport_abc(code: &str) -> Airport {
    Airport {
        code: code.into(),
        name: "a".into(),
        city: "b".into(),
        country: "c".into(),
    }
}

/// A layout of these cabins: (cabin, first row, last row, seat letters).
fn layout(model: &str, cabins: &[(&str, u16, u16, &str)]) -> NewAircraft {
    NewAircraft {
        model: model.into(),
        cabins: cabins
            .iter()
            .map(|(cabin, first, last, seats)| CabinLayout {
                cabin: (*cabin).into(),
                rows: [*first, *last],
                seats: (*seats).into(),
            })
            .collect(),
    }
}

#[tokio::test]
async fn customers_cannot_write_the_catalog() {
    let app = spawn_app().await;
    let (_, customer) = app.customer().await;
    let anonymous = app.api();
    let airport = airport_abc("DEL");
    let aircraft = layout("A320", &[("economy", 1, 2, "AB")]);
    for (who, expected) in [
        (&customer, StatusCode::FORBIDDEN),
        (&anonymous, StatusCode::UNAUTHORIZED),
    ] {
        let writes = [
            ("/api/v1/airports", who.create_airport(&airport).await.err()),
            (
                "/api/v1/aircraft",
                who.create_aircraft(&aircraft).await.err(),
            ),
        ];
        for (path, e) in writes {
            let e = e.unwrap_or_else(|| panic!("{path} was written"));
            assert_eq!(e.status(), Some(expected), "{path}");
            if expected == StatusCode::FORBIDDEN {
                assert_eq!(e.code(), Some("forbidden"));
            }
        }
    }
    // Raw: an empty flight body (the typed request has no such thing) is refused for the role
    // before anything reads it.
    let path = "/api/v1/flights";
    let r = app.post(path, customer.token(), json!({})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}");
    assert_eq!(r.code(), "forbidden");
    let r = app.post(path, None, json!({})).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}");
}

#[tokio::test]
async fn airports_are_validated_unique_and_listed() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    for code in ["del", "DE", "DELH", "D1L"] {
        let e = admin
            .create_airport(&airport_abc(code))
            .await
            .expect_err(code);
        assert_eq!(e.status(), Some(StatusCode::BAD_REQUEST), "{code}");
        assert!(e.message().unwrap_or("").contains("code"), "{e}");
    }
    airport(&admin, "DEL").await;
    let dup = admin.create_airport(&airport_abc("DEL")).await;
    let dup = dup.expect_err("an airport twice");
    assert_eq!(dup.status(), Some(StatusCode::CONFLICT));
    assert_eq!(dup.code(), Some("airport_exists"));
    airport(&admin, "BOM").await;
    let list = app.api().airports().await.expect("airports");
    let codes: Vec<&str> = list.iter().map(|a| a.code.as_str()).collect();
    assert_eq!(codes, vec!["BOM", "DEL"]);
}

#[tokio::test]
async fn aircraft_layouts_are_validated() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let a320 = layout(
        "A320",
        &[("business", 1, 4, "ACDF"), ("economy", 5, 30, "ABCDEF")],
    );
    let created = admin.create_aircraft(&a320).await.expect("created");
    assert_eq!(created.capacity, 16 + 26 * 6);
    let bad = [
        layout("X", &[]),
        layout("X", &[("economy", 5, 1, "AB")]),
        layout("X", &[("economy", 1, 5, "AA")]),
        layout("X", &[("economy", 1, 5, "AB"), ("business", 5, 6, "AB")]),
        layout("X", &[("lounge", 1, 5, "AB")]),
        layout("", &[("economy", 1, 5, "AB")]),
    ];
    for aircraft in bad {
        let e = admin.create_aircraft(&aircraft).await.expect_err("created");
        assert_eq!(
            e.status(),
            Some(StatusCode::BAD_REQUEST),
            "{aircraft:?}: {e}"
        );
        assert_eq!(e.code(), Some("invalid_request"));
    }
}

/// Asserts that a refused flight was a 400 `invalid_request` whose message names `rule`'s field.
#[track_caller]
fn assert_names(rule: &str, status: Option<StatusCode>, code: Option<&str>, message: &str) {
    assert_eq!(status, Some(StatusCode::BAD_REQUEST), "{rule}: {message}");
    assert_eq!(code, Some("invalid_request"));
    let field = rule.split(' ').next().unwrap_or(rule);
    assert!(
        message.contains(field) || rule == "unknown field" && message.contains("gate"),
        "{rule}: {message}"
    );
}

/// A node with airports DEL and BOM, and its admin.
async fn with_del_and_bom() -> (TestApp, Client) {
    let app = spawn_app().await;
    let admin = app.admin().await;
    airport(&admin, "DEL").await;
    airport(&admin, "BOM").await;
    (app, admin)
}

#[tokio::test]
async fn each_flight_rule_is_enforced_and_named() {
    let (app, admin) = with_del_and_bom().await;
    let aircraft = aircraft(&admin, 10, "ABC").await;
    let good = flight_spec(&aircraft, "DEL", "BOM", "2031-01-01T10:00:00Z", 120, 5000);
    let with = |change: fn(&mut NewFlight)| {
        let mut flight = good.clone();
        change(&mut flight);
        flight
    };
    let typed = [
        ("origin", with(|f| f.origin = "del".into())),
        ("destination", with(|f| f.destination = "DEL".into())),
        (
            "arrives_at",
            with(|f| f.arrives_at = "2031-01-01T09:00:00Z".parse().expect("rfc3339")),
        ),
        ("fares", with(|f| f.fares = BTreeMap::new())),
        (
            "fares",
            with(|f| f.fares = [("economy".into(), 5000), ("business".into(), 9000)].into()),
        ),
        (
            "aircraft_id",
            with(|f| f.aircraft_id = "acf_doesnotexist".into()),
        ),
        ("aircraft_id", with(|f| f.aircraft_id = "???".into())),
        ("destination", with(|f| f.destination = "XYZ".into())),
        ("currency", with(|f| f.currency = "dollars".into())),
        ("flight_number", with(|f| f.flight_number = "??".into())),
    ];
    for (rule, flight) in typed {
        let e = admin.create_flight(&flight).await.expect_err(rule);
        assert_names(rule, e.status(), e.code(), e.message().unwrap_or_default());
    }
    // Raw: what the typed request cannot carry (a time that is not one, an unknown field).
    let with = |key: &str, value: Value| {
        let mut b = serde_json::to_value(&good).expect("json");
        b[key] = value;
        b
    };
    let token = admin.token();
    for (rule, body) in [
        ("departs_at", with("departs_at", json!("yesterday"))),
        ("unknown field", with("gate", json!("A1"))),
    ] {
        let r = app.post("/api/v1/flights", token, body).await;
        let message = r.body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert_names(rule, Some(r.status), Some(r.code()), &message);
    }
    let created = admin.create_flight(&good).await.expect("created");
    assert_eq!(
        created.availability.get("economy"),
        Some(&Availability {
            total: 30,
            available: 30
        })
    );
    assert_eq!(created.status, "scheduled");
}

#[tokio::test]
async fn malformed_oversized_and_non_json_bodies() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let url = format!("{}/api/v1/airports", app.base);
    let send = |body: Vec<u8>, content_type: &'static str| {
        app.client
            .post(&url)
            .bearer_auth(&admin)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let r = send(b"{\"code\": ".to_vec(), "application/json")
        .await
        .expect("sent");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = send(b"code=DEL".to_vec(), "application/x-www-form-urlencoded")
        .await
        .expect("sent");
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let big = format!(
        "{{\"code\":\"DEL\",\"name\":\"{}\",\"city\":\"b\",\"country\":\"c\"}}",
        "x".repeat(70 * 1024)
    );
    let r = send(big.into_bytes(), "application/json")
        .await
        .expect("sent");
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], "payload_too_large");
    // Nothing was half-applied.
    assert_eq!(app.api().airports().await.expect("airports"), vec![]);
}

#[tokio::test]
async fn oversized_chunked_bodies_are_refused_too() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let addr = app.node().http_addr();
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /api/v1/airports HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {admin}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let chunk = vec![b' '; 16 * 1024];
    for _ in 0..6 {
        let framed = [
            format!("{:x}\r\n", chunk.len()).into_bytes(),
            chunk.clone(),
            b"\r\n".to_vec(),
        ]
        .concat();
        if stream.write_all(&framed).await.is_err() {
            break; // the server may close early once the limit is hit
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut response),
    )
    .await;
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
}

#[tokio::test]
async fn unknown_routes_methods_and_ids_use_the_error_shape() {
    let app = spawn_app().await;
    // Raw: a route and a method that do not exist.
    let r = app.get("/api/v1/nothing-here", None).await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "not_found"));
    let api = app.api();
    for id in [
        "flt_doesnotexist",
        "flt_bad%20id",
        "flt_..%2F..%2Fetc",
        "%C3%A9",
        "usr_123",
    ] {
        let e = api.flight(id).await.expect_err(id);
        assert_eq!(e.status(), Some(StatusCode::NOT_FOUND), "{id}");
        let e = api.seats(id).await.expect_err(id);
        assert_eq!(e.status(), Some(StatusCode::NOT_FOUND), "{id}");
    }
    let r = app
        .request(reqwest::Method::DELETE, "/api/v1/airports", None, None)
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
}

#[tokio::test]
async fn seat_maps_come_from_the_flight() {
    let (app, admin) = with_del_and_bom().await;
    let a320 = layout(
        "A320",
        &[("business", 1, 2, "AC"), ("economy", 3, 4, "ABC")],
    );
    let aircraft = admin.create_aircraft(&a320).await.expect("aircraft").id;
    let mut spec = flight_spec(&aircraft, "DEL", "BOM", "2031-01-01T10:00:00Z", 90, 5000);
    spec.fares = [("economy".into(), 5000), ("business".into(), 15000)].into();
    let flight = flight(&admin, &spec).await;
    let seats = app.api().seats(&flight).await.expect("seats");
    let names: Vec<String> = seats
        .iter()
        .map(|s| format!("{}:{}:{}", s.seat, s.cabin, s.status))
        .collect();
    assert_eq!(
        names,
        vec![
            "1A:business:available",
            "1C:business:available",
            "2A:business:available",
            "2C:business:available",
            "3A:economy:available",
            "3B:economy:available",
            "3C:economy:available",
            "4A:economy:available",
            "4B:economy:available",
            "4C:economy:available",
        ]
    );
    let f = app.api().flight(&flight).await.expect("flight");
    assert_eq!(
        f.availability.get("business"),
        Some(&Availability {
            total: 4,
            available: 4
        })
    );
    assert_eq!(f.duration_minutes, 90);
}

async fn search(api: &Client, query: &Search) -> FlightPage {
    let page = api.search(query).await;
    page.unwrap_or_else(|e| panic!("{query:?}: {e}"))
}

/// `base` with `change` applied.
fn query(base: &Search, change: impl FnOnce(&mut Search)) -> Search {
    let mut q = base.clone();
    change(&mut q);
    q
}

fn fares(page: &FlightPage) -> Vec<u64> {
    page.flights.iter().filter_map(|f| f.price_cents).collect()
}

#[tokio::test]
async fn search_filters_sorts_and_pages() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    for code in ["DEL", "BOM", "BLR"] {
        airport(&admin, code).await;
    }
    let small = aircraft(&admin, 1, "AB").await; // 2 seats
    let big = aircraft(&admin, 10, "ABC").await; // 30 seats
    // Seven DEL->BOM flights on 2031-05-01 with distinct fares, departures and durations.
    for i in 0..7u64 {
        let departs = format!("2031-05-01T{:02}:00:00Z", 6 + i);
        let spec = flight_spec(
            &big,
            "DEL",
            "BOM",
            &departs,
            200 - (i as i64) * 20,
            9000 - i * 1000,
        );
        flight(&admin, &spec).await;
    }
    for spec in [
        flight_spec(&small, "DEL", "BOM", "2031-05-01T20:00:00Z", 100, 1000),
        flight_spec(&big, "DEL", "BOM", "2031-05-02T06:00:00Z", 100, 500),
        flight_spec(&big, "DEL", "BLR", "2031-05-01T06:00:00Z", 100, 700),
    ] {
        flight(&admin, &spec).await;
    }

    let api = app.api();
    let day = query(&Search::default(), |q| {
        q.origin = Some("DEL".into());
        q.destination = Some("BOM".into());
        q.date = Some("2031-05-01".parse().expect("a day"));
    });
    assert_eq!(
        fares(&search(&api, &day).await),
        vec![1000, 3000, 4000, 5000, 6000, 7000, 8000, 9000]
    );
    // Three passengers do not fit the 2-seat aircraft.
    let three = query(&day, |q| q.passengers = Some(3));
    assert_eq!(fares(&search(&api, &three).await).len(), 7);
    let cheap = query(&day, |q| q.max_price_cents = Some(4000));
    assert_eq!(fares(&search(&api, &cheap).await), vec![1000, 3000, 4000]);
    let route = query(&day, |q| q.date = None);
    assert_eq!(fares(&search(&api, &route).await).len(), 9);
    let from_del = query(&route, |q| q.destination = None);
    assert_eq!(fares(&search(&api, &from_del).await).len(), 10);
    let to_blr = query(&Search::default(), |q| q.destination = Some("BLR".into()));
    assert_eq!(fares(&search(&api, &to_blr).await), vec![700]);
    let business = query(&day, |q| q.cabin = Some("business".into()));
    assert_eq!(fares(&search(&api, &business).await).len(), 0);

    let by_departure = search(&api, &query(&day, |q| q.sort = Some("departure".into()))).await;
    let departures: Vec<_> = by_departure.flights.iter().map(|f| f.departs_at).collect();
    let mut sorted = departures.clone();
    sorted.sort();
    assert_eq!(departures, sorted);
    let by_duration = search(&api, &query(&day, |q| q.sort = Some("duration".into()))).await;
    let durations: Vec<i64> = by_duration
        .flights
        .iter()
        .map(|f| f.duration_minutes)
        .collect();
    assert!(durations.windows(2).all(|w| w[0] <= w[1]), "{durations:?}");

    // Paging: 3 per page, no gaps, no repeats, same order as one big page.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let q = query(&day, |q| {
            q.limit = Some(3);
            q.cursor = cursor.clone();
        });
        let page = search(&api, &q).await;
        paged.extend(fares(&page));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(paged, vec![1000, 3000, 4000, 5000, 6000, 7000, 8000, 9000]);

    let bad = [
        query(&Search::default(), |q| q.passengers = Some(0)),
        query(&Search::default(), |q| q.cabin = Some("lounge".into())),
        query(&Search::default(), |q| q.sort = Some("cheapest".into())),
        query(&Search::default(), |q| q.limit = Some(1000)),
        query(&Search::default(), |q| q.cursor = Some("xyz".into())),
        query(&Search::default(), |q| q.origin = Some("del".into())),
    ];
    for q in bad {
        let e = api.search(&q).await.expect_err("a bad search answered");
        assert_eq!(e.status(), Some(StatusCode::BAD_REQUEST), "{q:?}");
        assert_eq!(e.code(), Some("invalid_request"));
    }
    // Raw: a date that is not one and an unknown filter (the typed query has neither).
    for bad in ["date=01-05-2031", "colour=red"] {
        let r = app.get(&format!("/api/v1/flights?{bad}"), None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(r.code(), "invalid_request");
    }
}
