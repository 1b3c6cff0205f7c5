//! Consistency the schemas cannot see: each rule returns its problems, one line each, naming
//! the file and object at fault.

use std::collections::BTreeSet;

use base64::Engine;
use serde_yaml_ng::Value;

use super::manifests::{KUSTOMIZATION, Manifests, SECRET_EXAMPLE, containers, env_from, selects};

/// The settings that are secrets (`couponrush_config::Secret` fields): they belong in the
/// Secret, never in the ConfigMap, and the example Secret documents each of them.
pub const SECRET_KEYS: [&str; 5] = [
    "COUPON__MYSQL__PASSWORD",
    "COUPON__REDIS__URL",
    "COUPON__ADMIN__TOKEN",
    "COUPON__MESSAGE_SIGNING__KEY",
    "COUPON__MESSAGE_SIGNING__PREVIOUS_KEY",
];

/// `kustomization.yaml` names every manifest of its directory except the secret example (as a
/// resource, a patch, ...), and every file its `resources` list is one of the directory.
pub fn kustomization_lists_every_manifest(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    let mut named = Vec::new();
    strings(&m.kustomization, &mut named);
    let named: Vec<&str> = named.iter().map(|n| n.trim_start_matches("./")).collect();
    for file in m.manifest_files() {
        if file != SECRET_EXAMPLE && !named.contains(&file) {
            problems.push(format!("{KUSTOMIZATION}: resources does not list {file}"));
        }
    }
    // Directories (`../../base`) and remote resources are kustomize's to resolve.
    let listed: Vec<&str> = m.kustomization["resources"]
        .as_sequence()
        .into_iter()
        .flatten()
        .map(|r| r.as_str().unwrap_or_default().trim_start_matches("./"))
        .filter(|r| r.ends_with(".yaml") && !r.contains('/'))
        .collect();
    for name in &listed {
        if *name == SECRET_EXAMPLE {
            problems.push(format!(
                "{KUSTOMIZATION}: resources lists {SECRET_EXAMPLE}; it is an example only"
            ));
        } else if !m.files.iter().any(|f| f == name) {
            problems.push(format!(
                "{KUSTOMIZATION}: resources lists {name:?}, not a manifest of this directory"
            ));
        }
    }
    if listed.iter().collect::<BTreeSet<_>>().len() != listed.len() {
        problems.push(format!("{KUSTOMIZATION}: resources lists a file twice"));
    }
    problems
}

/// Every string scalar of `value`, depth first.
fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Sequence(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Mapping(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// A Deployment's (StatefulSet's, ...) selector matches the labels of its own pods.
pub fn selectors_match_pod_labels(m: &Manifests) -> Vec<String> {
    m.templates()
        .into_iter()
        .filter(|t| !matches!(t.owner.kind(), "Job" | "CronJob"))
        .filter_map(|t| {
            let selector = &t.owner.value["spec"]["selector"]["matchLabels"];
            (!selector.is_null() && !selects(selector, t.labels)).then(|| {
                format!(
                    "{}: selector {} does not match its pod labels {}",
                    t.owner.label(),
                    inline(selector),
                    inline(t.labels)
                )
            })
        })
        .collect()
}

/// Every Service and PodDisruptionBudget selects some pod template of its namespace.
pub fn services_select_a_pod_template(m: &Manifests) -> Vec<String> {
    let templates = m.templates();
    m.objects
        .iter()
        .filter_map(|o| {
            let spec = &o.value["spec"];
            let selector = match o.kind() {
                "Service" if spec["type"] != "ExternalName" => &spec["selector"],
                "PodDisruptionBudget" => &spec["selector"]["matchLabels"],
                _ => return None,
            };
            let namespace = m.namespace(o);
            let matched = templates
                .iter()
                .any(|t| t.namespace == namespace && selects(selector, t.labels));
            (!selector.is_null() && !matched).then(|| {
                format!(
                    "{}: selector {} matches no pod template here",
                    o.label(),
                    inline(selector)
                )
            })
        })
        .collect()
}

/// Every `envFrom` names a ConfigMap or Secret defined in this directory.
pub fn env_from_names_defined_sources(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    for t in m.templates() {
        for container in containers(t.spec) {
            for (kind, name) in env_from(container) {
                if m.find(kind, &t.namespace, name).is_none() {
                    problems.push(format!(
                        "{}: container {}: envFrom names {kind} {name:?}, not defined here",
                        t.owner.label(),
                        container["name"].as_str().unwrap_or_default()
                    ));
                }
            }
        }
    }
    problems
}

/// ConfigMap and Secret keys are `COUPON__*` settings; secrets are not in a ConfigMap; the
/// Secret documents every secret setting.
pub fn setting_keys(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    for o in m
        .objects
        .iter()
        .filter(|o| matches!(o.kind(), "ConfigMap" | "Secret"))
    {
        let values = match values(o) {
            Ok(values) => values,
            Err(problem) => {
                problems.push(format!("{}: {problem}", o.label()));
                continue;
            }
        };
        for key in values.iter().map(|(k, _)| k) {
            if !key.starts_with(couponrush_config::ENV_PREFIX) {
                problems.push(format!("{}: {key}: not a COUPON__* setting", o.label()));
            }
            if o.kind() == "ConfigMap" && SECRET_KEYS.contains(&key.as_str()) {
                problems.push(format!(
                    "{}: {key}: a secret; it belongs in the Secret ({SECRET_EXAMPLE})",
                    o.label()
                ));
            }
        }
        if o.kind() == "Secret" {
            for key in SECRET_KEYS {
                if !values.iter().any(|(k, _)| k == key) {
                    problems.push(format!("{}: does not document {key}", o.label()));
                }
            }
        }
    }
    problems
}

/// Every container image is covered by an `images:` entry of the kustomization (or of one the
/// build includes), so one edit there points every workload at the built image.
pub fn images_covered(m: &Manifests) -> Vec<String> {
    let covered: Vec<&str> = m.covered_images.iter().map(String::as_str).collect();
    let mut problems = Vec::new();
    for t in m.templates() {
        for container in containers(t.spec) {
            let image = container["image"].as_str().unwrap_or_default();
            if !covered.contains(&repository(image)) {
                problems.push(format!(
                    "{}: container {}: image {image:?} has no `images:` entry in {KUSTOMIZATION}",
                    t.owner.label(),
                    container["name"].as_str().unwrap_or_default()
                ));
            }
        }
    }
    problems
}

/// What a HorizontalPodAutoscaler, a KEDA ScaledObject or an Argo Rollout's `workloadRef`
/// points at exists in the same namespace: a typo leaves the workload unscaled (or the Rollout
/// managing nothing) without an error anywhere at apply time.
pub fn scale_targets_exist(m: &Manifests) -> Vec<String> {
    m.objects
        .iter()
        .filter_map(|o| {
            let (target, default_kind) = match o.kind() {
                "HorizontalPodAutoscaler" => (&o.value["spec"]["scaleTargetRef"], ""),
                "ScaledObject" => (&o.value["spec"]["scaleTargetRef"], "Deployment"),
                "Rollout" if !o.value["spec"]["workloadRef"].is_null() => {
                    (&o.value["spec"]["workloadRef"], "")
                }
                _ => return None,
            };
            let kind = target["kind"].as_str().unwrap_or(default_kind);
            let name = target["name"].as_str().unwrap_or_default();
            m.find(kind, &m.namespace(o), name)
                .is_none()
                .then(|| format!("{}: targets {kind} {name:?}, not defined here", o.label()))
        })
        .collect()
}

/// The repository of an image reference: without its `@digest` and its `:tag`.
fn repository(image: &str) -> &str {
    let image = image.split('@').next().unwrap_or_default();
    match image.rsplit_once(':') {
        Some((repository, tag)) if !tag.contains('/') => repository,
        _ => image,
    }
}

/// The `KEY: value` pairs of a ConfigMap (`data`) or Secret (`data`, base64, and
/// `stringData`), as the environment variables `envFrom` makes of them.
pub fn values(object: &super::manifests::Object) -> Result<Vec<(String, String)>, String> {
    let mut values = Vec::new();
    let secret = object.kind() == "Secret";
    for (field, base64) in [("data", secret), ("stringData", false)] {
        for (key, value) in object.value[field].as_mapping().into_iter().flatten() {
            let key = key.as_str().unwrap_or_default().to_owned();
            let text = scalar(value).ok_or_else(|| format!("{field}.{key}: not a scalar"))?;
            let text = if base64 {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(text.trim())
                    .map_err(|e| format!("data.{key}: not base64 ({e})"))?;
                String::from_utf8_lossy(&bytes).into_owned()
            } else {
                text
            };
            values.retain(|(k, _)| *k != key); // stringData wins over data, as in Kubernetes
            values.push((key, text));
        }
    }
    Ok(values)
}

/// A scalar's text, as it would reach an environment variable.
pub fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A selector or label set on one line, for a message.
fn inline(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}
