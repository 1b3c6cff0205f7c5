//! `cargo xtask check metrics`: every metric name an alert, a recording rule or a dashboard
//! panel reads is exported by the real running binaries, so a rename can never silently blind
//! an alert (a selector of a missing name is simply empty: the rule never fires).
//!
//! Names are read from `deploy/prometheus/*.yaml` (every rule's `expr`; recording rules'
//! outputs count as known), `deploy/grafana/*.json` (panel `targets[].expr`) and the Argo
//! Rollouts analysis templates under `deploy/k8s` (their Prometheus queries), then looked
//! up in what issuer-api's `/metrics` and coupon-consumer's ops-port `/metrics` export after
//! real traffic; names from outside (`up`, `ALERTS`, kube-state-metrics) are in one
//! allow-list, [`names::FROM_OUTSIDE`].
//!
//! On its own it starts issuer-api and one coupon-consumer on the stack (own database, topic,
//! group and key prefix), sends a burst of users and one request the consumer dead-letters
//! (so that every labelled family has a sample); `check incident` sends the same traffic and
//! runs the same [`check_running`] on the binaries it already runs, before its fault.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::alerts::Layout;
use super::users::{Users, dead_letter_one};
use crate::apps::Apps;
use crate::binaries::workspace_root;
use crate::check::live::LiveCheck;
use crate::coupon;

mod names;
pub use names::Referenced;
#[cfg(test)]
mod tests;

/// Settings of the check (each also read from its `METRICS_*` variable).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Users sent through the API before the binaries are scraped.
    #[arg(long, env = "METRICS_USERS", default_value_t = 300)]
    pub users: u32,
    /// Seconds the binaries get to export every name after that traffic.
    #[arg(long, env = "METRICS_WITHIN", default_value_t = 20)]
    pub within: u64,
    /// Logs and stack state [default: <repo>/.stack/check-metrics].
    #[arg(long, env = "METRICS_DIR")]
    pub dir: Option<PathBuf>,
    /// Leave the stack services this run started running.
    #[arg(long, env = "METRICS_KEEP_STACK")]
    pub keep_stack: bool,
}

fn say(message: &str) {
    eprintln!("[check-metrics] {message}");
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let layout = Layout::new(&workspace_root());
    let referenced = referenced(&layout)?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| workspace_root().join(".stack/check-metrics"));
    let live = LiveCheck {
        task: "metrics",
        dir: &dir,
        binaries: &["issuer-api", "coupon-consumer"],
        partitions: 3,
        rust_log: None,
        keep_stack: args.keep_stack,
    };
    let outcome = live
        .run(async |env, apps, log_dir| {
            apps.start_consumers(env, 1, log_dir)?;
            let bind = format!("127.0.0.1:{}", couponrush_testkit::closed_port()?);
            apps.start_api(env, &bind, log_dir)?;
            apps.wait_ready(Duration::from_secs(60)).await?;
            let api = apps.api()?;
            let spec = coupon::open_now(
                format!("metrics check {}", env.names().run_id),
                1000,
                args.users.max(1),
                7,
                time::Duration::hours(1),
            );
            let id = api.create_coupon(&spec).await?;
            let users = Users::new(api.base_url(), id, "metrics-user")?;
            let answers = users.burst(args.users, 20).await;
            say(&format!("{} users sent: {answers}", args.users));
            dead_letter_one(env).await?;
            check_running(&referenced, apps, Duration::from_secs(args.within)).await
        })
        .await?;
    match outcome {
        Ok(problems) => Ok(report(&referenced, &problems)),
        Err(code) => Ok(code),
    }
}

/// What the rule files, the dashboards and the canary analyses read and record.
pub fn referenced(layout: &Layout) -> anyhow::Result<Referenced> {
    let mut referenced = Referenced::default();
    for path in layout.rule_files()? {
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        referenced.add_rule_file(&layout.show(&path), &text)?;
    }
    let grafana = layout.root.join("deploy/grafana");
    if grafana.is_dir() {
        let mut dashboards: Vec<PathBuf> = std::fs::read_dir(&grafana)
            .with_context(|| format!("list {}", grafana.display()))?
            .filter_map(|entry| Some(entry.ok()?.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .collect();
        dashboards.sort();
        for path in dashboards {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("read {}", path.display()))?;
            referenced.add_dashboard(&layout.show(&path), &text)?;
        }
    }
    for path in manifest_files(&layout.root.join("deploy/k8s"))? {
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        // Most manifests hold no analysis: skip parsing them.
        if text.contains("AnalysisTemplate") {
            referenced.add_analysis_templates(&layout.show(&path), &text)?;
        }
    }
    Ok(referenced)
}

/// Every `.yaml` file under `dir` (kustomize bases, components and overlays), sorted; none when
/// `dir` does not exist.
fn manifest_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(dir) = dirs.pop() {
        if !dir.is_dir() {
            continue;
        }
        for entry in std::fs::read_dir(&dir).with_context(|| format!("list {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|ext| ext == "yaml") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Scrapes the running API and consumers until every referenced name is exported or `within`
/// has passed; the problems left (empty: all known).
pub async fn check_running(
    referenced: &Referenced,
    apps: &Apps,
    within: Duration,
) -> anyhow::Result<Vec<String>> {
    let api = apps.api()?.base_url().to_owned();
    let urls: Vec<String> = std::iter::once(api)
        .chain(apps.consumer_ops_urls().into_iter().map(str::to_owned))
        .map(|base| format!("{base}/metrics"))
        .collect();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let started = Instant::now();
    loop {
        let mut exported = BTreeSet::new();
        for url in &urls {
            let page = client
                .get(url)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .with_context(|| format!("scrape {url}"))?
                .text()
                .await?;
            exported.extend(names::exported_names(&page));
        }
        let problems = names::unknown(referenced, &exported);
        if problems.is_empty() || started.elapsed() >= within {
            say(&format!(
                "scraped {} ({} names exported)",
                urls.join(", "),
                exported.len()
            ));
            return Ok(problems);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Prints the problems and a summary; the exit code.
#[allow(clippy::print_stdout)] // the check's report
pub fn report(referenced: &Referenced, problems: &[String]) -> ExitCode {
    for problem in problems {
        println!("  {problem}");
    }
    let read: BTreeSet<&String> = referenced.uses.iter().flat_map(|u| &u.names).collect();
    println!(
        "  {} expressions read {} metric names ({} recorded by rules, {} allowed from outside)",
        referenced.uses.len(),
        read.len(),
        referenced.recorded.len(),
        names::FROM_OUTSIDE.len()
    );
    say(&format!(
        "every metric a rule or panel reads is exported: {}",
        if problems.is_empty() {
            "OK".to_owned()
        } else {
            format!("FAILED, {} problem(s)", problems.len())
        }
    ));
    if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
