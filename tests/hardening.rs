//! Attacks on a running node, each refused: sign-in protection that cannot be turned against the
//! account's owner, password spraying, a flood of sign-ins that must not queue without bound.

mod helpers;

use contrail_client::{Client, Error, NewOrder, Passenger, SegmentRequest, Signup};
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
    // Every client connects first and all sign in at the same moment: on a busy machine,
    // requests that each still had to open a connection arrived one by one and were all
    // admitted, and the test said nothing about a flood.
    let ready = std::sync::Arc::new(tokio::sync::Barrier::new(64));
    let flood: Vec<_> = (0..64u8)
        .map(|i| {
            let client = client_from(&app, [127, 0, 1, i]);
            let ready = ready.clone();
            tokio::spawn(async move {
                client.health().await.expect("connected");
                ready.wait().await;
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

/// The time series `/metrics` exports (sample lines, not comments).
async fn series(app: &TestApp) -> std::collections::BTreeSet<String> {
    let text = app.api().metrics().await.expect("metrics");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.rsplit_once(' ').map(|(name, _)| name.to_owned()))
        .collect()
}

/// Random requests: paths no route has, with standard and made-up methods.
async fn stray_requests(app: &TestApp, count: usize, seed: u64) {
    use futures::StreamExt;
    let methods = [
        "GET",
        "POST",
        "PUT",
        "DELETE",
        "PATCH",
        "BREW",
        "X-PROPFIND",
        "OPTIONS",
    ];
    let http = reqwest::Client::new();
    futures::stream::iter(0..count)
        .for_each_concurrent(32, |i| {
            let method =
                reqwest::Method::from_bytes(methods[i % methods.len()].as_bytes()).expect("method");
            let path = format!(
                "{}/{:x}/api/{}/v{i}",
                app.base,
                seed.wrapping_mul(i as u64 + 1),
                i % 97
            );
            let http = http.clone();
            async move {
                let response = http.request(method, &path).send().await.expect("answered");
                assert!(
                    response.status().is_client_error(),
                    "{path}: {}",
                    response.status()
                );
            }
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_thousand_random_paths_leave_the_metric_series_unchanged() {
    let app = spawn_app().await;
    // Every method once, so that the labels a stray request can produce exist.
    stray_requests(&app, 16, 7).await;
    let before = series(&app).await;
    stray_requests(&app, 3_000, 0x9e37_79b9_7f4a_7c15).await;
    let after = series(&app).await;
    let new: Vec<_> = after.difference(&before).collect();
    assert!(new.is_empty(), "stray requests created series: {new:?}");
    assert!(
        after
            .iter()
            .any(|s| s.contains("route=\"unmatched\"") && s.contains("method=\"OTHER\"")),
        "stray requests were not counted under one label"
    );
}

#[tokio::test]
async fn every_metric_has_help_and_type_and_the_process_is_described() {
    let app = spawn_app().await;
    let text = app.api().metrics().await.expect("metrics");
    let mut helped = std::collections::BTreeSet::new();
    let mut typed = std::collections::BTreeSet::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some("#"), Some("HELP"), Some(name)) => {
                helped.insert(name.to_owned());
            }
            (Some("#"), Some("TYPE"), Some(name)) => {
                typed.insert(name.to_owned());
            }
            _ => {}
        }
    }
    assert!(!typed.is_empty(), "{text}");
    let missing: Vec<_> = typed.difference(&helped).collect();
    assert!(missing.is_empty(), "metrics without # HELP: {missing:?}");
    for name in [
        "contrail_build_info",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(name)),
            "{name} missing:\n{text}"
        );
    }
}

#[tokio::test]
async fn a_405_names_the_allowed_methods_and_has_the_error_shape() {
    let app = spawn_app().await;
    for (method, path, allow) in [
        (reqwest::Method::DELETE, "/api/v1/flights", "GET, POST"),
        (reqwest::Method::GET, "/api/v1/orders/ord_x/pay", "POST"),
        (reqwest::Method::PUT, "/healthz", "GET"),
    ] {
        let response = app
            .api()
            .request(method.clone(), path)
            .send()
            .await
            .expect("sent");
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        let header = response.headers().get("allow").cloned();
        assert_eq!(
            header.as_ref().and_then(|v| v.to_str().ok()),
            Some(allow),
            "{method} {path}"
        );
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(body["error"]["code"], "method_not_allowed");
    }
}

/// A token with these claims, signed with `secret`.
fn forge(secret: &str, claims: serde_json::Value) -> String {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("encode")
}

#[tokio::test]
async fn forged_tokens_are_refused_whatever_their_claims_say() {
    let app = spawn_app().await;
    let admin = app.signed_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let id = admin.me().await.expect("me").id;
    let now = chrono::Utc::now().timestamp();
    let year_3000 = 32_503_680_000_i64;
    let claims = |iss: &str, aud: &str, iat: i64, exp: i64| serde_json::json!({"sub": id, "iss": iss, "aud": aud, "iat": iat, "exp": exp, "roles": ["admin"]});
    // The control: a well-formed token signed with the node's own key is accepted.
    let good = forge(SECRET, claims("contrail", "contrail-api", now, now + 600));
    admin.with_token(&good).me().await.expect("a valid token");
    for (what, token) in [
        (
            "signed with the published development secret",
            forge(
                contrail::settings::DEV_JWT_SECRET,
                claims("contrail", "contrail-api", now, year_3000),
            ),
        ),
        (
            "another issuer",
            forge(
                SECRET,
                claims("someone-else", "contrail-api", now, now + 600),
            ),
        ),
        (
            "another audience",
            forge(SECRET, claims("contrail", "billing", now, now + 600)),
        ),
        (
            "older than the token lifetime, expiring in the year 3000",
            forge(
                SECRET,
                claims("contrail", "contrail-api", now - 7 * 86_400, year_3000),
            ),
        ),
        (
            "issued in the future",
            forge(
                SECRET,
                claims("contrail", "contrail-api", now + 3_600, now + 4_000),
            ),
        ),
    ] {
        match admin.with_token(&token).me().await {
            Err(Error::Api {
                status,
                code,
                message,
                ..
            }) => {
                assert_eq!(
                    (status, code.as_str()),
                    (StatusCode::UNAUTHORIZED, "unauthorized"),
                    "{what}"
                );
                assert!(
                    !message.contains("InvalidSignature") && !message.contains("ErrorKind"),
                    "{what}: the 401 exposes the JWT library: {message}"
                );
            }
            other => panic!("{what}: accepted ({:?})", other.map(|_| ())),
        }
    }
}

#[test]
fn the_binary_refuses_published_secrets_outside_development_mode() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_contrail"))
        .args([
            "serve",
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml"),
        ])
        .env("CONTRAIL__MODE", "production")
        .env("CONTRAIL__HTTP__BIND", "127.0.0.1:0")
        .env(
            "CONTRAIL__STORAGE__PATH",
            tempfile::tempdir().expect("dir").path(),
        )
        .output()
        .expect("the binary ran");
    assert!(
        !output.status.success(),
        "a production node started with the development secret"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("auth.jwt_secret is the development secret"),
        "unclear refusal: {stderr}"
    );
}

#[test]
fn the_data_directory_and_its_files_are_private_to_the_node() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().expect("dir");
    let data = root.path().join("data");
    let server = helpers::binary::Server::start(&data);
    let _ = server.base.clone();
    let mut checked = 0;
    let mut pending = vec![data.clone()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::metadata(&path).expect("metadata");
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_dir() {
            assert_eq!(mode, 0o700, "{} is {mode:o}", path.display());
            pending.extend(
                std::fs::read_dir(&path)
                    .expect("dir")
                    .map(|e| e.expect("entry").path()),
            );
        } else {
            assert_eq!(mode & 0o077, 0, "{} is {mode:o}", path.display());
            checked += 1;
        }
    }
    assert!(checked > 0, "the node wrote no files");
    drop(server);
}

/// A new account made an airline account of `carrier` by the admin; its signed-in client.
async fn airline(app: &TestApp, admin: &Client, carrier: &str) -> Client {
    let email = format!("ops-{}@{}.example.com", uuid_like(), carrier.to_lowercase());
    let account = app
        .api()
        .signup(&Signup {
            email: email.clone(),
            password: "airline-ops-password".into(),
            name: format!("{carrier} operations"),
        })
        .await
        .expect("signup");
    let account = admin
        .set_airline(&account.id, carrier)
        .await
        .expect("airline");
    assert_eq!(account.carrier.as_deref(), Some(carrier));
    app.signed_in(&email, "airline-ops-password").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn airline_a_cannot_cancel_or_schedule_airline_b_flights() {
    let app = spawn_app().await;
    let (admin, ct_flight) = app.one_flight(5, "ABCD").await; // flight CT1
    let ct = airline(&app, &admin, "CT").await;
    let ai = airline(&app, &admin, "AI").await;
    let (_, customer) = app.customer().await;
    let booked = book(&customer, &[&ct_flight], 1).await;

    // AI cannot cancel CT's flight: 403, and nothing changed.
    let refused = ai
        .cancel_flight(&ct_flight)
        .await
        .expect_err("AI cancelled CT1");
    assert_eq!(refused.status(), Some(StatusCode::FORBIDDEN));
    assert_eq!(refused.code(), Some("forbidden"));
    assert_eq!(
        ai.flight(&ct_flight).await.expect("flight").status,
        "scheduled"
    );
    assert_eq!(
        customer.order(&booked.id).await.expect("order").status,
        "held"
    );

    // Nor schedule a flight under CT's code; it may schedule its own.
    let aircraft = admin
        .create_aircraft(&contrail_client::NewAircraft {
            model: "A320".into(),
            cabins: vec![contrail_client::CabinLayout {
                cabin: "economy".into(),
                rows: [1, 2],
                seats: "AB".into(),
            }],
        })
        .await
        .expect("aircraft");
    let departs = chrono::Utc::now() + chrono::Duration::days(30);
    let flight = |number: &str| contrail_client::NewFlight {
        flight_number: number.into(),
        aircraft_id: aircraft.id.clone(),
        origin: "DEL".into(),
        destination: "BOM".into(),
        departs_at: departs,
        arrives_at: departs + chrono::Duration::minutes(120),
        fares: [("economy".to_owned(), 5_000)].into(),
        currency: "USD".into(),
    };
    let refused = ai
        .create_flight(&flight("CT999"))
        .await
        .expect_err("AI scheduled CT999");
    assert_eq!(refused.status(), Some(StatusCode::FORBIDDEN));
    let own = ai
        .create_flight(&flight("AI202"))
        .await
        .expect("AI schedules AI202");
    ai.cancel_flight(&own.id)
        .await
        .expect("AI cancels its own flight");

    // The carrier's own account, and an admin, may cancel CT1.
    let cancelled = ct.cancel_flight(&ct_flight).await.expect("CT cancels CT1");
    assert_eq!(cancelled.status, "cancelled");
    let order = customer.order(&booked.id).await.expect("order");
    assert_ne!(order.status, "held", "the cascade did not reach the order");
}

#[tokio::test]
async fn a_disabled_account_loses_its_tokens_at_once_and_cannot_sign_in() {
    let app = spawn_app().await;
    let admin = app.signed_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (id, customer) = app.customer().await;
    let me = customer.me().await.expect("me");
    customer.orders().await.expect("orders");

    let disabled = admin.set_disabled(&id, true).await.expect("disable");
    assert!(disabled.disabled);
    let refused = customer
        .orders()
        .await
        .expect_err("a disabled account's token worked");
    assert_eq!(refused.status(), Some(StatusCode::UNAUTHORIZED));
    let refused = app
        .api()
        .signin(&me.email, "customer-password")
        .await
        .expect_err("a disabled account signed in");
    assert_eq!(
        (refused.status(), refused.code()),
        (Some(StatusCode::FORBIDDEN), Some("account_disabled"))
    );
    // Only an admin disables, and not itself.
    let other = app.customer().await.1;
    let refused = other
        .set_disabled(&id, false)
        .await
        .expect_err("customer enabled");
    assert_eq!(refused.status(), Some(StatusCode::FORBIDDEN));
    let admin_id = admin.me().await.expect("me").id;
    let refused = admin
        .set_disabled(&admin_id, true)
        .await
        .expect_err("admin disabled itself");
    assert_eq!(refused.status(), Some(StatusCode::FORBIDDEN));
    // Nor can the last admin lock everyone out by dropping their own admin role.
    let refused = admin
        .set_roles(&admin_id, &["customer"])
        .await
        .expect_err("admin demoted itself");
    assert_eq!(refused.status(), Some(StatusCode::FORBIDDEN));
    let roles = admin.me().await.expect("me").roles;
    assert!(roles.iter().any(|r| r == "admin"), "{roles:?}");

    admin.set_disabled(&id, false).await.expect("enable");
    app.api()
        .signin(&me.email, "customer-password")
        .await
        .expect("enabled again");
}

#[tokio::test]
async fn changing_the_password_ends_every_earlier_session() {
    let app = spawn_app().await;
    let (_, before) = app.customer().await;
    let email = before.me().await.expect("me").email;
    // No pause: a token issued in the same second as the change, before it, is refused too.
    let refused = before
        .change_password("not-the-password", "a-brand-new-password")
        .await
        .expect_err("changed without the current password");
    assert_eq!(refused.status(), Some(StatusCode::UNAUTHORIZED));
    let fresh = before
        .change_password("customer-password", "a-brand-new-password")
        .await
        .expect("changed");
    let refused = before.me().await.expect_err("the old token still works");
    assert_eq!(refused.status(), Some(StatusCode::UNAUTHORIZED));
    app.api()
        .with_token(&fresh.token)
        .me()
        .await
        .expect("the new token works");
    let refused = app
        .api()
        .signin(&email, "customer-password")
        .await
        .expect_err("old password");
    assert_eq!(refused.status(), Some(StatusCode::UNAUTHORIZED));
    app.api()
        .signin(&email, "a-brand-new-password")
        .await
        .expect("new password");
}

#[tokio::test]
async fn responses_are_never_sniffed_and_tokens_never_cached() {
    let app = spawn_app().await;
    let signin = app
        .api()
        .request(reqwest::Method::POST, "/api/v1/auth/signin")
        .json(&serde_json::json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .expect("sent");
    assert_eq!(signin.status(), StatusCode::OK);
    assert_eq!(header(&signin, "cache-control"), Some("no-store"));
    assert_eq!(header(&signin, "x-content-type-options"), Some("nosniff"));
    for path in ["/healthz", "/api/v1/flights", "/no/such/page"] {
        let response = app
            .api()
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .expect("sent");
        assert_eq!(
            header(&response, "x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
    }
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    app.api()
        .request(reqwest::Method::OPTIONS, "/api/v1/orders")
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .expect("sent")
}

#[tokio::test]
async fn cross_origin_access_is_off_by_default_and_limited_to_the_allow_list() {
    let closed = spawn_app().await;
    let response = preflight(&closed, "https://app.example.com").await;
    assert!(!response.status().is_success(), "{}", response.status());
    assert_eq!(header(&response, "access-control-allow-origin"), None);

    let open =
        spawn_app_with(|s| s.http.cors_origins = vec!["https://app.example.com".into()]).await;
    let response = preflight(&open, "https://app.example.com").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        header(&response, "access-control-allow-origin"),
        Some("https://app.example.com")
    );
    let response = preflight(&open, "https://evil.example.net").await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(header(&response, "access-control-allow-origin"), None);
    let body: serde_json::Value = response.json().await.expect("error json");
    assert_eq!(body["error"]["code"], "forbidden");
    // A simple request from an allowed origin is answered with the header.
    let response = open
        .api()
        .request(reqwest::Method::GET, "/api/v1/flights")
        .header("origin", "https://app.example.com")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        header(&response, "access-control-allow-origin"),
        Some("https://app.example.com")
    );
}

/// Text logs keep one event per line: a seat name carrying a newline and a terminal escape,
/// quoted back in the refusal that is logged, cannot start a forged line or colour the
/// operator's terminal. Checked on the real binary's standard output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_input_cannot_forge_a_line_in_the_text_log() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().expect("dir");
    let port = binary::free_port();
    let mut node = Command::new(env!("CARGO_BIN_EXE_contrail"))
        .args([
            "serve",
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml"),
        ])
        .env("CONTRAIL__STORAGE__PATH", dir.path().join("data"))
        .env("CONTRAIL__HTTP__BIND", format!("127.0.0.1:{port}"))
        .env("CONTRAIL__AUTH__ADMIN_EMAIL", ADMIN_EMAIL)
        .env("CONTRAIL__AUTH__ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("CONTRAIL__LOG__FORMAT", "text")
        .env("RUST_LOG", "warn,contrail=debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("contrail starts");
    let stdout = node.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    let app = client_of(&format!("http://127.0.0.1:{port}"));
    let api = app.api();
    let up = eventually(std::time::Duration::from_secs(60), || async {
        api.health().await.is_ok()
    })
    .await;
    assert!(up, "the node never answered");
    let (_, customer) = app.customer().await;
    let forged = "12A\n2026-01-01T00:00:00.000000Z ERROR forged: admin password is hunter2\x1b[2J";
    let order = NewOrder {
        segments: vec![SegmentRequest::named(
            "flt_00000000000000000000000000000000",
            &[forged],
        )],
        passengers: vec![Passenger { name: "Ada".into() }],
    };
    let refused = customer
        .place_order(&order, None)
        .await
        .expect_err("refused");
    assert_eq!(refused.status(), Some(StatusCode::BAD_REQUEST));
    let _ = node.kill();
    let _ = node.wait();
    let lines = reader.join().expect("log reader");

    let refusal: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("request refused"))
        .collect();
    assert_eq!(
        refusal.len(),
        1,
        "the refusal is logged once, on one line: {lines:#?}"
    );
    assert!(
        refusal[0].contains("\\n2026-01-01T00:00:00.000000Z ERROR forged")
            && refusal[0].contains("\\u{1b}[2J"),
        "the newline and the escape are written escaped: {}",
        refusal[0]
    );
    let mentions = lines.iter().filter(|l| l.contains("forged")).count();
    assert_eq!(mentions, 1, "{lines:#?}");
    for line in &lines {
        assert!(
            !line.contains('\x1b'),
            "a raw escape reached the log: {line:?}"
        );
        assert!(
            line.starts_with(|c: char| c.is_ascii_digit())
                && !line.starts_with("2026-01-01T00:00:00.000000Z"),
            "a line that is not an event of the node's own: {line:?}"
        );
    }
}

/// Malformed requests. What the HTTP parser (hyper, beneath warp) cannot parse — a bad
/// `Content-Length`, a header line without a colon, a broken request line — gets hyper's bare
/// 400 and a closed connection: no handler runs, nothing is applied, and the node keeps
/// serving. Everything that parses, however odd its header values, gets the error JSON.
#[tokio::test]
async fn malformed_requests_get_a_400_and_change_nothing() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let addr = app.node().http_addr();
    let admin = app.admin_token().await;
    let body = r#"{"code":"MAL","name":"M","city":"M","country":"M"}"#;
    let unparsable = [
        format!(
            "POST /api/v1/airports HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {admin}\r\ncontent-type: application/json\r\ncontent-length: abc\r\n\r\n{body}"
        ),
        format!(
            "POST /api/v1/airports HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {admin}\r\nno colon here\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        ),
        format!(
            "POST /api/v1/airports HTTP/1.1 extra\r\nhost: x\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        ),
    ];
    for request in unparsable {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut response = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            stream.read_to_end(&mut response),
        )
        .await;
        assert!(read.is_ok(), "the connection was left hanging: {request:?}");
        let text = String::from_utf8_lossy(&response);
        assert!(text.starts_with("HTTP/1.1 400"), "{request:?} -> {text}");
    }
    // A header value warp sees but we refuse: the error JSON.
    let key = reqwest::header::HeaderValue::from_bytes(b"caf\xe9-key").expect("opaque bytes");
    let r = app
        .client
        .post(format!("{}/api/v1/orders", app.base))
        .bearer_auth(&admin)
        .header("idempotency-key", key)
        .json(&serde_json::json!({"segments": [], "passengers": []}))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let error: serde_json::Value = r.json().await.expect("the error JSON");
    assert_eq!(error["error"]["code"], "invalid_request");
    // Nothing was applied, and the node still serves.
    assert_eq!(app.api().airports().await.expect("airports"), vec![]);
}
