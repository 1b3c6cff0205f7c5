//! Every query of the Grafana dashboards (deploy/grafana/*.json) parses as PromQL: each panel's
//! `targets[].expr`, Grafana's interval macros replaced by a duration, is written into a
//! temporary rule file as a recording rule and checked by the real `promtool check rules`. A
//! query that does not parse shows as a blank panel in the middle of an incident; here it fails
//! the check, naming the dashboard, the panel and the query.

use std::path::Path;

use anyhow::Context;
use serde_json::Value;

use super::Layout;
use super::real_tools::promtool_in;

/// Grafana's macros and what stands in for each when parsing; a macro before any macro it
/// starts with (`$__range_s` before `$__range`).
const MACROS: [(&str, &str); 8] = [
    ("${__rate_interval}", "1m"),
    ("$__rate_interval", "1m"),
    ("${__interval}", "15s"),
    ("$__interval", "15s"),
    ("${__range_s}", "3600"),
    ("$__range_s", "3600"),
    ("${__range}", "1h"),
    ("$__range", "1h"),
];

/// One panel query: where it is and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub file: String,
    pub panel: String,
    pub ref_id: String,
    pub expr: String,
}

impl Query {
    fn at(&self) -> String {
        format!("{}: panel \"{}\" ({})", self.file, self.panel, self.ref_id)
    }
}

/// Every query of the dashboard `doc`, panels nested in rows included.
pub fn queries(file: &str, doc: &Value) -> Vec<Query> {
    let mut found = Vec::new();
    collect(
        file,
        doc["panels"].as_array().into_iter().flatten(),
        &mut found,
    );
    found
}

fn collect<'a>(file: &str, panels: impl Iterator<Item = &'a Value>, found: &mut Vec<Query>) {
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or("(untitled)");
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                found.push(Query {
                    file: file.to_owned(),
                    panel: title.to_owned(),
                    ref_id: target["refId"].as_str().unwrap_or("?").to_owned(),
                    expr: expr.to_owned(),
                });
            }
        }
        collect(
            file,
            panel["panels"].as_array().into_iter().flatten(),
            found,
        );
    }
}

/// `expr` with Grafana's macros replaced; `Err` names a variable promtool cannot know.
pub fn substituted(expr: &str) -> Result<String, String> {
    let mut text = expr.to_owned();
    for (from, to) in MACROS {
        text = text.replace(from, to);
    }
    let Some(at) = text.find('$') else {
        return Ok(text);
    };
    let rest = &text[at + 1..];
    let name = match rest.strip_prefix('{') {
        Some(braced) => braced.split('}').next().unwrap_or_default(),
        None => {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        }
    };
    Err(format!(
        "uses a variable the check cannot substitute: `${name}`"
    ))
}

/// A rule file holding `exprs` as recording rules.
fn rule_file(exprs: &[&str]) -> anyhow::Result<String> {
    let rules: Vec<Value> = exprs
        .iter()
        .enumerate()
        .map(
            |(i, expr)| serde_json::json!({"record": format!("dashboard:query_{i}"), "expr": expr}),
        )
        .collect();
    let doc = serde_json::json!({"groups": [{"name": "dashboard-queries", "rules": rules}]});
    // JSON is YAML: promtool reads it as it is.
    Ok(serde_json::to_string_pretty(&doc)?)
}

/// `promtool check rules` on `exprs` as one rule file; its output when it fails.
async fn promtool_parse(dir: &Path, exprs: &[&str]) -> anyhow::Result<Option<String>> {
    let path = dir.join("dashboard-queries.yaml");
    std::fs::write(&path, rule_file(exprs)?)
        .with_context(|| format!("write {}", path.display()))?;
    let args = [
        "check".to_owned(),
        "rules".to_owned(),
        path.display().to_string(),
    ];
    promtool_in(dir, &args).await
}

/// The dashboards' JSON files (deploy/grafana/*.json), sorted.
pub fn dashboard_files(layout: &Layout) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let dir = layout.grafana();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "json") && path.is_file())
        .collect();
    files.sort();
    anyhow::ensure!(
        !files.is_empty(),
        "no dashboards (*.json) in {}",
        dir.display()
    );
    Ok(files)
}

/// Every query of every dashboard.
pub fn all_queries(layout: &Layout) -> anyhow::Result<Vec<Query>> {
    let mut all = Vec::new();
    for path in dashboard_files(layout)? {
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        let doc: Value =
            serde_json::from_str(&text).with_context(|| format!("parse {}", path.display()))?;
        all.extend(queries(&layout.show(&path), &doc));
    }
    Ok(all)
}

/// A problem per query that does not parse (or uses an unknown variable), and per dashboard
/// without a query. All queries go to promtool at once; only when that fails is each one
/// checked alone, to name the broken ones.
pub async fn problems(layout: &Layout) -> anyhow::Result<Vec<String>> {
    let queries = all_queries(layout)?;
    let mut problems = Vec::new();
    for path in dashboard_files(layout)? {
        let file = layout.show(&path);
        if !queries.iter().any(|q| q.file == file) {
            problems.push(format!("{file}: no panel has a query"));
        }
    }
    let mut parsable = Vec::new();
    for query in &queries {
        match substituted(&query.expr) {
            Ok(expr) => parsable.push((query, expr)),
            Err(why) => problems.push(format!("{}: {why}", query.at())),
        }
    }
    let dir = tempfile::tempdir()?;
    let exprs: Vec<&str> = parsable.iter().map(|(_, e)| e.as_str()).collect();
    if promtool_parse(dir.path(), &exprs).await?.is_none() {
        return Ok(problems);
    }
    for (query, expr) in &parsable {
        if let Some(output) = promtool_parse(dir.path(), &[expr.as_str()]).await? {
            problems.push(format!(
                "{}: `{}` does not parse:\n{output}",
                query.at(),
                query.expr
            ));
        }
    }
    Ok(problems)
}
