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
/// so a shared Redis is never blocked; UNLINK frees the memory off Redis's main thread. In
/// cluster mode every master is scanned (a SCAN covers one node's keys), and each UNLINK names
/// the keys of one slot (the keys of one coupon share its hash tag).
pub async fn delete_keys(settings: &RedisSettings) -> anyhow::Result<u64> {
    anyhow::ensure!(
        !settings.key_prefix.is_empty(),
        "refusing to delete Redis keys without a prefix: that is the production key space"
    );
    let pattern = KeySpace::new(settings.key_prefix.clone()).all_pattern();
    let address = settings.address().unwrap_or_default();
    let work = async {
        let mut deleted = 0;
        for (_, mut conn) in couponrush_cache::connect_each_master(settings).await? {
            deleted += delete_on_node(&mut conn, &pattern).await?;
        }
        Ok::<_, anyhow::Error>(deleted)
    };
    tokio::time::timeout(DEADLINE, work)
        .await
        .map_err(anyhow::Error::from)
        .and_then(|deleted| deleted)
        .with_context(|| format!("delete {pattern} on Redis at {address}"))
}

/// Deletes the keys matching `pattern` on the one node `conn` reaches.
async fn delete_on_node(
    conn: &mut redis::aio::MultiplexedConnection,
    pattern: &str,
) -> Result<u64, redis::RedisError> {
    let mut cursor: u64 = 0;
    let mut deleted = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(BATCH)
            .query_async(conn)
            .await?;
        for slot_keys in by_slot(keys) {
            deleted += redis::cmd("UNLINK")
                .arg(&slot_keys)
                .query_async::<u64>(conn)
                .await?;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}

/// `keys` grouped by Cluster slot (one group on a standalone server too: harmless).
fn by_slot(keys: Vec<String>) -> Vec<Vec<String>> {
    let mut groups: Vec<(redis::cluster_routing::Slot, Vec<String>)> = Vec::new();
    for key in keys {
        let slot = redis::cluster_routing::Slot::for_key(&key);
        match groups.iter_mut().find(|(s, _)| *s == slot) {
            Some((_, group)) => group.push(key),
            None => groups.push((slot, vec![key])),
        }
    }
    groups.into_iter().map(|(_, group)| group).collect()
}

fn ensure_test_prefix(prefix: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        prefix.starts_with(TEST_KEY_PREFIX),
        "refusing to delete Redis keys under {prefix:?}: not a test prefix ({TEST_KEY_PREFIX}…)"
    );
    Ok(())
}
