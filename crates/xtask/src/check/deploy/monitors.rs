//! The Prometheus Operator's scrape objects give the rules the jobs they select: in a build
//! that carries PrometheusRules, every scrape job of deploy/prometheus/prometheus.yaml (the
//! names the rules were written and tested against) has a PodMonitor or ServiceMonitor whose
//! `job` is that name and whose selector finds the pods or Service here. Under the Operator the
//! default job is "<namespace>/<monitor>", and every `job="..."` of the rules would read nothing.

use serde_yaml_ng::Value;

use super::manifests::{Manifests, Object, selects};
use crate::binaries::workspace_root;
use crate::generate::monitoring::PROMETHEUS_CONFIG;

/// The problems of the build's monitors against the scrape jobs of `prometheus.yaml`.
pub fn monitors_give_the_rules_their_jobs(m: &Manifests) -> Vec<String> {
    if !m.objects.iter().any(|o| o.kind() == "PrometheusRule") {
        return Vec::new();
    }
    let jobs = match scrape_jobs() {
        Ok(jobs) => jobs,
        Err(error) => return vec![format!("{PROMETHEUS_CONFIG}: {error:#}")],
    };
    let monitors: Vec<&Object> = m
        .objects
        .iter()
        .filter(|o| matches!(o.kind(), "PodMonitor" | "ServiceMonitor"))
        .collect();
    let mut problems = Vec::new();
    for monitor in &monitors {
        if !selects_something(m, monitor) {
            problems.push(format!(
                "{}: its selector matches no {} here",
                monitor.label(),
                if monitor.kind() == "PodMonitor" {
                    "pod template"
                } else {
                    "Service"
                }
            ));
        }
    }
    for job in jobs {
        if !monitors
            .iter()
            .any(|o| job_of(o).as_deref() == Some(job.as_str()))
        {
            problems.push(format!(
                "{}: no PodMonitor or ServiceMonitor gives job={job:?} (a scrape job of \
                 {PROMETHEUS_CONFIG}, which the rules select); set its jobLabel to a label the \
                 selector pins to that value",
                m.objects
                    .iter()
                    .find(|o| o.kind() == "PrometheusRule")
                    .map(|o| o.file.as_str())
                    .unwrap_or_default()
            ));
        }
    }
    problems
}

/// The `job_name`s of the Prometheus configuration the rules are tested with.
fn scrape_jobs() -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(workspace_root().join(PROMETHEUS_CONFIG))?;
    let config: Value = serde_yaml_ng::from_str(&text)?;
    Ok(config["scrape_configs"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|c| c["job_name"].as_str().map(str::to_owned))
        .collect())
}

/// The job a monitor gives its targets, when the Operator can tell it from the manifests: the
/// value its selector pins for its `jobLabel` (the label is read from the pod or Service).
fn job_of(monitor: &Object) -> Option<String> {
    let label = monitor.value["spec"]["jobLabel"].as_str()?;
    monitor.value["spec"]["selector"]["matchLabels"][label]
        .as_str()
        .map(str::to_owned)
}

/// Whether a PodMonitor selects a pod template, or a ServiceMonitor a Service, of its
/// namespace.
fn selects_something(m: &Manifests, monitor: &Object) -> bool {
    let selector = &monitor.value["spec"]["selector"]["matchLabels"];
    let namespace = m.namespace(monitor);
    if monitor.kind() == "PodMonitor" {
        m.templates()
            .iter()
            .any(|t| t.namespace == namespace && selects(selector, t.labels))
    } else {
        m.objects.iter().any(|o| {
            o.kind() == "Service"
                && m.namespace(o) == namespace
                && selects(selector, &o.value["metadata"]["labels"])
        })
    }
}
