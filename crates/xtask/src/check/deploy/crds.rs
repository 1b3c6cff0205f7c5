//! Custom resources (KEDA, Argo Rollouts, Prometheus Operator) against the schemas their
//! projects' API types generate, published as the `@kubernetes-models/*` npm packages and
//! checked offline by scripts/validate-crds.mjs. kubernetes-validate has only Kubernetes' own
//! schemas; an object of a group neither knows is a failure, not a skip.

use std::process::Stdio;

use anyhow::Context;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::manifests::Object;
use crate::binaries::workspace_root;
use crate::tools;

/// The node script, relative to the workspace root.
const SCRIPT: &str = "scripts/validate-crds.mjs";

/// Whether kubernetes-validate has the schema of `api_version`: the core group (`v1`), the
/// unqualified groups (`apps`, `batch`, `policy`, `autoscaling`) and `*.k8s.io`.
pub fn is_core(api_version: &str) -> bool {
    match api_version.split_once('/') {
        None => true,
        Some((group, _)) => !group.contains('.') || group.ends_with(".k8s.io"),
    }
}

/// Every problem scripts/validate-crds.mjs finds in `objects` (each with the kind, name and
/// path at fault).
pub async fn validate(objects: &[&Object]) -> anyhow::Result<Vec<String>> {
    if objects.is_empty() {
        return Ok(Vec::new());
    }
    let node = tools::require("node").await?;
    let models = tools::require("kubernetes-models").await?;
    let input: Vec<serde_json::Value> = objects
        .iter()
        .map(|o| {
            Ok(serde_json::json!({
                "source": o.file,
                "object": serde_json::to_value(&o.value)?,
            }))
        })
        .collect::<anyhow::Result<_>>()?;
    let mut child = Command::new(&node)
        .arg(workspace_root().join(SCRIPT))
        .arg(&models)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("run {} {SCRIPT}", node.display()))?;
    let mut stdin = child.stdin.take().context("the validator's stdin")?;
    stdin.write_all(&serde_json::to_vec(&input)?).await?;
    drop(stdin);
    let output = child.wait_with_output().await?;
    let problems: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    match output.status.code() {
        Some(0) if problems.is_empty() => Ok(problems),
        Some(1) if !problems.is_empty() => Ok(problems),
        _ => anyhow::bail!(
            "{SCRIPT} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ),
    }
}
