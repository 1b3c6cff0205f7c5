//! `cargo xtask bench api|consumer|batch|scale`: each figure against a ceiling from the same run.

use std::process::ExitCode;

pub mod api;
mod batch;
mod ceiling;
mod consumer;
pub mod cpu;
mod rss;
mod run_args;
mod run_info;
mod scale;
mod session;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// issuer-api under wrk, against the HTTP floor and the Redis Lua ceiling.
    Api(api::Args),
    /// One consumer draining a backlog, against MySQL's own insert ceiling.
    Consumer(consumer::Args),
    /// compensation-batch jobs, against the same storage calls made directly.
    Batch(batch::Args),
    /// 1, 3 and 6 consumers draining a backlog on 12 partitions, for 1 and 3 coupons at once.
    Scale(scale::Args),
    /// One ceiling measurement (started by the benchmarks, in a release build).
    #[command(hide = true)]
    Ceiling(ceiling::Args),
}

impl Command {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            Self::Api(args) => api::run(args).await,
            Self::Consumer(args) => consumer::run(args).await,
            Self::Batch(args) => batch::run(args).await,
            Self::Scale(args) => scale::run(args).await,
            Self::Ceiling(args) => ceiling::run(args).await,
        }
    }
}
