//! Durability of the real `contrail` binary: a kill -9 in the middle of load loses nothing that
//! was acknowledged, a graceful restart keeps everything, SIGTERM exits cleanly.

mod helpers;

use contrail_client::{Client, Error, Search, Signup, seed};
use helpers::binary::Server;
use helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, flight, flight_spec, signup, spawn_app};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().expect("dir");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let server = Server::start(dir.path());
    let api = Client::with_http(&server.base, http.clone());
    let token = api.signin(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let admin = api.with_token(&token.expect("admin signs in").token);
    // Airports DEL and BOM and an aircraft of 20×6 seats, no flights yet.
    let aircraft = seed::catalog(&admin, &seed::Plan::new(0, 20)).await;
    let aircraft = aircraft.expect("catalog").aircraft_id;

    // Many clients write until the process is killed; record what was acknowledged.
    let acked_users = Arc::new(Mutex::new(Vec::<String>::new()));
    let acked_flights = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut writers = Vec::new();
    for w in 0..12 {
        let (api, admin, aircraft) = (api.clone(), admin.clone(), aircraft.clone());
        let (users, flights) = (acked_users.clone(), acked_flights.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..200 {
                if w % 3 == 0 {
                    let spec = flight_spec(
                        &aircraft,
                        "DEL",
                        "BOM",
                        "2031-06-01T10:00:00Z",
                        100 + i,
                        1000 + i as u64,
                    );
                    match admin.create_flight(&spec).await {
                        Ok(f) => flights.lock().expect("lock").push(f.id),
                        Err(Error::Transport(_)) => return, // the server is gone
                        Err(_) => {}
                    }
                } else {
                    let signup = Signup {
                        name: "Load".into(),
                        ..signup(&format!("w{w}-{i}@example.com"), "password-123")
                    };
                    match api.signup(&signup).await {
                        Ok(_) => users.lock().expect("lock").push(signup.email),
                        Err(Error::Transport(_)) => return,
                        Err(_) => {}
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
    let api = Client::with_http(&server.base, http);
    for email in &users {
        let signed_in = api.signin(email, "password-123").await;
        signed_in.unwrap_or_else(|e| panic!("acknowledged signup {email} was lost: {e}"));
    }
    for id in &flights {
        let found = api.flight(id).await;
        found.unwrap_or_else(|e| panic!("acknowledged flight {id} was lost: {e}"));
    }
    let search = Search {
        origin: Some("DEL".into()),
        destination: Some("BOM".into()),
        limit: Some(100),
        ..Search::default()
    };
    let found = api.search(&search).await.expect("search");
    assert!(found.flights.len() >= flights.len().min(100));
    server.kill9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_down_cleanly() {
    let dir = tempfile::tempdir().expect("dir");
    let mut server = Server::start(dir.path());
    let node = Client::new(&server.base);
    node.ready().await.expect("ready");
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
    let (_, flight_id) = app.one_flight(5, "AB").await;
    let email = "keep@example.com";
    app.api()
        .signup(&signup(email, "password-keep"))
        .await
        .expect("signed up");
    let before_flight = app.api().flight(&flight_id).await.expect("flight");
    let before_airports = app.api().airports().await.expect("airports");
    let aircraft = before_flight.aircraft_id.clone();

    app.restart().await;

    app.api()
        .signin(email, "password-keep")
        .await
        .expect("signed in");
    assert_eq!(
        app.api().airports().await.expect("airports"),
        before_airports
    );
    assert_eq!(
        app.api().flight(&flight_id).await.expect("flight"),
        before_flight
    );
    let route = Search {
        origin: Some("DEL".into()),
        destination: Some("BOM".into()),
        ..Search::default()
    };
    let found = app.api().search(&route).await.expect("search");
    assert_eq!(found.flights[0].id, flight_id);
    // The aircraft survived too: a new flight can use it.
    let admin = app.admin().await;
    let spec = flight_spec(&aircraft, "DEL", "BOM", "2031-04-01T08:00:00Z", 60, 100);
    flight(&admin, &spec).await;
}
