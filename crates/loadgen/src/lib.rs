//! `contrail-loadgen`: drives a running node (or several) over HTTP, measures, and audits.
//!
//! Scenarios: `baseline` (a trivial route: the server's HTTP ceiling in the same run), `browse`
//! (search and flight details), `book` (sign up once, then hold → pay, with a decline and
//! abandon mix), `hold` (bookings only), `rush` (many buyers for one flight with few seats, all at once). Every run is
//! bounded by a duration and/or a request count. The catalog is set up through the API.

pub mod audit;
mod report;
mod setup;
pub mod stats;
mod users;

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

pub use report::Report;

/// What traffic to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// `GET /healthz` only: the HTTP ceiling of the same server in the same conditions.
    Baseline,
    /// Flight search and flight details, anonymously.
    Browse,
    /// Sign up and sign in once per user, then hold → pay (with declines and abandons).
    Book,
    /// Like `book` without paying: one-seat bookings (`POST /orders`) only, the booking rate.
    Hold,
    /// `--users` buyers at once for one flight of `--seats` seats, one attempt each.
    Rush,
}

/// `contrail-loadgen` options.
#[derive(Debug, Clone, Args)]
pub struct LoadgenArgs {
    /// Scenario to run.
    #[arg(long, value_enum, default_value = "book")]
    pub scenario: Scenario,
    /// Base URL of a node; repeat for several nodes (users are spread over them).
    #[arg(long = "target", default_value = "http://127.0.0.1:8080")]
    pub targets: Vec<String>,
    /// Concurrent virtual users (rush: buyers).
    #[arg(long, default_value_t = 64)]
    pub users: usize,
    /// Run for this many seconds (not for rush, which ends when every buyer is answered).
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    /// Stop after this many requests in total (whichever limit comes first).
    #[arg(long)]
    pub requests: Option<u64>,
    /// Seed for the random choices (flights, declines, abandons) and account names.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Flights to spread bookings over (book, hold, browse).
    #[arg(long, default_value_t = 20)]
    pub flights: usize,
    /// Seats of the rush flight (a multiple of 6 is exact; rows of 6 seats).
    #[arg(long, default_value_t = 150)]
    pub seats: usize,
    /// Share of payments made with a declined card (book).
    #[arg(long, default_value_t = 0.1)]
    pub decline_rate: f64,
    /// Share of held orders never paid (book).
    #[arg(long, default_value_t = 0.1)]
    pub abandon_rate: f64,
    /// Accounts used by rush buyers (created once, shared; the per-customer cap applies).
    #[arg(long, default_value_t = 50)]
    pub rush_accounts: usize,
    /// Admin account used to set up the catalog.
    #[arg(long, default_value = "admin@contrail.local")]
    pub admin_email: String,
    /// Its password.
    #[arg(long, default_value = "change-me-admin")]
    pub admin_password: String,
    /// Where to write the JSON result.
    #[arg(long, default_value = "loadgen-result.json")]
    pub out: PathBuf,
    /// Where to write the latency plot (SVG).
    #[arg(long, default_value = "loadgen-latency.svg")]
    pub plot: PathBuf,
    /// Skip the audit (e.g. for baseline runs against a shared node).
    #[arg(long)]
    pub no_audit: bool,
    /// No progress bar (for CI logs).
    #[arg(long)]
    pub quiet: bool,
}

/// Runs a scenario, prints the report, writes the JSON and the plot, and audits.
pub async fn run(args: LoadgenArgs) -> anyhow::Result<Report> {
    anyhow::ensure!(
        !args.targets.is_empty(),
        "at least one --target is required"
    );
    anyhow::ensure!(args.users > 0, "--users must be positive");
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.decline_rate),
        "--decline-rate is a share, 0 to 1"
    );
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.abandon_rate),
        "--abandon-rate is a share, 0 to 1"
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.users)
        .timeout(Duration::from_secs(30))
        .build()
        .context("building the HTTP client")?;
    let outcome = users::drive(&client, &args).await?;
    let audit = if args.no_audit || args.scenario == Scenario::Baseline {
        None
    } else {
        let node = contrail_client::Client::with_http(&args.targets[0], client.clone());
        Some(setup::collect_and_audit(&node, &outcome).await?)
    };
    let report = Report::new(&args, &outcome, audit);
    report.print();
    report.write(&args.out, &args.plot)?;
    Ok(report)
}
