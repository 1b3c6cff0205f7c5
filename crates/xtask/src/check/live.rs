//! What the checks against running binaries share (openapi, traces, metrics): one run at a time under
//! its directory (fresh logs), its own database, topics and Redis key prefix, made clean at
//! the start (what an interrupted run left under the same names is gone first), and on every
//! exit path, Ctrl-C included, the binaries stopped and all of it removed
//! ([`RunEnv::run_then_clean`]).

use std::path::Path;
use std::process::ExitCode;

use crate::apps::Apps;
use crate::binaries::build_release;
use crate::lock::RunLock;
use crate::run_env::{Cleanup, Isolation, RunEnv};

/// One live check: `task` names its database (`couponrush_<task>`), key prefix and topics.
#[derive(Debug)]
pub struct LiveCheck<'a> {
    pub task: &'static str,
    /// Its logs (`<dir>/logs`, replaced each run) and stack state.
    pub dir: &'a Path,
    /// The release binaries it runs, built first.
    pub binaries: &'a [&'a str],
    /// Partitions of its topic.
    pub partitions: i32,
    /// `RUST_LOG` of the binaries it starts (`None`: the caller's).
    pub rust_log: Option<String>,
    /// Leave the stack services this run started running.
    pub keep_stack: bool,
}

impl LiveCheck<'_> {
    /// Runs `work` with the clean run, its apps (none started yet) and its log directory.
    /// `Err(code)` inside: interrupted, end with `code`.
    pub async fn run<T>(
        self,
        work: impl AsyncFnOnce(&RunEnv, &mut Apps, &Path) -> anyhow::Result<T>,
    ) -> anyhow::Result<Result<T, ExitCode>> {
        let tag = format!("check-{}", self.task);
        let (_lock, log_dir) = RunLock::with_fresh_logs(self.dir, &tag)?;
        build_release(self.binaries).await?;
        let names = Isolation::unique(
            self.task,
            format!("couponrush_{}", self.task),
            self.partitions,
        )
        .with_key_prefix(format!("couponrush-{}:", self.task));
        let env = RunEnv::up(&self.dir.join("stack"), names).await?;
        let mut apps = Apps::new(self.rust_log);
        let cleanup = Cleanup {
            stack: !self.keep_stack,
            ..Cleanup::all_unless(false)
        };
        env.run_then_clean(&tag, cleanup, &log_dir, async |env| {
            let outcome = async {
                env.delete_keys().await?;
                env.delete_leftover_topics(self.task).await?;
                env.recreate_database().await?;
                env.create_topics().await?;
                work(env, &mut apps, &log_dir).await
            }
            .await;
            apps.stop_all().await;
            outcome
        })
        .await
    }
}
