//! Every metric the node exports, with its type, unit and `# HELP` text — one list, so that
//! `/metrics` explains itself and dashboards and alert rules can be checked against it (a unit
//! test below checks the list against every metric the source records). Process metrics (CPU,
//! resident memory, open file descriptors) come from `metrics-process`, collected at each scrape.

use anyhow::Context;
use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

/// What kind of metric a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// A distribution in buckets.
    Histogram,
}

/// One exported metric.
#[derive(Debug)]
pub struct Metric {
    /// The Prometheus name.
    pub name: &'static str,
    /// Its type.
    pub kind: Kind,
    /// What it counts or measures.
    pub unit: Unit,
    /// The `# HELP` line.
    pub help: &'static str,
    /// The series created at start (at 0, or an empty histogram), so that dashboards and alert
    /// rules see them before the first event: the label sets known up front (`[]` for a metric
    /// without labels). Labels known only where the metric is recorded (the route, an actor's
    /// kind) are created there.
    pub series: &'static [&'static [(&'static str, &'static str)]],
}

/// One unlabeled series.
const PLAIN: &[&[(&str, &str)]] = &[&[]];
/// No series until recorded or created where its labels are known.
const LATER: &[&[(&str, &str)]] = &[];

const fn metric(
    name: &'static str,
    kind: Kind,
    unit: Unit,
    help: &'static str,
    series: &'static [&'static [(&'static str, &'static str)]],
) -> Metric {
    Metric {
        name,
        kind,
        unit,
        help,
        series,
    }
}

use Kind::{Counter, Gauge, Histogram};

/// The node's own metrics.
pub const METRICS: &[Metric] = &[
    metric(
        "contrail_build_info",
        Gauge,
        Unit::Count,
        "Always 1; the labels name the running version.",
        LATER,
    ),
    metric(
        "contrail_http_requests_total",
        Counter,
        Unit::Count,
        "HTTP requests answered, by method, documented route (or `unmatched`) and status.",
        LATER,
    ),
    metric(
        "contrail_http_request_duration_seconds",
        Histogram,
        Unit::Seconds,
        "Time from a request's arrival to its response, by method, route and status.",
        LATER,
    ),
    metric(
        "contrail_bookings_attempted_total",
        Counter,
        Unit::Count,
        "Orders whose holds were requested from their flights.",
        PLAIN,
    ),
    metric(
        "contrail_bookings_succeeded_total",
        Counter,
        Unit::Count,
        "Orders whose every segment was held.",
        PLAIN,
    ),
    metric(
        "contrail_bookings_failed_total",
        Counter,
        Unit::Count,
        "Orders whose holds failed, by reason.",
        &[
            &[("reason", "seats_unavailable")],
            &[("reason", "hold_limit")],
            &[("reason", "invalid")],
            &[("reason", "unavailable")],
        ],
    ),
    metric(
        "contrail_bookings_refused_full_total",
        Counter,
        Unit::Count,
        "Bookings answered 409 at once because the cabin was known to be sold out.",
        PLAIN,
    ),
    metric(
        "contrail_requests_shed_total",
        Counter,
        Unit::Count,
        "Bookings and payments refused with 503 because booking.max_in_flight were being worked on.",
        PLAIN,
    ),
    metric(
        "contrail_holds_expired_total",
        Counter,
        Unit::Count,
        "Held seats returned to sale because their hold lapsed.",
        PLAIN,
    ),
    metric(
        "contrail_orders_expired_total",
        Counter,
        Unit::Count,
        "Held orders that expired unpaid.",
        PLAIN,
    ),
    metric(
        "contrail_payments_total",
        Counter,
        Unit::Count,
        "Charges asked of the payment simulator, by result.",
        &[
            &[("result", "approved")],
            &[("result", "declined")],
            &[("result", "timeout")],
            &[("result", "refunded")],
            &[("result", "failed")],
        ],
    ),
    metric(
        "contrail_saga_step_seconds",
        Histogram,
        Unit::Seconds,
        "Duration of each step of the order saga, by step.",
        &[
            &[("step", "hold")],
            &[("step", "compensate")],
            &[("step", "confirm")],
            &[("step", "release")],
            &[("step", "void_tickets")],
        ],
    ),
    metric(
        "contrail_notifications_total",
        Counter,
        Unit::Count,
        "Notifications recorded for customers, by kind.",
        &[
            &[("kind", "OrderConfirmed")],
            &[("kind", "PaymentDeclined")],
            &[("kind", "OrderExpired")],
            &[("kind", "OrderCancelled")],
            &[("kind", "FlightCancelled")],
        ],
    ),
    metric(
        "contrail_outbox_depth",
        Gauge,
        Unit::Count,
        "Deliveries in the node's outbox by state (pending, retrying, failed); refreshed every 5 s.",
        &[
            &[("state", "pending")],
            &[("state", "retrying")],
            &[("state", "failed")],
        ],
    ),
    metric(
        "contrail_outbox_attempts_total",
        Counter,
        Unit::Count,
        "Delivery attempts, by channel and result.",
        &[
            &[("channel", "email"), ("result", "ok")],
            &[("channel", "email"), ("result", "error")],
            &[("channel", "webhook"), ("result", "ok")],
            &[("channel", "webhook"), ("result", "error")],
        ],
    ),
    metric(
        "contrail_outbox_finished_total",
        Counter,
        Unit::Count,
        "Deliveries finished, by channel and final state (delivered, or failed after every attempt).",
        &[
            &[("channel", "email"), ("state", "delivered")],
            &[("channel", "email"), ("state", "failed")],
            &[("channel", "webhook"), ("state", "delivered")],
            &[("channel", "webhook"), ("state", "failed")],
        ],
    ),
    metric(
        "contrail_outbox_delivery_seconds",
        Histogram,
        Unit::Seconds,
        "From a notification's creation to its delivery, by channel (retries included).",
        &[&[("channel", "email")], &[("channel", "webhook")]],
    ),
    metric(
        "contrail_actor_restarts_total",
        Counter,
        Unit::Count,
        "Actors restarted by their supervisor after a failure, by kind.",
        LATER,
    ),
    metric(
        "contrail_entity_actors_active",
        Gauge,
        Unit::Count,
        "Entity actors live on this node, by kind (the others are passivated on disk).",
        &[
            &[("kind", "flight")],
            &[("kind", "order")],
            &[("kind", "ticket")],
        ],
    ),
    metric(
        "contrail_flight_actors_active",
        Gauge,
        Unit::Count,
        "Flight actors live on this node.",
        PLAIN,
    ),
    metric(
        "contrail_storage_sync_seconds",
        Histogram,
        Unit::Seconds,
        "Time one group commit takes to make the journal durable (write and fdatasync).",
        PLAIN,
    ),
    metric(
        "contrail_storage_sync_batch_size",
        Histogram,
        Unit::Count,
        "Writes made durable by one group commit.",
        PLAIN,
    ),
    metric(
        "contrail_cluster_members_up",
        Gauge,
        Unit::Count,
        "Cluster members this node currently hears from, itself included.",
        PLAIN,
    ),
    metric(
        "contrail_partition_leader",
        Gauge,
        Unit::Count,
        "1 while this node leads the partition and may serve it (leader, caught up, lease held), else 0.",
        LATER,
    ),
    metric(
        "contrail_partitions_leaderless",
        Gauge,
        Unit::Count,
        "Partitions for which this node knows no leader (their entities answer 503); 0 on a node without a cluster.",
        PLAIN,
    ),
    metric(
        "contrail_partition_term",
        Gauge,
        Unit::Count,
        "The partition's consensus term as this node knows it (it rises with every election).",
        LATER,
    ),
    metric(
        "contrail_partition_applied_index",
        Gauge,
        Unit::Count,
        "The last log index of the partition this node applied.",
        LATER,
    ),
    metric(
        "contrail_partition_replication_lag",
        Gauge,
        Unit::Count,
        "On the partition's leader: log entries the slowest replica lacks.",
        LATER,
    ),
    metric(
        "contrail_partition_leader_changes_total",
        Counter,
        Unit::Count,
        "Changes of a partition's leader seen by this node.",
        LATER,
    ),
    metric(
        "contrail_partition_handovers_total",
        Counter,
        Unit::Count,
        "Partitions this node handed to their preferred leader (spreading leaders over members), by result.",
        &[&[("result", "moved")], &[("result", "not_moved")]],
    ),
    metric(
        "contrail_partition_commit_seconds",
        Histogram,
        Unit::Seconds,
        "Time from proposing a write to a partition until a majority has it on disk and it is applied here.",
        LATER,
    ),
    metric(
        "contrail_cluster_epoch",
        Gauge,
        Unit::Count,
        "The epoch of the membership view this node runs.",
        PLAIN,
    ),
    metric(
        "contrail_cluster_forwards_total",
        Counter,
        Unit::Count,
        "Requests forwarded to the node owning their entity, by result.",
        &[
            &[("result", "ok")],
            &[("result", "timeout")],
            &[("result", "unreachable")],
        ],
    ),
    metric(
        "contrail_cluster_remote_call_seconds",
        Histogram,
        Unit::Seconds,
        "Round trip of a request forwarded to another node.",
        PLAIN,
    ),
    metric(
        "contrail_cluster_removals_total",
        Counter,
        Unit::Count,
        "Dead members removed from the cluster for good (their replicas rebuilt elsewhere).",
        PLAIN,
    ),
];

/// Renders `/metrics`: the node's metrics and the process's.
pub struct Exporter {
    handle: PrometheusHandle,
    process: metrics_process::Collector,
}

impl Exporter {
    /// The process-wide exporter (one recorder per process, shared by nodes started in it).
    pub fn install() -> anyhow::Result<Self> {
        static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
        let handle = HANDLE
            .get_or_init(|| {
                let installed = recorder().and_then(|b| b.install_recorder());
                if installed.is_ok() {
                    describe();
                }
                installed
                    .map_err(|e| tracing::error!(error = %e, "metrics recorder not installed"))
                    .ok()
            })
            .clone()
            .context("the Prometheus recorder could not be installed")?;
        Ok(Self {
            handle,
            process: metrics_process::Collector::default(),
        })
    }

    /// The text exposition, with process metrics read now.
    pub fn render(&self) -> String {
        self.process.collect();
        self.handle.render()
    }

    /// Drains histogram buffers; called periodically so memory stays flat between scrapes.
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }
}

fn recorder() -> Result<PrometheusBuilder, metrics_exporter_prometheus::BuildError> {
    let latency = [
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        5.0, 10.0,
    ];
    let sizes = [
        1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0, 8192.0,
    ];
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &latency)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_batch_size".into()), &sizes))
}

/// Gives every metric its HELP line and unit, sets the build-info gauge, and creates the
/// series known up front.
fn describe() {
    for m in METRICS {
        match m.kind {
            Kind::Counter => metrics::describe_counter!(m.name, m.unit, m.help),
            Kind::Gauge => metrics::describe_gauge!(m.name, m.unit, m.help),
            Kind::Histogram => metrics::describe_histogram!(m.name, m.unit, m.help),
        }
    }
    metrics::gauge!("contrail_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    metrics_process::Collector::default().describe();
    for m in METRICS {
        for labels in m.series {
            let labels: Vec<metrics::Label> = labels
                .iter()
                .map(|&(k, v)| metrics::Label::new(k, v))
                .collect();
            // Registering the series is enough: the exporter shows it at 0 / empty.
            match m.kind {
                Kind::Counter => drop(metrics::counter!(m.name, labels)),
                Kind::Gauge => drop(metrics::gauge!(m.name, labels)),
                Kind::Histogram => drop(metrics::histogram!(m.name, labels)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::path::Path;

    /// Every metric recorded with a `contrail_` name literal in `src/`, and its macro.
    fn recorded(dir: &Path, found: &mut BTreeSet<(String, &'static str)>) {
        for entry in std::fs::read_dir(dir).expect("src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                recorded(&path, found);
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("source");
            for kind in ["counter", "gauge", "histogram"] {
                let call = format!("{kind}!(\"contrail_");
                for (at, _) in text.match_indices(&call) {
                    let rest = &text[at + call.len() - "contrail_".len()..];
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                        .collect();
                    found.insert((name, kind));
                }
            }
        }
    }

    #[test]
    fn every_recorded_metric_is_described_with_its_type() {
        let mut found = BTreeSet::new();
        recorded(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut found,
        );
        assert!(found.len() > 10, "the scan found too little: {found:?}");
        let described: BTreeSet<(String, &'static str)> = METRICS
            .iter()
            .map(|m| {
                let kind = match m.kind {
                    Kind::Counter => "counter",
                    Kind::Gauge => "gauge",
                    Kind::Histogram => "histogram",
                };
                (m.name.to_owned(), kind)
            })
            .collect();
        assert_eq!(found, described);
    }

    #[test]
    fn names_follow_prometheus_conventions() {
        for m in METRICS {
            assert!(m.name.starts_with("contrail_"), "{}", m.name);
            match m.kind {
                Kind::Counter => assert!(m.name.ends_with("_total"), "{}", m.name),
                _ => assert!(!m.name.ends_with("_total"), "{}", m.name),
            }
            if m.unit == Unit::Seconds {
                assert!(m.name.ends_with("_seconds"), "{}", m.name);
            }
            assert!(m.help.ends_with('.'), "{}", m.name);
        }
    }
}
