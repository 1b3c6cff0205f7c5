//! `cargo xtask check openapi|deploy|alerts|delivery|traces|metrics|incident`: what the project ships,
//! checked by the real tools.

use std::process::ExitCode;

mod alerts;
mod delivery;
mod deploy;
mod incident;
mod live;
mod metrics;
mod openapi;
mod traces;
mod users;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// The OpenAPI document against the running API (schemathesis).
    Openapi(openapi::Args),
    /// The deploy manifests, offline (kubernetes-validate, consistency, the config loader).
    Deploy(deploy::Args),
    /// The alert rules, their tests and runbooks, the Alertmanager routing, offline (promtool,
    /// amtool).
    Alerts(alerts::Args),
    /// What builds and ships the image, offline: docker/compose.yaml's settings through the
    /// config loader, hadolint and pinned bases on docker/Dockerfile, actionlint on the
    /// workflows, `k6 inspect` on the load script.
    Delivery(delivery::Args),
    /// One request's trace across the real issuer-api and coupon-consumer, received by a real
    /// OTLP receiver.
    Traces(traces::Args),
    /// Every metric name the rules and dashboards read is exported by the running binaries.
    Metrics(metrics::Args),
    /// The incident replayed live (the consumer loses its broker while users take part): the
    /// real Prometheus and Alertmanager must page; measures the seconds to the page. Includes
    /// the metrics check, on the same binaries.
    Incident(incident::Args),
}

impl Command {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            Self::Openapi(args) => openapi::run(args).await,
            Self::Deploy(args) => deploy::run(args).await,
            Self::Alerts(args) => alerts::run(args).await,
            Self::Delivery(args) => delivery::run(args).await,
            Self::Traces(args) => traces::run(args).await,
            Self::Metrics(args) => metrics::run(args).await,
            Self::Incident(args) => incident::run(args).await,
        }
    }
}
