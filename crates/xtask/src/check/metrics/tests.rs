//! Name extraction and the verdict, on small rule files, dashboards and `/metrics` pages, and
//! the project's own rule files parsed.

use std::collections::BTreeSet;

use super::names::{Referenced, exported_names, metric_names, unknown};
use crate::binaries::workspace_root;
use crate::check::alerts::Layout;

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

/// A `/metrics` page in OpenMetrics text, with one family declared before its first sample.
const PAGE: &str = "\
# HELP kafka_consumer_lag Messages behind.
# TYPE kafka_consumer_lag gauge
kafka_consumer_lag{topic=\"t\",partition=\"0\"} 3
# HELP kafka_consumer_records_consumed Records.
# TYPE kafka_consumer_records_consumed counter
kafka_consumer_records_consumed_total 12
# HELP coupon_consumer_dead_letters Dead letters.
# TYPE coupon_consumer_dead_letters counter
# HELP coupon_consumer_batch_seconds Batch time.
# TYPE coupon_consumer_batch_seconds histogram
coupon_consumer_batch_seconds_bucket{le=\"0.1\"} 1
# EOF
";

#[test]
fn names_come_from_selectors_only() {
    let names = metric_names(
        "sum by (job, instance) (rate(kafka_consumer_records_consumed_total[5m])) < 10 \
         and on (job, instance) sum by (job, instance) (kafka_consumer_lag) > 0 \
         or {__name__=\"up\", job=\"coupon-consumer\"} == 0",
    );
    assert_eq!(
        names,
        Ok(set(&[
            "kafka_consumer_lag",
            "kafka_consumer_records_consumed_total",
            "up"
        ]))
    );
}

#[test]
fn exported_names_include_what_type_lines_promise() {
    let exported = exported_names(PAGE);
    for name in [
        "kafka_consumer_lag",
        "kafka_consumer_records_consumed_total",
        "coupon_consumer_dead_letters_total",
        "coupon_consumer_batch_seconds_bucket",
        "coupon_consumer_batch_seconds_count",
    ] {
        assert!(exported.contains(name), "{name} in {exported:?}");
    }
    // A counter's series carry `_total`: the bare family name selects nothing.
    assert!(!exported.contains("kafka_consumer_records_consumed"));
}

#[test]
fn a_rule_reading_a_made_up_metric_fails() -> anyhow::Result<()> {
    let mut referenced = Referenced::default();
    referenced.add_rule_file(
        "rules.yaml",
        "groups:
  - name: g
    rules:
      - record: job:kafka_consumer_lag:sum
        expr: sum by (job) (kafka_consumer_lag)
      - alert: Known
        expr: job:kafka_consumer_lag:sum > 0 and on () (count(up == 1)) > 0
      - alert: Renamed
        expr: rate(kafka_consumer_records_consumed_totl[5m]) < 10
",
    )?;
    let problems = unknown(&referenced, &exported_names(PAGE));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("rules.yaml: rule Renamed: `kafka_consumer_records_consumed_totl`"),
        "{problems:?}"
    );
    Ok(())
}

#[test]
fn a_panel_reading_a_made_up_metric_fails_and_one_that_does_not_parse_too() -> anyhow::Result<()> {
    let mut referenced = Referenced::default();
    referenced.add_dashboard(
        "d.json",
        r#"{"panels": [
            {"title": "Lag", "targets": [{"expr": "sum by (partition) (kafka_consumer_lag)"}]},
            {"type": "row", "title": "r", "panels": [
                {"title": "Batches", "targets": [
                    {"expr": "rate(coupon_consumer_batch_seconds_count[$__rate_interval])"},
                    {"expr": "rate(coupon_consumer_batches_made_up_total[${__rate_interval}])"}
                ]}
            ]},
            {"title": "Broken", "targets": [{"expr": "sum(rate(kafka_consumer_lag[5m])"}]}
        ]}"#,
    )?;
    let problems = unknown(&referenced, &exported_names(PAGE));
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("d.json: panel \"Broken\": the expression does not parse")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p
                .starts_with("d.json: panel \"Batches\": `coupon_consumer_batches_made_up_total`")),
        "{problems:?}"
    );
    Ok(())
}

#[test]
fn the_projects_rules_parse_and_read_the_report_names() -> anyhow::Result<()> {
    let referenced = super::referenced(&Layout::new(&workspace_root()))?;
    assert!(referenced.unparsed.is_empty(), "{:?}", referenced.unparsed);
    let read: BTreeSet<&String> = referenced.uses.iter().flat_map(|u| &u.names).collect();
    for name in [
        "kafka_consumer_lag",
        "kafka_consumer_connection_count",
        "up",
    ] {
        assert!(read.iter().any(|n| *n == name), "{name} in {read:?}");
    }
    // The canary analysis (deploy/k8s/components/canary) is read too.
    assert!(
        referenced.uses.iter().any(|u| u
            .place
            .contains("AnalysisTemplate issuer-api-canary metric error-ratio")),
        "{:?}",
        referenced.uses.iter().map(|u| &u.place).collect::<Vec<_>>()
    );
    Ok(())
}

#[test]
fn an_analysis_query_reading_a_made_up_metric_fails() -> anyhow::Result<()> {
    let mut referenced = Referenced::default();
    referenced.add_analysis_templates(
        "canary.yaml",
        r#"apiVersion: v1
kind: Service
metadata: {name: not-an-analysis}
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: canary}
spec:
  args: [{name: hash}]
  metrics:
    - name: lag
      provider:
        prometheus:
          query: max(kafka_consumer_lag{pod=~"api-{{args.hash}}-.*"}) or vector(0)
    - name: renamed
      provider:
        prometheus:
          query: sum(rate(kafka_consumer_records_consumed{pod=~"api-{{args.hash}}-.*"}[2m]))
    - name: smoke
      provider:
        job: {spec: {}}
"#,
    )?;
    assert_eq!(referenced.uses.len(), 2, "{:?}", referenced.uses);
    let problems = unknown(&referenced, &exported_names(PAGE));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with(
            "canary.yaml: AnalysisTemplate canary metric renamed: `kafka_consumer_records_consumed`"
        ),
        "{problems:?}"
    );
    Ok(())
}
