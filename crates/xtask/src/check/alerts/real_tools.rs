//! The checks promtool and amtool make, run as the real tools (Debian's `prometheus` and
//! `prometheus-alertmanager` packages, unpacked by `scripts/stack.sh tool`). Each returns its
//! problems: a failing run's command and output.

use std::path::{Path, PathBuf};

use anyhow::Context;
use tokio::process::Command;

use super::Layout;
use crate::tools;

/// `promtool args...` in `dir`; `None` when it succeeded, else the problem to report.
pub async fn promtool_in(dir: &Path, args: &[String]) -> anyhow::Result<Option<String>> {
    run("promtool", dir, args).await
}

/// Runs `tool args...` in `dir`; `None` when it succeeded, else the problem to report.
async fn run(tool: &str, dir: &Path, args: &[String]) -> anyhow::Result<Option<String>> {
    let path = tools::require(tool).await?;
    let output = Command::new(&path)
        .current_dir(dir)
        .args(args)
        .output()
        .await
        .with_context(|| format!("run {}", path.display()))?;
    if output.status.success() {
        return Ok(None);
    }
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    Ok(Some(format!(
        "`{tool} {}` failed ({}):\n{}",
        args.join(" "),
        output.status,
        text.trim_end()
    )))
}

/// `promtool check rules` (syntax, PromQL, templates of every rule file) and `promtool test
/// rules` (every test case of deploy/prometheus/tests).
pub async fn check_rules(layout: &Layout) -> anyhow::Result<Vec<String>> {
    promtool(layout, "check", &layout.rule_files()?).await
}

pub async fn test_rules(layout: &Layout) -> anyhow::Result<Vec<String>> {
    promtool(layout, "test", &layout.rule_tests()?).await
}

async fn promtool(layout: &Layout, verb: &str, files: &[PathBuf]) -> anyhow::Result<Vec<String>> {
    let mut args = vec![verb.to_owned(), "rules".to_owned()];
    args.extend(files.iter().map(|f| layout.show(f)));
    Ok(run("promtool", &layout.root, &args)
        .await?
        .into_iter()
        .collect())
}

/// `promtool check config` on the Prometheus configuration docker/compose.yaml mounts: its
/// scrape jobs and alerting section load, and so does every rule file it lists.
pub async fn check_scrape_config(layout: &Layout) -> anyhow::Result<Vec<String>> {
    let args = vec![
        "check".to_owned(),
        "config".to_owned(),
        layout.show(&layout.scrape_config()),
    ];
    Ok(run("promtool", &layout.root, &args)
        .await?
        .into_iter()
        .collect())
}

/// `amtool check-config`: the Alertmanager configuration loads.
pub async fn check_config(layout: &Layout) -> anyhow::Result<Vec<String>> {
    let args = vec![
        "check-config".to_owned(),
        layout.show(&layout.alertmanager_config()),
    ];
    Ok(run("amtool", &layout.root, &args)
        .await?
        .into_iter()
        .collect())
}

/// One route case: the receivers expected (comma separated) and the alert's labels.
#[derive(Debug, PartialEq, Eq)]
pub struct RouteCase {
    pub line: usize,
    pub receivers: String,
    pub labels: Vec<String>,
}

/// The cases of routes.txt: `RECEIVERS LABEL=VALUE...` a line; `#` comments, blank lines.
pub fn route_cases(layout: &Layout) -> anyhow::Result<Vec<RouteCase>> {
    let path = layout.route_cases();
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    let mut cases = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let receivers = words.next().unwrap_or_default().to_owned();
        let labels: Vec<String> = words.map(str::to_owned).collect();
        anyhow::ensure!(
            !labels.is_empty() && labels.iter().all(|l| l.contains('=')),
            "{}:{}: expected `RECEIVERS LABEL=VALUE...`, got `{line}`",
            layout.show(&path),
            index + 1
        );
        cases.push(RouteCase {
            line: index + 1,
            receivers,
            labels,
        });
    }
    anyhow::ensure!(
        !cases.is_empty(),
        "no route cases in {}",
        layout.show(&path)
    );
    Ok(cases)
}

/// `amtool config routes test --verify.receivers=R LABELS` for each case of routes.txt.
pub async fn route_tests(layout: &Layout) -> anyhow::Result<Vec<String>> {
    let config = layout.show(&layout.alertmanager_config());
    let mut problems = Vec::new();
    for case in route_cases(layout)? {
        let mut args = vec![
            "config".to_owned(),
            "routes".to_owned(),
            "test".to_owned(),
            format!("--config.file={config}"),
            format!("--verify.receivers={}", case.receivers),
        ];
        args.extend(case.labels.iter().cloned());
        if let Some(problem) = run("amtool", &layout.root, &args).await? {
            problems.push(format!(
                "{}:{}: {problem}",
                layout.show(&layout.route_cases()),
                case.line
            ));
        }
    }
    Ok(problems)
}
