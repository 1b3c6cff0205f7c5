//! The workspace's own binaries, built in release mode and found where cargo put them.

use std::path::PathBuf;

use anyhow::Context;

/// The workspace root (this crate lives in `crates/xtask`).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .and_then(|crates| crates.parent())
        .map_or(manifest.clone(), PathBuf::from)
}

/// `cargo build --release` of `packages`; their output goes to this terminal.
pub async fn build_release(packages: &[&str]) -> anyhow::Result<()> {
    let mut command =
        tokio::process::Command::new(std::env::var("CARGO").unwrap_or("cargo".into()));
    command
        .current_dir(workspace_root())
        .args(["build", "--release", "--locked"]);
    for package in packages {
        command.args(["-p", package]);
    }
    let status = command.status().await.context("run cargo build")?;
    anyhow::ensure!(status.success(), "cargo build --release failed ({status})");
    Ok(())
}

/// Path of a release binary, honouring `CARGO_TARGET_DIR` (relative to the workspace root).
pub fn release_binary(name: &str) -> anyhow::Result<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"));
    let target = if target.is_absolute() {
        target
    } else {
        workspace_root().join(target)
    };
    let path = target.join("release").join(name);
    anyhow::ensure!(
        path.is_file(),
        "{} is missing: build it first (cargo build --release -p {name})",
        path.display()
    );
    Ok(path)
}
