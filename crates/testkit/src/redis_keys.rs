//! A test's Redis keys: every key under its own prefix, deleted when the test ends or when it
//! simulates a Redis that lost everything. Test-only, so it lives here and not in the cache
//! crate's API.

use std::time::Duration;

use anyhow::Context;
use couponrush_cache::KeySpace;
use couponrush_config::RedisSettings;

use crate::TEST_KEY_PREFIX;

/// Bound of one deletion: a test prefix holds thousands of keys at most.
const DEADLINE: Duration = Duration::from_secs(30);

/// Keys per SCAN step (and so per UNLINK).
const BATCH: u32 = 1000;

/// The keys under one test's prefix; all of them are deleted when this is dropped, also when
/// the test failed or panicked.
#[derive(Debug)]
pub struct RedisKeys {
    settings: RedisSettings,
}

impl RedisKeys {
    /// Takes ownership of every key under `settings.key_prefix`, which must be a test prefix
    /// (`test:…`): the Redis is shared, and the production keys have no prefix.
    pub fn new(settings: &RedisSettings) -> anyhow::Result<Self> {
        ensure_test_prefix(&settings.key_prefix)?;
        Ok(Self {
            settings: settings.clone(),
        })
    }
}

impl Drop for RedisKeys {
    fn drop(&mut self) {
        let settings = self.settings.clone();
        let what = format!("Redis keys under {}", settings.key_prefix);
        crate::cleanup::run(what, async move { delete_keys(&settings).await.map(drop) });
    }
}

/// Deletes every key under `settings.key_prefix` (a test's, or a benchmark's or the demo's run;
/// never the empty prefix the production keys live under); returns how many. SCAN, never KEYS,
/// so a shared Redis is never blocked; UNLINK frees the memory off Redis's main thread.
pub async fn delete_keys(settings: &RedisSettings) -> anyhow::Result<u64> {
    anyhow::ensure!(
        !settings.key_prefix.is_empty(),
        "refusing to delete Redis keys without a prefix: that is the production key space"
    );
    let pattern = KeySpace::new(settings.key_prefix.clone()).all_pattern();
    let address = settings.address().unwrap_or_default();
    let client = couponrush_cache::client(settings)?;
    let work = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        let mut cursor: u64 = 0;
        let mut deleted = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(BATCH)
                .query_async(&mut conn)
                .await?;
            if !keys.is_empty() {
                deleted += redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async::<u64>(&mut conn)
                    .await?;
            }
            if next == 0 {
                return Ok::<_, redis::RedisError>(deleted);
            }
            cursor = next;
        }
    };
    tokio::time::timeout(DEADLINE, work)
        .await
        .map_err(anyhow::Error::from)
        .and_then(|deleted| Ok(deleted?))
        .with_context(|| format!("delete {pattern} on Redis at {address}"))
}

fn ensure_test_prefix(prefix: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        prefix.starts_with(TEST_KEY_PREFIX),
        "refusing to delete Redis keys under {prefix:?}: not a test prefix ({TEST_KEY_PREFIX}…)"
    );
    Ok(())
}
