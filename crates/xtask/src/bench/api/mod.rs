//! `cargo xtask bench api`: issuer-api on the real stack under wrk (closed loop, every request
//! a new user, no consumer running), against ceilings measured in the same run.
//!
//! 1. Accepted issuances/s and p99 at each concurrency: a coupon with a huge stock, so every
//!    answer is a 202 that waited for the broker's acknowledgement; a check compares the new
//!    users Redis recorded with the 202s wrk saw.
//! 2. The sold-out path (a coupon whose only unit is taken: every answer a 409), then the HTTP
//!    floor (GET /health/live: actix and wrk alone).
//! 3. issuer-api's memory: its peak resident set over those phases, then floods of idle
//!    connections (the resident set before, at its highest, and after each).
//! 4. The Lua ceiling: the cache crate's reserve.lua run by redis-benchmark (EVALSHA) on a big
//!    stock and on stock 0 (the sold-out ceiling).
//!
//! Each phase records per-process CPU from `/proc` ([`crate::bench::cpu`]). The run has its own
//! database, topic, key prefixes and API port ([`crate::run_env`]), all removed on every exit path
//! (Ctrl-C included).
//! See docs/benchmarks.md.

mod args;
mod costs;
mod http;
mod lua;
mod measure;
mod memory;
mod summary;

use std::path::PathBuf;
use std::process::ExitCode;

pub use args::Args;
use measure::{Run, RunSecrets};

use crate::bench::run_info::RunInfo;
use crate::run_env::{Cleanup, Isolation, RunEnv};
use crate::tools;

/// A progress line on stderr (the summary goes to stdout).
fn log(message: &str) {
    eprintln!("[bench] {message}");
}

/// The whole run: set up, measure, clean up (always), print.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    args.validate()?;
    let dir = args.run.take_dir("bench", "benchmark")?;
    let partitions = i32::try_from(args.partitions)?;
    // issuer-api alone: no consumer, so no dead-letter topic.
    let mut names = Isolation::unique("bench", args.database.clone(), partitions).without_dlq();
    let secrets = RunSecrets {
        lua_prefix: names.scratch_prefix("lua"),
        user_tag: format!(
            "b{}x{}",
            std::process::id(),
            time::OffsetDateTime::now_utc().unix_timestamp()
        ),
    };
    log(&format!(
        "run {}: {}s per phase (+{}s warm-up), concurrencies {}, workers {}; logs in {}",
        names.run_id,
        args.duration,
        args.warmup,
        args.concurrencies
            .0
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(" "),
        args.workers,
        dir.logs.display()
    ));
    let tools = Tools {
        wrk: tools::require("wrk").await?,
        redis_benchmark: tools::require("redis-benchmark").await?,
    };
    let run_info = RunInfo::collect(&names.run_id).await;
    let env = RunEnv::up(&dir.path.join("stack"), names).await?;
    let outcome = env
        .run_then_clean(
            "bench",
            Cleanup::all_unless(args.run.keep),
            &dir.logs,
            async |env| {
                let run = Run {
                    args: &args,
                    env,
                    secrets: &secrets,
                    log_dir: &dir.logs,
                    tools: &tools,
                };
                run.measure().await
            },
        )
        .await?;
    match outcome {
        Ok(results) => {
            summary::print(&args, &results, &run_info);
            log(&format!("logs in {}", dir.logs.display()));
            Ok(ExitCode::SUCCESS)
        }
        Err(code) => Ok(code),
    }
}

#[derive(Debug)]
struct Tools {
    wrk: PathBuf,
    redis_benchmark: PathBuf,
}
