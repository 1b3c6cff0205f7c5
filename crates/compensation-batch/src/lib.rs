//! `compensation-batch`: one-shot operational jobs, each safe to run twice.

mod compensate;
mod connect;
mod migrate;
mod output;
mod progress;
mod reconcile;
mod replay_dlq;
mod smoke;

use couponrush_config::{Needs, Settings};

pub use compensate::CompensateArgs;
pub use output::OutputFormat;
pub use reconcile::ReconcileArgs;
pub use replay_dlq::ReplayDlqArgs;
pub use smoke::SmokeArgs;

/// Exit status of a reconciliation that found a coupon neither CONSISTENT nor PENDING, or of a
/// smoke test a step of which failed: distinct from 1 (the job itself could not run, e.g. bad
/// configuration) so a scheduler can tell the two apart.
pub const EXIT_NEEDS_ATTENTION: u8 = 3;

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
    /// Grant a compensation coupon, once each, to everyone who took part in a source coupon's
    /// event during a window and holds none of its coupons (safe to re-run or resume).
    Compensate(CompensateArgs),
    /// Compare Redis and MySQL per coupon: CONSISTENT, PENDING, LOST, ORPHAN or OVER_ISSUED.
    /// Exits 3 when a coupon is neither CONSISTENT nor PENDING.
    Reconcile(ReconcileArgs),
    /// Re-drive dead-lettered messages into the issue topic (all, or by reason).
    ReplayDlq(ReplayDlqArgs),
    /// Post-deploy check: API and every consumer live and ready, consumer lag low, and real
    /// issuances against a dedicated smoke coupon reach ISSUED and MySQL. Exits 3 naming the
    /// step that failed (api-ready, consumers-ready, consumer-lag, issue, issued).
    Smoke(SmokeArgs),
}

impl Command {
    /// The settings this job needs besides those every binary shares: the smoke test may have
    /// to create its coupon through the admin API; a repairing reconcile re-publishes issue
    /// requests, which the consumer accepts only signed.
    pub fn needs(&self) -> Needs {
        match self {
            Self::Smoke(_) => Needs {
                admin_token: true,
                ..Needs::default()
            },
            Self::Reconcile(args) if args.repair => Needs {
                signing_key: true,
                ..Needs::default()
            },
            _ => Needs::default(),
        }
    }
}

/// How a job that ran to completion ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The job ran, and found something a person must look at.
    pub needs_attention: bool,
    /// The summary it printed, as JSON (`null` for `migrate`).
    pub summary: serde_json::Value,
}

/// Runs one job to completion.
pub async fn run(command: &Command, settings: &Settings) -> anyhow::Result<Completion> {
    let done = |summary| Completion {
        needs_attention: false,
        summary,
    };
    Ok(match command {
        Command::Migrate => {
            migrate::run(settings).await?;
            done(serde_json::Value::Null)
        }
        Command::Compensate(args) => done(compensate::run(args, settings).await?),
        Command::Reconcile(args) => {
            let (summary, healthy) = reconcile::run(args, settings).await?;
            Completion {
                needs_attention: !healthy,
                summary,
            }
        }
        Command::Smoke(args) => {
            let (summary, passed) = smoke::run(args, settings).await?;
            Completion {
                needs_attention: !passed,
                summary,
            }
        }
        Command::ReplayDlq(args) => {
            let (summary, left_for_a_person) = replay_dlq::run(args, settings).await?;
            Completion {
                needs_attention: left_for_a_person,
                summary,
            }
        }
    })
}
