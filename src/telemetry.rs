//! Logs and traces: `tracing` with an env filter, as text or JSON lines, and — when
//! `telemetry.otlp_endpoint` is set — the same spans exported as OpenTelemetry traces over
//! OTLP/HTTP, with W3C trace context carried in and out (see [`traceparent`] and
//! [`continue_trace`]).

use crate::settings::{LogFormat, LogSettings, TelemetrySettings};
use anyhow::Context as _;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use std::collections::HashMap;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// The header (and the node-to-node field) that carries a trace's context.
pub const TRACEPARENT: &str = "traceparent";

/// What [`init`] set up; [`Telemetry::shutdown`] sends the spans still buffered.
#[must_use = "shut it down when the node stops, or the last spans are lost"]
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still buffered (bounded by the exporter's timeout).
    pub fn shutdown(self) {
        if let Some(provider) = self.traces
            && let Err(e) = provider.shutdown()
        {
            tracing::warn!(error = %e, "the last traces were not exported");
        }
    }
}

/// Installs the global subscriber: the log (`RUST_LOG`, when set, overrides `log.filter`) and,
/// when an OTLP endpoint is configured, the trace exporter, whose spans are this crate's
/// INFO spans whatever the log shows. Calling it again (as tests do) keeps the first
/// subscriber.
pub fn init(
    log: &LogSettings,
    telemetry: &TelemetrySettings,
    service: &str,
) -> anyhow::Result<Telemetry> {
    let traces = telemetry
        .otlp_endpoint
        .as_deref()
        .map(|endpoint| exporter(endpoint, telemetry.sampling_ratio, service))
        .transpose()?;
    let otel = traces.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("contrail"))
            // Only our spans: the exporter's own HTTP client must never trace itself.
            .with_filter(Targets::new().with_target("contrail", tracing::Level::INFO))
    });
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&log.filter));
    let _ = tracing_subscriber::registry()
        .with(log_layer(log.format).with_filter(filter))
        .with(otel)
        .try_init();
    if let Some(endpoint) = &telemetry.otlp_endpoint {
        tracing::info!(%endpoint, service, ratio = telemetry.sampling_ratio, "exporting traces");
    }
    Ok(Telemetry { traces })
}

/// The log's lines: JSON objects, or text with one event per line.
fn log_layer(format: LogFormat) -> Box<dyn Layer<Registry> + Send + Sync> {
    // Colours only for a person at a terminal, not in a file or a log collector.
    let layer = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    match format {
        LogFormat::Json => layer
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .boxed(),
        // One event is one line: a value that carries a newline (an error quoting what a
        // client sent, say) cannot start a line of its own that looks like another event.
        LogFormat::Text => layer
            .fmt_fields(
                tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
                    let raw = format!("{value:?}");
                    let value = escape_controls(&raw);
                    match field.name() {
                        "message" => w.write_str(&value),
                        name => write!(w, "{name}={value}"),
                    }
                })
                .delimited(" "),
            )
            .boxed(),
    }
}

/// The OTLP/HTTP exporter behind a batching processor (its own thread: exporting never
/// runs on the node's runtime), sampling `ratio` of the traces that start here.
fn exporter(endpoint: &str, ratio: f64, service: &str) -> anyhow::Result<SdkTracerProvider> {
    let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(url)
        .build()
        .context("building the OTLP trace exporter")?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            ratio,
        ))))
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service.to_owned())
                .build(),
        )
        .build())
}

/// The W3C `traceparent` of `span`, if it belongs to a trace (traces are on and the span is
/// enabled).
pub fn traceparent(span: &Span) -> Option<String> {
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::with_capacity(2);
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// Makes `span` a child of the remote span a `traceparent` names; a malformed or absent one
/// leaves `span` the root of a new trace (a caller's bad header is no reason to fail).
pub fn continue_trace(span: &Span, traceparent: Option<&str>) {
    let Some(traceparent) = traceparent else {
        return;
    };
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
    let context = TraceContextPropagator::new().extract(&carrier);
    if context.span().span_context().is_remote() {
        // Refused only when the span is disabled or traces are off: nothing to join then.
        let _ = span.set_parent(context);
    }
}

/// `text` with every control character written as an escape (`\n`, `\u{1b}`), so that it
/// stays on one line and cannot drive a terminal.
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` under a subscriber that traces (in memory, nothing exported).
    fn traced<T>(f: impl FnOnce() -> T) -> T {
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, f)
    }

    const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_span_continues_its_callers_trace_and_names_itself_in_its_traceparent() {
        let ours = traced(|| {
            let span = tracing::info_span!("request");
            continue_trace(&span, Some(CALLER));
            traceparent(&span)
        })
        .expect("a traced span has a traceparent");
        let parts: Vec<&str> = ours.split('-').collect();
        assert_eq!(parts.len(), 4, "{ours}");
        assert_eq!(parts[1], "4bf92f3577b34da6a3ce929d0e0e4736", "same trace");
        assert_ne!(parts[2], "00f067aa0ba902b7", "its own span id");
        assert_eq!(parts[3], "01", "sampled, as the caller decided");
    }

    #[test]
    fn a_malformed_or_absent_traceparent_starts_a_new_trace() {
        for header in [
            None,
            Some(""),
            Some("garbage"),
            Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\nX: y"),
        ] {
            let ours = traced(|| {
                let span = tracing::info_span!("request");
                continue_trace(&span, header);
                traceparent(&span)
            })
            .expect("a new trace");
            assert!(
                !ours.contains("4bf92f3577b34da6a3ce929d0e0e4736"),
                "{header:?}: {ours}"
            );
        }
    }

    #[test]
    fn without_traces_nothing_is_claimed() {
        let span = tracing::info_span!("request");
        continue_trace(&span, Some(CALLER));
        assert_eq!(traceparent(&span), None);
    }

    #[test]
    fn control_characters_are_escaped_and_nothing_else() {
        assert_eq!(escape_controls("plain café ✈"), "plain café ✈");
        assert_eq!(
            escape_controls("a\nINFO forged\r\x1b[31m\u{85}"),
            "a\\nINFO forged\\r\\u{1b}[31m\\u{85}"
        );
    }
}
