//! The metric names rules, dashboards and canary analyses read, and the names the binaries
//! export.
//!
//! Referenced names come from parsing each PromQL expression with `promql-parser` (a port of
//! Prometheus's own grammar, maintained by GreptimeDB, which runs it in production): a regex
//! cannot tell a metric from a function (`rate`), an aggregation's label list (`by (job)`), a
//! keyword (`and on ()`), a duration or a string, and would stay silent on an expression that
//! does not parse. Every vector selector's name counts, whether written `foo{...}` or
//! `{__name__="foo"}`.
//!
//! Exported names come from the `/metrics` text: every sample's name, plus the sample names a
//! `# TYPE` line declares (`# TYPE x counter`: `x_total`), for an exporter that declares a
//! family before its first sample. prometheus-client does not (an empty labelled family is
//! left out), so the run sends traffic that gives each family a sample first.

use std::collections::BTreeSet;

use promql_parser::label::MatchOp;
use promql_parser::parser::Expr;
use promql_parser::util::{ExprVisitor, walk_expr};
use serde::Deserialize;
use serde_yaml_ng::Value;

/// Names that come from outside the binaries, each with why a rule or panel may read them.
pub const FROM_OUTSIDE: &[(&str, &str)] = &[
    (
        "up",
        "Prometheus writes it per scrape target (KafkaConsumerAbsent)",
    ),
    ("ALERTS", "Prometheus writes it per pending or firing alert"),
    (
        "ALERTS_FOR_STATE",
        "Prometheus writes it per alert with a `for` duration",
    ),
    (
        "kube_cronjob_status_last_schedule_time",
        "kube-state-metrics, for the reconcile CronJob (deploy/k8s/base/reconcile-job.yaml; \
         CouponReconcileFailing)",
    ),
    (
        "kube_cronjob_status_last_successful_time",
        "kube-state-metrics, for the reconcile CronJob (deploy/k8s/base/reconcile-job.yaml; \
         CouponReconcileFailing)",
    ),
];

/// Where one expression is (`file: rule X` or `file: panel "T"`) and the names it reads.
#[derive(Debug, PartialEq, Eq)]
pub struct Use {
    pub place: String,
    pub names: BTreeSet<String>,
}

/// What the rule files and dashboards read and record.
#[derive(Debug, Default)]
pub struct Referenced {
    pub uses: Vec<Use>,
    /// Outputs of recording rules (`record:`): known names, whoever reads them.
    pub recorded: BTreeSet<String>,
    /// Expressions that do not parse: a problem of their own.
    pub unparsed: Vec<String>,
}

impl Referenced {
    fn add(&mut self, place: String, expr: &str) {
        match metric_names(expr) {
            Ok(names) => self.uses.push(Use { place, names }),
            Err(error) => self.unparsed.push(format!(
                "{place}: the expression does not parse ({}): {expr}",
                error.trim()
            )),
        }
    }

    /// Every alerting and recording rule's `expr` of a Prometheus rule file (`show` names it in
    /// messages), and its recording rules' outputs.
    pub fn add_rule_file(&mut self, show: &str, text: &str) -> anyhow::Result<()> {
        let doc: Value = serde_yaml_ng::from_str(text)
            .map_err(|e| anyhow::anyhow!("{show} is not YAML: {e}"))?;
        let groups = doc["groups"].as_sequence().into_iter().flatten();
        for rule in groups.flat_map(|g| g["rules"].as_sequence().into_iter().flatten()) {
            let name = rule["alert"].as_str().or_else(|| rule["record"].as_str());
            let (Some(name), Some(expr)) = (name, rule["expr"].as_str()) else {
                anyhow::bail!("{show}: a rule without `alert`/`record` or `expr`: {rule:?}");
            };
            if let Some(record) = rule["record"].as_str() {
                self.recorded.insert(record.to_owned());
            }
            self.add(format!("{show}: rule {name}"), expr);
        }
        Ok(())
    }

    /// Every Prometheus query of the Argo Rollouts analysis templates in a manifest file (any
    /// number of YAML documents; other kinds are skipped). Argo's `{{args.*}}` placeholders are
    /// replaced as in [`argo_to_promql`].
    pub fn add_analysis_templates(&mut self, show: &str, text: &str) -> anyhow::Result<()> {
        for document in serde_yaml_ng::Deserializer::from_str(text) {
            let doc = Value::deserialize(document)
                .map_err(|e| anyhow::anyhow!("{show} is not YAML: {e}"))?;
            let kind = doc["kind"].as_str().unwrap_or_default();
            if kind != "AnalysisTemplate" && kind != "ClusterAnalysisTemplate" {
                continue;
            }
            let template = doc["metadata"]["name"].as_str().unwrap_or("(unnamed)");
            for metric in doc["spec"]["metrics"].as_sequence().into_iter().flatten() {
                if let Some(query) = metric["provider"]["prometheus"]["query"].as_str() {
                    let metric = metric["name"].as_str().unwrap_or("(unnamed)");
                    self.add(
                        format!("{show}: {kind} {template} metric {metric}"),
                        &argo_to_promql(query),
                    );
                }
            }
        }
        Ok(())
    }

    /// Every panel query (`targets[].expr`, rows' panels included) of a Grafana dashboard.
    pub fn add_dashboard(&mut self, show: &str, text: &str) -> anyhow::Result<()> {
        let doc: serde_json::Value =
            serde_json::from_str(text).map_err(|e| anyhow::anyhow!("{show} is not JSON: {e}"))?;
        let mut panels: Vec<&serde_json::Value> = Vec::new();
        let mut stack: Vec<&serde_json::Value> = vec![&doc];
        while let Some(node) = stack.pop() {
            for panel in node["panels"].as_array().into_iter().flatten() {
                panels.push(panel);
                stack.push(panel); // a row holds its panels when collapsed
            }
        }
        for panel in panels {
            let title = panel["title"].as_str().unwrap_or("(untitled)");
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    self.add(
                        format!("{show}: panel \"{title}\""),
                        &grafana_to_promql(expr),
                    );
                }
            }
        }
        Ok(())
    }
}

/// Grafana's interval variables replaced by a duration, so the query parses as PromQL (they
/// only ever stand where a duration does).
fn grafana_to_promql(expr: &str) -> String {
    let mut expr = expr.to_owned();
    for variable in ["__rate_interval", "__interval", "__range"] {
        expr = expr
            .replace(&format!("${{{variable}}}"), "5m")
            .replace(&format!("${variable}"), "5m");
    }
    expr
}

/// Argo Rollouts' `{{...}}` placeholders replaced by a plain word, so the query parses as
/// PromQL: they stand inside label values (`pod=~"api-{{args.hash}}-.*"`), where the braces
/// would otherwise read as a malformed regex repetition. Argo substitutes them before
/// Prometheus sees the query; a placeholder elsewhere (a duration) still fails to parse.
fn argo_to_promql(query: &str) -> String {
    let mut promql = String::with_capacity(query.len());
    let mut rest = query;
    while let Some(start) = rest.find("{{") {
        let Some(length) = rest[start..].find("}}") else {
            break;
        };
        promql.push_str(&rest[..start]);
        promql.push_str("arg");
        rest = &rest[start + length + 2..];
    }
    promql.push_str(rest);
    promql
}

/// The metric names `expr` selects.
pub fn metric_names(expr: &str) -> Result<BTreeSet<String>, String> {
    struct Names(BTreeSet<String>);
    impl ExprVisitor for Names {
        type Error = std::convert::Infallible;
        fn pre_visit(&mut self, expr: &Expr) -> Result<bool, Self::Error> {
            let selector = match expr {
                Expr::VectorSelector(selector) => selector,
                Expr::MatrixSelector(matrix) => &matrix.vs,
                _ => return Ok(true),
            };
            self.0.extend(selector.name.iter().cloned());
            let matchers = selector
                .matchers
                .matchers
                .iter()
                .chain(selector.matchers.or_matchers.iter().flatten());
            for matcher in matchers {
                if matcher.name == "__name__" && matcher.op == MatchOp::Equal {
                    self.0.insert(matcher.value.clone());
                }
            }
            Ok(true)
        }
    }
    let parsed = promql_parser::parser::parse(expr)?;
    let mut names = Names(BTreeSet::new());
    match walk_expr(&mut names, &parsed) {
        Ok(_) => Ok(names.0),
        Err(never) => match never {},
    }
}

/// The sample names a Prometheus text page exports (see the module documentation).
pub fn exported_names(page: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in page.lines() {
        if let Some(declaration) = line.strip_prefix("# TYPE ") {
            let mut words = declaration.split_whitespace();
            let (Some(family), Some(kind)) = (words.next(), words.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "counter" => &["_total", "_created"],
                "histogram" | "gaugehistogram" => &["_bucket", "_sum", "_count", "_created"],
                "summary" => &["", "_sum", "_count", "_created"],
                "info" => &["_info"],
                _ => &[""],
            };
            names.extend(suffixes.iter().map(|suffix| format!("{family}{suffix}")));
        } else if !line.starts_with('#') {
            let name = line
                .split(|c: char| c == '{' || c.is_whitespace())
                .next()
                .unwrap_or_default();
            if !name.is_empty() {
                names.insert(name.to_owned());
            }
        }
    }
    names
}

/// Each name a rule or panel reads that no binary exports, no rule records and
/// [`FROM_OUTSIDE`] does not list: one problem per place and name.
pub fn unknown(referenced: &Referenced, exported: &BTreeSet<String>) -> Vec<String> {
    let outside: BTreeSet<&str> = FROM_OUTSIDE.iter().map(|(name, _)| *name).collect();
    let mut problems = referenced.unparsed.clone();
    for use_ in &referenced.uses {
        for name in &use_.names {
            let known = exported.contains(name)
                || referenced.recorded.contains(name)
                || outside.contains(name.as_str());
            if !known {
                problems.push(format!(
                    "{}: `{name}` is exported by neither issuer-api nor coupon-consumer, \
                     recorded by no rule, and not in the allow-list of outside names",
                    use_.place
                ));
            }
        }
    }
    problems
}
