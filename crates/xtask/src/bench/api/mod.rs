//! `cargo xtask bench api`: issuer-api on the real stack under wrk (closed loop, every request
//! a new user, no consumer running), against ceilings measured in the same run.
//!
//! 1. Accepted issuances/s and p99 at each concurrency: a coupon with a huge stock, so every
//!    answer is a 202 that waited for the broker's acknowledgement; a check compares the new
//!    users Redis recorded with the 202s wrk saw.
//! 2. The sold-out path (a coupon whose only unit is taken: every answer a 409), then the HTTP
//!    floor (GET /health/live: actix and wrk alone).
//! 3. The Lua ceiling: the cache crate's reserve.lua run by redis-benchmark (EVALSHA) on a big
//!    stock and on stock 0 (the sold-out ceiling).
//!
//! Each phase records per-process CPU from `/proc` ([`crate::bench::cpu`]). The run has its own
//! database, topic, key prefix and API port, all removed on every exit path (Ctrl-C included).
//! See docs/benchmarks.md.

mod args;
mod http;
mod lua;
mod measure;
mod slice;
mod summary;
mod versions;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
pub use args::Args;
use measure::Run;
use slice::Slice;
use summary::Results;

use crate::binaries::workspace_root;
use crate::report::RunInfo;
use crate::stack::Stack;
use crate::tools;

/// A progress line on stderr (the summary goes to stdout).
fn log(message: &str) {
    eprintln!("[bench] {message}");
}

/// The whole run: set up, measure, clean up (always), print.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    args.validate()?;
    let bench_dir = args
        .dir
        .clone()
        .unwrap_or_else(|| workspace_root().join(".stack/bench"));
    std::fs::create_dir_all(&bench_dir)
        .with_context(|| format!("create {}", bench_dir.display()))?;
    let _lock = one_at_a_time(&bench_dir)?;
    let log_dir = bench_dir.join("logs");
    if log_dir.exists() {
        std::fs::remove_dir_all(&log_dir)
            .with_context(|| format!("remove {}", log_dir.display()))?;
    }
    std::fs::create_dir_all(&log_dir)?;
    let slice = Slice::new(&args.database)?;
    log(&format!(
        "run {}: {}s per phase (+{}s warm-up), concurrencies {}, workers {}; logs in {}",
        slice.run_id,
        args.duration,
        args.warmup,
        args.concurrencies
            .0
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(" "),
        args.workers,
        log_dir.display()
    ));
    let tools = Tools {
        wrk: tools::require("wrk").await?,
        redis_benchmark: tools::require("redis-benchmark").await?,
    };
    let run_info = RunInfo::capture("BENCH_");
    let stack = Stack::up(
        &bench_dir.join("stack"),
        &slice.stack_settings(args.partitions),
    )
    .await?;
    let outcome = match slice.settings(&stack) {
        Ok(settings) => {
            let run = Run {
                args: &args,
                slice: &slice,
                stack: &stack,
                settings: &settings,
                log_dir: &log_dir,
                tools: &tools,
            };
            // A signal wins over the error its load generator's death would cause.
            let outcome = tokio::select! {
                biased;
                code = interrupted() => Ok(Outcome::Interrupted(code)),
                measured = run.measure() => measured.map(Outcome::Measured),
            };
            if args.keep {
                log("BENCH_KEEP: keeping the Redis keys, topic and database");
            } else {
                slice.remove(&settings).await;
            }
            outcome
        }
        Err(error) => Err(error),
    };
    if let Err(error) = stack.down().await {
        log(&format!("stack.sh down failed: {error:#}"));
    }
    match outcome {
        Ok(Outcome::Measured(results)) => {
            summary::print(&args, &results, &run_info);
            log(&format!("logs in {}", log_dir.display()));
            Ok(ExitCode::SUCCESS)
        }
        Ok(Outcome::Interrupted(code)) => Ok(ExitCode::from(code)),
        Err(error) => {
            log(&format!("failed; logs are in {}", log_dir.display()));
            Err(error)
        }
    }
}

#[derive(Debug)]
enum Outcome {
    Measured(Box<Results>),
    /// Stopped by a signal: the shell's exit code for it.
    Interrupted(u8),
}

#[derive(Debug)]
struct Tools {
    wrk: PathBuf,
    redis_benchmark: PathBuf,
}

/// Resolves on Ctrl-C (130) or SIGTERM (143); dropping the measurement then kills what it
/// started (`kill_on_drop`) before the clean-up runs.
async fn interrupted() -> u8 {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => signal.recv().await,
            Err(_) => std::future::pending().await,
        }
    };
    let code = tokio::select! {
        _ = tokio::signal::ctrl_c() => 130,
        _ = terminate => 143,
    };
    log(if code == 130 {
        "interrupted"
    } else {
        "terminated"
    });
    code
}

/// One benchmark per directory at a time: an exclusive lock on `<dir>/.lock`, released when
/// the returned file is dropped or the process dies.
// `File::try_lock` is Rust 1.89; the workspace's let-chains already need 1.88 and its
// toolchain is newer, so `rust-version` (1.85) understates the real minimum anyway.
#[allow(clippy::incompatible_msrv)]
fn one_at_a_time(dir: &Path) -> anyhow::Result<std::fs::File> {
    let path = dir.join(".lock");
    let file = std::fs::File::create(&path).with_context(|| format!("open {}", path.display()))?;
    file.try_lock().map_err(|_| {
        anyhow::anyhow!("another benchmark is running ({} is held)", path.display())
    })?;
    Ok(file)
}
