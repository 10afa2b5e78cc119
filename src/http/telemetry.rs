//! Per-request span (with a request id) and Prometheus request metrics.

use crate::domain::ids::UserId;
use tracing::Span;
use warp::log::Info as LogInfo;
use warp::trace::Info as TraceInfo;

/// Collections whose next path segment is an id; ids are folded into `{id}` so the `route`
/// label has a bounded number of values.
const COLLECTIONS: [&str; 6] = [
    "flights", "users", "orders", "tickets", "aircraft", "airports",
];

/// The route template of a path, e.g. `/api/v1/flights/{id}/seats`.
pub(super) fn route_of(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut after_collection = false;
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        if after_collection {
            out.push_str("{id}");
            after_collection = false;
        } else if segment.len() <= 16
            && segment
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit())
        {
            out.push_str(segment);
            after_collection = COLLECTIONS.contains(&segment);
        } else {
            out.push_str("{other}");
        }
    }
    if out.is_empty() { "/".into() } else { out }
}

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
    tracing::info_span!("request", %request_id, method = %info.method(), route = %route_of(info.path()))
}

/// Counts the request and records its latency by method, route and status.
pub(super) fn record(info: LogInfo<'_>) {
    let route = route_of(info.path());
    let method = info.method().to_string();
    let status = info.status().as_u16().to_string();
    let seconds = info.elapsed().as_secs_f64();
    tracing::debug!(status = %status, elapsed_ms = seconds * 1e3, "request finished");
    metrics::counter!("contrail_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status.clone())
        .increment(1);
    metrics::histogram!("contrail_http_request_duration_seconds", "method" => method, "route" => route, "status" => status)
        .record(seconds);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_fold_into_templates() {
        assert_eq!(
            route_of("/api/v1/flights/flt_0123abc/seats"),
            "/api/v1/flights/{id}/seats"
        );
        assert_eq!(
            route_of("/api/v1/users/usr_1/roles"),
            "/api/v1/users/{id}/roles"
        );
        assert_eq!(route_of("/api/v1/flights"), "/api/v1/flights");
        assert_eq!(route_of("/"), "/");
        assert_eq!(route_of("/Some-Random-Thing/..%2F"), "/{other}/{other}");
    }
}
