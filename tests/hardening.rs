//! Attacks on a running node, each refused: sign-in protection that cannot be turned against the
//! account's owner, password spraying, a flood of sign-ins that must not queue without bound.

mod helpers;

use contrail_client::{Client, Error, Signup};
use helpers::*;
use reqwest::StatusCode;
use std::net::{IpAddr, Ipv4Addr};

/// A client whose connections come from `address` (any 127.0.0.0/8 address is this host).
fn client_from(app: &TestApp, address: [u8; 4]) -> Client {
    let http = reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::from(address)))
        .build()
        .expect("client");
    Client::with_http(&app.base, http)
}

fn status(result: Result<impl Sized, Error>) -> StatusCode {
    match result {
        Ok(_) => StatusCode::OK,
        Err(e) => e.status().unwrap_or_else(|| panic!("no answer: {e}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_signs_in_while_another_address_fails_a_hundred_times() {
    let app = spawn_app().await;
    let attacker = client_from(&app, [127, 0, 0, 2]);
    let admin = client_from(&app, [127, 0, 0, 1]);
    let mut refused_early = 0;
    for i in 0..100 {
        match attacker
            .signin(ADMIN_EMAIL, &format!("guess-{i}-wrong"))
            .await
        {
            Err(Error::Api {
                status: StatusCode::TOO_MANY_REQUESTS,
                retry_after,
                ..
            }) => {
                assert!(
                    retry_after.is_some_and(|s| s > 0),
                    "429 without Retry-After"
                );
                refused_early += 1;
            }
            Err(Error::Api {
                status: StatusCode::UNAUTHORIZED,
                ..
            }) => {}
            other => panic!("a guess got {:?}", other.map(|_| ())),
        }
    }
    assert!(
        refused_early >= 90,
        "guessing was not limited: {refused_early} refused"
    );
    // The attacker's own address is refused even the right password…
    assert_eq!(
        status(attacker.signin(ADMIN_EMAIL, ADMIN_PASSWORD).await),
        StatusCode::TOO_MANY_REQUESTS
    );
    // …but the owner, from their own address, is never locked out by someone else's failures.
    let token = admin
        .signin(ADMIN_EMAIL, ADMIN_PASSWORD)
        .await
        .expect("the admin signs in");
    let me = admin.with_token(&token.token).me().await.expect("me");
    assert_eq!(me.email, ADMIN_EMAIL);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spraying_one_guess_over_many_accounts_from_one_address_is_limited() {
    let app = spawn_app_with(|s| s.http.signin_failures_per_address_per_minute = 10).await;
    let sprayer = client_from(&app, [127, 0, 0, 3]);
    let mut outcomes = Vec::new();
    for i in 0..25 {
        let email = format!("user{i}@example.com");
        outcomes.push(status(sprayer.signin(&email, "Summer2026!").await));
    }
    let unauthorized = outcomes
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let limited = outcomes
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    // Ten failures fit the address's bucket; the eleventh overflows it and locks the address.
    assert_eq!((unauthorized, limited), (11, 14), "{outcomes:?}");
    // Another address is unaffected.
    let other = client_from(&app, [127, 0, 0, 4]);
    other
        .signin(ADMIN_EMAIL, ADMIN_PASSWORD)
        .await
        .expect("a different address signs in");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_signins_is_refused_with_503_not_queued_without_bound() {
    // A queue of one: with 2 CPUs hashing, at most 3 sign-ins are admitted at a time.
    let app = spawn_app_with(|s| {
        s.auth.hashing_queue = 1;
        s.http.signin_failures_per_minute = 10_000;
        s.http.signin_failures_per_address_per_minute = 10_000;
    })
    .await;
    let flood: Vec<_> = (0..64u8)
        .map(|i| {
            let client = client_from(&app, [127, 0, 1, i]);
            tokio::spawn(async move {
                client
                    .signin(&format!("nobody{i}@example.com"), "wrong-password-123")
                    .await
            })
        })
        .collect();
    let mut busy = 0;
    for task in flood {
        match task.await.expect("task") {
            Err(Error::Api {
                status: StatusCode::SERVICE_UNAVAILABLE,
                retry_after,
                code,
                ..
            }) => {
                assert_eq!(code, "unavailable");
                assert!(retry_after.is_some(), "503 without Retry-After");
                busy += 1;
            }
            Err(Error::Api {
                status: StatusCode::UNAUTHORIZED,
                ..
            }) => {}
            other => panic!("a flooding sign-in got {:?}", other.map(|_| ())),
        }
    }
    assert!(
        busy > 0,
        "64 concurrent sign-ins all queued for a hashing slot"
    );
    // Once the flood has drained, a real sign-in is served.
    let customer = app.api();
    customer
        .signup(&Signup {
            email: "real@example.com".into(),
            password: "a-real-long-password".into(),
            name: "Real".into(),
        })
        .await
        .expect("signup");
    customer
        .signin("real@example.com", "a-real-long-password")
        .await
        .expect("signin after the flood");
}
