//! A data directory of the sled-era Contrail, made from a real node's records, is converted
//! with every record: accounts, catalog, a held and a paid order with its ticket, the seats.

use contrail::settings::Settings;
use contrail::startup::{self, Node};
use contrail_client::{Client, NewOrder, Passenger, SegmentRequest, seed};
use secrecy::SecretString;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

const ADMIN_EMAIL: &str = "admin@test.local";
const ADMIN_PASSWORD: &str = "admin-password-1";

async fn start_node(dir: &Path) -> (Node, Client) {
    let mut s = Settings::default();
    s.http.bind = "127.0.0.1:0".parse().expect("addr");
    s.storage.path = dir.to_path_buf();
    s.auth.jwt_secret = Some(SecretString::from("migration-test-secret-0123456789abcdef"));
    s.auth.admin_email = Some(ADMIN_EMAIL.into());
    s.auth.admin_password = Some(SecretString::from(ADMIN_PASSWORD));
    let node = startup::start(s).await.expect("node starts");
    let api = Client::new(&format!("http://{}", node.http_addr()));
    (node, api)
}

async fn signed_in(api: &Client, email: &str, password: &str) -> Client {
    let token = seed::patiently(|| api.signin(email, password)).await;
    api.with_token(&token.expect("signed in").token)
}

async fn seats(api: &Client, flight: &str) -> BTreeMap<String, String> {
    let seats = api.seats(flight).await.expect("seats");
    seats.into_iter().map(|s| (s.seat, s.status)).collect()
}

/// Copies every record of the store at `from` into a new sled database at `to`, as the
/// sled-era Contrail kept them.
fn write_as_sled(from: &Path, to: &Path) -> usize {
    let store = contrail::persistence::Store::open(from).expect("store");
    let sled = sled::open(to).expect("sled");
    let mut n = 0;
    for entry in store.raw_entries() {
        let (key, value) = entry.expect("record");
        sled.insert(key.as_bytes(), value).expect("insert");
        n += 1;
    }
    sled.flush().expect("flush");
    n
}

fn migrate(dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_contrail-migrate-sled"))
        .arg(dir)
        .output()
        .expect("the converter runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sled_directory_is_converted_with_every_record() {
    let dir = tempfile::tempdir().expect("dir");
    let current = dir.path().join("current");
    let (node, api) = start_node(&current).await;
    let admin = signed_in(&api, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let plan = seed::Plan {
        letters: "ABCD".into(),
        first_departure: "2031-03-01T08:00:00Z".parse().expect("rfc3339"),
        ..seed::Plan::new(1, 5)
    };
    let flight = seed::catalog(&admin, &plan).await.expect("catalog").flights[0].clone();
    let signup = contrail_client::Signup {
        email: "traveller@example.com".into(),
        password: "customer-password".into(),
        name: "Traveller".into(),
    };
    api.signup(&signup).await.expect("signup");
    let customer = signed_in(&api, &signup.email, &signup.password).await;
    let order = |n: usize| NewOrder {
        segments: vec![SegmentRequest::in_cabin(&flight, "economy", n as u16)],
        passengers: (0..n)
            .map(|i| Passenger {
                name: format!("P{i}"),
            })
            .collect(),
    };
    let held = customer
        .place_order(&order(1), None)
        .await
        .expect("held")
        .order;
    let paid = customer
        .place_order(&order(2), None)
        .await
        .expect("held")
        .order;
    customer
        .pay(&paid.id, "tok_visa", None)
        .await
        .expect("paid");
    let before = seats(&api, &flight).await;
    node.shutdown().await.expect("clean shutdown");

    let old = dir.path().join("data");
    let records = write_as_sled(&current, &old);
    assert!(records > 10, "only {records} records");

    let migrated = migrate(&old);
    assert!(
        migrated.status.success(),
        "migration failed: {}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    let said = String::from_utf8_lossy(&migrated.stdout);
    assert!(
        said.contains(&format!("converted {records} records")),
        "{said}"
    );
    assert!(dir.path().join("data.sled-backup").join("conf").is_file());

    // Everything is there: accounts, catalog, both orders, the seats.
    let (node, api) = start_node(&old).await;
    signed_in(&api, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let customer = signed_in(&api, &signup.email, &signup.password).await;
    let orders = customer.orders().await.expect("orders");
    let statuses: Vec<&str> = orders.iter().map(|o| o.status.as_str()).collect();
    assert_eq!(statuses, ["confirmed", "held"], "{orders:?}");
    assert_eq!(held.id, orders[1].id, "{orders:?}");
    assert_eq!(seats(&api, &flight).await, before);
    let ticket = &orders[0].tickets[0].id;
    customer.ticket(ticket).await.expect("the ticket");
    node.shutdown().await.expect("clean shutdown");

    // A second migration of the converted directory is refused and changes nothing.
    let again = migrate(&old);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not a sled data directory"));
}
