use std::time::Duration;

use serde::Deserialize;

use crate::secret::Secret;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// One server (`redis.url`) or a Redis Cluster (`redis.cluster_nodes`).
    pub mode: RedisMode,
    /// `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS; may hold a password,
    /// hence secret. Standalone mode only.
    pub url: Secret,
    /// Cluster mode only: comma-separated seed node URLs, each as `redis.url` (same scheme and
    /// credentials on every node, no database number); the client learns the rest of the
    /// cluster from any one of them. May hold a password, hence secret.
    pub cluster_nodes: Secret,
    #[serde(deserialize_with = "crate::lenient::text")]
    pub key_prefix: String,
    pub pool_size: usize,
    pub timeout_ms: u64,
    /// Replicas that must hold an accepted reservation before the request is published and
    /// answered 202 (`WAIT`); 0: none asked (Redis replicates asynchronously, so a master that
    /// dies right after answering may take the reservation with it). In cluster mode: replicas
    /// of the coupon's master.
    pub min_replica_acks: u32,
    /// How long a reservation waits for `min_replica_acks`; short of them it is given back and
    /// the request answered 503.
    pub replica_ack_timeout_ms: u64,
    /// PEM file of the CA that signed the server's certificate (`rediss://` only); empty: the
    /// system's trusted roots.
    #[serde(deserialize_with = "crate::lenient::text")]
    pub tls_ca: String,
    /// Client certificate (PEM) for a server with `tls-auth-clients yes`; with `tls_key`.
    #[serde(deserialize_with = "crate::lenient::text")]
    pub tls_cert: String,
    /// The client certificate's private key (PEM).
    #[serde(deserialize_with = "crate::lenient::text")]
    pub tls_key: String,
}

/// `redis.mode`: how the binaries reach Redis. The keys and scripts are the same in both (every
/// key of a coupon carries the hash tag `{<coupon id>}`, so each script runs on one slot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedisMode {
    /// One server at `redis.url`.
    Standalone,
    /// A Redis Cluster found from the seed nodes of `redis.cluster_nodes`.
    Cluster,
}

impl RedisSettings {
    /// The URLs the client is given: `redis.url`, or each seed node of `redis.cluster_nodes`.
    /// They may hold a password: never format them.
    pub fn urls(&self) -> Vec<&str> {
        match self.mode {
            RedisMode::Standalone => vec![self.url.expose()],
            RedisMode::Cluster => self
                .cluster_nodes
                .expose()
                .split(',')
                .map(str::trim)
                .filter(|node| !node.is_empty())
                .collect(),
        }
    }

    /// The setting that holds [`Self::urls`], for messages.
    pub fn urls_key(&self) -> &'static str {
        match self.mode {
            RedisMode::Standalone => "redis.url",
            RedisMode::Cluster => "redis.cluster_nodes",
        }
    }

    /// `host:port` of each URL in use, comma-separated, for messages (no credentials); `None`
    /// when one is not parseable.
    pub fn address(&self) -> Option<String> {
        let urls = self.urls();
        let addresses = urls
            .iter()
            .map(|url| {
                let url = url::Url::parse(url).ok()?;
                let host = url.host_str()?;
                Some(format!("{host}:{}", url.port().unwrap_or(6379)))
            })
            .collect::<Option<Vec<_>>>()?;
        (!addresses.is_empty()).then(|| addresses.join(","))
    }

    pub fn host(&self) -> Option<String> {
        url::Url::parse(self.url.expose())
            .ok()?
            .host_str()
            .map(str::to_owned)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// The longest one command may take before the client gives up on it: `redis.timeout_ms`,
    /// plus `replica_ack_timeout_ms` when reservations wait for replicas (a WAIT is one
    /// command that takes that long by design).
    pub fn response_timeout(&self) -> Duration {
        self.timeout() + self.replica_wait()
    }

    /// The longest a reservation waits for replicas: `replica_ack_timeout_ms`, or nothing when
    /// `min_replica_acks` is 0.
    pub fn replica_wait(&self) -> Duration {
        self.replica_acks()
            .map_or(Duration::ZERO, |(_, within)| within)
    }

    /// The replica acknowledgements a reservation waits for, and for how long; `None` when
    /// `min_replica_acks` is 0.
    pub fn replica_acks(&self) -> Option<(u32, Duration)> {
        (self.min_replica_acks > 0).then(|| {
            (
                self.min_replica_acks,
                Duration::from_millis(self.replica_ack_timeout_ms),
            )
        })
    }

    /// Whether the URLs ask for TLS (`rediss://`; validation makes every seed node agree).
    pub fn tls(&self) -> bool {
        self.urls()
            .first()
            .is_some_and(|url| url::Url::parse(url).is_ok_and(|url| url.scheme() == "rediss"))
    }
}
