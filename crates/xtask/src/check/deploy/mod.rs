//! `cargo xtask check deploy`: offline checks of the Kubernetes manifests under deploy/k8s; no
//! cluster, no kubeconfig. Every kustomization is found wherever it is (base, overlays/*,
//! components/*), so a new overlay is checked without an edit here.
//!
//! 1. Tools: kubectl (required; its kustomize must build components), node and the pinned
//!    `@kubernetes-models/*` packages (installed into ~/.cache/couponrush/tools by
//!    `scripts/stack.sh tool kubernetes-models`).
//! 2. The generated deploy/k8s/components/monitoring/prometheus-rules.yaml is what
//!    `cargo xtask gen monitoring` writes from deploy/prometheus's rule files.
//! 3. Files: each kustomization names every manifest of its directory (secret.example.yaml
//!    apart) and nothing missing, no YAML repeats a key, no component is left unincluded.
//!    Then `kubectl kustomize` builds every `kind: Kustomization` (base and overlays; the
//!    components through the overlays that include them).
//! 4. Core kinds of every build, and each secret.example.yaml, pass `kubernetes-validate
//!    --strict` against each Kubernetes version asked ([`schema`]).
//! 5. Custom resources of every build (KEDA, Argo Rollouts, Prometheus Operator) pass the
//!    schemas of their `@kubernetes-models` packages ([`crds`]); an unknown kind fails.
//! 6. On each BUILT output, with the example Secret: consistency the schemas cannot see
//!    ([`rules`]: selectors, references, scale targets, settings keys, images), KEDA's Kafka
//!    trigger against the scaler's documented keys and the consumer's settings ([`keda`]), the
//!    monitors giving the rules their job names ([`monitors`]), and every container's
//!    environment through the binaries' own config loader under the production profile
//!    ([`settings`]).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use crate::binaries::workspace_root;
use crate::generate::monitoring;

mod build;
mod crds;
mod keda;
mod layout;
mod manifests;
mod monitors;
pub(super) mod rules;
mod schema;
pub(super) mod settings;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_real_manifests;
#[cfg(test)]
mod tests_tools;

use layout::Kustomization;
use manifests::{Manifests, Object, SECRET_EXAMPLE};

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

/// Rules of a kustomization's own files.
const FILE_RULES: [Rule; 1] = [rules::kustomization_lists_every_manifest];

/// Rules of a built output, in the order their problems are listed.
const OBJECT_RULES: [Rule; 9] = [
    rules::selectors_match_pod_labels,
    rules::services_select_a_pod_template,
    rules::env_from_names_defined_sources,
    rules::scale_targets_exist,
    rules::setting_keys,
    rules::images_covered,
    keda::kafka_triggers,
    monitors::monitors_give_the_rules_their_jobs,
    settings::settings_load_in_production,
];

/// What a kustomization's files break: what could not be read, then each file rule's problems.
pub fn file_problems(manifests: &Manifests) -> Vec<String> {
    let mut problems = manifests.problems.clone();
    for rule in FILE_RULES {
        problems.extend(rule(manifests));
    }
    problems
}

/// What a built output breaks: what could not be read, then each object rule's problems.
pub fn object_problems(manifests: &Manifests) -> Vec<String> {
    let mut problems = manifests.problems.clone();
    for rule in OBJECT_RULES {
        problems.extend(rule(manifests));
    }
    problems
}

/// Both, for one directory read as plain files (the tests' small sets).
#[cfg(test)]
pub fn problems(manifests: &Manifests) -> Vec<String> {
    let mut problems = file_problems(manifests);
    for rule in OBJECT_RULES {
        problems.extend(rule(manifests));
    }
    problems
}

/// One built kustomization.
struct Built {
    name: String,
    manifests: Manifests,
}

#[allow(clippy::print_stdout)] // the check's report
fn report(step: &str, problems: &[String]) -> bool {
    for problem in problems {
        println!("  {}", problem.replace('\n', "\n    "));
    }
    println!(
        "  {step}: {}",
        if problems.is_empty() {
            "OK".to_owned()
        } else {
            format!("{} problem(s)", problems.len())
        }
    );
    problems.is_empty()
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let versions: Vec<String> = args
        .versions
        .split([' ', ','])
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect();
    anyhow::ensure!(!versions.is_empty(), "DEPLOY_K8S_VERSIONS is empty");
    let root = workspace_root();
    let dir = args.dir.unwrap_or_else(|| root.join("deploy/k8s"));
    anyhow::ensure!(dir.is_dir(), "no directory {}", dir.display());
    let mut ok = true;

    let (kubectl, kustomize) = build::kubectl().await?;
    eprintln!(
        "[check-deploy] 1/6 tools: {} (kustomize {kustomize})",
        kubectl.display()
    );

    eprintln!(
        "[check-deploy] 2/6 {} is generated and current",
        monitoring::OUTPUT
    );
    let stale: Vec<String> = monitoring::stale(&root)?.into_iter().collect();
    ok &= report("generated files", &stale);

    let all = layout::discover(&dir)?;
    anyhow::ensure!(
        !all.is_empty(),
        "no kustomization.yaml under {}",
        dir.display()
    );
    eprintln!(
        "[check-deploy] 3/6 files of {} kustomizations ({}); kubectl kustomize of each \
         Kustomization",
        all.len(),
        all.iter()
            .map(|k| k.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut problems = layout::unused_components(&all);
    for k in &all {
        problems.extend(
            file_problems(&k.manifests)
                .into_iter()
                .map(|p| format!("{}/{p}", k.name)),
        );
    }
    let secrets = example_secrets(&all);
    let mut builds = Vec::new();
    for k in all.iter().filter(|k| !k.is_component()) {
        match build::kustomize(&kubectl, &k.dir).await? {
            Ok(text) => builds.push(Built {
                name: k.name.clone(),
                manifests: Manifests::built(
                    &k.name,
                    &text,
                    secrets.clone(),
                    layout::covered_images(&all, k),
                ),
            }),
            Err(complaint) => {
                problems.push(format!("{}: kubectl kustomize failed: {complaint}", k.name))
            }
        }
    }
    ok &= report("files and builds", &problems);

    eprintln!(
        "[check-deploy] 4/6 kubernetes-validate --strict, Kubernetes {}: core kinds of {} \
         build(s) and {SECRET_EXAMPLE}",
        versions.join(" "),
        builds.len()
    );
    ok &= schema::validate_builds(&builds_core(&builds), &secret_files(&all), &versions).await?;

    let custom: Vec<&Object> = builds
        .iter()
        .flat_map(|b| b.manifests.objects.iter())
        .filter(|o| !crds::is_core(o.value["apiVersion"].as_str().unwrap_or_default()))
        .collect();
    eprintln!(
        "[check-deploy] 5/6 custom resources through @kubernetes-models schemas: {} object(s)",
        custom.len()
    );
    ok &= report("custom resources", &crds::validate(&custom).await?);

    eprintln!(
        "[check-deploy] 6/6 built output: selectors, references, scale targets, settings keys, \
         images, KEDA kafka trigger, monitors' jobs, settings through the config loader \
         (production)"
    );
    for b in &builds {
        ok &= report(&b.name, &object_problems(&b.manifests));
    }
    eprintln!(
        "[check-deploy] deploy manifests: {} ({:.1} s)",
        if ok { "OK" } else { "FAILED" },
        started.elapsed().as_secs_f64()
    );
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The objects of every secret.example.yaml, with the namespace their kustomization gives
/// them: the Secret an operator creates by hand, which no build contains.
fn example_secrets(all: &[Kustomization]) -> Vec<Object> {
    all.iter()
        .flat_map(|k| {
            k.manifests
                .objects
                .iter()
                .filter(|o| o.file == SECRET_EXAMPLE)
                .map(|o| {
                    let namespace = k.manifests.namespace(o);
                    let mut o = o.clone();
                    if let Some(metadata) =
                        o.value.get_mut("metadata").and_then(|m| m.as_mapping_mut())
                    {
                        metadata.insert("namespace".into(), namespace.into());
                    }
                    o.file = format!("{}/{SECRET_EXAMPLE}", k.name);
                    o
                })
        })
        .collect()
}

fn secret_files(all: &[Kustomization]) -> Vec<PathBuf> {
    all.iter()
        .map(|k| k.dir.join(SECRET_EXAMPLE))
        .filter(|p| p.is_file())
        .collect()
}

/// Each build's name and its objects of Kubernetes' own kinds (the example Secret aside).
fn builds_core(builds: &[Built]) -> Vec<(String, Vec<&Object>)> {
    builds
        .iter()
        .map(|b| {
            let core = b
                .manifests
                .objects
                .iter()
                .filter(|o| !o.file.ends_with(SECRET_EXAMPLE))
                .filter(|o| crds::is_core(o.value["apiVersion"].as_str().unwrap_or_default()))
                .collect();
            (b.name.clone(), core)
        })
        .collect()
}
