//! The supervision tree: every long-lived actor of a node sits under the root supervisor,
//! which restarts it when it panics; the node keeps serving everything it serves.

mod helpers;

use contrail_client::{Airport, Client, Search};
use helpers::{eventually, spawn_app};
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
async fn serves(app: &helpers::TestApp, admin: &Client, flight: &str, round: usize) {
    let (_, customer) = app.customer().await;
    let code = format!(
        "Q{}{}",
        (b'A' + (round / 26) as u8) as char,
        (b'A' + (round % 26) as u8) as char
    );
    let airport = Airport {
        code: code.clone(),
        name: "Test".into(),
        city: "City".into(),
        country: "IN".into(),
    };
    let created = admin.create_airport(&airport).await;
    created.unwrap_or_else(|e| panic!("airport {code}: {e}"));

    let before = indexed_available(app, flight)
        .await
        .expect("the flight is in search");
    let order = helpers::book(&customer, &[flight], 1).await.id;
    let paid = customer.pay(&order, "tok_visa", None).await;
    let paid = paid.unwrap_or_else(|e| panic!("pay: {e}"));
    assert_eq!(paid.tickets.len(), 1, "one ticket issued: {paid:?}");

    let confirmed = eventually(Duration::from_secs(10), || async {
        customer
            .notifications()
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
