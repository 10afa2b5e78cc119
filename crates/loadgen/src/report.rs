//! The end of a run: a table on stdout, a JSON result file, and a latency plot (SVG).

use super::audit::Audit;
use super::stats::EndpointReport;
use super::users::Outcome;
use super::{LoadgenArgs, Scenario};
use anyhow::Context;
use plotters::prelude::*;
use serde::Serialize;
use std::path::Path;

/// A run's result (also written as JSON).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Scenario run.
    pub scenario: Scenario,
    /// Nodes driven.
    pub targets: Vec<String>,
    /// Virtual users.
    pub users: usize,
    /// Measured wall time in seconds.
    pub elapsed_secs: f64,
    /// Requests sent.
    pub requests: u64,
    /// Requests per second over all endpoints.
    pub per_second: f64,
    /// Per-endpoint figures.
    pub endpoints: Vec<EndpointReport>,
    /// Rush: buyers and holds granted.
    pub rush: Option<RushReport>,
    /// The audit, unless skipped.
    pub audit: Option<Audit>,
}

/// The on-sale moment.
#[derive(Debug, Clone, Serialize)]
pub struct RushReport {
    /// Buyers.
    pub buyers: usize,
    /// Holds granted.
    pub holds: u64,
    /// Buyers answered (any status).
    pub answered: u64,
    /// Seconds until every buyer was answered.
    pub all_answered_secs: f64,
}

impl Report {
    /// Builds the report of a run.
    pub fn new(args: &LoadgenArgs, outcome: &Outcome, audit: Option<Audit>) -> Self {
        let endpoints = outcome.stats.report(outcome.elapsed);
        let requests = outcome.stats.total();
        let secs = outcome.elapsed.as_secs_f64();
        Self {
            scenario: args.scenario,
            targets: args.targets.clone(),
            users: args.users,
            elapsed_secs: secs,
            requests,
            per_second: requests as f64 / secs.max(1e-9),
            rush: outcome.rush.map(|(buyers, holds)| RushReport {
                buyers,
                holds,
                answered: requests - endpoints.iter().map(|e| e.transport_errors).sum::<u64>(),
                all_answered_secs: secs,
            }),
            endpoints,
            audit,
        }
    }

    /// Whether the audit (if any) passed.
    pub fn passed(&self) -> bool {
        self.audit.as_ref().is_none_or(Audit::passed)
    }

    /// Prints the table and the audit.
    pub fn print(&self) {
        println!(
            "\n{:?}: {} users, {} requests in {:.2} s = {:.0} requests/s",
            self.scenario, self.users, self.requests, self.elapsed_secs, self.per_second
        );
        println!(
            "{:<34} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8}  statuses",
            "endpoint", "requests", "req/s", "p50 ms", "p90 ms", "p99 ms", "p99.9", "max ms"
        );
        for e in &self.endpoints {
            let statuses: Vec<String> =
                e.statuses.iter().map(|(s, n)| format!("{s}:{n}")).collect();
            let errors = if e.transport_errors > 0 {
                format!(" errors:{}", e.transport_errors)
            } else {
                String::new()
            };
            println!(
                "{:<34} {:>9} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}  {}{}",
                e.endpoint,
                e.requests,
                e.per_second,
                e.p50_ms,
                e.p90_ms,
                e.p99_ms,
                e.p999_ms,
                e.max_ms,
                statuses.join(" "),
                errors
            );
        }
        if let Some(r) = &self.rush {
            println!(
                "rush: {} buyers, {} holds granted, all answered in {:.3} s",
                r.buyers, r.holds, r.all_answered_secs
            );
        }
        if let Some(audit) = &self.audit {
            println!("audit:");
            for c in &audit.checks {
                let verdict = if c.passed { "PASS" } else { "FAIL" };
                println!(
                    "  {verdict}  {}{}",
                    c.name,
                    if c.detail.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", c.detail)
                    }
                );
            }
            println!("audit {}", if audit.passed() { "passed" } else { "FAILED" });
        }
    }

    /// Writes the JSON result and the latency plot.
    pub fn write(&self, json_path: &Path, plot_path: &Path) -> anyhow::Result<()> {
        let json = serde_json::to_vec_pretty(self).context("encoding the result")?;
        std::fs::write(json_path, json)
            .with_context(|| format!("writing {}", json_path.display()))?;
        self.plot(plot_path)
            .with_context(|| format!("writing {}", plot_path.display()))
    }

    /// Latency by percentile, one line per endpoint.
    fn plot(&self, path: &Path) -> anyhow::Result<()> {
        let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
        let top = self
            .endpoints
            .iter()
            .flat_map(|e| e.curve.iter().map(|(_, ms)| *ms))
            .fold(1.0_f64, f64::max);
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("{:?}: latency by percentile", self.scenario),
                ("sans-serif", 20),
            )
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..100.0_f64, 0.0..top * 1.05)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("ms")
            .draw()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        for (i, e) in self.endpoints.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(
                    e.curve.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .label(e.endpoint.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(())
    }
}
