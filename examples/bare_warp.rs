//! The bare warp route `scripts/benchmarks.sh` measures Contrail against: the same warp 0.4
//! server and tokio runtime as `contrail serve`, answering `GET /healthz` with `{"status":"ok"}`
//! and nothing else (no middleware, no state, no storage).
//!
//! `cargo build --release --example bare_warp && target/release/examples/bare_warp 18390`

use std::net::SocketAddr;
use warp::Filter;

#[tokio::main]
async fn main() {
    let port: u16 = match std::env::args().nth(1).map(|p| p.parse()) {
        Some(Ok(port)) => port,
        _ => {
            eprintln!("usage: bare_warp PORT");
            std::process::exit(2);
        }
    };
    let health = warp::path!("healthz")
        .and(warp::get())
        .map(|| warp::reply::json(&serde_json::json!({ "status": "ok" })));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("bare_warp: binding {addr}: {e}");
            std::process::exit(1);
        }
    };
    eprintln!("bare_warp listening on http://{addr}");
    warp::serve(health).incoming(listener).run().await;
}
