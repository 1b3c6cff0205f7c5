//! `redis.mode` and the URLs it reads: a standalone URL, or cluster seed nodes that one cluster
//! client can use together (one scheme, one user and password, database 0). Tested with the
//! other backend settings (`backends_tests.rs`).

use crate::settings::{RedisMode, RedisSettings};

use super::Invalid;

/// What a seed node URL is, checked entry by entry; problems name the entry, never its text
/// (it may hold a password).
pub(super) fn redis_mode_problems(redis: &RedisSettings) -> Vec<Invalid> {
    let mut errors = Vec::new();
    match redis.mode {
        RedisMode::Standalone => {
            if !redis.cluster_nodes.is_empty() {
                errors.push(Invalid::new(
                    "redis.cluster_nodes",
                    "is set but redis.mode is standalone (set redis.mode = cluster to use them)",
                ));
            }
        }
        RedisMode::Cluster => errors.extend(cluster_problems(redis)),
    }
    errors
}

fn cluster_problems(redis: &RedisSettings) -> Vec<Invalid> {
    const KEY: &str = "redis.cluster_nodes";
    let nodes = redis.urls();
    if nodes.is_empty() {
        return vec![Invalid::new(
            KEY,
            "must list at least one seed node URL (redis://host:port,...) in cluster mode",
        )];
    }
    let mut errors = Vec::new();
    let mut first: Option<(String, String, Option<String>)> = None;
    for (position, node) in (1..).zip(&nodes) {
        let what = format!("entry {position} of {}", nodes.len());
        let Some(url) = url::Url::parse(node)
            .ok()
            .filter(|url| matches!(url.scheme(), "redis" | "rediss") && url.host_str().is_some())
        else {
            errors.push(Invalid::new(
                KEY,
                format!("{what} must be redis://[user:password@]host:port or rediss://..."),
            ));
            continue;
        };
        if !matches!(url.path(), "" | "/" | "/0") {
            errors.push(Invalid::new(
                KEY,
                format!("{what} names a database: a Redis Cluster has only database 0"),
            ));
        }
        let identity = (
            url.scheme().to_owned(),
            url.username().to_owned(),
            url.password().map(str::to_owned),
        );
        match &first {
            None => first = Some(identity),
            Some(seen) if *seen != identity => errors.push(Invalid::new(
                KEY,
                format!(
                    "{what} differs from entry 1 in scheme, user or password: one cluster \
                     client uses one for every node"
                ),
            )),
            Some(_) => {}
        }
    }
    errors
}

/// Hosts of the seed nodes, for the production profile's loopback check.
pub(super) fn cluster_hosts(redis: &RedisSettings) -> Vec<Option<String>> {
    redis
        .urls()
        .iter()
        .map(|node| {
            url::Url::parse(node)
                .ok()
                .and_then(|url| url.host_str().map(str::to_owned))
        })
        .collect()
}
