//! The Prometheus Operator's scrape objects give the rules the jobs they select: in a build
//! that carries PrometheusRules, every scrape job of deploy/prometheus/prometheus.yaml (the
//! names the rules were written and tested against) has a PodMonitor or ServiceMonitor whose
//! `job` is that name and whose selector finds the pods or Service here. Under the Operator the
//! default job is "<namespace>/<monitor>", and every `job="..."` of the rules would read nothing.
//! Each monitor also scrapes a port name the pods (or Services) it selects define.

use serde_yaml_ng::Value;

use super::manifests::{Manifests, Object, containers, selects};
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
        problems.extend(ports_problems(m, monitor));
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

/// A monitor that selects nothing with named ports, or scrapes a port name what it selects
/// does not define.
fn ports_problems(m: &Manifests, monitor: &Object) -> Vec<String> {
    let (selected, scraped) = if monitor.kind() == "PodMonitor" {
        ("pod template", "podMetricsEndpoints")
    } else {
        ("Service", "endpoints")
    };
    let ports = selected_ports(m, monitor);
    if ports.is_empty() {
        return vec![format!(
            "{}: its selector matches no {selected} with named ports here",
            monitor.label()
        )];
    }
    monitor.value["spec"][scraped]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|e| e["port"].as_str())
        .filter(|port| !ports.contains(port))
        .map(|port| {
            format!(
                "{}: scrapes port {port:?}, which no selected {selected} names (they name \
                 {ports:?})",
                monitor.label()
            )
        })
        .collect()
}

/// The port names of what a monitor selects in its namespace: the container ports of the pod
/// templates a PodMonitor selects, the ports of the Services a ServiceMonitor selects.
fn selected_ports<'a>(m: &'a Manifests, monitor: &Object) -> Vec<&'a str> {
    let selector = &monitor.value["spec"]["selector"]["matchLabels"];
    let namespace = m.namespace(monitor);
    let named = |ports: &'a Value| {
        ports
            .as_sequence()
            .into_iter()
            .flatten()
            .filter_map(|p| p["name"].as_str())
    };
    if monitor.kind() == "PodMonitor" {
        m.templates()
            .into_iter()
            .filter(|t| t.namespace == namespace && selects(selector, t.labels))
            .flat_map(|t| containers(t.spec).flat_map(|c| named(&c["ports"])))
            .collect()
    } else {
        m.objects
            .iter()
            .filter(|o| {
                o.kind() == "Service"
                    && m.namespace(o) == namespace
                    && selects(selector, &o.value["metadata"]["labels"])
            })
            .flat_map(|o| named(&o.value["spec"]["ports"]))
            .collect()
    }
}
