//! Kubernetes' own schemas: `kubernetes-validate --strict` (unknown fields are errors) against
//! each Kubernetes version asked, run as the real tool; it carries its schemas, so nothing here
//! needs a cluster or the network.

use std::path::{Path, PathBuf};

use anyhow::Context;
use tokio::process::Command;

use super::manifests::Object;
use crate::tools;

/// `kubernetes-validate --strict -k V...` over `files` of `dir` (named relative to it). Fails
/// on a non-zero exit or any line but INFO: the tool only warns, and exits 0, for a
/// kind/apiVersion it has no schema for (a typo'd `apiVersion`).
#[allow(clippy::print_stdout)] // the tool's report is this check's report
pub async fn validate(dir: &Path, files: &[&str], versions: &[String]) -> anyhow::Result<bool> {
    let validator = tools::require("kubernetes-validate").await?;
    let mut command = Command::new(&validator);
    command.current_dir(dir).arg("--strict");
    for version in versions {
        command.args(["-k", version]);
    }
    let output = command
        .args(files)
        .output()
        .await
        .with_context(|| format!("run {}", validator.display()))?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    let (mut bad, mut passed) = (0, 0);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if line.starts_with("INFO ") {
            passed += 1;
        } else {
            println!("{line}");
            bad += 1;
        }
    }
    println!("  kubernetes-validate: {passed} object/version pair(s) passed");
    if !output.status.success() || bad > 0 {
        eprintln!(
            "[check-deploy] FAIL: kubernetes-validate {}, {bad} line(s) other than INFO",
            output.status
        );
        return Ok(false);
    }
    Ok(true)
}

/// [`validate`] over the Kubernetes kinds of every build (each written to a file named after
/// its kustomization) and the example Secret files, in one run of the tool.
pub async fn validate_builds(
    builds: &[(String, Vec<&Object>)],
    secrets: &[PathBuf],
    versions: &[String],
) -> anyhow::Result<bool> {
    let out = tempfile::tempdir().context("a temporary directory")?;
    let mut files = Vec::new();
    for (name, objects) in builds {
        let file = format!("{}.yaml", name.replace(['/', '.'], "_"));
        let mut text = String::new();
        for object in objects {
            text.push_str("---\n");
            text.push_str(&serde_yaml_ng::to_string(&object.value)?);
        }
        std::fs::write(out.path().join(&file), text)?;
        files.push(file);
    }
    files.extend(secrets.iter().map(|p| p.display().to_string()));
    let files: Vec<&str> = files.iter().map(String::as_str).collect();
    validate(out.path(), &files, versions).await
}
