//! `cargo xtask check delivery`: what builds and ships the image, offline.
//!
//! 1. docker/compose.yaml in step with the config: every application service's environment
//!    (the image's `ENV` from docker/Dockerfile, then the service's `environment`, with
//!    compose's `${VAR:-default}` taken at its default) loads through the binaries' own config
//!    loader under the production profile: an unknown `COUPON__` key or a bad value fails
//!    ([`compose`]).
//! 2. docker/Dockerfile: hadolint, and every base image pinned to an exact version
//!    ([`dockerfile`]).
//! 3. .github/workflows/*.yml: actionlint, with shellcheck on the `run:` scripts.
//! 4. deploy/k6/issue-load.js: `k6 inspect --execution-requirements` (the script loads, its
//!    options and thresholds parse) so a broken load step fails here, not in the pipeline.
//!
//! The tools (hadolint, actionlint, shellcheck, k6) are the real ones, installed on first use
//! by `scripts/stack.sh tool`.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::binaries::workspace_root;

mod compose;
mod dockerfile;
mod linters;
#[cfg(test)]
mod tests;

/// Settings of the delivery check (each also read from its `DELIVERY_*` variable).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The tree checked, holding docker/, .github/workflows/ and deploy/k6/ (default: this
    /// workspace).
    #[arg(long, env = "DELIVERY_ROOT")]
    pub root: Option<PathBuf>,
}

/// The checked files, by their place under a root (the workspace, or a test's copy).
#[derive(Debug)]
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn dockerfile(&self) -> PathBuf {
        self.root.join("docker/Dockerfile")
    }

    pub fn compose(&self) -> PathBuf {
        self.root.join("docker/compose.yaml")
    }

    pub fn workflows(&self) -> PathBuf {
        self.root.join(".github/workflows")
    }

    pub fn k6_script(&self) -> PathBuf {
        self.root.join("deploy/k6/issue-load.js")
    }
}

/// A step of the check: its title and its problems.
type Outcome = (&'static str, Vec<String>);

/// Every step's problems, in order.
pub async fn check(layout: &Layout) -> anyhow::Result<Vec<Outcome>> {
    let image_env = dockerfile::coupon_env(&std::fs::read_to_string(layout.dockerfile())?);
    Ok(vec![
        (
            "docker/compose.yaml: each application service's environment through the config loader (production)",
            compose::problems(&layout.compose(), &image_env)?,
        ),
        (
            "docker/Dockerfile: hadolint, base images pinned",
            dockerfile::problems(layout).await?,
        ),
        (
            ".github/workflows: actionlint (with shellcheck)",
            linters::actionlint(&layout.workflows()).await?,
        ),
        (
            "deploy/k6/issue-load.js: k6 inspect --execution-requirements",
            linters::k6_inspect(&layout.k6_script()).await?,
        ),
    ])
}

#[allow(clippy::print_stdout)] // the check's report
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let layout = Layout {
        root: args.root.unwrap_or_else(workspace_root),
    };
    let outcomes = check(&layout).await?;
    let steps = outcomes.len();
    let mut ok = true;
    for (n, (title, problems)) in outcomes.into_iter().enumerate() {
        let verdict = if problems.is_empty() { "OK" } else { "FAILED" };
        println!("[check-delivery] {}/{steps} {title}: {verdict}", n + 1);
        for problem in &problems {
            println!("  {}", problem.replace('\n', "\n    "));
        }
        ok &= problems.is_empty();
    }
    println!(
        "[check-delivery] image, compose, workflows, load script: {}",
        if ok { "OK" } else { "FAILED" }
    );
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
