//! `cargo xtask check openapi|deploy|alerts|traces`: what the project ships, checked by the real tools.

use std::process::ExitCode;

mod alerts;
mod deploy;
mod live;
mod openapi;
mod traces;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// The OpenAPI document against the running API (schemathesis).
    Openapi(openapi::Args),
    /// The deploy manifests, offline (kubernetes-validate, consistency, the config loader).
    Deploy(deploy::Args),
    /// The alert rules, their tests and runbooks, the Alertmanager routing, offline (promtool,
    /// amtool).
    Alerts(alerts::Args),
    /// One request's trace across the real issuer-api and coupon-consumer, received by a real
    /// OTLP receiver.
    Traces(traces::Args),
}

impl Command {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            Self::Openapi(args) => openapi::run(args).await,
            Self::Deploy(args) => deploy::run(args).await,
            Self::Alerts(args) => alerts::run(args).await,
            Self::Traces(args) => traces::run(args).await,
        }
    }
}
