//! `cargo xtask bench api|consumer|batch`: each figure against a ceiling from the same run.

use std::process::ExitCode;

pub mod api;
pub mod cpu;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// issuer-api under wrk, against the HTTP floor and the Redis Lua ceiling.
    Api(api::Args),
    /// One consumer draining a backlog, against MySQL's own insert ceiling.
    Consumer,
    /// compensation-batch jobs, against the same SQL run directly.
    Batch,
}

impl Command {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            Self::Api(args) => api::run(args).await,
            other => anyhow::bail!("{other:?} is being moved here from scripts/bench-*.sh"),
        }
    }
}
