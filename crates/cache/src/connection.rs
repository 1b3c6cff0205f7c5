//! One connection type for both `redis.mode`s: the rest of the crate (reservations, views,
//! repair) sends its commands, scripts and pipelines through [`RedisConnection`] and never
//! asks which mode it runs in. In cluster mode redis-rs routes each command to the master of
//! its key's slot (a script by its first key, a pipeline by its first keyed command, so every
//! script call and pipeline here keeps to one coupon's hash tag), follows MOVED/ASK during a
//! resharding or failover, and loads a script on a master that answers NOSCRIPT.

use couponrush_config::{RedisMode, RedisSettings};
use deadpool::managed;
use deadpool_redis::redis::aio::{ConnectionLike, MultiplexedConnection};
use deadpool_redis::redis::cluster::ClusterClient;
use deadpool_redis::redis::cluster_async::ClusterConnection;
use deadpool_redis::redis::cluster_routing::{
    Route, RoutingInfo, SingleNodeRoutingInfo, Slot, SlotAddr,
};
use deadpool_redis::redis::{
    self, AsyncConnectionConfig, Cmd, Pipeline, RedisError, RedisFuture, Value,
};
use deadpool_redis::{Runtime, Timeouts};

use crate::error::CacheError;

/// A multiplexed connection to one server, or a cluster connection that routes by slot.
/// Cloning shares the connection (both kinds are multiplexed).
#[derive(Clone)]
pub enum RedisConnection {
    Standalone(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Standalone(_) => "RedisConnection::Standalone",
            Self::Cluster(_) => "RedisConnection::Cluster",
        })
    }
}

impl RedisConnection {
    /// `WAIT replicas timeout`: how many replicas hold every write this connection made so far
    /// (at most `replicas`; fewer when `timeout_ms` ran out). WAIT counts the writes of the
    /// connection it is sent on, so it goes where the writes went: the one server, or (cluster)
    /// the master of `key`'s slot, over the same per-node connection; redis-rs would otherwise
    /// send it to every master.
    pub(crate) async fn wait_for_replicas(
        &mut self,
        key: &str,
        replicas: u32,
        timeout_ms: u64,
    ) -> Result<u32, RedisError> {
        let mut wait = redis::cmd("WAIT");
        wait.arg(replicas).arg(timeout_ms);
        let acked: i64 = match self {
            Self::Standalone(conn) => wait.query_async(conn).await?,
            Self::Cluster(conn) => {
                let master = Route::with_slot(Slot::for_key(key), SlotAddr::Master);
                let reply = conn
                    .route_command(
                        wait,
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(master)),
                    )
                    .await?;
                redis::from_redis_value(reply)?
            }
        };
        Ok(u32::try_from(acked).unwrap_or(0))
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Standalone(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Standalone(conn) => conn.req_packed_commands(cmd, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Standalone(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}

/// Makes the standalone connections of the pool: multiplexed connections whose commands may
/// take `redis.response_timeout()` (redis-rs's own default, 500 ms, would cut a WAIT for
/// replicas short, and would undercut a longer `redis.timeout_ms`).
pub(crate) struct StandaloneManager {
    client: redis::Client,
    config: AsyncConnectionConfig,
}

impl managed::Manager for StandaloneManager {
    type Type = MultiplexedConnection;
    type Error = RedisError;

    async fn create(&self) -> Result<MultiplexedConnection, RedisError> {
        self.client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await
    }

    async fn recycle(
        &self,
        conn: &mut MultiplexedConnection,
        _: &managed::Metrics,
    ) -> managed::RecycleResult<RedisError> {
        redis::cmd("PING").query_async::<String>(conn).await?;
        Ok(())
    }
}

/// Makes the cluster connections of the pool: deadpool-redis's cluster manager, over a client
/// that carries the TLS files (see the workspace Cargo.toml).
pub(crate) struct ClusterManager {
    client: ClusterClient,
}

impl managed::Manager for ClusterManager {
    type Type = ClusterConnection;
    type Error = RedisError;

    async fn create(&self) -> Result<ClusterConnection, RedisError> {
        self.client.get_async_connection().await
    }

    async fn recycle(
        &self,
        conn: &mut ClusterConnection,
        _: &managed::Metrics,
    ) -> managed::RecycleResult<RedisError> {
        redis::cmd("PING").query_async::<String>(conn).await?;
        Ok(())
    }
}

/// The pool of the configured mode.
#[derive(Clone)]
pub(crate) enum Pool {
    Standalone(managed::Pool<StandaloneManager>),
    Cluster(managed::Pool<ClusterManager>),
}

impl Pool {
    /// `pool_size` connections at most, each created, waited for and recycled within
    /// `redis.timeout_ms`.
    pub(crate) fn new(settings: &RedisSettings) -> Result<Self, CacheError> {
        let unavailable = |reason: String| CacheError::Unavailable {
            address: settings.address().unwrap_or_default(),
            reason,
        };
        let timeouts = Timeouts {
            wait: Some(settings.timeout()),
            create: Some(settings.timeout()),
            recycle: Some(settings.timeout()),
        };
        Ok(match settings.mode {
            RedisMode::Standalone => {
                // From the client (TLS included), not from the URL: deadpool-redis's own
                // config drops the TLS parameters (CA, client certificate) a `rediss://`
                // client carries.
                let client = crate::client::client(settings)?;
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(settings.timeout()))
                    .set_response_timeout(Some(settings.response_timeout()));
                Self::Standalone(
                    managed::Pool::builder(StandaloneManager { client, config })
                        .max_size(settings.pool_size)
                        .timeouts(timeouts)
                        .runtime(Runtime::Tokio1)
                        .build()
                        .map_err(|e| unavailable(e.to_string()))?,
                )
            }
            RedisMode::Cluster => {
                let client = crate::client::cluster_client(settings)?;
                Self::Cluster(
                    managed::Pool::builder(ClusterManager { client })
                        .max_size(settings.pool_size)
                        .timeouts(timeouts)
                        .runtime(Runtime::Tokio1)
                        .build()
                        .map_err(|e| unavailable(e.to_string()))?,
                )
            }
        })
    }

    /// A connection of the pool (new or recycled), as the shared [`RedisConnection`].
    pub(crate) async fn get(&self) -> Result<RedisConnection, String> {
        match self {
            Self::Standalone(pool) => {
                let pooled = pool.get().await.map_err(|e| e.to_string())?;
                Ok(RedisConnection::Standalone((*pooled).clone()))
            }
            Self::Cluster(pool) => {
                let pooled = pool.get().await.map_err(|e| e.to_string())?;
                Ok(RedisConnection::Cluster((*pooled).clone()))
            }
        }
    }
}

/// A connection of the configured mode, outside any pool: for tools and tests that send a
/// few commands (a cluster connection routes each by its key's slot).
pub async fn connect(settings: &RedisSettings) -> Result<RedisConnection, CacheError> {
    Ok(match settings.mode {
        RedisMode::Standalone => RedisConnection::Standalone(
            crate::client::client(settings)?
                .get_multiplexed_async_connection()
                .await?,
        ),
        RedisMode::Cluster => RedisConnection::Cluster(
            crate::client::cluster_client(settings)?
                .get_async_connection()
                .await?,
        ),
    })
}

/// A connection to each master by itself (the one server in standalone mode): for what
/// concerns a node's whole keyspace, such as `SCAN`, which no slot routes. The masters are
/// those `CLUSTER SLOTS` names now; each is reached with the scheme, credentials and TLS files
/// of the seed nodes.
pub async fn connect_each_master(
    settings: &RedisSettings,
) -> Result<Vec<(String, MultiplexedConnection)>, CacheError> {
    let first = settings.urls().first().copied().unwrap_or_default();
    if settings.mode == RedisMode::Standalone {
        let conn = crate::client::client(settings)?
            .get_multiplexed_async_connection()
            .await?;
        return Ok(vec![(settings.address().unwrap_or_default(), conn)]);
    }
    let RedisConnection::Cluster(mut cluster) = connect(settings).await? else {
        return Err(CacheError::Corrupt(
            "cluster mode without a cluster connection".into(),
        ));
    };
    let slots: Value = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(&mut cluster)
        .await?;
    let mut masters = Vec::new();
    for (host, port) in master_addresses(&slots)? {
        let mut url = url::Url::parse(first)
            .map_err(|_| CacheError::Corrupt("redis.cluster_nodes: unparseable".into()))?;
        let _ = url.set_host(Some(&host));
        let _ = url.set_port(Some(port));
        let conn = crate::client::client_for(settings, url.as_str())?
            .get_multiplexed_async_connection()
            .await?;
        masters.push((format!("{host}:{port}"), conn));
    }
    Ok(masters)
}

/// The distinct masters (host, port) of a `CLUSTER SLOTS` reply: each entry is
/// `[first slot, last slot, [master host, port, id, …], replicas…]`.
fn master_addresses(slots: &Value) -> Result<Vec<(String, u16)>, CacheError> {
    let corrupt = || CacheError::Corrupt(format!("CLUSTER SLOTS reply {slots:?}"));
    let Value::Array(ranges) = slots else {
        return Err(corrupt());
    };
    let mut masters: Vec<(String, u16)> = Vec::new();
    for range in ranges {
        let Value::Array(parts) = range else {
            return Err(corrupt());
        };
        let Some(Value::Array(master)) = parts.get(2) else {
            return Err(corrupt());
        };
        let host = match master.first() {
            Some(Value::BulkString(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
            Some(Value::SimpleString(text)) => text.clone(),
            _ => return Err(corrupt()),
        };
        let port = match master.get(1) {
            Some(Value::Int(port)) => u16::try_from(*port).map_err(|_| corrupt())?,
            _ => return Err(corrupt()),
        };
        if !masters.contains(&(host.clone(), port)) {
            masters.push((host, port));
        }
    }
    Ok(masters)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(host: &str, port: i64) -> Value {
        Value::Array(vec![
            Value::BulkString(host.as_bytes().to_vec()),
            Value::Int(port),
            Value::BulkString(b"node-id".to_vec()),
        ])
    }

    #[test]
    fn masters_of_cluster_slots_each_once() -> Result<(), CacheError> {
        let range = |first, last, nodes: Vec<Value>| {
            let mut entry = vec![Value::Int(first), Value::Int(last)];
            entry.extend(nodes);
            Value::Array(entry)
        };
        let reply = Value::Array(vec![
            range(
                0,
                5460,
                vec![node("10.0.0.1", 7000), node("10.0.0.4", 7003)],
            ),
            range(5461, 10922, vec![node("10.0.0.2", 7001)]),
            // A master may serve several ranges; it is listed once.
            range(10923, 12000, vec![node("10.0.0.1", 7000)]),
            range(12001, 16383, vec![node("10.0.0.3", 7002)]),
        ]);
        assert_eq!(
            master_addresses(&reply)?,
            [
                ("10.0.0.1".to_owned(), 7000),
                ("10.0.0.2".to_owned(), 7001),
                ("10.0.0.3".to_owned(), 7002),
            ]
        );
        assert!(master_addresses(&Value::Nil).is_err());
        Ok(())
    }
}
