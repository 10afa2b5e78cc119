//! The supervision tree: every long-lived actor of a node sits under the root supervisor,
//! which restarts it when it panics; the node keeps serving everything it serves.

mod helpers;

use contrail_client::Search;
use helpers::{eventually, spawn_app};
use reqwest::StatusCode;
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;

/// What a single node's root supervises.
const CHILDREN: [&str; 9] = [
    "gateway",
    "search_index",
    "payments",
    "notifications",
    "accounts",
    "flights",
    "catalog",
    "tickets",
    "orders",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_supervised_actor_restarts_after_a_panic_and_the_node_keeps_serving() {
    let app = spawn_app().await;
    let (admin, flight) = app.one_flight(10, "ABCDEF").await;
    let children = app.node().supervised().await.expect("root answers");
    let names: BTreeSet<&str> = children.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, CHILDREN.into_iter().collect(), "the tree as built");
    assert!(
        children.iter().all(|(_, cell)| cell.is_some()),
        "all running"
    );
    // Everything works before any fault.
    serves(&app, &admin, &flight, 0).await;

    for (round, name) in CHILDREN.iter().enumerate() {
        let before = cell_id(&app, name).await.expect("running");
        app.node().inject_panic(name);
        let restarted = eventually(Duration::from_secs(10), || async {
            cell_id(&app, name).await.is_some_and(|id| id != before)
        })
        .await;
        assert!(restarted, "{name} was not restarted after its panic");
        serves(&app, &admin, &flight, round + 1).await;
    }
}

/// The id of the running incarnation of the root's child `name`.
async fn cell_id(app: &helpers::TestApp, name: &str) -> Option<ractor::ActorId> {
    let children = app.node().supervised().await.ok()?;
    children
        .into_iter()
        .find(|(n, _)| *n == name)
        .and_then(|(_, cell)| cell)
        .map(|cell| cell.get_id())
}

/// Exercises every supervised actor through the API: a signup (accounts), an airport
/// (catalog), a booking and its payment (orders, flights, payments, tickets), the
/// confirmation (notifications) and the seat count in search results (search index). (On a node
/// without a cluster the gateway serves nothing: its round checks that it is back.)
async fn serves(app: &helpers::TestApp, admin: &str, flight: &str, round: usize) {
    let (_, customer) = app.customer().await;
    let code = format!(
        "Q{}{}",
        (b'A' + (round / 26) as u8) as char,
        (b'A' + (round % 26) as u8) as char
    );
    let r = app
        .post(
            "/api/v1/airports",
            Some(admin),
            json!({"code": code, "name": "Test", "city": "City", "country": "IN"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "airport {code}: {}", r.body);

    let before = indexed_available(app, flight)
        .await
        .expect("the flight is in search");
    let placed = app.order(&customer, &[flight], 1, None).await;
    assert_eq!(placed.status, StatusCode::CREATED, "order: {}", placed.body);
    let order = placed.body["id"].as_str().expect("order id").to_owned();
    let paid = app.pay(&customer, &order, "tok_visa", None).await;
    assert_eq!(paid.status, StatusCode::OK, "pay: {}", paid.body);
    let tickets = paid.body["tickets"].as_array().map_or(0, Vec::len);
    assert_eq!(tickets, 1, "one ticket issued: {}", paid.body);

    let me = app.api().with_token(&customer);
    let confirmed = eventually(Duration::from_secs(10), || async {
        me.notifications()
            .await
            .is_ok_and(|list| list.iter().any(|n| n.order_id == order))
    })
    .await;
    assert!(confirmed, "the confirmation of {order} was recorded");
    let indexed = eventually(Duration::from_secs(10), || async {
        indexed_available(app, flight)
            .await
            .is_some_and(|now| now < before)
    })
    .await;
    assert!(indexed, "search shows the seat taken");
}

/// Economy seats left on `flight` in search results (the search index actor's read model; a
/// flight's own page is answered by its actor).
async fn indexed_available(app: &helpers::TestApp, flight: &str) -> Option<u32> {
    let search = Search {
        origin: Some("DEL".into()),
        destination: Some("BOM".into()),
        limit: Some(50),
        ..Search::default()
    };
    let page = app.api().search(&search).await.ok()?;
    let found = page.flights.into_iter().find(|f| f.id == flight)?;
    found.availability.get("economy").map(|a| a.available)
}
