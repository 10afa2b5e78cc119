//! Durability of the real `contrail` binary: a kill -9 in the middle of load loses nothing that
//! was acknowledged, a graceful restart keeps everything, SIGTERM exits cleanly.

mod helpers;

use helpers::binary::Server;
use helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, TestApp, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

async fn post(
    client: &reqwest::Client,
    url: String,
    token: Option<&str>,
    body: Value,
) -> Option<(StatusCode, Value)> {
    let mut req = client.post(url).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.ok()?;
    let status = resp.status();
    Some((status, resp.json().await.ok()?))
}

async fn admin_token(client: &reqwest::Client, base: &str) -> String {
    let api = contrail_client::Client::with_http(base, client.clone());
    let token = api.signin(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    token.expect("admin signs in").token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().expect("dir");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let server = Server::start(dir.path());
    let base = server.base.clone();
    let admin = admin_token(&client, &base).await;
    for code in ["DEL", "BOM"] {
        post(
            &client,
            format!("{base}/api/v1/airports"),
            Some(&admin),
            json!({"code": code, "name": "n", "city": "c", "country": "IN"}),
        )
        .await;
    }
    let (_, aircraft) = post(
        &client,
        format!("{base}/api/v1/aircraft"),
        Some(&admin),
        json!({"model": "A320", "cabins": [{"cabin": "economy", "rows": [1, 20], "seats": "ABCDEF"}]}),
    )
    .await
    .expect("aircraft");
    let aircraft = aircraft["id"].as_str().expect("id").to_owned();

    // Many clients write until the process is killed; record what was acknowledged.
    let acked_users = Arc::new(Mutex::new(Vec::<String>::new()));
    let acked_flights = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut writers = Vec::new();
    for w in 0..12 {
        let (client, base, admin, aircraft) = (
            client.clone(),
            base.clone(),
            admin.clone(),
            aircraft.clone(),
        );
        let (users, flights) = (acked_users.clone(), acked_flights.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..200 {
                if w % 3 == 0 {
                    let body = TestApp::flight_body(
                        &aircraft,
                        "DEL",
                        "BOM",
                        "2031-06-01T10:00:00Z",
                        100 + i,
                        1000 + i as u64,
                    );
                    match post(
                        &client,
                        format!("{base}/api/v1/flights"),
                        Some(&admin),
                        body,
                    )
                    .await
                    {
                        Some((StatusCode::CREATED, v)) => flights
                            .lock()
                            .expect("lock")
                            .push(v["id"].as_str().unwrap_or_default().to_owned()),
                        Some(_) => {}
                        None => return, // the server is gone
                    }
                } else {
                    let email = format!("w{w}-{i}@example.com");
                    let body = json!({"email": email, "password": "password-123", "name": "Load"});
                    match post(&client, format!("{base}/api/v1/auth/signup"), None, body).await {
                        Some((StatusCode::CREATED, _)) => users.lock().expect("lock").push(email),
                        Some(_) => {}
                        None => return,
                    }
                }
            }
        }));
    }
    // Kill once a fair amount has been acknowledged, while writers are still busy.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while acked_users.lock().expect("lock").len() + acked_flights.lock().expect("lock").len() < 60
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill9();
    for w in writers {
        let _ = tokio::time::timeout(Duration::from_secs(30), w).await;
    }
    let users = acked_users.lock().expect("lock").clone();
    let flights = acked_flights.lock().expect("lock").clone();
    assert!(
        users.len() + flights.len() >= 60,
        "too little was acknowledged to prove anything"
    );

    let server = Server::start(dir.path());
    let base = server.base.clone();
    for email in &users {
        let (status, _) = post(
            &client,
            format!("{base}/api/v1/auth/signin"),
            None,
            json!({"email": email, "password": "password-123"}),
        )
        .await
        .expect("signin");
        assert_eq!(
            status,
            StatusCode::OK,
            "acknowledged signup {email} was lost"
        );
    }
    for id in &flights {
        let resp = client
            .get(format!("{base}/api/v1/flights/{id}"))
            .send()
            .await
            .expect("get");
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "acknowledged flight {id} was lost"
        );
    }
    let search: Value = client
        .get(format!(
            "{base}/api/v1/flights?origin=DEL&destination=BOM&limit=100"
        ))
        .send()
        .await
        .expect("search")
        .json()
        .await
        .expect("json");
    assert!(search["flights"].as_array().map_or(0, Vec::len) >= flights.len().min(100));
    server.kill9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_down_cleanly() {
    let dir = tempfile::tempdir().expect("dir");
    let mut server = Server::start(dir.path());
    let client = reqwest::Client::new();
    assert_eq!(
        client
            .get(format!("{}/readyz", server.base))
            .send()
            .await
            .expect("ready")
            .status(),
        StatusCode::OK
    );
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || server.child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(exit.success(), "exit status {exit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_users_airports_aircraft_and_flights() {
    let mut app = spawn_app().await;
    let (admin, flight) = app.one_flight(5, "AB").await;
    let email = "keep@example.com";
    assert_eq!(
        app.signup(email, "password-keep").await.status,
        StatusCode::CREATED
    );
    let before_flight = app
        .get(&format!("/api/v1/flights/{flight}"), None)
        .await
        .body;
    let before_airports = app.get("/api/v1/airports", None).await.body;
    let aircraft = before_flight["aircraft_id"]
        .as_str()
        .expect("aircraft")
        .to_owned();

    app.restart().await;

    assert_eq!(
        app.signin(email, "password-keep").await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.get("/api/v1/airports", None).await.body,
        before_airports
    );
    assert_eq!(
        app.get(&format!("/api/v1/flights/{flight}"), None)
            .await
            .body,
        before_flight
    );
    let found = app
        .get("/api/v1/flights?origin=DEL&destination=BOM", None)
        .await;
    assert_eq!(found.body["flights"][0]["id"], flight.as_str());
    // The aircraft survived too: a new flight can use it.
    let admin2 = app.admin_token().await;
    let body = TestApp::flight_body(&aircraft, "DEL", "BOM", "2031-04-01T08:00:00Z", 60, 100);
    app.flight(&admin2, body).await;
    drop(admin);
}
