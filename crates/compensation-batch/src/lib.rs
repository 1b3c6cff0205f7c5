//! `compensation-batch`: one-shot operational jobs, each safe to run twice.

mod migrate;

use couponrush_config::Settings;

/// Command line of the `compensation-batch` binary.
#[derive(Debug, clap::Parser)]
#[command(
    name = "compensation-batch",
    version,
    about = "One-shot couponrush jobs"
)]
pub struct Cli {
    #[command(flatten)]
    pub config: couponrush_config::ConfigArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Create the database if missing and apply pending schema migrations (idempotent).
    Migrate,
}

/// Runs one job to completion.
pub async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Migrate => migrate::run(&settings).await,
    }
}
