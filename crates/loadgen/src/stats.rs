//! Per-endpoint latency histograms (HDR, microseconds) and status-code counts.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Highest latency recorded exactly (longer ones are clamped): one minute.
const MAX_MICROS: u64 = 60_000_000;

/// Latencies kept as plain numbers before they go into a histogram: a rush has ten thousand
/// users with one request each, and a histogram per user (tens of KiB, zeroed) cost the load
/// generator more CPU than the requests did.
const SPILL: usize = 512;

/// What one endpoint saw.
#[derive(Default)]
pub struct Endpoint {
    latency: Option<Histogram<u64>>,
    /// Latencies (µs) not yet in `latency`.
    recent: Vec<u64>,
    statuses: BTreeMap<u16, u64>,
    /// Requests that got no HTTP answer (connection refused, reset, timeout).
    pub transport_errors: u64,
}

fn histogram() -> Histogram<u64> {
    // ok: constant, valid bounds (1 µs to 60 s, 3 significant digits); cannot fail.
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid histogram bounds")
}

impl Endpoint {
    /// Moves `recent` into the histogram.
    fn spill(&mut self) {
        let h = self.latency.get_or_insert_with(histogram);
        for micros in self.recent.drain(..) {
            let _ = h.record(micros);
        }
    }

    fn answered(&self) -> u64 {
        self.latency.as_ref().map_or(0, |h| h.len()) + self.recent.len() as u64
    }

    /// Every latency seen, in one histogram.
    fn all(&self) -> Histogram<u64> {
        let mut h = self.latency.clone().unwrap_or_else(histogram);
        for &micros in &self.recent {
            let _ = h.record(micros);
        }
        h
    }
}

/// Everything measured by one virtual user (merged at the end).
#[derive(Default)]
pub struct Stats {
    endpoints: BTreeMap<&'static str, Endpoint>,
}

/// One endpoint's figures, as reported.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointReport {
    /// e.g. `POST /api/v1/orders`.
    pub endpoint: String,
    /// Requests sent.
    pub requests: u64,
    /// Requests per second over the run.
    pub per_second: f64,
    /// Latency percentiles in milliseconds.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Slowest.
    pub max_ms: f64,
    /// Answers by HTTP status.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests without an HTTP answer.
    pub transport_errors: u64,
    /// (percentile, milliseconds) points for plotting.
    #[serde(skip)]
    pub curve: Vec<(f64, f64)>,
}

impl Stats {
    /// Records one answered request.
    pub fn record(&mut self, endpoint: &'static str, status: u16, took: Duration) {
        let e = self.endpoints.entry(endpoint).or_default();
        let micros = u64::try_from(took.as_micros())
            .unwrap_or(MAX_MICROS)
            .clamp(1, MAX_MICROS);
        e.recent.push(micros);
        if e.recent.len() >= SPILL {
            e.spill();
        }
        *e.statuses.entry(status).or_default() += 1;
    }

    /// Records a request that got no answer.
    pub fn record_error(&mut self, endpoint: &'static str) {
        self.endpoints.entry(endpoint).or_default().transport_errors += 1;
    }

    /// Adds another user's figures.
    pub fn merge(&mut self, other: Stats) {
        for (name, e) in other.endpoints {
            let mine = self.endpoints.entry(name).or_default();
            if let Some(h) = &e.latency {
                let _ = mine.latency.get_or_insert_with(histogram).add(h);
            }
            mine.recent.extend_from_slice(&e.recent);
            if mine.recent.len() >= SPILL {
                mine.spill();
            }
            for (status, n) in e.statuses {
                *mine.statuses.entry(status).or_default() += n;
            }
            mine.transport_errors += e.transport_errors;
        }
    }

    /// Total requests sent.
    pub fn total(&self) -> u64 {
        self.endpoints
            .values()
            .map(|e| e.answered() + e.transport_errors)
            .sum()
    }

    /// Answers with status >= 500, and requests without an answer.
    pub fn failures(&self) -> u64 {
        self.endpoints
            .values()
            .map(|e| {
                e.transport_errors
                    + e.statuses
                        .iter()
                        .filter(|(s, _)| **s >= 500)
                        .map(|(_, n)| n)
                        .sum::<u64>()
            })
            .sum()
    }

    /// Answers with exactly `status`, over all endpoints.
    pub fn count(&self, status: u16) -> u64 {
        self.endpoints
            .values()
            .filter_map(|e| e.statuses.get(&status))
            .sum()
    }

    /// The per-endpoint report for a run of `elapsed`.
    pub fn report(&self, elapsed: Duration) -> Vec<EndpointReport> {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        self.endpoints
            .iter()
            .map(|(name, e)| {
                let all = e.all();
                let h = &all;
                let requests = h.len() + e.transport_errors;
                EndpointReport {
                    endpoint: (*name).to_owned(),
                    requests,
                    per_second: requests as f64 / secs,
                    p50_ms: ms(h, 0.5),
                    p90_ms: ms(h, 0.9),
                    p99_ms: ms(h, 0.99),
                    p999_ms: ms(h, 0.999),
                    max_ms: h.max() as f64 / 1000.0,
                    statuses: e.statuses.clone(),
                    transport_errors: e.transport_errors,
                    curve: [
                        0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9999, 1.0,
                    ]
                    .iter()
                    .map(|q| (q * 100.0, ms(h, *q)))
                    .collect(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_merge_and_report() {
        let mut a = Stats::default();
        let mut b = Stats::default();
        for i in 1..=100u64 {
            a.record("GET /x", 200, Duration::from_millis(i));
        }
        b.record("GET /x", 503, Duration::from_millis(1));
        b.record_error("GET /x");
        a.merge(b);
        assert_eq!(a.total(), 102);
        assert_eq!(a.failures(), 2);
        let r = &a.report(Duration::from_secs(1))[0];
        assert_eq!(r.requests, 102);
        assert!(r.p50_ms >= 49.0 && r.p50_ms <= 51.0, "{}", r.p50_ms);
        assert!(r.max_ms >= 99.0);
    }

    #[test]
    fn spilled_and_recent_latencies_are_all_counted() {
        let mut total = Stats::default();
        for user in 0..10u64 {
            let mut s = Stats::default();
            // Enough for one spill into the histogram, and some left over.
            for i in 0..(SPILL as u64 + 88) {
                s.record("POST /y", 201, Duration::from_micros(100 * (user + 1) + i));
            }
            total.merge(s);
        }
        let r = &total.report(Duration::from_secs(2))[0];
        assert_eq!(r.requests, 10 * (SPILL as u64 + 88));
        assert_eq!(r.statuses[&201], r.requests);
        assert!(r.max_ms >= 1.5 && r.max_ms <= 1.7, "{}", r.max_ms);
        assert!(r.p50_ms > 0.3 && r.p50_ms < 1.0, "{}", r.p50_ms);
    }
}
