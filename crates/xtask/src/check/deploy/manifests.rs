//! Manifests read as Kubernetes reads them: the files of one directory (every `*.yaml` document
//! an object, `kustomization.yaml` apart), or the output of `kubectl kustomize`. What cannot be
//! read (bad YAML, a repeated key, a `.yml` file this check would skip) is a problem, reported
//! with the rest.

use std::path::Path;

use anyhow::Context;
use serde::Deserialize;
use serde_yaml_ng::Value;

pub const KUSTOMIZATION: &str = "kustomization.yaml";
/// Documentation of the Secret every workload loads; never applied, so never in `resources`.
pub const SECRET_EXAMPLE: &str = "secret.example.yaml";

/// One object of a manifest file.
#[derive(Debug, Clone)]
pub struct Object {
    pub file: String,
    pub value: Value,
}

impl Object {
    pub fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or_default()
    }

    pub fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or_default()
    }

    /// `file: Kind name`, how a problem names this object.
    pub fn label(&self) -> String {
        format!("{}: {} {}", self.file, self.kind(), self.name())
    }
}

/// A pod template (of a Deployment, Job, CronJob, ...) and the object that holds it.
#[derive(Debug)]
pub struct Template<'a> {
    pub owner: &'a Object,
    pub namespace: String,
    pub labels: &'a Value,
    pub spec: &'a Value,
}

#[derive(Debug)]
pub struct Manifests {
    /// Every `*.yaml` file name of the directory, sorted (kustomization.yaml included).
    pub files: Vec<String>,
    pub kustomization: Value,
    pub objects: Vec<Object>,
    /// The image repositories the kustomization's `images:` entries (and those of the
    /// kustomizations a build includes) name, before and after their `newName`.
    pub covered_images: Vec<String>,
    /// What could not be read.
    pub problems: Vec<String>,
}

impl Manifests {
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let mut files = Vec::new();
        let mut problems = Vec::new();
        for entry in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if name.ends_with(".yaml") {
                files.push(name);
            } else if name.ends_with(".yml") {
                problems.push(format!(
                    "{name}: use the .yaml extension (this check reads *.yaml)"
                ));
            }
        }
        files.sort();
        let mut kustomization = Value::Null;
        let mut objects = Vec::new();
        for file in &files {
            let text = std::fs::read_to_string(dir.join(file))
                .with_context(|| format!("read {}", dir.join(file).display()))?;
            let documents = match parse(&text) {
                Ok(documents) => documents,
                Err(error) => {
                    problems.push(format!("{file}: not valid YAML: {error}"));
                    continue;
                }
            };
            if file == KUSTOMIZATION {
                match <[Value; 1]>::try_from(documents) {
                    Ok([document])
                        if document["kind"] == "Kustomization"
                            || document["kind"] == "Component" =>
                    {
                        kustomization = document;
                    }
                    _ => problems.push(format!(
                        "{KUSTOMIZATION}: expected one document of kind Kustomization or Component"
                    )),
                }
                continue;
            }
            objects.extend(documents.into_iter().map(|value| Object {
                file: file.clone(),
                value,
            }));
        }
        if !files.iter().any(|f| f == KUSTOMIZATION) {
            problems.push(format!("{KUSTOMIZATION} is missing"));
        }
        Ok(Self {
            files,
            covered_images: image_names(&kustomization),
            kustomization,
            objects,
            problems,
        })
    }

    /// The objects of `kubectl kustomize` output `text`, named after `source` (the directory
    /// built), with `extra` objects (the example Secret, which a build leaves out on purpose)
    /// and the `covered_images` of the kustomizations built.
    pub fn built(
        source: &str,
        text: &str,
        extra: Vec<Object>,
        covered_images: Vec<String>,
    ) -> Self {
        let mut problems = Vec::new();
        let mut objects = match parse(text) {
            Ok(documents) => documents
                .into_iter()
                .map(|value| Object {
                    file: source.to_owned(),
                    value,
                })
                .collect(),
            Err(error) => {
                problems.push(format!(
                    "{source}: the built output is not valid YAML: {error}"
                ));
                Vec::new()
            }
        };
        objects.extend(extra);
        Self {
            files: Vec::new(),
            kustomization: Value::Null,
            objects,
            covered_images,
            problems,
        }
    }

    /// The manifests kubernetes-validate checks: every file but the kustomization.
    pub fn manifest_files(&self) -> Vec<&str> {
        self.files
            .iter()
            .map(String::as_str)
            .filter(|f| *f != KUSTOMIZATION)
            .collect()
    }

    /// An object's namespace, as `kubectl apply -k` would set it.
    pub fn namespace(&self, object: &Object) -> String {
        object.value["metadata"]["namespace"]
            .as_str()
            .or_else(|| self.kustomization["namespace"].as_str())
            .unwrap_or("default")
            .to_owned()
    }

    /// The object of `kind` named `name` in `namespace`, if this directory defines it.
    pub fn find(&self, kind: &str, namespace: &str, name: &str) -> Option<&Object> {
        self.objects
            .iter()
            .find(|o| o.kind() == kind && o.name() == name && self.namespace(o) == namespace)
    }

    /// Every pod template, with the labels its pods carry.
    pub fn templates(&self) -> Vec<Template<'_>> {
        self.objects
            .iter()
            .filter_map(|owner| {
                let spec = match owner.kind() {
                    "CronJob" => &owner.value["spec"]["jobTemplate"]["spec"],
                    "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
                        &owner.value["spec"]
                    }
                    // An Argo Rollout with its own template (one with a workloadRef has none).
                    "Rollout" if owner.value["spec"]["template"].is_mapping() => {
                        &owner.value["spec"]
                    }
                    _ => return None,
                };
                let template = &spec["template"];
                Some(Template {
                    owner,
                    namespace: self.namespace(owner),
                    labels: &template["metadata"]["labels"],
                    spec: &template["spec"],
                })
            })
            .collect()
    }
}

/// The repositories the `images:` entries of `kustomization` name: each `name`, and its
/// `newName` (what the build writes).
pub fn image_names(kustomization: &Value) -> Vec<String> {
    kustomization["images"]
        .as_sequence()
        .into_iter()
        .flatten()
        .flat_map(|i| [&i["name"], &i["newName"]])
        .filter_map(|n| n.as_str().map(str::to_owned))
        .collect()
}

/// Every non-empty document of a YAML stream. A mapping that repeats a key is an error (the
/// YAML spec forbids it; most parsers keep the last value without a word).
pub fn parse(text: &str) -> Result<Vec<Value>, serde_yaml_ng::Error> {
    let mut documents = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        match Value::deserialize(document)? {
            Value::Null => {}
            value => documents.push(value),
        }
    }
    Ok(documents)
}

/// The containers (init containers first) of a pod spec.
pub fn containers(pod: &Value) -> impl Iterator<Item = &Value> {
    ["initContainers", "containers"]
        .into_iter()
        .filter_map(|key| pod[key].as_sequence())
        .flatten()
}

/// The `(kind, name)` of each ConfigMap and Secret a container's `envFrom` names, in order.
pub fn env_from(container: &Value) -> impl Iterator<Item = (&'static str, &str)> {
    container["envFrom"]
        .as_sequence()
        .into_iter()
        .flatten()
        .flat_map(|source| {
            [("configMapRef", "ConfigMap"), ("secretRef", "Secret")]
                .into_iter()
                .filter_map(|(field, kind)| Some((kind, source[field]["name"].as_str()?)))
        })
}

/// Whether `labels` carry every `key: value` of `selector`.
pub fn selects(selector: &Value, labels: &Value) -> bool {
    selector
        .as_mapping()
        .is_some_and(|wanted| wanted.iter().all(|(k, v)| labels.get(k) == Some(v)))
}
