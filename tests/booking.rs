//! The booking saga over real HTTP: concurrent holds, all-or-nothing segments, payment,
//! idempotency, expiry, cancellation, refunds, flight cancellation, ownership, notifications.

mod helpers;

use contrail::settings::Settings;
use contrail_client::{Client, Error, NewOrder, Order, Passenger, Search, SegmentRequest};
use helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

fn seats_of(order: &Order) -> Vec<String> {
    order
        .segments
        .iter()
        .flat_map(|s| s.seats.iter().cloned())
        .collect()
}

fn taken(statuses: &BTreeMap<String, String>) -> usize {
    statuses.values().filter(|s| *s != "available").count()
}

/// Asserts that `result` is the API error `status` `code`; returns it.
#[track_caller]
fn refused<T: std::fmt::Debug>(
    result: contrail_client::Result<T>,
    status: StatusCode,
    code: &str,
) -> Error {
    let e = result.expect_err("the request succeeded");
    assert_eq!(e.status(), Some(status), "{e}");
    assert_eq!(e.code(), Some(code), "{e}");
    e
}

/// A node whose payment gateway takes `latency_ms` to answer, with other settings by `adjust`.
async fn with_a_slow_gateway(latency_ms: u64, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_with(|s| {
        s.payments.latency_ms = latency_ms;
        adjust(s);
    })
    .await
}

/// A flight of 5×AB on `app`, and a customer.
async fn flight_and_customer(app: &TestApp) -> (String, Client) {
    let (_, flight) = app.one_flight(5, "AB").await;
    let (_, customer) = app.customer().await;
    (flight, customer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_buyers_for_fifty_seats_over_http() {
    let app = spawn_app().await;
    let (_, flight) = app.one_flight(10, "ABCDE").await; // 50 seats
    let buyers = app.customers(40).await;
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let buyer = buyers[i % buyers.len()].1.clone();
            let order = economy(&[&flight], 1);
            tokio::spawn(async move { buyer.place_order(&order, None).await })
        })
        .collect();
    let mut sold = Vec::new();
    let mut refused = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(placed) if !placed.replayed => sold.extend(seats_of(&placed.order)),
            Err(e) if e.status() == Some(StatusCode::CONFLICT) => {
                assert_eq!(e.code(), Some("seats_unavailable"));
                refused += 1;
            }
            other => panic!("unexpected {other:?}"),
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
    let order = NewOrder {
        segments: vec![SegmentRequest::named(&flight, &["1A"])],
        passengers: vec![Passenger { name: "P".into() }],
    };
    let replies =
        futures::future::join_all((0..60).map(|i| buyers[i % 20].1.place_order(&order, None)))
            .await;
    let won = replies
        .iter()
        .filter(|r| status_of(r) == StatusCode::CREATED)
        .count();
    assert_eq!(won, 1);
    assert!(replies.iter().all(|r| status_of(r) == StatusCode::CREATED
        || r.as_ref().err().and_then(Error::code) == Some("seats_unavailable")));
    assert_eq!(taken(&app.seat_statuses(&flight).await), 1);
}

#[tokio::test]
async fn a_multi_segment_order_is_all_or_nothing() {
    let app = spawn_app().await;
    let (admin, first) = app.one_flight(5, "AB").await;
    let small = aircraft(&admin, 1, "A").await; // one seat
    let second = flight(
        &admin,
        &flight_spec(&small, "BOM", "DEL", "2031-03-02T08:00:00Z", 60, 100),
    )
    .await;
    let (_, customer) = app.customer().await;
    let r = customer
        .place_order(&economy(&[&first, &second], 2), None)
        .await;
    refused(r, StatusCode::CONFLICT, "seats_unavailable");
    assert_eq!(
        taken(&app.seat_statuses(&first).await),
        0,
        "the first flight kept a hold"
    );
    assert_eq!(taken(&app.seat_statuses(&second).await), 0);
    assert_eq!(customer.orders().await.expect("orders"), vec![]);

    let ok = book(&customer, &[&first, &second], 1).await;
    assert_eq!(ok.status, "held");
    assert_eq!(ok.total_cents, 5000 + 100);
    assert_eq!(seats_of(&ok).len(), 2);
}

#[tokio::test]
async fn decline_then_approve_then_pay_again() {
    let app = spawn_app().await;
    let (flight, customer) = flight_and_customer(&app).await;
    let id = book(&customer, &[&flight], 2).await.id;

    let declined = customer.pay(&id, "tok_declined", None).await;
    refused(declined, StatusCode::PAYMENT_REQUIRED, "payment_declined");
    assert_eq!(customer.order(&id).await.expect("order").status, "held");

    let timeout = customer.pay(&id, "tok_timeout", None).await;
    refused(timeout, StatusCode::SERVICE_UNAVAILABLE, "payment_timeout");

    let paid = customer.pay(&id, "tok_visa", None).await.expect("paid");
    assert_eq!(paid.status, "confirmed");
    let tickets = paid.tickets.clone();
    assert_eq!(tickets.len(), 2);
    assert!(tickets.iter().all(|t| t.status == "issued"));
    let statuses = app.seat_statuses(&flight).await;
    assert_eq!(statuses.values().filter(|s| *s == "sold").count(), 2);

    let again = customer.pay(&id, "tok_visa", None).await.expect("paid");
    assert_eq!(again.tickets, tickets, "paying again changed the order");
    let mine = customer.tickets().await.expect("tickets");
    assert_eq!(mine.len(), 2);
    let one = &tickets[0].id;
    customer.ticket(one).await.expect("a ticket of mine");

    let kinds: Vec<String> = customer
        .notifications()
        .await
        .expect("notifications")
        .into_iter()
        .map(|n| n.kind)
        .collect();
    assert_eq!(kinds, vec!["order_confirmed", "payment_declined"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_create_one_order_and_one_charge() {
    let app = spawn_app().await;
    let (flight, customer) = flight_and_customer(&app).await;
    let one = economy(&[&flight], 1);
    let first = customer.place_order(&one, Some("key-1")).await;
    assert_eq!(status_of(&first), StatusCode::CREATED);
    let first = first.expect("placed").order;
    let again = customer.place_order(&one, Some("key-1")).await;
    assert_eq!(status_of(&again), StatusCode::OK);
    assert_eq!(again.expect("replayed").order.id, first.id);
    let other = customer
        .place_order(&economy(&[&flight], 2), Some("key-1"))
        .await;
    refused(
        other,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    );

    let racing =
        futures::future::join_all((0..12).map(|_| customer.place_order(&one, Some("key-2")))).await;
    let ids: HashSet<String> = racing
        .iter()
        .map(|r| r.as_ref().map(|p| p.order.id.clone()).unwrap_or_default())
        .collect();
    assert_eq!(ids.len(), 1, "one key made several orders: {ids:?}");
    assert!(racing.iter().all(|r| {
        let status = status_of(r);
        status == StatusCode::CREATED || status == StatusCode::OK
    }));
    assert_eq!(
        taken(&app.seat_statuses(&flight).await),
        2,
        "seats were held twice"
    );

    let id = first.id;
    let pays =
        futures::future::join_all((0..8).map(|_| customer.pay(&id, "tok_visa", Some("pay-1"))))
            .await;
    assert!(
        pays.iter().all(Result::is_ok),
        "{:?}",
        pays.iter()
            .map(|r| r.as_ref().err().and_then(Error::status))
            .collect::<Vec<_>>()
    );
    let paid: Vec<&Order> = pays.iter().flatten().collect();
    assert!(
        paid.iter().all(|o| o.tickets == paid[0].tickets),
        "concurrent payments issued different tickets"
    );
    let reused = customer.pay(&id, "tok_declined", Some("pay-1")).await;
    let reused = reused.expect_err("a reused key paid");
    assert_eq!(reused.status(), Some(StatusCode::UNPROCESSABLE_ENTITY));
    let text = app.api().metrics().await.expect("metrics");
    assert!(text.contains("contrail_payments_total"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpaid_holds_expire_and_cannot_be_paid() {
    let app = spawn_app_with(|s| s.booking.hold_ttl_secs = 1).await;
    let (flight, customer) = flight_and_customer(&app).await;
    let id = book(&customer, &[&flight], 2).await.id;
    let expired = eventually(Duration::from_secs(15), || async {
        customer
            .order(&id)
            .await
            .is_ok_and(|o| o.status == "expired")
    })
    .await;
    assert!(expired, "the order never expired");
    assert_eq!(
        taken(&app.seat_statuses(&flight).await),
        0,
        "expired seats were not returned to sale"
    );
    let late = customer.pay(&id, "tok_visa", None).await;
    refused(late, StatusCode::CONFLICT, "order_not_payable");
    let notes = customer.notifications().await.expect("notifications");
    assert_eq!(
        notes.first().map(|n| n.kind.as_str()),
        Some("order_expired")
    );
}

#[tokio::test]
async fn cancel_releases_a_hold_and_refunds_a_purchase() {
    let app = spawn_app().await;
    let (flight, customer) = flight_and_customer(&app).await;
    let held_id = book(&customer, &[&flight], 1).await.id;
    let r = customer.cancel_order(&held_id).await.expect("cancelled");
    assert_eq!(r.status, "cancelled");
    assert_eq!(taken(&app.seat_statuses(&flight).await), 0);
    let r = customer.pay(&held_id, "tok_visa", None).await;
    assert_eq!(
        r.expect_err("a cancelled order was paid").code(),
        Some("order_not_payable")
    );

    let id = book(&customer, &[&flight], 2).await.id;
    customer.pay(&id, "tok_visa", None).await.expect("paid");
    let r = customer.cancel_order(&id).await.expect("refunded");
    assert_eq!(r.status, "refunded");
    assert!(r.tickets.iter().all(|t| t.status == "void"));
    assert_eq!(taken(&app.seat_statuses(&flight).await), 0);
    let r = customer.cancel_order(&id).await;
    assert_eq!(
        r.expect_err("a refunded order was cancelled").code(),
        Some("order_not_cancellable")
    );
}

#[tokio::test]
async fn cancelling_a_flight_cancels_and_refunds_its_orders() {
    let app = spawn_app().await;
    let (admin, flight) = app.one_flight(5, "AB").await;
    let (_, a) = app.customer().await;
    let (_, b) = app.customer().await;
    let held = book(&a, &[&flight], 1).await.id;
    let paid = book(&b, &[&flight], 1).await.id;
    b.pay(&paid, "tok_visa", None).await.expect("paid");
    let (_, customer) = app.customer().await;
    let r = customer.cancel_flight(&flight).await;
    assert_eq!(
        r.expect_err("a customer cancelled a flight").status(),
        Some(StatusCode::FORBIDDEN)
    );
    let r = admin.cancel_flight(&flight).await.expect("cancelled");
    assert_eq!(r.status, "cancelled");
    assert_eq!(a.order(&held).await.expect("order").status, "cancelled");
    let refunded = b.order(&paid).await.expect("order");
    assert_eq!(refunded.status, "refunded");
    assert_eq!(refunded.tickets[0].status, "void");
    assert_eq!(taken(&app.seat_statuses(&flight).await), 0);
    let r = customer.place_order(&economy(&[&flight], 1), None).await;
    assert_eq!(
        r.expect_err("booked a cancelled flight").status(),
        Some(StatusCode::CONFLICT)
    );
    let notes = b.notifications().await.expect("notifications");
    assert_eq!(
        notes.first().map(|n| n.kind.as_str()),
        Some("flight_cancelled")
    );
    let from_del = Search {
        origin: Some("DEL".into()),
        ..Search::default()
    };
    assert!(
        app.api()
            .search(&from_del)
            .await
            .expect("search")
            .flights
            .is_empty()
    );
}

#[tokio::test]
async fn customers_see_only_their_own_and_cannot_hoard() {
    let app = spawn_app_with(|s| s.booking.max_seats_per_user_per_flight = 3).await;
    let (admin, flight) = app.one_flight(5, "AB").await;
    let (_, owner) = app.customer().await;
    let (_, other) = app.customer().await;
    let id = book(&owner, &[&flight], 2).await.id;
    let not_found = Some(StatusCode::NOT_FOUND);
    assert_eq!(
        other.order(&id).await.err().and_then(|e| e.status()),
        not_found
    );
    let r = other.pay(&id, "tok_visa", None).await;
    assert_eq!(r.err().and_then(|e| e.status()), not_found);
    let r = other.cancel_order(&id).await;
    assert_eq!(r.err().and_then(|e| e.status()), not_found);
    let r = other.pay(&id, "tok_visa", Some("other-key")).await;
    assert_eq!(r.err().and_then(|e| e.status()), not_found);
    // None of that touched the order: still held, nothing charged, nobody told.
    let held = owner.order(&id).await.expect("the owner reads it");
    assert_eq!((held.status.as_str(), held.tickets.len()), ("held", 0));
    assert_eq!(owner.notifications().await.expect("notes").len(), 0);
    admin.order(&id).await.expect("an admin reads any order");
    assert_eq!(other.orders().await.expect("orders"), vec![]);
    assert_eq!(other.tickets().await.expect("tickets"), vec![]);
    // A key sent with someone else's order is not used up by the 404.
    let own = book(&other, &[&flight], 1).await.id;
    let paid = other
        .pay(&own, "tok_visa", Some("other-key"))
        .await
        .expect("the key pays the caller's own order");
    assert_eq!(paid.status, "confirmed");
    let listed: Vec<String> = other
        .orders()
        .await
        .expect("orders")
        .into_iter()
        .map(|o| o.id)
        .collect();
    assert_eq!(listed, vec![own.clone()]);
    let tickets = other.tickets().await.expect("tickets");
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0].order_id, own);
    // An admin may pay a customer's order; the customer then sees it with its tickets.
    let paid = admin
        .pay(&id, "tok_visa", None)
        .await
        .expect("an admin pays any order");
    assert_eq!((paid.status.as_str(), paid.tickets.len()), ("confirmed", 2));
    let mine = owner.orders().await.expect("orders");
    assert_eq!(
        mine.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(),
        vec![id.as_str()]
    );
    assert_eq!(mine[0].tickets.len(), 2);
    assert_eq!(owner.tickets().await.expect("tickets").len(), 2);
    assert_eq!(
        app.api().orders().await.err().and_then(|e| e.status()),
        Some(StatusCode::UNAUTHORIZED)
    );

    let hoard = owner.place_order(&economy(&[&flight], 2), None).await;
    refused(hoard, StatusCode::CONFLICT, "hold_limit_exceeded");
    book(&owner, &[&flight], 1).await;
}

#[tokio::test]
async fn malformed_orders_are_400() {
    let app = spawn_app().await;
    let (_, flight) = app.one_flight(5, "AB").await;
    let (_, c) = app.customer().await;
    let a = || vec![Passenger { name: "A".into() }];
    let bad = [
        NewOrder {
            segments: vec![],
            passengers: a(),
        },
        NewOrder {
            segments: vec![SegmentRequest::in_cabin(&flight, "economy", 2)],
            passengers: a(),
        },
        NewOrder {
            segments: vec![SegmentRequest {
                cabin: Some("economy".into()),
                count: Some(1),
                ..SegmentRequest::named(&flight, &["1A"])
            }],
            passengers: a(),
        },
        NewOrder {
            segments: vec![SegmentRequest::named(&flight, &["99Z"])],
            passengers: a(),
        },
        NewOrder {
            segments: vec![SegmentRequest::named(&flight, &["1é"])],
            passengers: a(),
        },
        NewOrder {
            segments: vec![SegmentRequest::in_cabin("flt_nope", "economy", 1)],
            passengers: a(),
        },
        NewOrder {
            segments: vec![SegmentRequest::in_cabin(&flight, "first", 1)],
            passengers: a(),
        },
        NewOrder {
            segments: vec![SegmentRequest::in_cabin(&flight, "economy", 1)],
            passengers: vec![Passenger { name: "".into() }],
        },
    ];
    for order in bad {
        let r = c.place_order(&order, None).await;
        let e = r.expect_err("a malformed order was placed");
        assert_eq!(e.status(), Some(StatusCode::BAD_REQUEST), "{order:?}: {e}");
        assert_eq!(e.code(), Some("invalid_request"));
    }
    // An unknown field: a body the typed request cannot carry.
    let body = json!({"segments": [{"flight_id": flight, "cabin": "economy", "count": 1}], "passengers": [{"name": "A"}], "coupon": "x"});
    let r = app.post("/api/v1/orders", c.token(), body.clone()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
    assert_eq!(r.code(), "invalid_request");
    assert_eq!(taken(&app.seat_statuses(&flight).await), 0);
    let long_key = "k".repeat(300);
    let r = c
        .place_order(&economy(&[&flight], 1), Some(&long_key))
        .await;
    assert_eq!(
        r.err().and_then(|e| e.status()),
        Some(StatusCode::BAD_REQUEST)
    );
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

    let app = spawn_app_with(|s| {
        s.notifications.webhook_url = Some(url);
        s.notifications.webhook_secret = Some("booking-test-webhook-secret".into());
        s.notifications.first_backoff_ms = 100;
    })
    .await;
    let (_, flight) = app.one_flight(5, "AB").await;
    let (user, customer) = app.customer().await;
    let id = book(&customer, &[&flight], 1).await.id;
    customer.pay(&id, "tok_visa", None).await.expect("paid");
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
    let app = with_a_slow_gateway(1_200, |s| s.actors.call_timeout_ms = 400).await;
    let (flight, customer) = flight_and_customer(&app).await;
    let id = book(&customer, &[&flight], 1).await.id;
    let first = customer.pay(&id, "tok_visa", None).await;
    let first = first.expect_err("a payment outlived the call timeout");
    assert_eq!(
        first.status(),
        Some(StatusCode::SERVICE_UNAVAILABLE),
        "{first}"
    );
    let paid = eventually(Duration::from_secs(20), || async {
        customer.pay(&id, "tok_visa", None).await.is_ok()
    })
    .await;
    assert!(paid, "the payment never completed");
    let order = customer.order(&id).await.expect("order");
    assert_eq!(order.status, "confirmed");
    assert_eq!(order.tickets.len(), 1);
}

#[tokio::test]
async fn a_payment_key_replays_the_first_outcome() {
    let app = spawn_app().await;
    let (flight, customer) = flight_and_customer(&app).await;
    let id = book(&customer, &[&flight], 1).await.id;
    let first = customer.pay(&id, "tok_declined", Some("try-1")).await;
    assert_eq!(
        first.expect_err("declined").status(),
        Some(StatusCode::PAYMENT_REQUIRED)
    );
    let again = customer.pay(&id, "tok_declined", Some("try-1")).await;
    refused(again, StatusCode::PAYMENT_REQUIRED, "payment_declined");
    let notes = customer.notifications().await.expect("notifications");
    assert_eq!(notes.len(), 1, "the replay paid again");
    customer
        .pay(&id, "tok_visa", Some("try-2"))
        .await
        .expect("paid");
}

/// A full cabin is refused at once, and takes bookings again the moment a seat comes back:
/// when its holder cancels, and when a hold lapses (before anything sweeps it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_cabin_refuses_at_once_and_reopens_the_moment_a_seat_comes_back() {
    let app = spawn_app_with(|s| s.booking.hold_ttl_secs = 3).await;
    let (_, flight) = app.one_flight(2, "AB").await; // 4 seats
    let buyers = app.customers(4).await;
    let first = book(&buyers[0].1, &[&flight], 2).await;
    let second = book(&buyers[1].1, &[&flight], 2).await;

    for _ in 0..3 {
        let r = buyers[2].1.place_order(&economy(&[&flight], 1), None).await;
        refused(r, StatusCode::CONFLICT, "seats_unavailable");
    }

    // A cancellation frees two seats: the next booking gets them, with no wait. (A second
    // later, so that this hold outlives the other one, which lapses below.)
    tokio::time::sleep(Duration::from_secs(1)).await;
    buyers[0]
        .1
        .cancel_order(&first.id)
        .await
        .expect("cancelled");
    let resold = book(&buyers[2].1, &[&flight], 2).await;
    let r = buyers[3].1.place_order(&economy(&[&flight], 1), None).await;
    assert_eq!(
        r.expect_err("a seat too many").code(),
        Some("seats_unavailable")
    );

    // The second hold lapses: its seats can be taken from that moment on.
    let wait = (second.expires_at - chrono::Utc::now())
        .to_std()
        .unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(20)).await;
    let after_lapse = book(&buyers[3].1, &[&flight], 2).await;

    let mut sold: Vec<String> = seats_of(&resold);
    sold.extend(seats_of(&after_lapse));
    assert_eq!(
        sold.iter().collect::<HashSet<_>>().len(),
        4,
        "a seat twice: {resold:?} {after_lapse:?}"
    );
    assert_eq!(taken(&app.seat_statuses(&flight).await), 4);
}

/// Beyond `booking.max_in_flight`, a payment or booking is refused at once with 503 and
/// Retry-After, having done nothing: the refused orders stay held and uncharged, and paying
/// them again later confirms each exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_its_capacity_a_node_refuses_at_once_and_loses_nothing() {
    let app = with_a_slow_gateway(600, |s| s.booking.max_in_flight = 2).await;
    let (_, flight) = app.one_flight(4, "ABCD").await;
    let buyers = app.customers(8).await;
    let mut orders = Vec::new();
    for (_, buyer) in &buyers {
        let id = book(buyer, &[&flight], 1).await.id;
        orders.push((buyer.clone(), id));
    }
    // Eight payments at once; each takes 600 ms at the gateway, two may run.
    let payments: Vec<_> = orders
        .iter()
        .map(|(buyer, id)| {
            let (buyer, id) = (buyer.clone(), id.clone());
            tokio::spawn(async move { buyer.pay(&id, "tok_visa", None).await })
        })
        .collect();
    let mut shed = Vec::new();
    for ((buyer, id), p) in orders.iter().zip(payments) {
        match p.await.expect("task") {
            Ok(order) => assert_eq!(order.status, "confirmed"),
            Err(e) if e.status() == Some(StatusCode::SERVICE_UNAVAILABLE) => {
                assert_eq!(e.code(), Some("unavailable"));
                assert!(e.retry_after().is_some(), "no Retry-After");
                let now = buyer.order(id).await.expect("order");
                assert_eq!(now.status, "held", "a refused payment did something");
                shed.push((buyer.clone(), id.clone()));
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(
        shed.len() >= 4,
        "only {} of 8 refused with room for 2",
        shed.len()
    );
    // A booking is refused the same way while the node is full.
    let mut busy = Vec::new();
    for (_, buyer) in &buyers[..2] {
        let id = book(buyer, &[&flight], 1).await.id;
        let buyer = buyer.clone();
        busy.push(tokio::spawn(async move {
            buyer.pay(&id, "tok_visa", None).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = buyers[2].1.place_order(&economy(&[&flight], 1), None).await;
    let refused = refused.expect_err("a booking beyond capacity");
    assert_eq!(
        refused.status(),
        Some(StatusCode::SERVICE_UNAVAILABLE),
        "{refused}"
    );
    assert!(refused.retry_after().is_some(), "no Retry-After");
    for b in busy {
        b.await.expect("task").expect("paid");
    }
    for (buyer, id) in &shed {
        let order = buyer.pay(id, "tok_visa", None).await.expect("paid");
        assert_eq!(order.status, "confirmed");
    }
    assert_eq!(
        taken(&app.seat_statuses(&flight).await),
        10,
        "the refused booking took a seat"
    );
    for (buyer, id) in &orders {
        let order = buyer.order(id).await.expect("order");
        assert_eq!(order.status, "confirmed");
        assert_eq!(order.tickets.len(), 1);
    }
}

/// Orders and tickets written by earlier builds, which listed them through an index of their
/// own (`user_order/…`, `user_ticket/…`) and whose ids need not carry the customer's tag, are
/// still listed and readable next to new ones (which have no index entry).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_and_tickets_indexed_by_earlier_builds_are_still_listed() {
    use contrail::domain::ids::{OrderId, TicketId, UserId};
    use contrail::domain::order::{Order as Stored, TicketRecord};
    use contrail::persistence::{Store, WriteBatch, keys};

    let mut app = spawn_app().await;
    let (flight, customer) = flight_and_customer(&app).await;
    let new = book(&customer, &[&flight], 1).await.id;
    customer.pay(&new, "tok_visa", None).await.expect("paid");
    let user = UserId::parse(&customer.me().await.expect("me").id).expect("user id");
    let node = app.node.take().expect("node");
    node.shutdown().await.expect("shutdown");
    let old = {
        let store = Store::open(&app.data_dir()).expect("open");
        let new = OrderId::parse(&new).expect("order id");
        let mut order: Stored = store.get(&keys::order(&new)).expect("read").expect("order");
        let mut ticket: TicketRecord = store
            .get(&keys::ticket(&order.tickets[0]))
            .expect("read")
            .expect("ticket");
        // The same purchase as an earlier build wrote it: ids under a tag of their own, an
        // hour older, indexed.
        order.id = OrderId::generate();
        order.created_at -= chrono::Duration::hours(1);
        ticket.id = TicketId::generate();
        ticket.order_id = order.id.clone();
        ticket.issued_at -= chrono::Duration::hours(1);
        order.tickets = vec![ticket.id.clone()];
        assert_ne!(order.id.tag(), user.tag());
        let mut batch = WriteBatch::new();
        let created = order.created_at.timestamp_millis();
        batch.put(&keys::order(&order.id), &order).expect("put");
        batch
            .put(&keys::order_of(&user, created, &order.id), &order.id)
            .expect("put");
        batch.put(&keys::ticket(&ticket.id), &ticket).expect("put");
        batch
            .put(&keys::ticket_of(&user, &ticket.id), &ticket.id)
            .expect("put");
        store.commit(batch).expect("commit").await.expect("durable");
        (order.id.to_string(), ticket.id.to_string())
    };
    app.restart().await;
    let customer = app.signed_as(&customer);
    let orders = customer.orders().await.expect("orders");
    let ids: Vec<&str> = orders.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(ids, vec![new.as_str(), old.0.as_str()], "newest first");
    assert_eq!(orders[1].tickets.len(), 1);
    let tickets = customer.tickets().await.expect("tickets");
    let ids: Vec<&str> = tickets.iter().map(|t| t.order_id.as_str()).collect();
    assert_eq!(ids, vec![new.as_str(), old.0.as_str()], "newest first");
    let read = customer.order(&old.0).await.expect("the old order by id");
    assert_eq!(read.status, "confirmed");
    customer.ticket(&old.1).await.expect("the old ticket by id");
}
