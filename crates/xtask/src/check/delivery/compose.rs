//! docker/compose.yaml in step with the config: each service that runs the image built from
//! docker/Dockerfile gets the image's `COUPON__` settings, then its own `environment` (YAML
//! merge keys such as `<<: *app` applied, compose's `${VAR:-default}` taken at its default),
//! and that environment alone must load through the binaries' own loader under the production
//! profile ([`crate::check::deploy::settings::load`], the same as the Kubernetes manifests):
//! an unknown key (`COUPON__KAFKA__BOOTSTRAP_SERVER`), a bad value or a loopback host fails.

use std::path::Path;

use anyhow::Context;
use couponrush_config::{ENV_PREFIX, Needs};
use serde_yaml_ng::Value;

use crate::check::deploy::rules::scalar;
use crate::check::deploy::settings;

/// The services whose environment does not load, or why none could be checked.
pub fn problems(path: &Path, image_env: &[(String, String)]) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    let mut doc: Value =
        serde_yaml_ng::from_str(&text).with_context(|| format!("parse {}", path.display()))?;
    doc.apply_merge()
        .with_context(|| format!("merge keys of {}", path.display()))?;
    let Some(services) = doc["services"].as_mapping() else {
        return Ok(vec![format!("{}: no `services`", path.display())]);
    };
    let mut problems = Vec::new();
    let mut checked = 0;
    for (name, service) in services {
        if !runs_the_image(service) {
            continue;
        }
        checked += 1;
        let name = name.as_str().unwrap_or_default();
        // issuer-api refuses to start without an admin token; the other binaries do not read it.
        // issuer-api and coupon-consumer refuse to start without a signing key, issuer-api
        // without an auth mode.
        let needs = Needs {
            admin_token: binary(service) == Some("issuer-api"),
            signing_key: matches!(binary(service), Some("issuer-api" | "coupon-consumer")),
            auth: binary(service) == Some("issuer-api"),
        };
        match environment(service, image_env) {
            Ok(vars) => problems.extend(
                settings::load(&vars, needs)
                    .err()
                    .map(|e| format!("service {name}: {e}")),
            ),
            Err(problem) => problems.push(format!("service {name}: {problem}")),
        }
    }
    if checked == 0 {
        problems.push(format!(
            "{}: no service builds docker/Dockerfile (build.dockerfile), nothing was checked",
            path.display()
        ));
    }
    Ok(problems)
}

/// Built from docker/Dockerfile, so it runs one of our binaries with our settings.
fn runs_the_image(service: &Value) -> bool {
    service["build"]["dockerfile"]
        .as_str()
        .is_some_and(|f| f.trim_start_matches("./") == "docker/Dockerfile")
}

/// The binary the service's `command` starts.
fn binary(service: &Value) -> Option<&str> {
    match &service["command"] {
        Value::Sequence(words) => words.first()?.as_str(),
        Value::String(line) => line.split_whitespace().next(),
        _ => None,
    }
}

/// The image's `COUPON__` variables, then the service's (a later one wins).
fn environment(
    service: &Value,
    image_env: &[(String, String)],
) -> Result<Vec<(String, String)>, String> {
    let mut vars = image_env.to_vec();
    let entries: Vec<(String, String)> = match &service["environment"] {
        Value::Mapping(map) => map
            .iter()
            .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), scalar(v)?)))
            .collect(),
        // The list form: `- KEY=value`.
        Value::Sequence(list) => list
            .iter()
            .filter_map(|e| e.as_str()?.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        _ => Vec::new(),
    };
    for (key, raw) in entries {
        if !key.starts_with(ENV_PREFIX) {
            continue;
        }
        let value = interpolate(&raw).map_err(|e| format!("{key}: {e}"))?;
        vars.retain(|(k, _)| *k != key);
        vars.push((key, value));
    }
    Ok(vars)
}

/// Compose's interpolation with nothing from this process's environment: `${VAR:-default}` and
/// `${VAR-default}` are their default, `$$` is `$`. A variable without a default has no value
/// the check can know: a problem (give it a default, as the secrets here have).
fn interpolate(raw: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = raw;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        let Some(inner) = rest.strip_prefix('{') else {
            return Err(format!("`${rest}` has no default"));
        };
        let end = inner
            .find('}')
            .ok_or_else(|| format!("unclosed `${{` in `{raw}`"))?;
        let expression = &inner[..end];
        let default = expression
            .split_once(":-")
            .or_else(|| expression.split_once('-'))
            .map(|(_, default)| default)
            .ok_or_else(|| format!("`${{{expression}}}` has no default"))?;
        out.push_str(default);
        rest = &inner[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}
