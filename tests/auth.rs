//! Signup, signin, tokens (including forged ones), roles and rate limits over real HTTP.

mod helpers;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use helpers::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn signup_signin_me_round_trip() {
    let app = spawn_app().await;
    let r = app.signup("Ada@Example.com", "lovelace-1815").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["email"], "ada@example.com");
    assert_eq!(r.body["roles"], json!(["customer"]));
    assert!(r.body.get("password_hash").is_none());

    let r = app.signin("ada@example.com", "lovelace-1815").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.body["expires_in"], 3600);
    let token = r.body["token"].as_str().expect("token");

    let me = app.get("/api/v1/auth/me", Some(token)).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["email"], "ada@example.com");
}

#[tokio::test]
async fn signup_rules_and_duplicate_email() {
    let app = spawn_app().await;
    let cases = [
        json!({"email": "not-an-email", "password": "long-enough", "name": "A"}),
        json!({"email": "a@example.com", "password": "short", "name": "A"}),
        json!({"email": "a@example.com", "password": "long-enough", "name": "  "}),
        json!({"email": "a@example.com", "password": "long-enough"}),
        json!({"email": "a@example.com", "password": "long-enough", "name": "A", "roles": ["admin"]}),
    ];
    for body in cases {
        let r = app.post("/api/v1/auth/signup", None, body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
        assert_eq!(r.code(), "invalid_request");
    }
    assert_eq!(
        app.signup("dup@example.com", "password-1").await.status,
        StatusCode::CREATED
    );
    let again = app.signup("DUP@example.com", "password-2").await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.code(), "email_taken");
}

#[tokio::test]
async fn concurrent_signups_with_one_email_create_one_account() {
    let app = spawn_app().await;
    let tasks: Vec<_> = (0..16)
        .map(|_| app.signup("race@example.com", "password-123"))
        .collect();
    let replies = futures::future::join_all(tasks).await;
    let created = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    let taken = replies
        .iter()
        .filter(|r| r.status == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, taken), (1, 15));
}

#[tokio::test]
async fn bad_credentials_are_401_without_saying_which_part() {
    let app = spawn_app().await;
    app.signup("bob@example.com", "password-bob").await;
    let wrong_pw = app.signin("bob@example.com", "password-nope").await;
    let no_user = app.signin("nobody@example.com", "password-bob").await;
    assert_eq!(wrong_pw.status, StatusCode::UNAUTHORIZED);
    assert_eq!(no_user.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong_pw.body, no_user.body);
    assert_eq!(wrong_pw.code(), "unauthorized");
}

fn claims(sub: &str, exp_offset: i64) -> serde_json::Value {
    let now = chrono::Utc::now().timestamp();
    json!({"sub": sub, "iat": now, "exp": now + exp_offset, "roles": ["admin"]})
}

#[tokio::test]
async fn forged_and_expired_tokens_are_rejected() {
    let app = spawn_app().await;
    let (id, good) = app.customer().await;
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&good)).await.status,
        StatusCode::OK
    );

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
    let r = app
        .client
        .get(format!("{}/api/v1/auth/me", app.base))
        .header("authorization", format!("Basic {good}"))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn role_changes_take_effect_immediately_and_only_admins_grant_them() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (id, token) = app.customer().await;
    let airport = json!({"code": "LHR", "name": "Heathrow", "city": "London", "country": "GB"});

    let r = app
        .post("/api/v1/airports", Some(&token), airport.clone())
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "forbidden");

    let path = format!("/api/v1/users/{id}/roles");
    let r = app
        .request(
            Method::PUT,
            &path,
            Some(&token),
            Some(json!({"roles": ["admin"]})),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "a customer granted itself a role"
    );

    let r = app
        .request(
            Method::PUT,
            &path,
            Some(&admin),
            Some(json!({"roles": ["airline"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["roles"], json!(["airline"]));
    // Same token, new role: takes effect without signing in again.
    let r = app.post("/api/v1/airports", Some(&token), airport).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

    let r = app
        .request(Method::PUT, &path, Some(&admin), Some(json!({"roles": []})))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app
        .request(
            Method::PUT,
            &path,
            Some(&admin),
            Some(json!({"roles": ["pilot"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app
        .request(
            Method::PUT,
            "/api/v1/users/usr_doesnotexist/roles",
            Some(&admin),
            Some(json!({"roles": ["airline"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
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
        let r = app.get("/api/v1/airports", None).await;
        statuses.push(r.status);
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(r.code(), "rate_limited");
            let retry: u64 = r.headers["retry-after"]
                .to_str()
                .expect("ascii")
                .parse()
                .expect("seconds");
            assert!(retry >= 1);
        }
    }
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    // Probes are never limited.
    assert_eq!(app.get("/healthz", None).await.status, StatusCode::OK);
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
            app.get("/api/v1/auth/me", Some(&a)).await.status == StatusCode::TOO_MANY_REQUESTS;
    }
    assert!(a_limited, "user a was never limited");
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&b)).await.status,
        StatusCode::OK,
        "user b paid for user a"
    );
}

#[tokio::test]
async fn password_guessing_locks_the_account_even_for_the_right_password() {
    let app = spawn_app_with(|s| s.http.signin_failures_per_minute = 3).await;
    app.signup("victim@example.com", "the-real-password").await;
    let mut locked = false;
    for i in 0..6 {
        let r = app
            .signin("victim@example.com", &format!("guess-{i}-wrong"))
            .await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            locked = true;
            assert!(r.headers.contains_key("retry-after"));
        } else {
            assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        }
    }
    assert!(locked, "guessing was never limited");
    let r = app.signin("victim@example.com", "the-real-password").await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "a locked account revealed the right password"
    );
    // Other accounts are unaffected.
    app.signup("other@example.com", "other-password").await;
    assert_eq!(
        app.signin("other@example.com", "other-password")
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_non_ascii_authorization_header_is_401_not_400() {
    let app = spawn_app().await;
    let value =
        reqwest::header::HeaderValue::from_bytes(b"Bearer \xe9t\xe9").expect("obs-text is allowed");
    let r = app
        .client
        .get(format!("{}/api/v1/auth/me", app.base))
        .header("authorization", value)
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_configured_admin_cannot_be_squatted() {
    let mut app = spawn_app_with(|s| {
        s.auth.admin_email = None;
        s.auth.admin_password = None;
    })
    .await;
    assert_eq!(
        app.signup("boss@example.com", "squatter-password")
            .await
            .status,
        StatusCode::CREATED
    );
    app.restart_with(|s| {
        s.auth.admin_email = Some("boss@example.com".into());
        s.auth.admin_password = Some(secrecy::SecretString::from("operator-password"));
    })
    .await;
    assert_eq!(
        app.signin("boss@example.com", "squatter-password")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let token = app.token("boss@example.com", "operator-password").await;
    let me = app.get("/api/v1/auth/me", Some(&token)).await;
    assert!(
        me.body["roles"]
            .as_array()
            .expect("roles")
            .contains(&json!("admin"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_signups_is_served_not_dropped() {
    let app = spawn_app().await;
    let emails: Vec<String> = (0..48).map(|i| format!("burst{i}@example.com")).collect();
    let replies =
        futures::future::join_all(emails.iter().map(|e| app.signup(e, "burst-password"))).await;
    let statuses: Vec<StatusCode> = replies.iter().map(|r| r.status).collect();
    assert!(
        statuses.iter().all(|s| *s == StatusCode::CREATED),
        "{statuses:?}"
    );
    // The node stayed responsive for everyone else meanwhile.
    assert_eq!(
        app.get("/api/v1/airports", None).await.status,
        StatusCode::OK
    );
}
