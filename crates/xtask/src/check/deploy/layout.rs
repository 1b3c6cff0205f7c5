//! The kustomizations under deploy/k8s, found wherever they are (base, components, overlays,
//! whatever the layout becomes): every `kind: Kustomization` is built on its own, and each
//! `kind: Component` through the kustomizations that include it (one no kustomization includes
//! is never built, so it is a problem).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::manifests::{KUSTOMIZATION, Manifests, image_names};

/// One directory with a kustomization.yaml, read as plain files.
#[derive(Debug)]
pub struct Kustomization {
    pub dir: PathBuf,
    /// The directory relative to the root searched (`base`, `overlays/production`).
    pub name: String,
    pub manifests: Manifests,
}

impl Kustomization {
    /// A `kind: Component`: built only through the kustomizations that include it.
    pub fn is_component(&self) -> bool {
        self.manifests.kustomization["kind"] == "Component"
    }

    /// The local directories it includes (`resources` that are directories, `components`).
    pub fn includes(&self) -> Vec<PathBuf> {
        let k = &self.manifests.kustomization;
        ["resources", "components"]
            .into_iter()
            .filter_map(|field| k[field].as_sequence())
            .flatten()
            .filter_map(|entry| entry.as_str())
            .filter(|entry| !entry.contains("://"))
            .filter_map(|entry| self.dir.join(entry).canonicalize().ok())
            .filter(|path| path.is_dir())
            .collect()
    }
}

/// Every directory under `root` (itself included) holding a kustomization.yaml, sorted.
pub fn discover(root: &Path) -> anyhow::Result<Vec<Kustomization>> {
    let mut dirs = Vec::new();
    walk(root, &mut dirs)?;
    dirs.sort();
    dirs.into_iter()
        .map(|dir| {
            let dir = dir
                .canonicalize()
                .with_context(|| format!("{}", dir.display()))?;
            let name = dir
                .strip_prefix(root.canonicalize()?)
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            Ok(Kustomization {
                manifests: Manifests::load(&dir)?,
                name: if name.is_empty() {
                    ".".to_owned()
                } else {
                    name
                },
                dir,
            })
        })
        .collect()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    if dir.join(KUSTOMIZATION).is_file() {
        out.push(dir.to_path_buf());
    }
    for entry in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, out)?;
        }
    }
    Ok(())
}

/// The kustomizations `top` builds from: itself and, transitively, what it includes.
pub fn closure<'a>(all: &'a [Kustomization], top: &'a Kustomization) -> Vec<&'a Kustomization> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![top];
    let mut out = Vec::new();
    while let Some(k) = stack.pop() {
        if !seen.insert(k.dir.clone()) {
            continue;
        }
        out.push(k);
        stack.extend(all.iter().filter(|o| k.includes().contains(&o.dir)));
    }
    out
}

/// The image repositories the `images:` entries of a build's kustomizations name.
pub fn covered_images(all: &[Kustomization], top: &Kustomization) -> Vec<String> {
    closure(all, top)
        .into_iter()
        .flat_map(|k| image_names(&k.manifests.kustomization))
        .collect()
}

/// Components that no kustomization includes: nothing would ever build or apply them.
pub fn unused_components(all: &[Kustomization]) -> Vec<String> {
    all.iter()
        .filter(|c| c.is_component())
        .filter(|c| !all.iter().any(|k| k.includes().contains(&c.dir)))
        .map(|c| format!("{}: a Component that no kustomization includes", c.name))
        .collect()
}
