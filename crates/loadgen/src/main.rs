//! `contrail-loadgen`: drives running Contrail nodes with load, reports latency and
//! throughput, then audits the bookings through the API (`--help` lists every option).

use clap::Parser;
use contrail_loadgen::{LoadgenArgs, run};

/// The load generator shares its machine with the node it measures: see `main.rs` of the
/// node for why mimalloc (and BENCHMARKS.md for the transparent-huge-page finding).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "contrail-loadgen",
    version,
    about = "Load generator for Contrail"
)]
struct Cli {
    #[command(flatten)]
    args: LoadgenArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let report = run(Cli::parse().args).await?;
    anyhow::ensure!(report.passed(), "the audit failed");
    Ok(())
}
