//! Signup, signin, tokens (including forged ones), roles and rate limits over real HTTP.

mod helpers;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use contrail_client::{Account, Airport, Error};
use helpers::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// The status of an answer that should be an error.
#[track_caller]
fn status_of_error<T: std::fmt::Debug>(result: contrail_client::Result<T>) -> StatusCode {
    let e = result.expect_err("the request succeeded");
    e.status().unwrap_or_else(|| panic!("no answer: {e}"))
}

#[tokio::test]
async fn signup_signin_me_round_trip() {
    let app = spawn_app().await;
    // Raw: the typed reply cannot show that no password hash is on the wire.
    let r = app
        .post(
            "/api/v1/auth/signup",
            None,
            json!({"email": "Ada@Example.com", "password": "lovelace-1815", "name": "Test User"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert!(r.body.get("password_hash").is_none());
    let account: Account = serde_json::from_value(r.body).expect("an account");
    assert_eq!(account.email, "ada@example.com");
    assert_eq!(account.roles, ["customer"]);

    let token = app
        .api()
        .signin("ada@example.com", "lovelace-1815")
        .await
        .expect("signed in");
    assert_eq!(token.token_type, "Bearer");
    assert_eq!(token.expires_in, 3600);

    let me = app.api().with_token(&token.token).me().await.expect("me");
    assert_eq!(me.email, "ada@example.com");
}

#[tokio::test]
async fn signup_rules_and_duplicate_email() {
    let app = spawn_app().await;
    let named = |email: &str, password: &str, name: &str| contrail_client::Signup {
        name: name.to_owned(),
        ..signup(email, password)
    };
    let cases = [
        named("not-an-email", "long-enough", "A"),
        named("a@example.com", "short", "A"),
        // Ten characters or more, but common or easily guessed.
        named("a@example.com", "password1234", "A"),
        named("a@example.com", "1234567890", "A"),
        named("a@example.com", "qwertyuiop", "A"),
        named("a@example.com", "Password123!", "A"),
        named("a@example.com", "long-enough", "  "),
    ];
    for case in cases {
        let e = app.api().signup(&case).await.expect_err("signed up");
        assert_eq!(e.status(), Some(StatusCode::BAD_REQUEST), "{case:?}: {e}");
        assert_eq!(e.code(), Some("invalid_request"));
    }
    // Bodies the typed request cannot carry: a missing field, an unknown one.
    let raw = [
        json!({"email": "a@example.com", "password": "long-enough"}),
        json!({"email": "a@example.com", "password": "long-enough", "name": "A", "roles": ["admin"]}),
    ];
    for body in raw {
        let r = app.post("/api/v1/auth/signup", None, body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
        assert_eq!(r.code(), "invalid_request");
    }
    app.api()
        .signup(&signup("dup@example.com", "first-dup-passphrase"))
        .await
        .expect("signed up");
    let again = app
        .api()
        .signup(&signup("DUP@example.com", "second-dup-passphrase"))
        .await;
    let again = again.expect_err("an email twice");
    assert_eq!(again.status(), Some(StatusCode::CONFLICT));
    assert_eq!(again.code(), Some("email_taken"));
}

#[tokio::test]
async fn concurrent_signups_with_one_email_create_one_account() {
    let app = spawn_app().await;
    let api = app.api();
    let race = signup("race@example.com", "password-123");
    let tasks: Vec<_> = (0..16).map(|_| api.signup(&race)).collect();
    let replies = futures::future::join_all(tasks).await;
    let created = replies.iter().filter(|r| r.is_ok()).count();
    let taken = replies
        .iter()
        .filter(|r| r.as_ref().err().and_then(Error::status) == Some(StatusCode::CONFLICT))
        .count();
    assert_eq!((created, taken), (1, 15));
}

#[tokio::test]
async fn bad_credentials_are_401_without_saying_which_part() {
    let app = spawn_app().await;
    app.api()
        .signup(&signup("bob@example.com", "password-bob"))
        .await
        .expect("signed up");
    // Raw: the two refusals' bodies are compared whole.
    let signin = |email: &str, password: &str| {
        app.post(
            "/api/v1/auth/signin",
            None,
            json!({"email": email, "password": password}),
        )
    };
    let wrong_pw = signin("bob@example.com", "password-nope").await;
    let no_user = signin("nobody@example.com", "password-bob").await;
    assert_eq!(wrong_pw.status, StatusCode::UNAUTHORIZED);
    assert_eq!(no_user.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong_pw.body, no_user.body);
    assert_eq!(wrong_pw.code(), "unauthorized");
}

/// Claims the node would issue (issuer, audience and all), so that each forged token below is
/// refused for the one thing wrong with it.
fn claims(sub: &str, exp_offset: i64) -> serde_json::Value {
    let now = chrono::Utc::now().timestamp();
    json!({"sub": sub, "iss": "contrail", "aud": "contrail-api", "iat": now, "exp": now + exp_offset, "roles": ["admin"]})
}

/// `GET /api/v1/auth/me` with this `Authorization` header, as it is; the status.
async fn me_with_authorization(
    app: &TestApp,
    value: impl Into<reqwest::header::HeaderValue>,
) -> StatusCode {
    let sent = app
        .api()
        .request(Method::GET, "/api/v1/auth/me")
        .header("authorization", value.into())
        .send()
        .await;
    sent.expect("sent").status()
}

#[tokio::test]
async fn forged_and_expired_tokens_are_rejected() {
    let app = spawn_app().await;
    let (id, customer) = app.customer().await;
    customer.me().await.expect("the real token works");
    let good = customer.token().expect("signed in");

    let key = EncodingKey::from_secret(SECRET.as_bytes());
    let expired = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims(&id, -120), &key)
        .expect("encode");
    let other_alg = jsonwebtoken::encode(&Header::new(Algorithm::HS512), &claims(&id, 600), &key)
        .expect("encode");
    let wrong_key = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(&id, 600),
        &EncodingKey::from_secret(b"another-secret-of-sufficient-length!!"),
    )
    .expect("encode");
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims(&id, 600).to_string());
    let alg_none = format!("{none_header}.{payload}.");
    let parts: Vec<&str> = good.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], payload, parts[2]);

    // Raw: forged tokens, no token and another scheme, on the wire as they are.
    for (what, token) in [
        ("expired", expired.as_str()),
        ("HS512", other_alg.as_str()),
        ("wrong key", wrong_key.as_str()),
        ("alg none", alg_none.as_str()),
        ("tampered payload", tampered.as_str()),
        ("garbage", "not.a.token"),
    ] {
        let r = app.get("/api/v1/auth/me", Some(token)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what} was accepted");
        assert_eq!(r.code(), "unauthorized");
    }
    let r = app.get("/api/v1/auth/me", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let basic = reqwest::header::HeaderValue::from_str(&format!("Basic {good}")).expect("ascii");
    assert_eq!(
        me_with_authorization(&app, basic).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn role_changes_take_effect_immediately_and_only_admins_grant_them() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (id, customer) = app.customer().await;
    let airport = Airport {
        code: "LHR".into(),
        name: "Heathrow".into(),
        city: "London".into(),
        country: "GB".into(),
    };

    let e = customer
        .create_airport(&airport)
        .await
        .expect_err("a customer wrote the catalog");
    assert_eq!(e.status(), Some(StatusCode::FORBIDDEN));
    assert_eq!(e.code(), Some("forbidden"));

    assert_eq!(
        status_of_error(customer.set_roles(&id, &["admin"]).await),
        StatusCode::FORBIDDEN,
        "a customer granted itself a role"
    );

    let account = admin.set_roles(&id, &["airline"]).await.expect("granted");
    assert_eq!(account.roles, ["airline"]);
    // Same token, new role: takes effect without signing in again.
    customer
        .create_airport(&airport)
        .await
        .expect("an airline writes the catalog");

    assert_eq!(
        status_of_error(admin.set_roles(&id, &[]).await),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        status_of_error(admin.set_roles(&id, &["pilot"]).await),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        status_of_error(admin.set_roles("usr_doesnotexist", &["airline"]).await),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn requests_over_the_limit_get_429_with_retry_after() {
    let app = spawn_app_with(|s| {
        s.http.user_rps = 1;
        s.http.user_burst = 3;
        s.http.anonymous_rps = 1;
        s.http.anonymous_burst = 5;
    })
    .await;
    // Anonymous: per address.
    let mut statuses = Vec::new();
    for _ in 0..8 {
        match app.api().airports().await {
            Ok(_) => statuses.push(StatusCode::OK),
            Err(e) => {
                let status = e.status().unwrap_or_else(|| panic!("no answer: {e}"));
                statuses.push(status);
                if status == StatusCode::TOO_MANY_REQUESTS {
                    assert_eq!(e.code(), Some("rate_limited"));
                    let retry = e.retry_after().expect("Retry-After in seconds");
                    assert!(retry >= 1);
                }
            }
        }
    }
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    // Probes are never limited.
    app.api().health().await.expect("healthy");
}

#[tokio::test]
async fn authenticated_users_have_their_own_buckets() {
    let app = spawn_app_with(|s| {
        s.http.user_rps = 1;
        s.http.user_burst = 3;
    })
    .await;
    let (_, a) = app.customer().await;
    let (_, b) = app.customer().await;
    let mut a_limited = false;
    for _ in 0..6 {
        a_limited |=
            a.me().await.err().and_then(|e| e.status()) == Some(StatusCode::TOO_MANY_REQUESTS);
    }
    assert!(a_limited, "user a was never limited");
    b.me()
        .await
        .unwrap_or_else(|e| panic!("user b paid for user a: {e}"));
}

#[tokio::test]
async fn password_guessing_locks_the_account_even_for_the_right_password() {
    let app = spawn_app_with(|s| s.http.signin_failures_per_minute = 3).await;
    let api = app.api();
    api.signup(&signup("victim@example.com", "the-real-password"))
        .await
        .expect("signed up");
    let mut locked = false;
    for i in 0..6 {
        let e = api
            .signin("victim@example.com", &format!("guess-{i}-wrong"))
            .await
            .expect_err("a wrong password signed in");
        if e.status() == Some(StatusCode::TOO_MANY_REQUESTS) {
            locked = true;
            assert!(e.retry_after().is_some());
        } else {
            assert_eq!(e.status(), Some(StatusCode::UNAUTHORIZED));
        }
    }
    assert!(locked, "guessing was never limited");
    let r = api.signin("victim@example.com", "the-real-password").await;
    assert_eq!(
        r.err().and_then(|e| e.status()),
        Some(StatusCode::TOO_MANY_REQUESTS),
        "a locked account revealed the right password"
    );
    // Other accounts are unaffected.
    api.signup(&signup("other@example.com", "other-password"))
        .await
        .expect("signed up");
    api.signin("other@example.com", "other-password")
        .await
        .expect("signed in");
}

#[tokio::test]
async fn a_non_ascii_authorization_header_is_401_not_400() {
    let app = spawn_app().await;
    let value =
        reqwest::header::HeaderValue::from_bytes(b"Bearer \xe9t\xe9").expect("obs-text is allowed");
    assert_eq!(
        me_with_authorization(&app, value).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn the_configured_admin_cannot_be_squatted() {
    let mut app = spawn_app_with(|s| {
        s.auth.admin_email = None;
        s.auth.admin_password = None;
    })
    .await;
    app.api()
        .signup(&signup("boss@example.com", "squatter-password"))
        .await
        .expect("signed up");
    app.restart_with(|s| {
        s.auth.admin_email = Some("boss@example.com".into());
        s.auth.admin_password = Some(secrecy::SecretString::from("operator-password"));
    })
    .await;
    assert_eq!(
        status_of_error(
            app.api()
                .signin("boss@example.com", "squatter-password")
                .await
        ),
        StatusCode::UNAUTHORIZED
    );
    let boss = app.signed_in("boss@example.com", "operator-password").await;
    let me = boss.me().await.expect("me");
    assert!(me.roles.iter().any(|r| r == "admin"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_signups_is_served_not_dropped() {
    let app = spawn_app().await;
    let api = app.api();
    let signups: Vec<_> = (0..48)
        .map(|i| signup(&format!("burst{i}@example.com"), "burst-password"))
        .collect();
    let replies = futures::future::join_all(signups.iter().map(|s| api.signup(s))).await;
    let refused: Vec<String> = replies
        .iter()
        .filter_map(|r| r.as_ref().err().map(ToString::to_string))
        .collect();
    assert!(refused.is_empty(), "{refused:?}");
    // The node stayed responsive for everyone else meanwhile.
    app.api().airports().await.expect("airports");
}
