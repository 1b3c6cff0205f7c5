//! `cargo xtask check openapi|deploy`: what the project ships, checked by the real tools.

use std::process::ExitCode;

mod openapi;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// The OpenAPI document against the running API (schemathesis).
    Openapi(openapi::Args),
    /// The deploy manifests, offline (kubernetes-validate, hadolint, the config loader).
    Deploy,
}

impl Command {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            Self::Openapi(args) => openapi::run(args).await,
            Self::Deploy => anyhow::bail!("{self:?} is being moved here from scripts/check-*.sh"),
        }
    }
}
