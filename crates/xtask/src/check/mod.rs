//! `cargo xtask check openapi|deploy`: what the project ships, checked by the real tools.

use std::process::ExitCode;

mod deploy;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// The OpenAPI document against the running API (schemathesis).
    Openapi,
    /// The deploy manifests, offline (kubernetes-validate, consistency, the config loader).
    Deploy(deploy::Args),
}

impl Command {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            Self::Deploy(args) => deploy::run(args).await,
            Self::Openapi => anyhow::bail!("{self:?} is being moved here from scripts/check-*.sh"),
        }
    }
}
