//! `cargo xtask check deploy`: offline checks of the Kubernetes manifests in deploy/k8s; no
//! cluster, no kubeconfig.
//!
//! 1. Schema: every manifest but kustomization.yaml (secret.example.yaml included) passes
//!    `kubernetes-validate --strict` against each Kubernetes version asked.
//! 2. Consistency the schemas cannot see ([`rules`]), and every container's environment loads
//!    under the production profile through the binaries' own config loader ([`settings`]).
//! 3. When kubectl (or kustomize) is on PATH: the kustomization builds, and its output passes 1.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::binaries::workspace_root;

mod manifests;
pub(super) mod rules;
mod schema;
pub(super) mod settings;
#[cfg(test)]
mod tests;

use manifests::Manifests;

/// Settings of the deploy check (each also read from its `DEPLOY_*` variable).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Kubernetes versions to validate against, separated by spaces or commas.
    #[arg(long, env = "DEPLOY_K8S_VERSIONS", default_value = "1.30.0 1.34.0")]
    pub versions: String,
    /// The directory checked (default: deploy/k8s of this workspace).
    #[arg(long, env = "DEPLOY_K8S_DIR")]
    pub dir: Option<PathBuf>,
}

/// A rule: its problems with a set of manifests.
type Rule = fn(&Manifests) -> Vec<String>;

/// Every consistency rule, in the order their problems are listed.
const RULES: [Rule; 7] = [
    rules::kustomization_lists_every_manifest,
    rules::selectors_match_pod_labels,
    rules::services_select_a_pod_template,
    rules::env_from_names_defined_sources,
    rules::setting_keys,
    rules::images_covered,
    settings::settings_load_in_production,
];

/// What `manifests` breaks: what could not be read, then each rule's problems.
pub fn problems(manifests: &Manifests) -> Vec<String> {
    let mut problems = manifests.problems.clone();
    for rule in RULES {
        problems.extend(rule(manifests));
    }
    problems
}

#[allow(clippy::print_stdout)] // the check's report
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let versions: Vec<String> = args
        .versions
        .split([' ', ','])
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect();
    anyhow::ensure!(!versions.is_empty(), "DEPLOY_K8S_VERSIONS is empty");
    let dir = args
        .dir
        .unwrap_or_else(|| workspace_root().join("deploy/k8s"));
    anyhow::ensure!(dir.is_dir(), "no directory {}", dir.display());
    let manifests = Manifests::load(&dir)?;
    let files = manifests.manifest_files();
    anyhow::ensure!(!files.is_empty(), "no manifests in {}", dir.display());

    let mut ok = true;
    eprintln!(
        "[check-deploy] 1/3 kubernetes-validate --strict, Kubernetes {}: {} files",
        versions.join(" "),
        files.len()
    );
    ok &= schema::validate(&dir, &files, &versions).await?;

    eprintln!(
        "[check-deploy] 2/3 consistency: kustomization resources, duplicate keys, selectors, \
         references, settings through the config loader (production), images"
    );
    let problems = problems(&manifests);
    for problem in &problems {
        println!("  {}", problem.replace('\n', "\n    "));
    }
    println!(
        "  {} objects in {} manifests: {}",
        manifests.objects.len(),
        files.len(),
        if problems.is_empty() {
            "OK".to_owned()
        } else {
            format!("{} problem(s)", problems.len())
        }
    );
    ok &= problems.is_empty();

    match schema::kustomize(&dir, &versions).await? {
        Some(built) => ok &= built,
        None => eprintln!(
            "[check-deploy] 3/3 skipped: neither kubectl nor kustomize on PATH (steps 1-2 \
             still cover every file)"
        ),
    }
    eprintln!(
        "[check-deploy] deploy manifests: {}",
        if ok { "OK" } else { "FAILED" }
    );
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
