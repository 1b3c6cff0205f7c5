//! The real tree passes every check, and each check fails on a copy broken in its one way:
//! promtool and amtool run for real (installed by `scripts/stack.sh tool` when missing).

use std::path::Path;

use super::{Layout, dashboards, problems, real_tools, rules};
use crate::binaries::workspace_root;

/// What the check reads, copied from the workspace into a temporary root.
const TREES: [&str; 4] = [
    "deploy/prometheus",
    "deploy/alertmanager",
    "deploy/grafana",
    "docs/runbooks",
];

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// A copy of the real tree (removed with the returned directory).
fn copy() -> anyhow::Result<(tempfile::TempDir, Layout)> {
    let dir = tempfile::tempdir()?;
    for tree in TREES {
        copy_dir(&workspace_root().join(tree), &dir.path().join(tree))?;
    }
    let layout = Layout::new(dir.path());
    Ok((dir, layout))
}

/// A copy of the real tree, with every `from` in `file` (there must be one) replaced by `to`.
fn broken(file: &str, from: &str, to: &str) -> anyhow::Result<(tempfile::TempDir, Layout)> {
    let (dir, layout) = copy()?;
    let path = dir.path().join(file);
    let text = std::fs::read_to_string(&path)?;
    anyhow::ensure!(text.contains(from), "{file} has no `{from}` to break");
    std::fs::write(&path, text.replace(from, to))?;
    Ok((dir, layout))
}

/// [`rules::problems`] of the tree with `from` replaced by `to` in `file` mention `needle`.
fn rules_report(file: &str, from: &str, to: &str, needle: &str) -> anyhow::Result<()> {
    let (_dir, layout) = broken(file, from, to)?;
    assert_mentions(&rules::problems(&layout)?, needle);
    Ok(())
}

fn assert_mentions(problems: &[String], needle: &str) {
    assert!(
        problems.iter().any(|p| p.contains(needle)),
        "expected a problem mentioning `{needle}`, got {problems:#?}"
    );
}

const ALERTS: &str = "deploy/prometheus/alerts.yaml";
const ALERTMANAGER: &str = "deploy/alertmanager/alertmanager.yaml";

#[tokio::test]
async fn the_real_tree_passes_every_check() -> anyhow::Result<()> {
    let found = problems(&Layout::new(&workspace_root())).await?;
    assert!(found.is_empty(), "{found:#?}");
    Ok(())
}

#[tokio::test]
async fn promtool_check_rules_fails_on_bad_promql() -> anyhow::Result<()> {
    let (_dir, layout) = broken(
        ALERTS,
        "kafka_consumer_lag > 100",
        "kafka_consumer_lag >> 100",
    )?;
    assert_mentions(
        &real_tools::check_rules(&layout).await?,
        "promtool check rules",
    );
    Ok(())
}

#[tokio::test]
async fn promtool_test_rules_fails_when_a_threshold_moves() -> anyhow::Result<()> {
    // The critical lag alert no longer fires at 5,000: its test case says it must.
    let (_dir, layout) = broken(
        ALERTS,
        "kafka_consumer_lag > 1000",
        "kafka_consumer_lag > 10000",
    )?;
    assert_mentions(
        &real_tools::test_rules(&layout).await?,
        "KafkaConsumerLagCritical",
    );
    Ok(())
}

#[tokio::test]
async fn amtool_check_config_fails_on_an_unknown_receiver() -> anyhow::Result<()> {
    let (_dir, layout) = broken(ALERTMANAGER, "receiver: pager", "receiver: pagr")?;
    assert_mentions(
        &real_tools::check_config(&layout).await?,
        "amtool check-config",
    );
    Ok(())
}

#[tokio::test]
async fn a_route_test_fails_when_criticals_reach_chat() -> anyhow::Result<()> {
    let (_dir, layout) = broken(ALERTMANAGER, "severity=\"critical\"", "severity=\"crit\"")?;
    assert!(real_tools::check_config(&layout).await?.is_empty());
    assert_mentions(
        &real_tools::route_tests(&layout).await?,
        "--verify.receivers=pager",
    );
    Ok(())
}

#[test]
fn an_alert_without_severity_is_reported() -> anyhow::Result<()> {
    let needle = "KafkaConsumerLagHigh: no label `severity`";
    rules_report(ALERTS, "severity: warning\n", "", needle)
}

#[test]
fn an_unknown_severity_is_reported() -> anyhow::Result<()> {
    let needle = "severity `page` is not one of";
    rules_report(ALERTS, "severity: critical", "severity: page", needle)
}

#[test]
fn an_alert_without_description_is_reported() -> anyhow::Result<()> {
    let needle = "no annotation `description`";
    rules_report(ALERTS, "description: >-", "descr: >-", needle)
}

#[test]
fn a_runbook_url_of_another_alert_is_reported() -> anyhow::Result<()> {
    let (from, to) = (
        "runbooks/KafkaConsumerLagHigh.md",
        "runbooks/KafkaConsumerLagCritical.md",
    );
    let needle = "expected `docs/runbooks/KafkaConsumerLagHigh.md`";
    rules_report(
        ALERTS,
        &format!("runbook_url: docs/{from}"),
        &format!("runbook_url: docs/{to}"),
        needle,
    )
}

#[test]
fn a_missing_runbook_is_reported() -> anyhow::Result<()> {
    let (dir, layout) = copy()?;
    std::fs::remove_file(dir.path().join("docs/runbooks/IssueApiNotReady.md"))?;
    let needle = "runbook docs/runbooks/IssueApiNotReady.md does not exist";
    assert_mentions(&rules::problems(&layout)?, needle);
    Ok(())
}

const API_TESTS: &str = "deploy/prometheus/tests/api.yaml";

#[test]
fn an_alert_never_tested_silent_is_reported() -> anyhow::Result<()> {
    let (from, to) = ("IssueApiNotReady, exp_alerts: []", "Other, exp_alerts: []");
    let needle = "IssueApiNotReady: no rule test where it must not fire";
    rules_report(API_TESTS, from, to, needle)
}

#[test]
fn an_alert_never_tested_firing_is_reported() -> anyhow::Result<()> {
    let (from, to) = (
        "IssueApiNotReady\n        exp_alerts:",
        "Other\n        exp_alerts:",
    );
    let needle = "IssueApiNotReady: no rule test where it fires";
    rules_report(API_TESTS, from, to, needle)
}

#[test]
fn a_severity_without_a_route_case_is_reported() -> anyhow::Result<()> {
    let (dir, layout) = copy()?;
    let path = dir.path().join("deploy/alertmanager/tests/routes.txt");
    let text = std::fs::read_to_string(&path)?;
    let kept: Vec<&str> = text
        .lines()
        .filter(|line| !line.contains("severity=warning"))
        .collect();
    anyhow::ensure!(
        kept.len() < text.lines().count(),
        "no warning case to remove"
    );
    std::fs::write(&path, kept.join("\n"))?;
    assert_mentions(
        &rules::problems(&layout)?,
        "no route case for severity=warning",
    );
    Ok(())
}

const SLO: &str = "deploy/prometheus/slo.yaml";
const SLO_TESTS: &str = "deploy/prometheus/tests/slo.yaml";
const SCRAPE: &str = "deploy/prometheus/prometheus.yaml";
const DASHBOARD: &str = "deploy/grafana/couponrush-event.json";

#[tokio::test]
async fn promtool_test_rules_fails_when_the_fast_burn_threshold_moves() -> anyhow::Result<()> {
    // Only the 1h/5m pair pages after 6 clean hours (tests/slo.yaml): at 144 it no longer does.
    let (_dir, layout) = broken(
        SLO,
        "ratio_rate1h / 0.001 > 14.4",
        "ratio_rate1h / 0.001 > 144",
    )?;
    assert_mentions(
        &real_tools::test_rules(&layout).await?,
        "IssueAvailabilityFastBurn",
    );
    Ok(())
}

#[tokio::test]
async fn promtool_check_config_fails_on_a_bad_scrape_configuration() -> anyhow::Result<()> {
    let (_dir, layout) = broken(
        SCRAPE,
        "scrape_interval: 15s",
        "scrape_interval: 15 seconds",
    )?;
    assert_mentions(
        &real_tools::check_scrape_config(&layout).await?,
        "promtool check config",
    );
    Ok(())
}

#[test]
fn a_rule_file_prometheus_does_not_load_is_reported() -> anyhow::Result<()> {
    let needle = "rule_files does not list slo.yaml";
    rules_report(SCRAPE, "  - slo.yaml\n", "", needle)
}

#[test]
fn a_recording_rule_no_test_evaluates_is_reported() -> anyhow::Result<()> {
    let (from, to) = ("ratio_rate2h, 1 / 1024)", "ratio_rate2hx, 1 / 1024)");
    let needle = "recording rule slo:issue_availability_errors:ratio_rate2h: no promql_expr_test";
    rules_report(SLO_TESTS, from, to, needle)
}

#[tokio::test]
async fn the_real_dashboards_have_queries_and_all_parse() -> anyhow::Result<()> {
    let layout = Layout::new(&workspace_root());
    assert!(dashboards::all_queries(&layout)?.len() >= 10);
    let found = dashboards::problems(&layout).await?;
    assert!(found.is_empty(), "{found:#?}");
    Ok(())
}

#[tokio::test]
async fn a_dashboard_query_that_does_not_parse_is_reported() -> anyhow::Result<()> {
    let (_dir, layout) = broken(
        DASHBOARD,
        "min by (coupon_id) (couponrush_api_coupon_stock_remaining)",
        "min by (coupon_id) (couponrush_api_coupon_stock_remaining",
    )?;
    let found = dashboards::problems(&layout).await?;
    assert_mentions(&found, "panel \"Stock left\" (A)");
    assert_eq!(found.len(), 1, "only the broken query: {found:#?}");
    Ok(())
}

#[tokio::test]
async fn a_dashboard_variable_the_check_cannot_substitute_is_reported() -> anyhow::Result<()> {
    let (_dir, layout) = broken(DASHBOARD, "[$__rate_interval]", "[$window]")?;
    assert_mentions(
        &dashboards::problems(&layout).await?,
        "uses a variable the check cannot substitute: `$window`",
    );
    Ok(())
}

#[test]
fn queries_of_panels_nested_in_rows_are_found() -> anyhow::Result<()> {
    let doc: serde_json::Value = serde_json::from_str(
        r#"{"panels": [
            {"type": "row", "title": "r", "panels": [
                {"title": "inner", "targets": [{"refId": "B", "expr": "up"}]}
            ]},
            {"title": "outer", "targets": [{"refId": "A", "expr": "rate(x[$__rate_interval])"}]}
        ]}"#,
    )?;
    let found = dashboards::queries("d.json", &doc);
    let titles: Vec<&str> = found.iter().map(|q| q.panel.as_str()).collect();
    assert_eq!(titles, ["inner", "outer"]);
    assert_eq!(
        dashboards::substituted(&found[1].expr).as_deref(),
        Ok("rate(x[1m])")
    );
    Ok(())
}
