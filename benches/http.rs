//! One booking end to end over HTTP on loopback: `POST /api/v1/orders` (hold one seat,
//! durably) then `POST /api/v1/orders/{id}/cancel` (release it), against a real node.
//!
//! `cargo bench --bench http`; results go in BENCHMARKS.md.

use contrail::settings::Settings;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::time::Duration;

async fn post(client: &reqwest::Client, url: String, token: Option<&str>, body: Value) -> Value {
    let mut req = client.post(url).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send()
        .await
        .expect("sent")
        .json()
        .await
        .unwrap_or(Value::Null)
}

fn http_booking(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("dir");
    let mut settings = Settings::default();
    settings.http.bind = "127.0.0.1:0".parse().expect("addr");
    settings.http.user_rps = 1_000_000;
    settings.http.user_burst = 1_000_000;
    settings.storage.path = dir.path().to_path_buf();
    settings.booking.max_seats_per_user_per_flight = 1_000;
    settings.auth.jwt_secret = Some(SecretString::from("benchmark-secret-0123456789abcdef"));
    settings.auth.admin_email = Some("admin@bench.local".into());
    settings.auth.admin_password = Some(SecretString::from("admin-password"));
    let client = reqwest::Client::new();
    let (node, base, token, flight) = rt.block_on(async {
        let node = contrail::startup::start(settings).await.expect("node");
        let base = format!("http://{}", node.http_addr());
        let admin = post(&client, format!("{base}/api/v1/auth/signin"), None, json!({"email": "admin@bench.local", "password": "admin-password"})).await;
        let admin = admin["token"].as_str().expect("token").to_owned();
        for code in ["DEL", "BOM"] {
            post(&client, format!("{base}/api/v1/airports"), Some(&admin), json!({"code": code, "name": "n", "city": "c", "country": "IN"})).await;
        }
        let aircraft = post(&client, format!("{base}/api/v1/aircraft"), Some(&admin), json!({"model": "B", "cabins": [{"cabin": "economy", "rows": [1, 100], "seats": "ABCDEFGHJK"}]})).await;
        let departs = chrono::Utc::now() + chrono::Duration::days(30);
        let flight = post(&client, format!("{base}/api/v1/flights"), Some(&admin), json!({
            "flight_number": "BM1", "aircraft_id": aircraft["id"], "origin": "DEL", "destination": "BOM",
            "departs_at": departs.to_rfc3339(), "arrives_at": (departs + chrono::Duration::hours(1)).to_rfc3339(),
            "fares": {"economy": 1000}, "currency": "USD"})).await;
        post(&client, format!("{base}/api/v1/auth/signup"), None, json!({"email": "b@bench.local", "password": "bench-password", "name": "B"})).await;
        let token = post(&client, format!("{base}/api/v1/auth/signin"), None, json!({"email": "b@bench.local", "password": "bench-password"})).await;
        (node, base, token["token"].as_str().expect("token").to_owned(), flight["id"].as_str().expect("flight").to_owned())
    });
    let mut group = c.benchmark_group("http");
    group.measurement_time(Duration::from_secs(8));
    for clients in [1u64, 32] {
        group.throughput(Throughput::Elements(clients));
        group.bench_function(format!("hold_then_cancel_{clients}_clients"), |b| {
            b.to_async(&rt).iter(|| {
                let (client, base, token, flight) = (client.clone(), base.clone(), token.clone(), flight.clone());
                async move {
                    let bookings = (0..clients).map(|_| {
                        let (client, base, token, flight) = (client.clone(), base.clone(), token.clone(), flight.clone());
                        async move {
                            let body = json!({"segments": [{"flight_id": flight, "cabin": "economy", "count": 1}], "passengers": [{"name": "B"}]});
                            let order = post(&client, format!("{base}/api/v1/orders"), Some(&token), body).await;
                            let id = order["id"].as_str().expect("held").to_owned();
                            post(&client, format!("{base}/api/v1/orders/{id}/cancel"), Some(&token), Value::Null).await
                        }
                    });
                    futures::future::join_all(bookings).await
                }
            });
        });
    }
    group.finish();
    rt.block_on(node.shutdown()).expect("shutdown");
}

criterion_group!(benches, http_booking);
criterion_main!(benches);
