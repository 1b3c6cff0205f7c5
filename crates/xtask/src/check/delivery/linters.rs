//! The real linters, run as processes. Each returns its problems: the failing command and what
//! it printed.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Context;
use tokio::process::Command;

use crate::tools;

/// The base URL the load script is inspected with: `k6 inspect` runs the script's init code
/// (which refuses a missing BASE_URL) but sends no request, so nothing is ever contacted.
const INSPECT_BASE_URL: &str = "http://k6-inspect.invalid";

/// `hadolint` on `dockerfile`.
pub async fn hadolint(dockerfile: &Path) -> anyhow::Result<Vec<String>> {
    let args = [OsString::from("--no-color"), dockerfile.into()];
    run("hadolint", &args).await
}

/// `actionlint` on every workflow file in `dir`, with shellcheck checking their `run:` scripts.
pub async fn actionlint(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("read {}", dir.display()))?
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    if files.is_empty() {
        return Ok(vec![format!("no workflow files in {}", dir.display())]);
    }
    files.sort();
    // Named explicitly: actionlint silently skips the shell checks when it finds no shellcheck.
    let shellcheck = tools::require("shellcheck").await?;
    let mut args = vec![
        OsString::from("-no-color"),
        "-shellcheck".into(),
        shellcheck.into_os_string(),
    ];
    args.extend(files.into_iter().map(PathBuf::into_os_string));
    run("actionlint", &args).await
}

/// `k6 inspect --execution-requirements` on `script`: it loads, and its options (scenarios,
/// thresholds) parse.
pub async fn k6_inspect(script: &Path) -> anyhow::Result<Vec<String>> {
    let args = [
        OsString::from("inspect"),
        "--execution-requirements".into(),
        "-e".into(),
        format!("BASE_URL={INSPECT_BASE_URL}").into(),
        script.into(),
    ];
    run("k6", &args).await
}

/// Runs `tool args...`; no problem when it exits 0, else the command and its output.
async fn run(tool: &str, args: &[OsString]) -> anyhow::Result<Vec<String>> {
    let path = tools::require(tool).await?;
    let output = Command::new(&path)
        .args(args)
        .output()
        .await
        .with_context(|| format!("run {}", path.display()))?;
    if output.status.success() {
        return Ok(Vec::new());
    }
    let shown: Vec<_> = args.iter().map(|a| a.to_string_lossy()).collect();
    let printed = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    Ok(vec![format!(
        "`{tool} {}` failed ({}):\n{}",
        shown.join(" "),
        output.status,
        printed.trim_end()
    )])
}
