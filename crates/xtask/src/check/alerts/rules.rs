//! What promtool and amtool do not check: every alert carries what the on-call engineer and
//! Alertmanager need, and is tested both ways.
//!
//! - labels `severity` (critical or warning: the routes know no other) and `symptom` (the
//!   inhibition's key); annotations `summary`, `description`, `runbook_url`;
//! - `runbook_url` is `docs/runbooks/<alertname>.md`, and that file exists;
//! - the rule tests hold, for every alert, a case where it fires and one where it must not;
//! - routes.txt has a case for every severity the rules use;
//! - every recording rule is evaluated by a `promql_expr_test` of the rule tests (its value is
//!   tested, not just its syntax);
//! - prometheus.yaml (the scrape configuration compose mounts) loads every rule file, so a new
//!   file is not silently left out of the running Prometheus.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Context;
use serde_yaml_ng::Value;

use super::Layout;
use super::real_tools::route_cases;

pub const SEVERITIES: [&str; 2] = ["critical", "warning"];
const LABELS: [&str; 2] = ["severity", "symptom"];
const ANNOTATIONS: [&str; 3] = ["summary", "description", "runbook_url"];

/// An alerting rule as written: its name, labels and annotations, and the file it is in.
#[derive(Debug)]
pub struct Alert {
    pub file: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

fn read_yaml(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    serde_yaml_ng::from_str(&text).with_context(|| format!("parse {}", path.display()))
}

fn string_map(value: &Value) -> BTreeMap<String, String> {
    value
        .as_mapping()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.as_str()?.to_owned())))
        .collect()
}

/// Every alerting rule of the rule files (recording rules have no `alert`).
pub fn alerts(layout: &Layout) -> anyhow::Result<Vec<Alert>> {
    let mut alerts = Vec::new();
    for path in layout.rule_files()? {
        let doc = read_yaml(&path)?;
        let groups = doc["groups"].as_sequence().into_iter().flatten();
        for rule in groups.flat_map(|g| g["rules"].as_sequence().into_iter().flatten()) {
            if let Some(name) = rule["alert"].as_str() {
                alerts.push(Alert {
                    file: layout.show(&path),
                    name: name.to_owned(),
                    labels: string_map(&rule["labels"]),
                    annotations: string_map(&rule["annotations"]),
                });
            }
        }
    }
    Ok(alerts)
}

/// Every recording rule of the rule files: (file, name).
pub fn recording_rules(layout: &Layout) -> anyhow::Result<Vec<(String, String)>> {
    let mut records = Vec::new();
    for path in layout.rule_files()? {
        let doc = read_yaml(&path)?;
        let groups = doc["groups"].as_sequence().into_iter().flatten();
        for rule in groups.flat_map(|g| g["rules"].as_sequence().into_iter().flatten()) {
            if let Some(name) = rule["record"].as_str() {
                records.push((layout.show(&path), name.to_owned()));
            }
        }
    }
    Ok(records)
}

/// Recording rules no `promql_expr_test` evaluates.
pub fn recording_problems(layout: &Layout) -> anyhow::Result<Vec<String>> {
    let mut exprs = Vec::new();
    for path in layout.rule_tests()? {
        let doc = read_yaml(&path)?;
        let tests = doc["tests"].as_sequence().into_iter().flatten();
        for case in tests.flat_map(|t| t["promql_expr_test"].as_sequence().into_iter().flatten()) {
            if let Some(expr) = case["expr"].as_str() {
                exprs.push(expr.to_owned());
            }
        }
    }
    // A name followed by a name character is another rule (ratio_rate5m in ratio_rate5mx).
    let evaluated = |name: &str| {
        exprs.iter().any(|expr| {
            expr.match_indices(name).any(|(at, _)| {
                !expr[at + name.len()..]
                    .starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            })
        })
    };
    Ok(recording_rules(layout)?
        .into_iter()
        .filter(|(_, name)| !evaluated(name))
        .map(|(file, name)| {
            format!(
                "{file}: recording rule {name}: no promql_expr_test evaluates it \
                 (deploy/prometheus/tests)"
            )
        })
        .collect())
}

/// Rule files the Prometheus configuration does not load.
pub fn loaded_problems(layout: &Layout) -> anyhow::Result<Vec<String>> {
    let config = layout.scrape_config();
    let doc = read_yaml(&config)?;
    let loaded: BTreeSet<&str> = doc["rule_files"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let mut problems = Vec::new();
    for path in layout.rule_files()? {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !loaded.contains(name.as_str()) {
            problems.push(format!(
                "{}: rule_files does not list {name}: the Prometheus of docker/compose.yaml \
                 would not evaluate it",
                layout.show(&config)
            ));
        }
    }
    Ok(problems)
}

/// Labels, annotations and runbook of each alert.
pub fn alert_problems(layout: &Layout, alerts: &[Alert]) -> Vec<String> {
    let mut problems = Vec::new();
    for alert in alerts {
        let at = format!("{}: alert {}", alert.file, alert.name);
        for label in LABELS {
            if !alert.labels.contains_key(label) {
                problems.push(format!("{at}: no label `{label}`"));
            }
        }
        if let Some(severity) = alert.labels.get("severity")
            && !SEVERITIES.contains(&severity.as_str())
        {
            problems.push(format!(
                "{at}: severity `{severity}` is not one of {SEVERITIES:?} (critical pages, \
                 warning goes to chat)"
            ));
        }
        for annotation in ANNOTATIONS {
            if alert
                .annotations
                .get(annotation)
                .is_none_or(|a| a.trim().is_empty())
            {
                problems.push(format!("{at}: no annotation `{annotation}`"));
            }
        }
        let runbook = format!("docs/runbooks/{}.md", alert.name);
        if let Some(url) = alert.annotations.get("runbook_url")
            && *url != runbook
        {
            problems.push(format!(
                "{at}: runbook_url is `{url}`, expected `{runbook}`"
            ));
        }
        if !layout.root.join(&runbook).is_file() {
            problems.push(format!("{at}: its runbook {runbook} does not exist"));
        }
    }
    problems
}

/// Alert names with a test case where they fire, and with one where they must not.
pub fn tested(layout: &Layout) -> anyhow::Result<(BTreeSet<String>, BTreeSet<String>)> {
    let (mut fires, mut silent) = (BTreeSet::new(), BTreeSet::new());
    for path in layout.rule_tests()? {
        let doc = read_yaml(&path)?;
        let tests = doc["tests"].as_sequence().into_iter().flatten();
        for case in tests.flat_map(|t| t["alert_rule_test"].as_sequence().into_iter().flatten()) {
            let Some(name) = case["alertname"].as_str() else {
                continue;
            };
            let expected = case["exp_alerts"].as_sequence().map_or(0, Vec::len);
            let cases = if expected > 0 {
                &mut fires
            } else {
                &mut silent
            };
            cases.insert(name.to_owned());
        }
    }
    Ok((fires, silent))
}

/// Every alert tested both ways.
pub fn test_problems(layout: &Layout, alerts: &[Alert]) -> anyhow::Result<Vec<String>> {
    let (fires, silent) = tested(layout)?;
    // An alert may have one rule per severity under one name: one test of the name suffices.
    let names: BTreeSet<(&str, &str)> = alerts
        .iter()
        .map(|a| (a.file.as_str(), a.name.as_str()))
        .collect();
    let mut problems = Vec::new();
    for (file, name) in names {
        let at = format!("{file}: alert {name}");
        if !fires.contains(name) {
            problems.push(format!(
                "{at}: no rule test where it fires (deploy/prometheus/tests)"
            ));
        }
        if !silent.contains(name) {
            problems.push(format!(
                "{at}: no rule test where it must not fire (`exp_alerts: []`)"
            ));
        }
    }
    Ok(problems)
}

/// A route case for every severity the rules use.
pub fn route_problems(layout: &Layout, alerts: &[Alert]) -> anyhow::Result<Vec<String>> {
    let cases = route_cases(layout)?;
    let used: BTreeSet<&str> = alerts
        .iter()
        .filter_map(|a| a.labels.get("severity").map(String::as_str))
        .collect();
    Ok(used
        .into_iter()
        .filter(|severity| {
            let label = format!("severity={severity}");
            !cases.iter().any(|c| c.labels.contains(&label))
        })
        .map(|severity| {
            format!(
                "{}: no route case for severity={severity}",
                layout.show(&layout.route_cases())
            )
        })
        .collect())
}

/// Every problem of this module.
pub fn problems(layout: &Layout) -> anyhow::Result<Vec<String>> {
    let alerts = alerts(layout)?;
    anyhow::ensure!(
        !alerts.is_empty(),
        "no alerting rules in {}",
        layout.show(&layout.prometheus())
    );
    let mut problems = alert_problems(layout, &alerts);
    problems.extend(test_problems(layout, &alerts)?);
    problems.extend(route_problems(layout, &alerts)?);
    problems.extend(recording_problems(layout)?);
    problems.extend(loaded_problems(layout)?);
    Ok(problems)
}
