//! How every Redis connection is opened (the pool, test support, tools): the configured URLs,
//! `rediss://` with the CA and client certificate the settings name, for one server or for a
//! Redis Cluster.

use couponrush_config::{RedisSettings, path_setting};
use deadpool_redis::redis::cluster::{ClusterClient, ClusterClientBuilder};
use deadpool_redis::redis::{self, ClientTlsConfig, TlsCertificates};

use crate::error::CacheError;

/// A client for one server: `redis.url` (standalone mode), or in cluster mode the first seed
/// node by itself (no slot routing: for tools that talk to one node). With `rediss://`, the
/// server's certificate must be signed by `redis.tls_ca` (else the system's roots) and issued
/// for the URL's host.
pub fn client(settings: &RedisSettings) -> Result<redis::Client, CacheError> {
    let url = settings.urls().first().copied().unwrap_or_default();
    client_for(settings, url)
}

/// A client for the one server at `url`, with the TLS files and the address of `settings`
/// in its errors.
pub(crate) fn client_for(settings: &RedisSettings, url: &str) -> Result<redis::Client, CacheError> {
    let failed = failure(settings);
    let certificates = certificates(settings)?;
    // The redis crate's errors about a URL may quote it, password included: not passed on.
    let hidden = |_| {
        failed(format!(
            "{} is not a usable redis:// or rediss:// URL",
            settings.urls_key()
        ))
    };
    match certificates {
        None => redis::Client::open(url).map_err(hidden),
        Some(certificates) => redis::Client::build_with_tls(url, certificates)
            .map_err(|e| failed(format!("TLS set-up: {e}"))),
    }
}

/// A Redis Cluster client from the seed nodes of `redis.cluster_nodes`, with the same TLS files
/// and credentials (from the URLs) as a standalone client. Each command waits at most
/// `redis.timeout_ms` for a node (plus the replica wait: `RedisSettings::response_timeout`);
/// redirections (MOVED/ASK) and topology changes are followed within the caller's own
/// deadline.
pub fn cluster_client(settings: &RedisSettings) -> Result<ClusterClient, CacheError> {
    let failed = failure(settings);
    let nodes: Vec<String> = settings
        .urls()
        .iter()
        .map(|url| (*url).to_owned())
        .collect();
    let mut builder = ClusterClientBuilder::new(nodes)
        .connection_timeout(settings.timeout())
        .response_timeout(settings.response_timeout());
    if let Some(certificates) = certificates(settings)? {
        builder = builder.certs(certificates);
    }
    builder.build().map_err(|_| {
        failed(
            "redis.cluster_nodes are not usable redis:// or rediss:// URLs of one user".to_owned(),
        )
    })
}

/// The CA and client certificate the settings name, if any.
fn certificates(settings: &RedisSettings) -> Result<Option<TlsCertificates>, CacheError> {
    let failed = failure(settings);
    let root_cert = read(&settings.tls_ca, "redis.tls_ca").map_err(&failed)?;
    let cert = read(&settings.tls_cert, "redis.tls_cert").map_err(&failed)?;
    let key = read(&settings.tls_key, "redis.tls_key").map_err(&failed)?;
    let client_tls = match (cert, key) {
        (Some(client_cert), Some(client_key)) => Some(ClientTlsConfig {
            client_cert,
            client_key,
        }),
        _ => None,
    };
    if root_cert.is_none() && client_tls.is_none() {
        return Ok(None);
    }
    Ok(Some(TlsCertificates {
        client_tls,
        root_cert,
    }))
}

/// How a set-up failure is reported: the configured address(es), never the URLs.
fn failure(settings: &RedisSettings) -> impl Fn(String) -> CacheError {
    let address = settings
        .address()
        .unwrap_or_else(|| format!("<invalid {}>", settings.urls_key()));
    move |reason| CacheError::Unavailable {
        address: address.clone(),
        reason,
    }
}

/// The content of the file a path setting names, if it names one.
fn read(value: &str, key: &str) -> Result<Option<Vec<u8>>, String> {
    path_setting(value)
        .map(|path| {
            std::fs::read(path).map_err(|e| format!("{key}: cannot read the file ({})", e.kind()))
        })
        .transpose()
}
