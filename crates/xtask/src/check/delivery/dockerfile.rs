//! docker/Dockerfile: hadolint's verdict, base images pinned, and the `COUPON__` settings the
//! image sets (the first layer of every container's environment, see [`super::compose`]).

use std::collections::{HashMap, HashSet};

use couponrush_config::ENV_PREFIX;

use super::{Layout, linters};

/// hadolint's problems, then every base image not pinned to an exact version.
pub async fn problems(layout: &Layout) -> anyhow::Result<Vec<String>> {
    let path = layout.dockerfile();
    let mut problems = linters::hadolint(&path).await?;
    problems.extend(unpinned_bases(&std::fs::read_to_string(&path)?));
    Ok(problems)
}

/// The Dockerfile's instructions: (keyword in upper case, arguments), continuation lines joined
/// and comment lines dropped, as Docker reads them.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (current.is_empty() && trimmed.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                let (keyword, args) = current
                    .split_once(char::is_whitespace)
                    .unwrap_or((&current, ""));
                out.push((keyword.to_ascii_uppercase(), args.trim().to_owned()));
                current.clear();
            }
        }
    }
    out
}

/// Every base image that is not pinned: `FROM` images (through the `ARG` defaults they name)
/// without a digest or a tag that starts with an exact `major.minor` version. A floating tag
/// (`latest`, `1-bookworm`, `bookworm-slim`) silently changes what a rebuild ships.
pub fn unpinned_bases(text: &str) -> Vec<String> {
    let mut args: HashMap<String, String> = HashMap::new();
    let mut stages: HashSet<String> = HashSet::new();
    let mut problems = Vec::new();
    for (keyword, rest) in instructions(text) {
        match keyword.as_str() {
            "ARG" => {
                if let Some((name, value)) = rest.split_once('=') {
                    args.insert(
                        name.trim().to_owned(),
                        value.trim().trim_matches('"').to_owned(),
                    );
                }
            }
            "FROM" => {
                let mut words = rest.split_whitespace().filter(|w| !w.starts_with("--"));
                let Some(image) = words.next() else {
                    problems.push("a FROM without an image".to_owned());
                    continue;
                };
                if let (Some(as_), Some(alias)) = (words.next(), words.next())
                    && as_.eq_ignore_ascii_case("as")
                {
                    stages.insert(alias.to_owned());
                }
                let name = image
                    .trim_start_matches("${")
                    .trim_start_matches('$')
                    .trim_end_matches('}');
                let resolved = if image.starts_with('$') {
                    match args.get(name) {
                        Some(value) => value.as_str(),
                        None => {
                            problems.push(format!("FROM {image}: ARG {name} has no default"));
                            continue;
                        }
                    }
                } else {
                    image
                };
                if !stages.contains(resolved) && resolved != "scratch" && !pinned(resolved) {
                    problems.push(format!(
                        "FROM {image}: base image `{resolved}` is not pinned (use an exact version \
                         tag such as rust:1.95.0-bookworm, and a @sha256 digest where known)"
                    ));
                }
            }
            _ => {}
        }
    }
    problems
}

/// A digest, or a tag starting with `major.minor`.
fn pinned(image: &str) -> bool {
    if let Some((_, digest)) = image.split_once("@sha256:") {
        return digest.len() == 64 && digest.chars().all(|c| c.is_ascii_hexdigit());
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    let Some((_, tag)) = last.split_once(':') else {
        return false;
    };
    let digits = |s: &str| s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let major = digits(tag);
    major > 0
        && tag[major..]
            .strip_prefix('.')
            .is_some_and(|minor| digits(minor) > 0)
}

/// The `COUPON__*` variables the image's `ENV` instructions set, in order (a later one wins).
pub fn coupon_env(text: &str) -> Vec<(String, String)> {
    let mut vars = Vec::new();
    for (keyword, rest) in instructions(text) {
        if keyword != "ENV" {
            continue;
        }
        let pairs: Vec<(String, String)> = if rest.contains('=') {
            rest.split_whitespace()
                .filter_map(|w| w.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
                .collect()
        } else {
            // The legacy form `ENV KEY value with spaces`.
            rest.split_once(char::is_whitespace)
                .map(|(k, v)| vec![(k.to_owned(), v.trim().to_owned())])
                .unwrap_or_default()
        };
        for (key, value) in pairs {
            if key.starts_with(ENV_PREFIX) {
                vars.retain(|(k, _): &(String, String)| *k != key);
                vars.push((key, value));
            }
        }
    }
    vars
}
