//! Re-reads `auth.jwt_keys_file` when it changes, so an identity provider's key rotation needs
//! no restart. The file is compared by content, not modification time: a Kubernetes Secret
//! volume swaps a symlink, and a copy can keep the old time.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::jwt::{JwtVerifier, KeySet};
use crate::metrics::ApiMetrics;

/// Checks the file every `every`; a new content that parses replaces the keys, one that does
/// not is logged and counted, and the keys in use stay. `loaded` is the content the keys in
/// use were read from at start-up.
pub fn watch(
    verifier: Arc<JwtVerifier>,
    path: PathBuf,
    loaded: Vec<u8>,
    every: Duration,
    metrics: Arc<ApiMetrics>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut seen = Some(loaded);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let content = match tokio::fs::read(&path).await {
                Ok(content) => content,
                Err(error) => {
                    // Mid-swap, or removed: keep the keys, say so once per change.
                    if seen.take().is_some() {
                        tracing::error!(%error, path = %path.display(), "auth.jwt_keys_file cannot be read; the keys in use stay");
                        metrics.key_reload("error");
                    }
                    continue;
                }
            };
            if seen.as_deref() == Some(content.as_slice()) {
                continue;
            }
            match KeySet::parse(verifier.algorithm(), &content) {
                Ok(keys) => {
                    tracing::info!(path = %path.display(), keys = keys.count(), "JWT verification keys reloaded");
                    verifier.replace_keys(keys);
                    metrics.key_reload("ok");
                }
                Err(error) => {
                    tracing::error!(%error, path = %path.display(), "changed auth.jwt_keys_file refused; the keys in use stay");
                    metrics.key_reload("error");
                }
            }
            seen = Some(content);
        }
    })
}
