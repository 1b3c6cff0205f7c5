//! The schemas: `kubernetes-validate --strict` (unknown fields are errors) against each
//! Kubernetes version asked, and `kubectl kustomize` (or `kustomize build`) when one is here.
//! Both run as the real tools; kubernetes-validate carries its schemas, so nothing here needs a
//! cluster or the network.

use std::path::Path;

use anyhow::Context;
use tokio::process::Command;

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
    let mut bad = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        println!("{line}");
        bad += usize::from(!line.starts_with("INFO "));
    }
    if !output.status.success() || bad > 0 {
        eprintln!(
            "[check-deploy] FAIL: kubernetes-validate {}, {bad} line(s) other than INFO",
            output.status
        );
        return Ok(false);
    }
    Ok(true)
}

/// `kubectl kustomize DIR` or `kustomize build DIR` (offline), if either is on PATH: the
/// kustomization builds, and its output passes [`validate`] too. `None`: neither is here.
pub async fn kustomize(dir: &Path, versions: &[String]) -> anyhow::Result<Option<bool>> {
    let build: &[&str] = if tools::on_path("kubectl").is_some() {
        &["kubectl", "kustomize"]
    } else if tools::on_path("kustomize").is_some() {
        &["kustomize", "build"]
    } else {
        return Ok(None);
    };
    eprintln!(
        "[check-deploy] 3/3 {} (offline) and kubernetes-validate of its output",
        build.join(" ")
    );
    let output = Command::new(build[0])
        .args(&build[1..])
        .arg(dir)
        .output()
        .await
        .with_context(|| format!("run {}", build.join(" ")))?;
    if !output.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&output.stderr));
        eprintln!(
            "[check-deploy] FAIL: {} ({})",
            build.join(" "),
            output.status
        );
        return Ok(Some(false));
    }
    let out = tempfile::tempdir().context("a temporary directory")?;
    std::fs::write(out.path().join("kustomized.yaml"), &output.stdout)?;
    Ok(Some(
        validate(out.path(), &["kustomized.yaml"], versions).await?,
    ))
}
