//! The real tools a task runs as processes (k6, wrk, redis-benchmark, schemathesis, ...). A tool
//! on `PATH` is used as is; otherwise `scripts/stack.sh tool NAME` installs it (apt-get, pip, or
//! a Debian package unpacked: installing stays in bash, in one place) and prints its path.

use std::path::PathBuf;
use std::process::Stdio;

use anyhow::Context;

use crate::binaries::workspace_root;

/// The path of `name`, installing it first when it is missing (a directory for a tool that is
/// a set of packages, e.g. `kubernetes-models`' node_modules).
pub async fn require(name: &str) -> anyhow::Result<PathBuf> {
    if let Some(found) = on_path(name) {
        return Ok(found);
    }
    let script = workspace_root().join("scripts/stack.sh");
    let output = tokio::process::Command::new(&script)
        .args(["tool", name])
        .stderr(Stdio::inherit())
        .output()
        .await
        .with_context(|| format!("run {} tool {name}", script.display()))?;
    anyhow::ensure!(
        output.status.success(),
        "{name} is missing and `scripts/stack.sh tool {name}` could not install it ({})",
        output.status
    );
    let path = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    anyhow::ensure!(
        path.exists(),
        "`scripts/stack.sh tool {name}` printed {}, which does not exist",
        path.display()
    );
    Ok(path)
}

/// `name` on `PATH`, if it is there (nothing is installed).
pub fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}
