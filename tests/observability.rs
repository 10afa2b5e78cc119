//! The operator's assets in `ops/` are checked, not just shipped: `promtool` accepts the scrape
//! configuration and the alert rules, and every metric the rules and the Grafana dashboard name
//! — with every label value they match exactly — is on a freshly started node's `/metrics`
//! (series the node knows up front exist at 0 from its start, so an alert or a panel can never
//! silently watch a metric that does not exist).
//!
//! `promtool` comes with the distribution's `prometheus` package (`.ci/run` installs it).

mod helpers;

use helpers::spawn_app;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

fn ops(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("ops")
        .join(file)
}

fn promtool(args: &[&str]) {
    let out = std::process::Command::new("promtool")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "promtool: {e} (install the distribution's `prometheus` package, or run .ci/run)"
            )
        });
    assert!(
        out.status.success(),
        "promtool {args:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every metric selector in a PromQL expression that names one of the node's metrics
/// (`contrail_…`, `process_…`), with the labels it matches exactly (`label="value"`).
fn selectors(expr: &str, found: &mut Vec<(String, BTreeMap<String, String>)>) {
    let bytes = expr.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !ident(bytes[i - 1]);
        let rest = &expr[i..];
        if !(starts_word && (rest.starts_with("contrail_") || rest.starts_with("process_"))) {
            i += 1;
            continue;
        }
        let name: String = rest.chars().take_while(|c| ident(*c as u8)).collect();
        i += name.len();
        let mut labels = BTreeMap::new();
        if expr[i..].starts_with('{') {
            let end = expr[i..].find('}').map_or(expr.len(), |e| i + e);
            for matcher in expr[i + 1..end].split(',') {
                // Only exact matches name a value that must exist; `=~` and `!=` do not.
                if let Some((label, value)) = matcher.split_once('=') {
                    let exact = !label.ends_with('!') && !value.starts_with('~');
                    // A request's method, route and status exist once such a request was
                    // answered; every other label value is created at start.
                    let per_request = matches!(label.trim(), "method" | "route" | "status");
                    if exact && !value.contains('$') && !per_request {
                        labels.insert(
                            label.trim().to_owned(),
                            value.trim().trim_matches('"').to_owned(),
                        );
                    }
                }
            }
            i = end;
        }
        found.push((name, labels));
    }
}

/// Every PromQL expression in the dashboard: panel targets and template variable queries.
fn dashboard_exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr" | "definition", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => dashboard_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| dashboard_exprs(v, out)),
        _ => {}
    }
}

#[test]
fn promtool_accepts_the_scrape_configuration_and_the_alert_rules() {
    promtool(&["check", "rules", &ops("alerts.yml").to_string_lossy()]);
    promtool(&["check", "config", &ops("prometheus.yml").to_string_lossy()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_rules_and_the_dashboard_name_is_exported_from_the_start() {
    let rules = std::fs::read_to_string(ops("alerts.yml")).expect("ops/alerts.yml");
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(ops("grafana/contrail.json")).expect("the dashboard"),
    )
    .expect("the dashboard is JSON");
    let mut wanted = Vec::new();
    for line in rules.lines().filter(|l| !l.trim_start().starts_with('#')) {
        selectors(line, &mut wanted);
    }
    let rule_selectors = wanted.len();
    let mut exprs = Vec::new();
    dashboard_exprs(&dashboard, &mut exprs);
    for expr in &exprs {
        selectors(expr, &mut wanted);
    }
    assert!(
        rule_selectors >= 10,
        "the rules name only {rule_selectors} metrics"
    );
    assert!(
        exprs.len() >= 25,
        "the dashboard has only {} queries",
        exprs.len()
    );

    // A node that has answered one request and nothing else.
    let app = spawn_app().await;
    let refused = app
        .post("/api/v1/orders", None, serde_json::json!({}))
        .await;
    assert_eq!(refused.status, 401);
    let exposition = app.api().metrics().await.expect("/metrics");
    let mut series: BTreeMap<String, Vec<BTreeMap<String, String>>> = BTreeMap::new();
    for line in exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let mut labels = BTreeMap::new();
        if line[name_end..].starts_with('{') {
            let end = line.rfind('}').unwrap_or(line.len());
            for pair in line[name_end + 1..end].split("\",") {
                if let Some((k, v)) = pair.split_once("=\"") {
                    labels.insert(k.to_owned(), v.trim_end_matches('"').to_owned());
                }
            }
        }
        series
            .entry(line[..name_end].to_owned())
            .or_default()
            .push(labels);
    }

    let mut missing = BTreeSet::new();
    for (name, labels) in &wanted {
        let present = series.get(name).is_some_and(|all| {
            all.iter()
                .any(|have| labels.iter().all(|(k, v)| have.get(k) == Some(v)))
        });
        if !present {
            missing.insert(format!("{name}{labels:?}"));
        }
    }
    assert!(
        missing.is_empty(),
        "named in ops/ but not on /metrics: {missing:#?}\n/metrics:\n{exposition}"
    );
}

/// One span as an OTLP collector received it.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    trace: String,
    id: String,
    parent: String,
    name: String,
    start: u64,
    attributes: BTreeMap<String, String>,
}

/// An OTLP/HTTP trace receiver on 127.0.0.1: decodes every export (protobuf) into spans.
async fn otlp_receiver() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<Received>>>,
) {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use prost::Message;
    use warp::Filter;
    let spans = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Received>::new()));
    let store = spans.clone();
    let text = |v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>| match v
        .as_ref()
        .and_then(|v| v.value.as_ref())
    {
        Some(Value::StringValue(s)) => s.clone(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    };
    let route = warp::post()
        .and(warp::path!("v1" / "traces"))
        .and(warp::body::bytes())
        .map(move |body: bytes::Bytes| {
            let export = ExportTraceServiceRequest::decode(body).expect("an OTLP export");
            let mut received = store.lock().expect("spans");
            for resource in export.resource_spans {
                let service = resource
                    .resource
                    .iter()
                    .flat_map(|r| &r.attributes)
                    .find(|kv| kv.key == "service.name")
                    .map(|kv| text(&kv.value))
                    .unwrap_or_default();
                for span in resource.scope_spans.into_iter().flat_map(|s| s.spans) {
                    received.push(Received {
                        service: service.clone(),
                        trace: hex(&span.trace_id),
                        id: hex(&span.span_id),
                        parent: hex(&span.parent_span_id),
                        name: span.name,
                        start: span.start_time_unix_nano,
                        attributes: span
                            .attributes
                            .iter()
                            .map(|kv| (kv.key.clone(), text(&kv.value)))
                            .collect(),
                    });
                }
            }
            warp::reply()
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listener");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(warp::serve(route).incoming(listener).run());
    (addr, spans)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The spans of one trace, once `done` holds for them (bounded wait).
async fn trace_of(
    spans: &std::sync::Mutex<Vec<Received>>,
    trace: &str,
    done: impl Fn(&[Received]) -> bool,
) -> Vec<Received> {
    let of_trace = || -> Vec<Received> {
        let all = spans.lock().expect("spans");
        all.iter().filter(|s| s.trace == trace).cloned().collect()
    };
    helpers::eventually(std::time::Duration::from_secs(30), || async {
        done(&of_trace())
    })
    .await;
    of_trace()
}

/// The span `span`'s ancestors, nearest first, up to a span whose parent is not in `trace`.
fn ancestors<'a>(trace: &'a [Received], span: &'a Received) -> Vec<&'a Received> {
    let mut out = Vec::new();
    let mut at = span;
    while let Some(parent) = trace.iter().find(|s| s.id == at.parent) {
        assert!(out.len() < trace.len(), "a cycle in the trace");
        // A child starts no earlier than its parent (both nodes share this machine's clock).
        assert!(
            parent.start <= at.start,
            "{parent:?} starts after its child {at:?}"
        );
        out.push(parent);
        at = parent;
    }
    out
}

fn names(spans: &[&Received]) -> Vec<String> {
    spans
        .iter()
        .map(|s| format!("{}:{}", s.service, s.name))
        .collect()
}

/// A booking made through node-a, whose customer's orders live on node-a and whose flight
/// lives on node-b, is one trace: node-a's request span (the child of the client's
/// `traceparent`, carrying the request id) → the order's saga → the flight's hold on node-b
/// (through the node-to-node call) → node-b's durable write. Paying for it is another trace
/// that reaches node-b (the seats are confirmed there) and records the charge, the tickets and
/// the notification.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_booking_across_two_nodes_is_one_trace_with_spans_from_both() {
    use helpers::cluster::{cluster_with, customer_on, flights_owned_by, formed};
    use reqwest::Method;

    let (collector, spans) = otlp_receiver().await;
    let endpoint = format!("http://{collector}");
    // A webhook, so that the notification's delivery is part of the payment's trace.
    let receiver = helpers::webhook::Receiver::http().await;
    let hook = receiver.url();
    let env = [
        ("CONTRAIL__TELEMETRY__OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("CONTRAIL__NOTIFICATIONS__WEBHOOK_URL", hook.as_str()),
        (
            "CONTRAIL__NOTIFICATIONS__WEBHOOK_SECRET",
            "trace-test-webhook-secret",
        ),
    ];
    let root = tempfile::tempdir().expect("dir");
    let names_of_nodes = ["node-a", "node-b"];
    let nodes = cluster_with(root.path(), &names_of_nodes, &env).await;
    let a = &nodes[0].app;
    let admin = a.admin().await;
    helpers::airport(&admin, "DEL").await;
    helpers::airport(&admin, "BOM").await;
    let craft = helpers::aircraft(&admin, 5, "AB").await;
    let leaders = formed(&nodes.iter().collect::<Vec<_>>(), &admin, 2).await;
    let flights = flights_owned_by(&admin, &craft, &leaders, &["node-b"]).await;
    let flight = &flights["node-b"];
    let customer = customer_on(a, &leaders, "node-a").await;

    // The client's own trace and span: the node continues it.
    let trace = uuid::Uuid::new_v4().simple().to_string();
    let client_span = "00f067aa0ba902b7";
    let booked = customer
        .request(Method::POST, "/api/v1/orders")
        .header("traceparent", format!("00-{trace}-{client_span}-01"))
        .header("x-request-id", "trace-test-booking")
        .json(&helpers::economy(&[flight], 1))
        .send()
        .await
        .expect("booking answered");
    assert_eq!(booked.status(), reqwest::StatusCode::CREATED);
    let returned = booked.headers()["traceparent"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        returned.starts_with(&format!("00-{trace}-")) && !returned.contains(client_span),
        "the response names the node's span of the client's trace: {returned}"
    );
    assert_eq!(booked.headers()["x-request-id"], "trace-test-booking");
    let order: serde_json::Value = booked.json().await.expect("order");
    // A malformed traceparent is no error: the node starts a trace of its own.
    let odd = customer
        .request(Method::GET, "/api/v1/auth/me")
        .header("traceparent", "00-zz-not-a-trace-01")
        .send()
        .await
        .expect("answered");
    assert_eq!(odd.status(), reqwest::StatusCode::OK);
    let own = odd.headers()["traceparent"].to_str().expect("ascii");
    assert!(own.starts_with("00-") && own.len() == 55, "{own}");
    let order_id = order["id"].as_str().expect("order id").to_owned();

    // Exporters send a span when it ends, in batches: wait until every span's parent (but the
    // client's) has arrived too, or the tree would be judged before it is whole.
    let spans_of = trace_of(&spans, &trace, |t| {
        t.iter()
            .any(|s| s.service == "node-b" && s.name == "flight.hold")
            && t.iter()
                .any(|s| s.service == "node-a" && s.name == "POST /api/v1/orders")
            && t.iter().all(|s| {
                s.parent == client_span || s.parent.is_empty() || t.iter().any(|p| p.id == s.parent)
            })
    })
    .await;
    let request = spans_of
        .iter()
        .find(|s| s.service == "node-a" && s.name == "POST /api/v1/orders")
        .unwrap_or_else(|| panic!("no request span on node-a: {spans_of:#?}"));
    assert_eq!(
        request.parent, client_span,
        "the request continues the client's span"
    );
    assert_eq!(request.attributes["request_id"], "trace-test-booking");
    assert_eq!(
        returned,
        format!("00-{trace}-{}-01", request.id),
        "the response's traceparent names the request span"
    );
    // Every span of the booking hangs from the request span: one tree, no orphan.
    for span in &spans_of {
        if span.id != request.id {
            let up = ancestors(&spans_of, span);
            assert_eq!(
                up.last().map(|s| &s.id),
                Some(&request.id),
                "{span:?} is not under the request: {:?}",
                names(&up)
            );
        }
    }
    let hold = spans_of
        .iter()
        .find(|s| s.service == "node-b" && s.name == "flight.hold")
        .expect("the hold on node-b");
    let path = names(&ancestors(&spans_of, hold));
    let expected = [
        "node-b:serve",
        "node-a:call",
        "node-a:saga.hold",
        "node-a:order.place",
        "node-a:POST /api/v1/orders",
    ];
    assert!(
        expected.iter().all(|e| path.contains(&(*e).to_owned())),
        "the hold's ancestors are {path:?}"
    );
    let position = |name: &str| path.iter().position(|p| p == name);
    assert!(
        expected.windows(2).all(|w| position(w[0]) < position(w[1])),
        "the hold's ancestors are in the wrong order: {path:?}"
    );
    let synced_on_b = spans_of.iter().any(|s| {
        s.service == "node-b"
            && s.name == "store.sync"
            && ancestors(&spans_of, s)
                .iter()
                .any(|p| p.service == "node-b" && p.name == "serve")
    });
    assert!(synced_on_b, "node-b made the hold durable within the trace");

    // Paying: another trace, from node-a's saga to node-b's confirmation.
    let trace = uuid::Uuid::new_v4().simple().to_string();
    let paid = customer
        .request(Method::POST, &format!("/api/v1/orders/{order_id}/pay"))
        .header("traceparent", format!("00-{trace}-{client_span}-01"))
        .json(&serde_json::json!({ "payment_token": "tok_visa" }))
        .send()
        .await
        .expect("payment answered");
    assert_eq!(paid.status(), reqwest::StatusCode::OK);
    let wanted = [
        "node-a:saga.charge",
        "node-a:saga.confirm",
        "node-b:flight.confirm",
        "node-a:saga.issue_tickets",
        "node-a:notify",
        "node-a:deliver",
    ];
    let spans_of = trace_of(&spans, &trace, |t| {
        let seen: Vec<String> = t
            .iter()
            .map(|s| format!("{}:{}", s.service, s.name))
            .collect();
        wanted.iter().all(|w| seen.contains(&(*w).to_owned()))
    })
    .await;
    let seen: Vec<String> = spans_of
        .iter()
        .map(|s| format!("{}:{}", s.service, s.name))
        .collect();
    for w in wanted {
        assert!(seen.contains(&w.to_owned()), "{w} missing from {seen:?}");
    }
    // The webhook POST carried the delivery's span as its traceparent.
    let delivered = helpers::eventually(std::time::Duration::from_secs(10), || async {
        !receiver.received().is_empty()
    })
    .await;
    assert!(delivered, "the webhook got nothing");
    let sent = receiver.received()[0].headers["traceparent"].clone();
    assert!(sent.starts_with(&format!("00-{trace}-")), "{sent}");
}
