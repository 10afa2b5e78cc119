//! Health, readiness, metrics, OpenAPI and the cluster view over real HTTP.

mod helpers;

use contrail_client::Faults;
use helpers::*;
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn health_and_readiness() {
    let app = spawn_app().await;
    app.api().health().await.expect("healthy");
    // Raw: the typed `ready` reads no body.
    let r = app.get("/readyz", None).await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (StatusCode::OK, Some("ready"))
    );
}

#[tokio::test]
async fn metrics_cover_requests_storage_and_actors() {
    let app = spawn_app().await;
    let (_, flight) = app.one_flight(2, "AB").await;
    app.api().flight(&flight).await.expect("flight");
    let text = app.api().metrics().await.expect("metrics");
    for needle in [
        "contrail_http_requests_total{method=\"GET\",route=\"/api/v1/flights/{id}\",status=\"200\"}",
        "contrail_http_request_duration_seconds_bucket",
        "contrail_storage_sync_batch_size_bucket",
        "contrail_storage_sync_seconds_bucket",
        "contrail_flight_actors_active",
    ] {
        assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    }
    assert!(!text.contains("flt_"), "an id leaked into a metric label");
}

#[tokio::test]
async fn openapi_documents_every_route() {
    let app = spawn_app().await;
    let doc = app.api().openapi().await.expect("the document");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with('3')));
    let paths = doc["paths"].as_object().expect("paths");
    let expected = [
        ("/api/v1/auth/signup", "post"),
        ("/api/v1/auth/signin", "post"),
        ("/api/v1/auth/me", "get"),
        ("/api/v1/users/{id}/roles", "put"),
        ("/api/v1/airports", "post"),
        ("/api/v1/airports", "get"),
        ("/api/v1/aircraft", "post"),
        ("/api/v1/flights", "post"),
        ("/api/v1/flights", "get"),
        ("/api/v1/flights/{id}", "get"),
        ("/api/v1/flights/{id}/seats", "get"),
        ("/api/v1/flights/{id}/cancel", "post"),
        ("/api/v1/orders", "post"),
        ("/api/v1/orders", "get"),
        ("/api/v1/orders/{id}", "get"),
        ("/api/v1/orders/{id}/pay", "post"),
        ("/api/v1/orders/{id}/cancel", "post"),
        ("/api/v1/tickets", "get"),
        ("/api/v1/tickets/{id}", "get"),
        ("/api/v1/notifications", "get"),
        ("/api/v1/auth/password", "post"),
        ("/api/v1/users/{id}/disabled", "put"),
        ("/api/v1/cluster", "get"),
        ("/api/v1/cluster/drain", "post"),
        ("/api/v1/cluster/remove", "post"),
        ("/api/v1/cluster/faults", "post"),
        ("/api/v1/admin/outbox", "get"),
        ("/api/v1/admin/outbox/{id}/retry", "post"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/openapi.json", "get"),
    ];
    for (path, method) in expected {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is undocumented"
        );
    }
    let documented: usize = paths
        .values()
        .map(|p| p.as_object().map_or(0, |m| m.len()))
        .sum();
    assert_eq!(
        documented,
        expected.len(),
        "the document lists routes that do not exist"
    );
    let ids: Vec<&Value> = paths
        .values()
        .flat_map(|p| p.as_object().into_iter().flat_map(|m| m.values()))
        .map(|op| &op["operationId"])
        .collect();
    let unique: std::collections::HashSet<String> = ids.iter().map(|v| v.to_string()).collect();
    assert_eq!(unique.len(), ids.len(), "operation ids must be unique");
}

#[tokio::test]
async fn the_cluster_view_is_for_admins() {
    let app = spawn_app().await;
    let (_, customer) = app.customer().await;
    let status = |e: contrail_client::Error| e.status();
    assert_eq!(
        customer.cluster().await.err().and_then(status),
        Some(StatusCode::FORBIDDEN)
    );
    let admin = app.admin().await;
    let view = admin.cluster().await.expect("the view");
    assert_eq!(view.members.len(), 1);
    assert_eq!(view.members[0].status, "up");
    assert!(view.serving);
    assert_eq!(
        customer.drain("local").await.err().and_then(status),
        Some(StatusCode::FORBIDDEN)
    );
    assert_eq!(
        admin.drain("local").await.err().and_then(status),
        Some(StatusCode::CONFLICT),
        "the last member cannot leave"
    );
    assert_eq!(
        admin.drain("node-x").await.err().and_then(status),
        Some(StatusCode::NOT_FOUND),
        "no such member"
    );
    let fault = Faults {
        blocked: ["x".to_owned()].into(),
        for_ms: 1000,
    };
    assert_eq!(
        admin.inject_faults(&fault).await.err().and_then(status),
        Some(StatusCode::NOT_FOUND),
        "fault injection is off by default"
    );
}

#[tokio::test]
async fn every_documented_response_is_described_and_every_error_has_the_error_schema() {
    let app = spawn_app().await;
    let doc = app.api().openapi().await.expect("openapi");
    assert!(doc["components"]["schemas"]["Error"]["properties"]["error"].is_object());
    let paths = doc["paths"].as_object().expect("paths");
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("path item") {
            let where_ = format!("{method} {path}");
            let responses = op["responses"].as_object().expect("responses");
            for (status, response) in responses {
                let described = response["description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty());
                assert!(described, "{where_} {status} has no description");
                if status.starts_with('4') || status.starts_with('5') {
                    assert!(
                        response["content"]["application/json"]["schema"].is_object(),
                        "{where_} {status} documents no body"
                    );
                }
            }
            let has = |status: &str| responses.contains_key(status);
            if op.get("security").is_some() {
                assert!(has("401"), "{where_} needs a token but documents no 401");
            }
            if op.get("requestBody").is_some() {
                for status in ["400", "413", "415"] {
                    assert!(
                        has(status),
                        "{where_} reads a body but documents no {status}"
                    );
                }
            }
            if path.starts_with("/api/") {
                assert!(has("429") && has("503"), "{where_} lacks 429 or 503");
            }
        }
    }
}

/// Every response names its request: the client's `X-Request-Id` when well-formed, else a new
/// id (the one the request's log lines carry), different for every request; errors too.
#[tokio::test]
async fn every_response_echoes_or_assigns_a_request_id() {
    let app = spawn_app().await;
    let id_of = |r: &reqwest::Response| {
        r.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let get = |path: &str, id: Option<&str>| {
        let mut request = app.client.get(format!("{}{path}", app.base));
        if let Some(id) = id {
            request = request.header("x-request-id", id);
        }
        request.send()
    };
    let echoed = get("/healthz", Some("client-trace-42"))
        .await
        .expect("sent");
    assert_eq!(id_of(&echoed).as_deref(), Some("client-trace-42"));
    let refused = get("/api/v1/orders", Some("client-trace-43"))
        .await
        .expect("sent");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(id_of(&refused).as_deref(), Some("client-trace-43"));
    // No id, or one that could not go into a log line or a header as it is: a new one each time.
    let first = id_of(&get("/healthz", None).await.expect("sent")).expect("an id");
    let second = id_of(
        &get("/nowhere", Some("has spaces in it"))
            .await
            .expect("sent"),
    )
    .expect("an id");
    assert!(
        first.starts_with("req_") && second.starts_with("req_"),
        "{first} {second}"
    );
    assert_ne!(first, second);
}
