//! `contrail`: runs a node (`contrail serve --config config.toml`).

use anyhow::Context;
use clap::{Parser, Subcommand};
use contrail::settings::Settings;
use std::path::PathBuf;

/// glibc's allocator keeps what a burst of password hashes (19 MiB each, on many blocking
/// threads) allocated: 64 signups left a node at 740 MB resident. mimalloc returns freed
/// memory to the OS and is cheaper per allocation on the hot path (malloc was 10–15 % of a
/// booking's CPU time in `perf`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "contrail",
    version,
    about = "Flight and ticket booking backend"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node until SIGTERM or Ctrl-C.
    Serve {
        /// The configuration file; CONTRAIL__SECTION__KEY variables override it.
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve { config } => {
            // Everything the node creates (the store's files, logs written beside it) is for
            // its own user only: the data holds password hashes and personal data.
            rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
            let settings = Settings::load(Some(&config))
                .with_context(|| format!("loading {}", config.display()))?;
            let telemetry = contrail::telemetry::init(
                &settings.log,
                &settings.telemetry,
                settings.service_name(),
            )?;
            if settings.mode == contrail::settings::Mode::Development {
                tracing::warn!(
                    "development mode: the secrets published in this repository are accepted; never expose this node"
                );
            }
            let node = contrail::startup::start(settings).await?;
            shutdown_signal().await?;
            let stopped = node.shutdown().await;
            // The exporter's flush blocks (on its own thread): not on a runtime worker.
            tokio::task::spawn_blocking(move || telemetry.shutdown()).await?;
            stopped
        }
    }
}

async fn shutdown_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        r = tokio::signal::ctrl_c() => { r.context("waiting for Ctrl-C")?; tracing::info!("interrupt received") }
    }
    Ok(())
}
