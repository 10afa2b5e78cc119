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
