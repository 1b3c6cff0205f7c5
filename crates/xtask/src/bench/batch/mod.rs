//! `cargo xtask bench batch`: how long compensation-batch's two jobs take on the incident's
//! numbers, each against a ceiling of the same work measured in the same run.
//!
//! With its own database (dropped and recreated) and Redis key prefix (emptied before and after):
//! 1. compensate: a source coupon whose event had `--participants` distinct participants, the
//!    first `--holders` of them holding its coupon, the others refused (SOLD_OUT); seeded
//!    through the storage crate's own write path (`persist_batch`, as the consumer leaves it).
//!    Then, each timed as the wall clock of the process: `compensate ... --dry-run` (must write
//!    nothing), `compensate` (exactly the eligible users, once), and again (must grant nothing).
//!    Ceiling: `CompensationStore::grant`, compensate's own transaction, on the same number of
//!    users known in advance, one connection, no process start-up.
//! 2. reconcile: a closed coupon with `--reconcile-participants` rows and Redis loaded as
//!    issuer-api and the consumer leave it (the cache crate's own restore: meta, stock 0, every
//!    participant issued, the issued counter), then `reconcile --coupon ID` must exit 0
//!    (CONSISTENT). Ceiling: the two reads it cannot avoid (MySQL's holders, Redis's
//!    participants), made directly.
//!
//! Pass/fail comes only from exit codes and the MySQL and Redis state, never from the JSON
//! the jobs print; a missed target is only reported.

mod jobs;
mod seed;
mod summary;

use std::path::Path;
use std::process::ExitCode;

use couponrush_cache::ReservationStore;

use super::run_args::RunArgs;
use super::run_info::RunInfo;
use super::session::Session;
use crate::binaries::{build_release, release_binary};
use crate::run_env::{Isolation, RunEnv, check_database_name};

/// Settings of `bench batch` (each also read from its `BENCH_*` variable).
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Distinct participants of the source coupon's event.
    #[arg(long, env = "BENCH_PARTICIPANTS", default_value_t = 40_000)]
    pub participants: u64,
    /// Of them, holders of the source coupon (not eligible).
    #[arg(long, env = "BENCH_HOLDERS", default_value_t = 4_500)]
    pub holders: u64,
    /// Rows (and Redis participants) of the coupon to reconcile.
    #[arg(long, env = "BENCH_RECONCILE_PARTICIPANTS", default_value_t = 100_000)]
    pub reconcile_participants: u64,
    /// compensate --batch-size.
    #[arg(long, env = "BENCH_BATCH_SIZE", default_value_t = 5_000)]
    pub batch_size: u32,
    /// Dropped and recreated each run (must contain "bench").
    #[arg(long, env = "BENCH_DATABASE", default_value = "couponrush_bench_batch")]
    pub database: String,
    /// Redis key prefix (must contain "bench"; its keys are deleted).
    #[arg(
        long,
        env = "BENCH_KEY_PREFIX",
        default_value = "couponrush-bench-batch:"
    )]
    pub key_prefix: String,
    /// Seed and check MySQL and Redis; run neither job.
    #[arg(long, env = "BENCH_SEED_ONLY", value_parser = clap::builder::BoolishValueParser::new(), default_value = "0")]
    pub seed_only: bool,
    #[command(flatten)]
    pub run: RunArgs,
}

impl Args {
    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.participants >= 1 && self.reconcile_participants >= 1 && self.batch_size >= 1,
            "BENCH_PARTICIPANTS, BENCH_RECONCILE_PARTICIPANTS and BENCH_BATCH_SIZE must be at least 1"
        );
        anyhow::ensure!(
            self.holders < self.participants,
            "BENCH_HOLDERS ({}) must be below BENCH_PARTICIPANTS ({})",
            self.holders,
            self.participants
        );
        check_database_name(&self.database, "bench", "BENCH_DATABASE")?;
        anyhow::ensure!(
            self.key_prefix.contains("bench"),
            "the benchmark key prefix {:?} must contain \"bench\" (its keys are deleted)",
            self.key_prefix
        );
        // No glob characters (its keys are found with SCAN) and no braces (the keys' hash tags).
        anyhow::ensure!(
            !self.key_prefix.is_empty()
                && self
                    .key_prefix
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ":._-".contains(c)),
            "BENCH_KEY_PREFIX must match [A-Za-z0-9:._-]+, got {:?}",
            self.key_prefix
        );
        Ok(())
    }

    pub fn eligible(&self) -> u64 {
        self.participants - self.holders
    }

    /// Digits of the zero-padded user ids u000001...: at least 6.
    pub fn uid_width(&self) -> usize {
        self.participants
            .max(self.reconcile_participants)
            .to_string()
            .len()
            .max(6)
    }
}

/// Everything the steps share.
pub struct Bench {
    pub args: Args,
    pub run: Session,
    pub cache: ReservationStore,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    args.validate()?;
    let dir = args.run.take_dir("bench-batch", "benchmark")?;
    // The jobs use no broker; the key prefix is fixed (emptied before and after).
    let names = Isolation::unique("benchb", args.database.clone(), 1)
        .without_topics()
        .with_key_prefix(args.key_prefix.clone());
    let info = RunInfo::collect(&names.run_id).await;
    // The shared stack, left running (as scripts/stack.sh up leaves it for everyone).
    let env = RunEnv::up_shared(names).await?;
    dir.run(&args.run, env, async |env| {
        measure(args.clone(), info, env, &dir.logs).await
    })
    .await
}

async fn measure(args: Args, info: RunInfo, env: &RunEnv, logs: &Path) -> anyhow::Result<ExitCode> {
    let settings = env.settings();
    let vars = env.vars_with(&[(
        "RUST_LOG",
        std::env::var("RUST_LOG").unwrap_or("info".to_owned()),
    )]);
    if !args.seed_only {
        if args.run.build {
            build_release(&["compensation-batch", "xtask"]).await?;
        }
        release_binary("compensation-batch")?;
        release_binary("xtask")?;
    }
    let mysql = env.recreate_database().await?;
    let cache = ReservationStore::new(&settings.redis)?;
    env.delete_keys().await?;
    let bench = Bench {
        run: Session::new(info, vars, logs.to_owned(), mysql, settings).await,
        args,
        cache,
    };
    let mut problems = Vec::new();
    let seeded = seed::seed(&bench, &mut problems).await?;
    if bench.args.seed_only {
        anyhow::ensure!(
            problems.is_empty(),
            "seeding checks failed: {}",
            problems.join("; ")
        );
        eprintln!("[xtask] BENCH_SEED_ONLY=1: seeding OK; not running compensate nor reconcile");
        return Ok(ExitCode::SUCCESS);
    }
    let ran = jobs::run(&bench, &seeded, &mut problems).await?;
    summary::print(&bench, &seeded, &ran, &problems);
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
