//! What every benchmark run takes besides its own settings, and the run directory it holds.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::ArgAction;
use clap::builder::BoolishValueParser;

use crate::binaries::workspace_root;
use crate::lock::RunLock;
use crate::run_env::{Cleanup, RunEnv};

/// The options every benchmark shares (each also read from its `BENCH_*` variable).
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Keep what the run created on the stack (database, Redis keys, topics).
    #[arg(long, env = "BENCH_KEEP", default_value = "0", num_args = 0..=1,
          default_missing_value = "1", action = ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub keep: bool,
    /// 0: do not run cargo build, use the release binaries already in the target directory
    /// (e.g. a build of another commit; CARGO_TARGET_DIR is respected).
    #[arg(long, env = "BENCH_BUILD", default_value = "1", num_args = 0..=1,
          default_missing_value = "1", action = ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub build: bool,
    /// Logs (logs/ is replaced each run) and any stack state of the run; default
    /// `<repo>/.stack/<benchmark's directory>`.
    #[arg(long, env = "BENCH_DIR")]
    pub dir: Option<PathBuf>,
}

/// How quiet the machine must be before a benchmark measures (each also read from its
/// `BENCH_*` variable).
#[derive(Debug, Clone, clap::Args)]
pub struct QuietArgs {
    /// Seconds to wait, before measuring, for the machine to be quieter than `--quiet-pct`.
    #[arg(long, env = "BENCH_QUIET_WAIT", default_value_t = 0)]
    pub quiet_wait: u64,
    /// % of one core the machine may be busy with before the start.
    #[arg(long, env = "BENCH_QUIET_PCT", default_value_t = 20.0)]
    pub quiet_pct: f64,
}

impl QuietArgs {
    /// Waits (at most `--quiet-wait`) for the machine to be quiet; the % of one core other
    /// processes used just before the start.
    pub async fn wait(&self) -> anyhow::Result<f64> {
        super::cpu::wait_until_quiet(
            std::time::Duration::from_secs(self.quiet_wait),
            self.quiet_pct,
            "BENCH_QUIET_WAIT",
        )
        .await
    }
}

/// A run directory held by this run: one run of a benchmark at a time per directory.
#[derive(Debug)]
pub struct RunDir {
    pub path: PathBuf,
    /// `path/logs`, emptied for this run.
    pub logs: PathBuf,
    _lock: RunLock,
}

impl RunArgs {
    /// `--dir` (default `.stack/<default>` in the workspace), locked for this run (`task`
    /// names it in the error when another run holds it), with an empty `logs/`.
    pub fn take_dir(&self, default: &str, task: &str) -> anyhow::Result<RunDir> {
        let path = self
            .dir
            .clone()
            .unwrap_or_else(|| workspace_root().join(".stack").join(default));
        let (lock, logs) = RunLock::with_fresh_logs(&path, task)?;
        Ok(RunDir {
            path,
            logs,
            _lock: lock,
        })
    }
}

impl RunDir {
    /// Runs the benchmark `work` on `env`, then removes what the run made (unless `--keep`)
    /// whatever happened: its exit status (a signal's when one stopped it).
    pub async fn run(
        &self,
        run: &RunArgs,
        env: RunEnv,
        work: impl AsyncFnOnce(&RunEnv) -> anyhow::Result<ExitCode>,
    ) -> anyhow::Result<ExitCode> {
        let what = Cleanup::all_unless(run.keep);
        let outcome = env.run_then_clean("xtask", what, &self.logs, work).await?;
        Ok(outcome.unwrap_or_else(|code| code))
    }
}

/// A space-separated list of positive numbers named `key`.
pub fn positive_list<T: std::str::FromStr + PartialOrd + From<u8>>(
    value: &str,
    key: &str,
) -> anyhow::Result<Vec<T>> {
    let items: Vec<T> = value
        .split_whitespace()
        .map(|item| item.parse().ok().filter(|n| *n >= T::from(1)))
        .collect::<Option<_>>()
        .with_context(|| format!("{key} must be positive integers, got {value:?}"))?;
    anyhow::ensure!(!items.is_empty(), "{key} is empty");
    Ok(items)
}
