//! `cargo xtask gen monitoring`: files generated from the project's own sources, committed,
//! and checked for staleness by the check that reads them (`cargo xtask check deploy`).

use std::process::ExitCode;

pub mod monitoring;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// deploy/k8s/components/monitoring/prometheus-rules.yaml: the Prometheus Operator
    /// `PrometheusRule`s of deploy/prometheus's rule files.
    Monitoring,
}

impl Command {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            Self::Monitoring => monitoring::run(),
        }
    }
}
