//! The booking saga over real HTTP: concurrent holds, all-or-nothing segments, payment,
//! idempotency, expiry, cancellation, refunds, flight cancellation, ownership, notifications.

mod helpers;

use helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

fn seats_of(order: &Value) -> Vec<String> {
    order["segments"]
        .as_array()
        .expect("segments")
        .iter()
        .flat_map(|s| s["seats"].as_array().cloned().unwrap_or_default())
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

fn taken(statuses: &BTreeMap<String, String>) -> usize {
    statuses.values().filter(|s| *s != "available").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_buyers_for_fifty_seats_over_http() {
    let app = spawn_app().await;
    let (_, flight) = app.one_flight(10, "ABCDE").await; // 50 seats
    let buyers = app.customers(40).await;
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let token = buyers[i % buyers.len()].1.clone();
            let (client, base, flight) = (app.client.clone(), app.base.clone(), flight.clone());
            tokio::spawn(async move {
                let body = json!({"segments": [{"flight_id": flight, "cabin": "economy", "count": 1}], "passengers": [{"name": "P"}]});
                let resp = client.post(format!("{base}/api/v1/orders")).bearer_auth(token).json(&body).send().await.expect("sent");
                to_reply(resp).await
            })
        })
        .collect();
    let mut sold = Vec::new();
    let mut refused = 0;
    for t in tasks {
        let r = t.await.expect("task");
        match r.status {
            StatusCode::CREATED => sold.extend(seats_of(&r.body)),
            StatusCode::CONFLICT => {
                assert_eq!(r.code(), "seats_unavailable");
                refused += 1;
            }
            other => panic!("unexpected {other}: {}", r.body),
        }
    }
    assert_eq!((sold.len(), refused), (50, 250));
    assert_eq!(
        sold.iter().collect::<HashSet<_>>().len(),
        50,
        "a seat was sold twice"
    );
    assert_eq!(taken(&app.seat_statuses(&flight).await), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_buyers_for_seat_1a() {
    let app = spawn_app().await;
    let (_, flight) = app.one_flight(10, "ABCDE").await;
    let buyers = app.customers(20).await;
    let body = json!({"segments": [{"flight_id": flight, "seats": ["1A"]}], "passengers": [{"name": "P"}]});
    let replies = futures::future::join_all(
        (0..60).map(|i| app.order_body(&buyers[i % 20].1, body.clone(), None)),
    )
    .await;
    let won = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    assert_eq!(won, 1);
    assert!(
        replies
            .iter()
            .all(|r| r.status == StatusCode::CREATED || r.code() == "seats_unavailable")
    );
    assert_eq!(taken(&app.seat_statuses(&flight).await), 1);
}

#[tokio::test]
async fn a_multi_segment_order_is_all_or_nothing() {
    let app = spawn_app().await;
    let (admin, first) = app.one_flight(5, "AB").await;
    let small = app.aircraft(&admin, 1, "A").await; // one seat
    let second = app
        .flight(
            &admin,
            TestApp::flight_body(&small, "BOM", "DEL", "2031-03-02T08:00:00Z", 60, 100),
        )
        .await;
    let (_, customer) = app.customer().await;
    let r = app.order(&customer, &[&first, &second], 2, None).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!(r.code(), "seats_unavailable");
    assert_eq!(
        taken(&app.seat_statuses(&first).await),
        0,
        "the first flight kept a hold"
    );
    assert_eq!(taken(&app.seat_statuses(&second).await), 0);
    assert_eq!(
        app.get("/api/v1/orders", Some(&customer)).await.body["orders"],
        json!([])
    );

    let ok = app.order(&customer, &[&first, &second], 1, None).await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.body);
    assert_eq!(ok.body["status"], "held");
    assert_eq!(ok.body["total_cents"], 5000 + 100);
    assert_eq!(seats_of(&ok.body).len(), 2);
}

#[tokio::test]
async fn decline_then_approve_then_pay_again() {
    let app = spawn_app().await;
    let (_, flight) = app.one_flight(5, "AB").await;
    let (_, customer) = app.customer().await;
    let order = app.order(&customer, &[&flight], 2, None).await;
    let id = order.body["id"].as_str().expect("id").to_owned();

    let declined = app.pay(&customer, &id, "tok_declined", None).await;
    assert_eq!(declined.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(declined.code(), "payment_declined");
    assert_eq!(
        app.get(&format!("/api/v1/orders/{id}"), Some(&customer))
            .await
            .body["status"],
        "held"
    );

    let timeout = app.pay(&customer, &id, "tok_timeout", None).await;
    assert_eq!(timeout.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(timeout.code(), "payment_timeout");

    let paid = app.pay(&customer, &id, "tok_visa", None).await;
    assert_eq!(paid.status, StatusCode::OK, "{}", paid.body);
    assert_eq!(paid.body["status"], "confirmed");
    let tickets = paid.body["tickets"].as_array().expect("tickets").clone();
    assert_eq!(tickets.len(), 2);
    assert!(tickets.iter().all(|t| t["status"] == "issued"));
    let statuses = app.seat_statuses(&flight).await;
    assert_eq!(statuses.values().filter(|s| *s == "sold").count(), 2);

    let again = app.pay(&customer, &id, "tok_visa", None).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(
        again.body["tickets"],
        json!(tickets),
        "paying again changed the order"
    );
    let mine = app.get("/api/v1/tickets", Some(&customer)).await;
    assert_eq!(mine.body["tickets"].as_array().map(Vec::len), Some(2));
    let one = tickets[0]["id"].as_str().expect("ticket id");
    assert_eq!(
        app.get(&format!("/api/v1/tickets/{one}"), Some(&customer))
            .await
            .status,
        StatusCode::OK
    );

    let kinds: Vec<String> =
        app.get("/api/v1/notifications", Some(&customer)).await.body["notifications"]
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|n| n["kind"].as_str().map(str::to_owned))
            .collect();
    assert_eq!(kinds, vec!["order_confirmed", "payment_declined"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_create_one_order_and_one_charge() {
    let app = spawn_app().await;
    let (_, flight) = app.one_flight(5, "AB").await;
    let (_, customer) = app.customer().await;
    let first = app.order(&customer, &[&flight], 1, Some("key-1")).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let again = app.order(&customer, &[&flight], 1, Some("key-1")).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["id"], first.body["id"]);
    let other = app.order(&customer, &[&flight], 2, Some("key-1")).await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(other.code(), "idempotency_key_reused");

    let flights = [flight.as_str()];
    let racing = futures::future::join_all(
        (0..12).map(|_| app.order(&customer, &flights, 1, Some("key-2"))),
    )
    .await;
    let ids: HashSet<String> = racing
        .iter()
        .map(|r| r.body["id"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(ids.len(), 1, "one key made several orders: {ids:?}");
    assert!(
        racing
            .iter()
            .all(|r| r.status == StatusCode::CREATED || r.status == StatusCode::OK)
    );
    assert_eq!(
        taken(&app.seat_statuses(&flight).await),
        2,
        "seats were held twice"
    );

    let id = first.body["id"].as_str().expect("id").to_owned();
    let pays = futures::future::join_all(
        (0..8).map(|_| app.pay(&customer, &id, "tok_visa", Some("pay-1"))),
    )
    .await;
    assert!(
        pays.iter().all(|r| r.status == StatusCode::OK),
        "{:?}",
        pays.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    let tickets: HashSet<String> = pays.iter().map(|r| r.body["tickets"].to_string()).collect();
    assert_eq!(
        tickets.len(),
        1,
        "concurrent payments issued different tickets"
    );
    let reused = app.pay(&customer, &id, "tok_declined", Some("pay-1")).await;
    assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = app.get("/metrics", None).await;
    let text = r.body.as_str().unwrap_or_default().to_owned();
    assert!(text.contains("contrail_payments_total"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpaid_holds_expire_and_cannot_be_paid() {
    let app = spawn_app_with(|s| s.booking.hold_ttl_secs = 1).await;
    let (_, flight) = app.one_flight(5, "AB").await;
    let (_, customer) = app.customer().await;
    let order = app.order(&customer, &[&flight], 2, None).await;
    assert_eq!(order.status, StatusCode::CREATED);
    let id = order.body["id"].as_str().expect("id").to_owned();
    let expired = eventually(Duration::from_secs(15), || async {
        app.get(&format!("/api/v1/orders/{id}"), Some(&customer))
            .await
            .body["status"]
            == "expired"
    })
    .await;
    assert!(expired, "the order never expired");
    assert_eq!(
        taken(&app.seat_statuses(&flight).await),
        0,
        "expired seats were not returned to sale"
    );
    let late = app.pay(&customer, &id, "tok_visa", None).await;
    assert_eq!(late.status, StatusCode::CONFLICT);
    assert_eq!(late.code(), "order_not_payable");
    let kinds = app.get("/api/v1/notifications", Some(&customer)).await.body;
    assert_eq!(kinds["notifications"][0]["kind"], "order_expired");
}

#[tokio::test]
async fn cancel_releases_a_hold_and_refunds_a_purchase() {
    let app = spawn_app().await;
    let (_, flight) = app.one_flight(5, "AB").await;
    let (_, customer) = app.customer().await;
    let held = app.order(&customer, &[&flight], 1, None).await;
    let held_id = held.body["id"].as_str().expect("id").to_owned();
    let r = app
        .post_empty(&format!("/api/v1/orders/{held_id}/cancel"), Some(&customer))
        .await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (StatusCode::OK, Some("cancelled"))
    );
    assert_eq!(taken(&app.seat_statuses(&flight).await), 0);
    let r = app.pay(&customer, &held_id, "tok_visa", None).await;
    assert_eq!(r.code(), "order_not_payable");

    let bought = app.order(&customer, &[&flight], 2, None).await;
    let id = bought.body["id"].as_str().expect("id").to_owned();
    app.pay(&customer, &id, "tok_visa", None).await;
    let r = app
        .post_empty(&format!("/api/v1/orders/{id}/cancel"), Some(&customer))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["status"], "refunded");
    assert!(
        r.body["tickets"]
            .as_array()
            .expect("tickets")
            .iter()
            .all(|t| t["status"] == "void")
    );
    assert_eq!(taken(&app.seat_statuses(&flight).await), 0);
    let r = app
        .post_empty(&format!("/api/v1/orders/{id}/cancel"), Some(&customer))
        .await;
    assert_eq!(r.code(), "order_not_cancellable");
}

#[tokio::test]
async fn cancelling_a_flight_cancels_and_refunds_its_orders() {
    let app = spawn_app().await;
    let (admin, flight) = app.one_flight(5, "AB").await;
    let (_, a) = app.customer().await;
    let (_, b) = app.customer().await;
    let held = app.order(&a, &[&flight], 1, None).await.body["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let paid = app.order(&b, &[&flight], 1, None).await.body["id"]
        .as_str()
        .expect("id")
        .to_owned();
    app.pay(&b, &paid, "tok_visa", None).await;
    let (_, customer) = app.customer().await;
    let r = app
        .post_empty(&format!("/api/v1/flights/{flight}/cancel"), Some(&customer))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .post_empty(&format!("/api/v1/flights/{flight}/cancel"), Some(&admin))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["status"], "cancelled");
    assert_eq!(
        app.get(&format!("/api/v1/orders/{held}"), Some(&a))
            .await
            .body["status"],
        "cancelled"
    );
    let refunded = app
        .get(&format!("/api/v1/orders/{paid}"), Some(&b))
        .await
        .body;
    assert_eq!(refunded["status"], "refunded");
    assert_eq!(refunded["tickets"][0]["status"], "void");
    assert_eq!(taken(&app.seat_statuses(&flight).await), 0);
    let r = app.order(&customer, &[&flight], 1, None).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let kinds = app.get("/api/v1/notifications", Some(&b)).await.body;
    assert_eq!(kinds["notifications"][0]["kind"], "flight_cancelled");
    assert!(
        app.get("/api/v1/flights?origin=DEL", None).await.body["flights"]
            .as_array()
            .expect("list")
            .is_empty()
    );
}

#[tokio::test]
async fn customers_see_only_their_own_and_cannot_hoard() {
    let app = spawn_app_with(|s| s.booking.max_seats_per_user_per_flight = 3).await;
    let (admin, flight) = app.one_flight(5, "AB").await;
    let (_, owner) = app.customer().await;
    let (_, other) = app.customer().await;
    let order = app.order(&owner, &[&flight], 2, None).await;
    let id = order.body["id"].as_str().expect("id").to_owned();
    assert_eq!(
        app.get(&format!("/api/v1/orders/{id}"), Some(&other))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.pay(&other, &id, "tok_visa", None).await.status,
        StatusCode::NOT_FOUND
    );
    let r = app
        .post_empty(&format!("/api/v1/orders/{id}/cancel"), Some(&other))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get(&format!("/api/v1/orders/{id}"), Some(&admin))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        app.get("/api/v1/orders", Some(&other)).await.body["orders"],
        json!([])
    );
    assert_eq!(
        app.get("/api/v1/orders", None).await.status,
        StatusCode::UNAUTHORIZED
    );

    let hoard = app.order(&owner, &[&flight], 2, None).await;
    assert_eq!(hoard.status, StatusCode::CONFLICT);
    assert_eq!(hoard.code(), "hold_limit_exceeded");
    assert_eq!(
        app.order(&owner, &[&flight], 1, None).await.status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn malformed_orders_are_400() {
    let app = spawn_app().await;
    let (_, flight) = app.one_flight(5, "AB").await;
    let (_, c) = app.customer().await;
    let bad = [
        json!({"segments": [], "passengers": [{"name": "A"}]}),
        json!({"segments": [{"flight_id": flight, "cabin": "economy", "count": 2}], "passengers": [{"name": "A"}]}),
        json!({"segments": [{"flight_id": flight, "seats": ["1A"], "cabin": "economy", "count": 1}], "passengers": [{"name": "A"}]}),
        json!({"segments": [{"flight_id": flight, "seats": ["99Z"]}], "passengers": [{"name": "A"}]}),
        json!({"segments": [{"flight_id": flight, "seats": ["1é"]}], "passengers": [{"name": "A"}]}),
        json!({"segments": [{"flight_id": "flt_nope", "cabin": "economy", "count": 1}], "passengers": [{"name": "A"}]}),
        json!({"segments": [{"flight_id": flight, "cabin": "first", "count": 1}], "passengers": [{"name": "A"}]}),
        json!({"segments": [{"flight_id": flight, "cabin": "economy", "count": 1}], "passengers": [{"name": ""}]}),
        json!({"segments": [{"flight_id": flight, "cabin": "economy", "count": 1}], "passengers": [{"name": "A"}], "coupon": "x"}),
    ];
    for body in bad {
        let r = app.order_body(&c, body.clone(), None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
        assert_eq!(r.code(), "invalid_request");
    }
    assert_eq!(taken(&app.seat_statuses(&flight).await), 0);
    let r = app.order(&c, &[&flight], 1, Some(&"k".repeat(300))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_reach_the_webhook_despite_failures() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use warp::Filter;
    // A receiver on 127.0.0.1 that fails the first two deliveries.
    let attempts = Arc::new(AtomicUsize::new(0));
    let received = Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
    let (a, r) = (attempts.clone(), received.clone());
    let hook = warp::post()
        .and(warp::body::json())
        .map(move |body: Value| {
            if a.fetch_add(1, Ordering::SeqCst) < 2 {
                return warp::http::StatusCode::INTERNAL_SERVER_ERROR;
            }
            r.lock().expect("lock").push(body);
            warp::http::StatusCode::NO_CONTENT
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(warp::serve(hook).incoming(listener).run());

    let app = spawn_app_with(|s| s.notifications.webhook_url = Some(url)).await;
    let (_, flight) = app.one_flight(5, "AB").await;
    let (user, customer) = app.customer().await;
    let order = app.order(&customer, &[&flight], 1, None).await;
    let id = order.body["id"].as_str().expect("id").to_owned();
    assert_eq!(
        app.pay(&customer, &id, "tok_visa", None).await.status,
        StatusCode::OK
    );
    let delivered = eventually(Duration::from_secs(20), || async {
        !received.lock().expect("lock").is_empty()
    })
    .await;
    assert!(delivered, "the webhook never got the notification");
    assert!(attempts.load(Ordering::SeqCst) >= 3, "no retries happened");
    let body = received.lock().expect("lock")[0].clone();
    assert_eq!(body["kind"], "order_confirmed");
    assert_eq!(body["order_id"], id.as_str());
    assert_eq!(body["user_id"], user.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_gateway_never_charges_twice_and_a_retry_completes_the_payment() {
    let app = spawn_app_with(|s| {
        s.payments.latency_ms = 1_200;
        s.actors.call_timeout_ms = 400;
    })
    .await;
    let (_, flight) = app.one_flight(5, "AB").await;
    let (_, customer) = app.customer().await;
    let id = app.order(&customer, &[&flight], 1, None).await.body["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let first = app.pay(&customer, &id, "tok_visa", None).await;
    assert_eq!(
        first.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        first.body
    );
    let paid = eventually(Duration::from_secs(20), || async {
        app.pay(&customer, &id, "tok_visa", None).await.status == StatusCode::OK
    })
    .await;
    assert!(paid, "the payment never completed");
    let order = app
        .get(&format!("/api/v1/orders/{id}"), Some(&customer))
        .await
        .body;
    assert_eq!(order["status"], "confirmed");
    assert_eq!(order["tickets"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_payment_key_replays_the_first_outcome() {
    let app = spawn_app().await;
    let (_, flight) = app.one_flight(5, "AB").await;
    let (_, customer) = app.customer().await;
    let id = app.order(&customer, &[&flight], 1, None).await.body["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let first = app.pay(&customer, &id, "tok_declined", Some("try-1")).await;
    assert_eq!(first.status, StatusCode::PAYMENT_REQUIRED);
    let again = app.pay(&customer, &id, "tok_declined", Some("try-1")).await;
    assert_eq!(
        (again.status, again.code()),
        (StatusCode::PAYMENT_REQUIRED, "payment_declined")
    );
    let notes = app.get("/api/v1/notifications", Some(&customer)).await.body;
    assert_eq!(
        notes["notifications"].as_array().map(Vec::len),
        Some(1),
        "the replay paid again"
    );
    let ok = app.pay(&customer, &id, "tok_visa", Some("try-2")).await;
    assert_eq!(ok.status, StatusCode::OK);
}

/// A full cabin is refused at once, and takes bookings again the moment a seat comes back:
/// when its holder cancels, and when a hold lapses (before anything sweeps it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_cabin_refuses_at_once_and_reopens_the_moment_a_seat_comes_back() {
    let app = spawn_app_with(|s| s.booking.hold_ttl_secs = 3).await;
    let (_, flight) = app.one_flight(2, "AB").await; // 4 seats
    let buyers = app.customers(4).await;
    let first = app.order(&buyers[0].1, &[&flight], 2, None).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let second = app.order(&buyers[1].1, &[&flight], 2, None).await;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.body);

    for _ in 0..3 {
        let refused = app.order(&buyers[2].1, &[&flight], 1, None).await;
        assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
        assert_eq!(refused.code(), "seats_unavailable");
    }

    // A cancellation frees two seats: the next booking gets them, with no wait. (A second
    // later, so that this hold outlives the other one, which lapses below.)
    tokio::time::sleep(Duration::from_secs(1)).await;
    let id = first.body["id"].as_str().expect("id");
    let r = app
        .post_empty(&format!("/api/v1/orders/{id}/cancel"), Some(&buyers[0].1))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let resold = app.order(&buyers[2].1, &[&flight], 2, None).await;
    assert_eq!(resold.status, StatusCode::CREATED, "{}", resold.body);
    let refused = app.order(&buyers[3].1, &[&flight], 1, None).await;
    assert_eq!(refused.code(), "seats_unavailable");

    // The second hold lapses: its seats can be taken from that moment on.
    let expires: chrono::DateTime<chrono::Utc> = second.body["expires_at"]
        .as_str()
        .expect("expires_at")
        .parse()
        .expect("a time");
    let wait = (expires - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(20)).await;
    let after_lapse = app.order(&buyers[3].1, &[&flight], 2, None).await;
    assert_eq!(
        after_lapse.status,
        StatusCode::CREATED,
        "{}",
        after_lapse.body
    );

    let mut sold: Vec<String> = seats_of(&resold.body);
    sold.extend(seats_of(&after_lapse.body));
    assert_eq!(
        sold.iter().collect::<HashSet<_>>().len(),
        4,
        "a seat twice: {} {}",
        resold.body,
        after_lapse.body
    );
    assert_eq!(taken(&app.seat_statuses(&flight).await), 4);
}

/// Beyond `booking.max_in_flight`, a payment or booking is refused at once with 503 and
/// Retry-After, having done nothing: the refused orders stay held and uncharged, and paying
/// them again later confirms each exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_its_capacity_a_node_refuses_at_once_and_loses_nothing() {
    let app = spawn_app_with(|s| {
        s.booking.max_in_flight = 2;
        s.payments.latency_ms = 600;
    })
    .await;
    let (_, flight) = app.one_flight(4, "ABCD").await;
    let buyers = app.customers(8).await;
    let mut orders = Vec::new();
    for (_, token) in &buyers {
        let r = app.order(token, &[&flight], 1, None).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        orders.push((token.clone(), r.body["id"].as_str().expect("id").to_owned()));
    }
    // Eight payments at once; each takes 600 ms at the gateway, two may run.
    let payments: Vec<_> = orders
        .iter()
        .map(|(token, id)| {
            let (app, token, id) = (app.clone_client(), token.clone(), id.clone());
            tokio::spawn(async move { app.pay(&token, &id, "tok_visa", None).await })
        })
        .collect();
    let mut shed = Vec::new();
    for ((token, id), p) in orders.iter().zip(payments) {
        let r = p.await.expect("task");
        match r.status {
            StatusCode::OK => assert_eq!(r.body["status"], "confirmed"),
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(r.code(), "unavailable");
                assert!(r.headers.contains_key("retry-after"), "no Retry-After");
                let now = app.get(&format!("/api/v1/orders/{id}"), Some(token)).await;
                assert_eq!(
                    now.body["status"], "held",
                    "a refused payment did something"
                );
                shed.push((token.clone(), id.clone()));
            }
            other => panic!("unexpected {other}: {}", r.body),
        }
    }
    assert!(
        shed.len() >= 4,
        "only {} of 8 refused with room for 2",
        shed.len()
    );
    // A booking is refused the same way while the node is full.
    let mut busy = Vec::new();
    for (_, token) in &buyers[..2] {
        let r = app.order(token, &[&flight], 1, None).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let (app, token) = (app.clone_client(), token.clone());
        let id = r.body["id"].as_str().expect("id").to_owned();
        busy.push(tokio::spawn(async move {
            app.pay(&token, &id, "tok_visa", None).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = app.order(&buyers[2].1, &[&flight], 1, None).await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        refused.body
    );
    assert!(
        refused.headers.contains_key("retry-after"),
        "no Retry-After"
    );
    for b in busy {
        let r = b.await.expect("task");
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    for (token, id) in &shed {
        let r = app.pay(token, id, "tok_visa", None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["status"], "confirmed");
    }
    assert_eq!(
        taken(&app.seat_statuses(&flight).await),
        10,
        "the refused booking took a seat"
    );
    for (token, id) in &orders {
        let r = app.get(&format!("/api/v1/orders/{id}"), Some(token)).await;
        assert_eq!(r.body["status"], "confirmed");
        assert_eq!(r.body["tickets"].as_array().map(Vec::len), Some(1));
    }
}
