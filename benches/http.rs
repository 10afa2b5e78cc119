//! One booking end to end over HTTP on loopback: `POST /api/v1/orders` (hold one seat,
//! durably) then `POST /api/v1/orders/{id}/cancel` (release it), against a real node.
//!
//! `cargo bench --bench http`; results go in BENCHMARKS.md.

use contrail::settings::Settings;
use contrail_client::{Client, NewOrder, Passenger, SegmentRequest, Signup, seed};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use secrecy::SecretString;
use std::time::Duration;

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
    let (node, customer, flight) = rt.block_on(async {
        let node = contrail::startup::start(settings).await.expect("node");
        let api = Client::new(&format!("http://{}", node.http_addr()));
        let admin = api.signin("admin@bench.local", "admin-password").await;
        let admin = api.with_token(&admin.expect("admin signs in").token);
        let plan = seed::Plan {
            letters: "ABCDEFGHJK".into(),
            ..seed::Plan::new(1, 100)
        };
        let catalog = seed::catalog(&admin, &plan).await.expect("catalog");
        let signup = Signup {
            email: "b@bench.local".into(),
            password: "bench-password".into(),
            name: "B".into(),
        };
        api.signup(&signup).await.expect("signup");
        let token = api.signin(&signup.email, &signup.password).await;
        let customer = api.with_token(&token.expect("signin").token);
        (node, customer, catalog.flights[0].clone())
    });
    let mut group = c.benchmark_group("http");
    group.measurement_time(Duration::from_secs(8));
    for clients in [1u64, 32] {
        group.throughput(Throughput::Elements(clients));
        group.bench_function(format!("hold_then_cancel_{clients}_clients"), |b| {
            let order = NewOrder {
                segments: vec![SegmentRequest::in_cabin(&flight, "economy", 1)],
                passengers: vec![Passenger { name: "B".into() }],
            };
            b.to_async(&rt).iter(|| async {
                let bookings = (0..clients).map(|_| async {
                    let placed = customer.place_order(&order, None).await.expect("held");
                    customer
                        .cancel_order(&placed.order.id)
                        .await
                        .expect("cancelled")
                });
                futures::future::join_all(bookings).await
            });
        });
    }
    group.finish();
    rt.block_on(node.shutdown()).expect("shutdown");
}

criterion_group!(benches, http_booking);
criterion_main!(benches);
