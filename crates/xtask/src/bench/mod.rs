//! `cargo xtask bench api|consumer|batch`: each figure against a ceiling from the same run.

use std::process::ExitCode;

mod batch;
mod ceiling;
mod consumer;
mod cpu;
mod run_info;
mod scratch;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// issuer-api under wrk, against the HTTP floor and the Redis Lua ceiling.
    Api,
    /// One consumer draining a backlog, against MySQL's own insert ceiling.
    Consumer(consumer::Args),
    /// compensation-batch jobs, against the same storage calls made directly.
    Batch(batch::Args),
    /// One ceiling measurement (started by the benchmarks, in a release build).
    #[command(hide = true)]
    Ceiling(ceiling::Args),
}

impl Command {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            Self::Consumer(args) => consumer::run(args).await,
            Self::Batch(args) => batch::run(args).await,
            Self::Ceiling(args) => ceiling::run(args).await,
            Self::Api => anyhow::bail!("{self:?} is being moved here from scripts/bench-*.sh"),
        }
    }
}
