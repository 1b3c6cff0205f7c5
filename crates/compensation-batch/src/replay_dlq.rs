//! `replay-dlq`: re-drive dead-lettered messages into the issue topic, once the cause is fixed
//! (a coupon created late, MySQL back, a consumer bug fixed).

use std::fmt;
use std::time::{Duration, Instant};

use anyhow::Context;
use couponrush_config::Settings;
use couponrush_messaging::{ReplayRequest, replay_dead_letters};
use couponrush_ops::StartupProbes;
use serde::Serialize;

use crate::output::OutputArgs;
use crate::progress::Progress;

/// The reasons the consumer dead-letters with (`dlq-reason` header).
const REASONS: [&str; 4] = [
    "undecodable",
    "unknown-coupon",
    "out-of-stock",
    "retries-exhausted",
];

#[derive(Debug, clap::Args)]
pub struct ReplayDlqArgs {
    /// Replay only letters dead-lettered for this reason (repeatable); all when absent.
    #[arg(long = "reason", value_name = "REASON", value_parser = clap::builder::PossibleValuesParser::new(REASONS))]
    pub reasons: Vec<String>,
    /// Read and count; publish and commit nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Longest wait for the next dead letter before giving up.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    pub idle_timeout_ms: u32,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Serialize)]
struct Summary {
    dry_run: bool,
    dlq_topic: String,
    topic: String,
    replay_group: String,
    reasons: Vec<String>,
    read: u64,
    replayed: u64,
    skipped: u64,
    /// Truncated letters, never replayed: each needs a person.
    truncated: u64,
    by_reason: std::collections::BTreeMap<String, u64>,
    elapsed_ms: u128,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.dry_run {
            "would replay"
        } else {
            "replayed"
        };
        writeln!(
            f,
            "replay-dlq {} -> {} (group {}){}",
            self.dlq_topic,
            self.topic,
            self.replay_group,
            if self.dry_run { " DRY RUN" } else { "" }
        )?;
        writeln!(f, "  read        {}", self.read)?;
        writeln!(f, "  {verb:<11} {}", self.replayed)?;
        writeln!(f, "  skipped     {}", self.skipped)?;
        if self.truncated > 0 {
            writeln!(
                f,
                "  truncated   {} (not replayable: the letter holds only the payload's first bytes; \
                 its dlq-source names the original)",
                self.truncated
            )?;
        }
        for (reason, n) in &self.by_reason {
            writeln!(f, "    {reason:<18} {n}")?;
        }
        write!(f, "  time taken  {} ms", self.elapsed_ms)
    }
}

/// Replays one pass; the summary, and whether truncated letters were left for a person.
pub async fn run(
    args: &ReplayDlqArgs,
    settings: &Settings,
) -> anyhow::Result<(serde_json::Value, bool)> {
    let started = Instant::now();
    let kafka = &settings.kafka;
    let probes = StartupProbes::new(&settings.startup);
    for topic in [&kafka.dlq_topic, &kafka.topic] {
        probes.kafka(kafka, topic).await?;
    }
    let request = ReplayRequest {
        reasons: args.reasons.clone(),
        dry_run: args.dry_run,
        idle_timeout: Duration::from_millis(u64::from(args.idle_timeout_ms)),
    };
    let mut progress: Option<Progress> = None;
    let report = replay_dead_letters(kafka, &request, |total| {
        progress
            .get_or_insert_with(|| Progress::new("replay-dlq", total))
            .advance(1);
    })
    .await
    .context("replaying dead letters (re-run to resume from the last commit)")?;
    if let Some(progress) = &progress {
        progress.finish();
    }
    let truncated = report.truncated;
    let summary = args.output.emit(&Summary {
        dry_run: args.dry_run,
        dlq_topic: kafka.dlq_topic.clone(),
        topic: kafka.topic.clone(),
        replay_group: report.group,
        reasons: args.reasons.clone(),
        read: report.read,
        replayed: report.replayed,
        skipped: report.skipped,
        truncated,
        by_reason: report.by_reason,
        elapsed_ms: started.elapsed().as_millis(),
    })?;
    Ok((summary, truncated > 0))
}
