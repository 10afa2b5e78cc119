//! Airports, aircraft, flights, search and seat maps over real HTTP; malformed input.

mod helpers;

use helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn customers_cannot_write_the_catalog() {
    let app = spawn_app().await;
    let (_, customer) = app.customer().await;
    let writes = [
        (
            "/api/v1/airports",
            json!({"code": "DEL", "name": "a", "city": "b", "country": "c"}),
        ),
        (
            "/api/v1/aircraft",
            json!({"model": "A320", "cabins": [{"cabin": "economy", "rows": [1, 2], "seats": "AB"}]}),
        ),
        ("/api/v1/flights", json!({})),
    ];
    for (path, body) in writes {
        let r = app.post(path, Some(&customer), body.clone()).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(r.code(), "forbidden");
        let r = app.post(path, None, body).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}");
    }
}

#[tokio::test]
async fn airports_are_validated_unique_and_listed() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    for code in ["del", "DE", "DELH", "D1L"] {
        let r = app
            .post(
                "/api/v1/airports",
                Some(&admin),
                json!({"code": code, "name": "a", "city": "b", "country": "c"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{code}");
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("code"),
            "{}",
            r.body
        );
    }
    app.airport(&admin, "DEL").await;
    let dup = app
        .post(
            "/api/v1/airports",
            Some(&admin),
            json!({"code": "DEL", "name": "a", "city": "b", "country": "c"}),
        )
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    assert_eq!(dup.code(), "airport_exists");
    app.airport(&admin, "BOM").await;
    let list = app.get("/api/v1/airports", None).await;
    let codes: Vec<&str> = list.body["airports"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|a| a["code"].as_str())
        .collect();
    assert_eq!(codes, vec!["BOM", "DEL"]);
}

#[tokio::test]
async fn aircraft_layouts_are_validated() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let r = app
        .post(
            "/api/v1/aircraft",
            Some(&admin),
            json!({"model": "A320", "cabins": [{"cabin": "business", "rows": [1, 4], "seats": "ACDF"}, {"cabin": "economy", "rows": [5, 30], "seats": "ABCDEF"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["capacity"], 16 + 26 * 6);
    let bad = [
        json!({"model": "X", "cabins": []}),
        json!({"model": "X", "cabins": [{"cabin": "economy", "rows": [5, 1], "seats": "AB"}]}),
        json!({"model": "X", "cabins": [{"cabin": "economy", "rows": [1, 5], "seats": "AA"}]}),
        json!({"model": "X", "cabins": [{"cabin": "economy", "rows": [1, 5], "seats": "AB"}, {"cabin": "business", "rows": [5, 6], "seats": "AB"}]}),
        json!({"model": "X", "cabins": [{"cabin": "lounge", "rows": [1, 5], "seats": "AB"}]}),
        json!({"model": "", "cabins": [{"cabin": "economy", "rows": [1, 5], "seats": "AB"}]}),
    ];
    for body in bad {
        let r = app
            .post("/api/v1/aircraft", Some(&admin), body.clone())
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
        assert_eq!(r.code(), "invalid_request");
    }
}

#[tokio::test]
async fn each_flight_rule_is_enforced_and_named() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.airport(&admin, "DEL").await;
    app.airport(&admin, "BOM").await;
    let aircraft = app.aircraft(&admin, 10, "ABC").await;
    let good = TestApp::flight_body(&aircraft, "DEL", "BOM", "2031-01-01T10:00:00Z", 120, 5000);
    let with = |key: &str, value: Value| {
        let mut b = good.clone();
        b[key] = value;
        b
    };
    let cases = [
        ("origin", with("origin", json!("del"))),
        ("destination", with("destination", json!("DEL"))),
        (
            "arrives_at",
            with("arrives_at", json!("2031-01-01T09:00:00Z")),
        ),
        ("fares", with("fares", json!({}))),
        (
            "fares",
            with("fares", json!({"economy": 5000, "business": 9000})),
        ),
        (
            "aircraft_id",
            with("aircraft_id", json!("acf_doesnotexist")),
        ),
        ("aircraft_id", with("aircraft_id", json!("???"))),
        ("destination", with("destination", json!("XYZ"))),
        ("departs_at", with("departs_at", json!("yesterday"))),
        ("currency", with("currency", json!("dollars"))),
        ("flight_number", with("flight_number", json!("??"))),
        ("unknown field", with("gate", json!("A1"))),
    ];
    for (rule, body) in cases {
        let r = app.post("/api/v1/flights", Some(&admin), body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{rule}: {}", r.body);
        assert_eq!(r.code(), "invalid_request");
        let message = r.body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let field = rule.split(' ').next().unwrap_or(rule);
        assert!(
            message.contains(field) || rule == "unknown field" && message.contains("gate"),
            "{rule}: {message}"
        );
    }
    let r = app.post("/api/v1/flights", Some(&admin), good).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        r.body["availability"]["economy"],
        json!({"total": 30, "available": 30})
    );
    assert_eq!(r.body["status"], "scheduled");
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
    let list = app.get("/api/v1/airports", None).await;
    assert_eq!(list.body["airports"], json!([]));
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
    let r = app.get("/api/v1/nothing-here", None).await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "not_found"));
    for id in [
        "flt_doesnotexist",
        "flt_bad%20id",
        "flt_..%2F..%2Fetc",
        "%C3%A9",
        "usr_123",
    ] {
        let r = app.get(&format!("/api/v1/flights/{id}"), None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{id}");
        let r = app.get(&format!("/api/v1/flights/{id}/seats"), None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{id}");
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
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.airport(&admin, "DEL").await;
    app.airport(&admin, "BOM").await;
    let r = app
        .post(
            "/api/v1/aircraft",
            Some(&admin),
            json!({"model": "A320", "cabins": [{"cabin": "business", "rows": [1, 2], "seats": "AC"}, {"cabin": "economy", "rows": [3, 4], "seats": "ABC"}]}),
        )
        .await;
    let aircraft = r.body["id"].as_str().expect("id").to_owned();
    let mut body = TestApp::flight_body(&aircraft, "DEL", "BOM", "2031-01-01T10:00:00Z", 90, 5000);
    body["fares"] = json!({"economy": 5000, "business": 15000});
    let flight = app.flight(&admin, body).await;
    let seats = app
        .get(&format!("/api/v1/flights/{flight}/seats"), None)
        .await;
    assert_eq!(seats.status, StatusCode::OK);
    let names: Vec<String> = seats.body["seats"]
        .as_array()
        .expect("seats")
        .iter()
        .map(|s| {
            format!(
                "{}:{}:{}",
                s["seat"].as_str().unwrap_or(""),
                s["cabin"].as_str().unwrap_or(""),
                s["status"].as_str().unwrap_or("")
            )
        })
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
    let f = app.get(&format!("/api/v1/flights/{flight}"), None).await;
    assert_eq!(
        f.body["availability"]["business"],
        json!({"total": 4, "available": 4})
    );
    assert_eq!(f.body["duration_minutes"], 90);
}

async fn search(app: &TestApp, query: &str) -> Value {
    let r = app.get(&format!("/api/v1/flights?{query}"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.body);
    r.body
}

fn fares(body: &Value) -> Vec<u64> {
    body["flights"]
        .as_array()
        .expect("flights")
        .iter()
        .filter_map(|f| f["price_cents"].as_u64())
        .collect()
}

#[tokio::test]
async fn search_filters_sorts_and_pages() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    for code in ["DEL", "BOM", "BLR"] {
        app.airport(&admin, code).await;
    }
    let small = app.aircraft(&admin, 1, "AB").await; // 2 seats
    let big = app.aircraft(&admin, 10, "ABC").await; // 30 seats
    // Seven DEL->BOM flights on 2031-05-01 with distinct fares, departures and durations.
    for i in 0..7u64 {
        let departs = format!("2031-05-01T{:02}:00:00Z", 6 + i);
        let body = TestApp::flight_body(
            &big,
            "DEL",
            "BOM",
            &departs,
            200 - (i as i64) * 20,
            9000 - i * 1000,
        );
        app.flight(&admin, body).await;
    }
    app.flight(
        &admin,
        TestApp::flight_body(&small, "DEL", "BOM", "2031-05-01T20:00:00Z", 100, 1000),
    )
    .await;
    app.flight(
        &admin,
        TestApp::flight_body(&big, "DEL", "BOM", "2031-05-02T06:00:00Z", 100, 500),
    )
    .await;
    app.flight(
        &admin,
        TestApp::flight_body(&big, "DEL", "BLR", "2031-05-01T06:00:00Z", 100, 700),
    )
    .await;

    let day = "origin=DEL&destination=BOM&date=2031-05-01";
    assert_eq!(
        fares(&search(&app, day).await),
        vec![1000, 3000, 4000, 5000, 6000, 7000, 8000, 9000]
    );
    // Three passengers do not fit the 2-seat aircraft.
    assert_eq!(
        fares(&search(&app, &format!("{day}&passengers=3")).await).len(),
        7
    );
    assert_eq!(
        fares(&search(&app, &format!("{day}&max_price_cents=4000")).await),
        vec![1000, 3000, 4000]
    );
    assert_eq!(
        fares(&search(&app, "origin=DEL&destination=BOM").await).len(),
        9
    );
    assert_eq!(fares(&search(&app, "origin=DEL").await).len(), 10);
    assert_eq!(fares(&search(&app, "destination=BLR").await), vec![700]);
    assert_eq!(
        fares(&search(&app, &format!("{day}&cabin=business")).await).len(),
        0
    );

    let by_departure = search(&app, &format!("{day}&sort=departure")).await;
    let departures: Vec<&str> = by_departure["flights"]
        .as_array()
        .expect("f")
        .iter()
        .filter_map(|f| f["departs_at"].as_str())
        .collect();
    let mut sorted = departures.clone();
    sorted.sort();
    assert_eq!(departures, sorted);
    let by_duration = search(&app, &format!("{day}&sort=duration")).await;
    let durations: Vec<i64> = by_duration["flights"]
        .as_array()
        .expect("f")
        .iter()
        .filter_map(|f| f["duration_minutes"].as_i64())
        .collect();
    assert!(durations.windows(2).all(|w| w[0] <= w[1]), "{durations:?}");

    // Paging: 3 per page, no gaps, no repeats, same order as one big page.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let q = match &cursor {
            Some(c) => format!("{day}&limit=3&cursor={c}"),
            None => format!("{day}&limit=3"),
        };
        let page = search(&app, &q).await;
        paged.extend(fares(&page));
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(paged, vec![1000, 3000, 4000, 5000, 6000, 7000, 8000, 9000]);

    for bad in [
        "date=01-05-2031",
        "passengers=0",
        "cabin=lounge",
        "sort=cheapest",
        "limit=1000",
        "cursor=xyz",
        "origin=del",
        "colour=red",
    ] {
        let r = app.get(&format!("/api/v1/flights?{bad}"), None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(r.code(), "invalid_request");
    }
}
