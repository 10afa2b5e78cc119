//! Per-request span (with a request id) and Prometheus request metrics.

use super::templates;
use crate::domain::ids::UserId;
use tracing::Span;
use tracing_subscriber::Registry;
use tracing_subscriber::registry::LookupSpan;
use warp::log::Info as LogInfo;
use warp::trace::Info as TraceInfo;

/// The span every request runs in. A well-formed client `X-Request-Id` is kept; otherwise a
/// new id is made. The id is also kept with the span, for the response (see [`request_id`]).
/// A client's W3C `traceparent` makes it a child of the client's span.
pub(super) fn span(info: TraceInfo<'_>) -> Span {
    let request_id = info
        .request_headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| well_formed(v))
        .map(str::to_owned)
        .unwrap_or_else(new_request_id);
    let method = templates::method_label(info.method());
    let route = templates::route_label(info.path());
    let span = tracing::info_span!(
        "request",
        %request_id,
        method,
        route,
        otel.name = format_args!("{method} {route}"),
        otel.kind = "server",
    );
    crate::telemetry::continue_trace(
        &span,
        info.request_headers()
            .get(crate::telemetry::TRACEPARENT)
            .and_then(|v| v.to_str().ok()),
    );
    span.with_subscriber(|(id, dispatch)| {
        if let Some(span) = dispatch
            .downcast_ref::<Registry>()
            .and_then(|registry| registry.span(id))
        {
            span.extensions_mut().insert(RequestId(request_id));
        }
    });
    span
}

/// The id of the request being served: the one its span carries, or (when the log filter
/// leaves request spans out) the client's well-formed one, or a new one.
pub(super) fn request_id(client: Option<&str>) -> String {
    let kept = Span::current()
        .with_subscriber(|(id, dispatch)| {
            let registry = dispatch.downcast_ref::<Registry>()?;
            let span = registry.span(id)?;
            span.extensions().get::<RequestId>().map(|r| r.0.clone())
        })
        .flatten();
    kept.or_else(|| client.filter(|v| well_formed(v)).map(str::to_owned))
        .unwrap_or_else(new_request_id)
}

/// A request id as kept with its span.
struct RequestId(String);

/// Client ids are echoed into headers and logs: 1 to 64 visible ASCII characters.
fn well_formed(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_graphic())
}

fn new_request_id() -> String {
    UserId::generate().as_str().replacen("usr_", "req_", 1)
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
