//! How every Redis connection is opened (the pool, test support, tools): the configured URL,
//! `rediss://` with the CA and client certificate the settings name.

use couponrush_config::{RedisSettings, path_setting};
use deadpool_redis::redis::{self, ClientTlsConfig, TlsCertificates};

use crate::error::CacheError;

/// A client for the configured server. With `rediss://`, the server's certificate must be
/// signed by `redis.tls_ca` (else the system's roots) and issued for the URL's host.
pub fn client(settings: &RedisSettings) -> Result<redis::Client, CacheError> {
    let address = settings
        .address()
        .unwrap_or_else(|| "<invalid redis.url>".to_owned());
    let failed = |reason: String| CacheError::Unavailable {
        address: address.clone(),
        reason,
    };
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
    // The redis crate's errors about a URL may quote it, password included: not passed on.
    let hidden = |_| failed("redis.url is not a usable redis:// or rediss:// URL".to_owned());
    if root_cert.is_none() && client_tls.is_none() {
        return redis::Client::open(settings.url.expose()).map_err(hidden);
    }
    let certificates = TlsCertificates {
        client_tls,
        root_cert,
    };
    redis::Client::build_with_tls(settings.url.expose(), certificates)
        .map_err(|e| failed(format!("TLS set-up: {e}")))
}

/// The content of the file a path setting names, if it names one.
fn read(value: &str, key: &str) -> Result<Option<Vec<u8>>, String> {
    path_setting(value)
        .map(|path| {
            std::fs::read(path).map_err(|e| format!("{key}: cannot read the file ({})", e.kind()))
        })
        .transpose()
}
