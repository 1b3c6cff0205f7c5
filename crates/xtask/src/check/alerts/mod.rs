//! `cargo xtask check alerts`: the alert rules, their tests, their runbooks and the Alertmanager
//! routing, offline; no Prometheus or Alertmanager runs.
//!
//! 1. `promtool check rules` on every rule file of deploy/prometheus (alerts.yaml, slo.yaml, …),
//!    `promtool test rules` on deploy/prometheus/tests/*.yaml, and `promtool check config` on
//!    deploy/prometheus/prometheus.yaml (the scrape configuration docker/compose.yaml mounts).
//! 2. `amtool check-config` on deploy/alertmanager/alertmanager.yaml, then each case of
//!    deploy/alertmanager/tests/routes.txt through `amtool config routes test`.
//! 3. What the tools do not check ([`rules`]): every alert's labels and annotations, its runbook
//!    file, a test case where it fires and one where it must not, a route case per severity;
//!    every recording rule evaluated by a test; every rule file loaded by prometheus.yaml.
//! 4. Every panel query of the Grafana dashboards (deploy/grafana/*.json) parses
//!    ([`dashboards`], by `promtool check rules`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::binaries::workspace_root;

mod dashboards;
mod real_tools;
mod rules;
#[cfg(test)]
mod tests;

/// Settings of the alerts check.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The tree checked, holding deploy/prometheus, deploy/alertmanager, deploy/grafana and
    /// docs/runbooks (default: this workspace).
    #[arg(long, env = "ALERTS_ROOT")]
    pub root: Option<PathBuf>,
}

/// Where the checked files are, under one root.
#[derive(Debug, Clone)]
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
        }
    }

    pub fn prometheus(&self) -> PathBuf {
        self.root.join("deploy/prometheus")
    }

    /// The Prometheus configuration (scrape jobs, rule files) docker/compose.yaml mounts: in
    /// deploy/prometheus, but not a rule file.
    pub fn scrape_config(&self) -> PathBuf {
        self.prometheus().join(SCRAPE_CONFIG)
    }

    pub fn grafana(&self) -> PathBuf {
        self.root.join("deploy/grafana")
    }

    pub fn alertmanager_config(&self) -> PathBuf {
        self.root.join("deploy/alertmanager/alertmanager.yaml")
    }

    pub fn route_cases(&self) -> PathBuf {
        self.root.join("deploy/alertmanager/tests/routes.txt")
    }

    /// The rule files (deploy/prometheus/*.yaml but the scrape configuration) and the rule
    /// tests (its tests/*.yaml), sorted.
    pub fn rule_files(&self) -> anyhow::Result<Vec<PathBuf>> {
        let files: Vec<PathBuf> = yaml_files(&self.prometheus())?
            .into_iter()
            .filter(|f| f.file_name().is_none_or(|n| n != SCRAPE_CONFIG))
            .collect();
        anyhow::ensure!(
            !files.is_empty(),
            "no rule files in {}",
            self.prometheus().display()
        );
        Ok(files)
    }

    pub fn rule_tests(&self) -> anyhow::Result<Vec<PathBuf>> {
        yaml_files(&self.prometheus().join("tests"))
    }

    /// `path` relative to the root, for messages.
    pub fn show(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .display()
            .to_string()
    }
}

/// The file name of the Prometheus configuration in deploy/prometheus.
const SCRAPE_CONFIG: &str = "prometheus.yaml";

fn yaml_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("cannot list {}: {e}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let yaml = path
            .extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml");
        if yaml && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    anyhow::ensure!(!files.is_empty(), "no YAML files in {}", dir.display());
    Ok(files)
}

/// Every problem of the tree at `layout`: the real tools' failures, then the rules'.
pub async fn problems(layout: &Layout) -> anyhow::Result<Vec<String>> {
    let mut problems = Vec::new();
    eprintln!(
        "[check-alerts] 1/4 promtool check rules, promtool test rules, promtool check config"
    );
    problems.extend(real_tools::check_rules(layout).await?);
    problems.extend(real_tools::test_rules(layout).await?);
    problems.extend(real_tools::check_scrape_config(layout).await?);
    eprintln!("[check-alerts] 2/4 amtool check-config, amtool config routes test");
    problems.extend(real_tools::check_config(layout).await?);
    problems.extend(real_tools::route_tests(layout).await?);
    eprintln!(
        "[check-alerts] 3/4 labels, annotations and runbook of every alert; tests that fire and \
         stay silent; a route case per severity; recording rules tested; rule files loaded"
    );
    problems.extend(rules::problems(layout)?);
    eprintln!("[check-alerts] 4/4 every dashboard panel's query parses (promtool)");
    problems.extend(dashboards::problems(layout).await?);
    Ok(problems)
}

#[allow(clippy::print_stdout)] // the check's report
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let root = args.root.unwrap_or_else(workspace_root);
    let layout = Layout::new(&root);
    let problems = problems(&layout).await?;
    for problem in &problems {
        println!("  {}", problem.replace('\n', "\n    "));
    }
    let alerts = rules::alerts(&layout)?;
    let names: std::collections::BTreeSet<&str> = alerts.iter().map(|a| a.name.as_str()).collect();
    println!(
        "  {} alerting rules ({} alerts) and {} recording rules in {} rule file(s); {} rule test \
         file(s); {} route cases; {} dashboard queries",
        alerts.len(),
        names.len(),
        rules::recording_rules(&layout)?.len(),
        layout.rule_files()?.len(),
        layout.rule_tests()?.len(),
        real_tools::route_cases(&layout)?.len(),
        dashboards::all_queries(&layout)?.len()
    );
    eprintln!(
        "[check-alerts] alerts, runbooks, routing: {}",
        if problems.is_empty() {
            "OK".to_owned()
        } else {
            format!("FAILED, {} problem(s)", problems.len())
        }
    );
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
