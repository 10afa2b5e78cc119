//! Per-request span (with a request id) and Prometheus request metrics.

use super::templates;
use crate::domain::ids::UserId;
use tracing::Span;
use warp::log::Info as LogInfo;
use warp::trace::Info as TraceInfo;

/// The span every request runs in. A well-formed client `X-Request-Id` is kept; otherwise a
/// new id is made.
pub(super) fn span(info: TraceInfo<'_>) -> Span {
    let request_id = info
        .request_headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| UserId::generate().as_str().replacen("usr_", "req_", 1));
    tracing::info_span!("request", %request_id, method = templates::method_label(info.method()), route = templates::route_label(info.path()))
}

/// Counts the request and records its latency by method, route and status.
pub(super) fn record(info: LogInfo<'_>) {
    let route = templates::route_label(info.path());
    let method = templates::method_label(info.method());
    let status = info.status().as_u16().to_string();
    let seconds = info.elapsed().as_secs_f64();
    // A 4xx is the client's business (a taken seat, a bad token): DEBUG, or a fuzzing client
    // floods the log. A 5xx is ours.
    if info.status().is_server_error() {
        tracing::warn!(status = %status, elapsed_ms = seconds * 1e3, "request failed");
    } else {
        tracing::debug!(status = %status, elapsed_ms = seconds * 1e3, "request finished");
    }
    metrics::counter!("contrail_http_requests_total", "method" => method, "route" => route, "status" => status.clone())
        .increment(1);
    metrics::histogram!("contrail_http_request_duration_seconds", "method" => method, "route" => route, "status" => status)
        .record(seconds);
}
