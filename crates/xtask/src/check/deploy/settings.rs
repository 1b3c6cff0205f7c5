//! Every container's configuration, as Kubernetes builds its environment from these manifests
//! (`envFrom` ConfigMaps and Secrets, then `env`), loaded and validated by the binaries' own
//! loader: the production profile's rules (no loopback host for Kafka, Redis, MySQL; valid
//! topics, ports, timeouts; no unknown key) come from `couponrush_config`, not a copy.

use couponrush_config::{ConfigArgs, ENV_PREFIX, Needs, Settings};
use figment::providers::Env;

use super::manifests::{Manifests, Template, containers, env_from};
use super::rules::{scalar, values};
use crate::stack::as_overrides;

/// The containers whose environment does not load under the production profile.
pub fn settings_load_in_production(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    for t in m.templates() {
        for container in containers(t.spec) {
            if container["envFrom"].is_null() && container["env"].is_null() {
                continue; // a helper container (e.g. a preStop sleep) that reads no settings
            }
            let name = container["name"].as_str().unwrap_or_default();
            let at = format!("{}: container {name}", t.owner.label());
            match environment(m, &t, container) {
                // The example Secret's admin token is a placeholder the production profile
                // refuses on purpose (see secret.example.yaml): checked by the tests, not here.
                // The signing key is required where messages are signed or verified, an auth
                // mode where callers are served.
                Ok(Some(vars)) => {
                    let needs = Needs {
                        signing_key: matches!(name, "issuer-api" | "coupon-consumer"),
                        auth: name == "issuer-api",
                        ..Needs::default()
                    };
                    if let Err(error) = load(&vars, needs) {
                        problems.push(format!("{at}: {error}"));
                    }
                }
                Ok(None) => {} // names an undefined source: env_from_names_defined_sources says so
                Err(problem) => problems.push(format!("{at}: {problem}")),
            }
        }
    }
    problems
}

/// The container's `COUPON__*` variables: its `envFrom` sources in order (a later source wins),
/// then its `env` entries with a literal `value`. `None` when a source is not defined here.
pub fn environment(
    m: &Manifests,
    t: &Template<'_>,
    container: &serde_yaml_ng::Value,
) -> Result<Option<Vec<(String, String)>>, String> {
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut set = |key: String, value: String| {
        vars.retain(|(k, _)| *k != key);
        vars.push((key, value));
    };
    for (kind, name) in env_from(container) {
        let Some(object) = m.find(kind, &t.namespace, name) else {
            return Ok(None);
        };
        values(object)?.into_iter().for_each(|(k, v)| set(k, v));
    }
    for entry in container["env"].as_sequence().into_iter().flatten() {
        if let (Some(key), Some(value)) = (entry["name"].as_str(), scalar(&entry["value"])) {
            set(key.to_owned(), value);
        }
    }
    vars.retain(|(k, _)| k.starts_with(ENV_PREFIX));
    Ok(Some(vars))
}

/// Loads `vars` alone (not this process's environment) through the real loader, for a binary
/// that `needs` what it says; the production profile must be among them.
pub fn load(vars: &[(String, String)], needs: Needs) -> anyhow::Result<Settings> {
    let profile = format!("{ENV_PREFIX}PROFILE");
    anyhow::ensure!(
        vars.iter().any(|(k, v)| *k == profile && v == "production"),
        "{profile} must be production (the profile that refuses loopback hosts)"
    );
    let args = ConfigArgs {
        overrides: as_overrides(vars),
        ..ConfigArgs::default()
    };
    let nothing_from_this_process = Env::prefixed(ENV_PREFIX).split("__").filter(|_| false);
    Ok(args.load_with_needs(nothing_from_this_process, needs)?)
}
