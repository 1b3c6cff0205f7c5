//! A real Redis Cluster of a test's own: Debian's redis-server with `--cluster-enabled yes` on
//! private loopback ports, joined by `redis-cli --cluster create`, every node killed when the
//! test ends. Its topology is read from the nodes themselves (`CLUSTER SLOTS`), so a test can
//! say which master serves a coupon and fail one over (`CLUSTER FAILOVER`).

use std::fs::File;
use std::net::TcpListener;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use couponrush_config::{RedisMode, RedisSettings, Secret};
use redis::Value;

use crate::private_server::query;
use crate::{PrivateServer, eventually};

/// Ports the tests' cluster nodes take (each also takes its bus port, `+ 10000`);
/// `scripts/stack.sh cluster-up` defaults to ports above them.
const TEST_PORTS: RangeInclusive<u16> = 17100..=17179;

/// How long a new cluster, or a failover, may take to settle.
const SETTLE: Duration = Duration::from_secs(30);

/// One slot range of the cluster: its master and replicas (`host:port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotRange {
    pub slots: RangeInclusive<u16>,
    pub master: String,
    pub replicas: Vec<String>,
}

/// A private Redis Cluster; dropping it kills every node.
#[derive(Debug)]
pub struct PrivateCluster {
    nodes: Vec<PrivateServer>,
    // Held while the nodes run: another test process skips leased ports.
    _leases: Vec<File>,
    _dir: tempfile::TempDir,
}

impl PrivateCluster {
    /// `masters` masters (at least 3, as Redis Cluster requires), each with `replicas`
    /// replicas, all slots assigned, every node agreeing and every replica in sync.
    pub async fn start(masters: usize, replicas: usize) -> anyhow::Result<Self> {
        anyhow::ensure!(masters >= 3, "a Redis Cluster needs at least 3 masters");
        let count = masters * (replicas + 1);
        let dir = tempfile::Builder::new()
            .prefix("couponrush-cluster-")
            .tempdir()?;
        let (ports, leases) = lease_ports(count)?;
        let mut nodes = Vec::with_capacity(count);
        for port in &ports {
            nodes.push(PrivateServer::redis_cluster_node(*port, dir.path()).await?);
        }
        let cluster = Self {
            nodes,
            _leases: leases,
            _dir: dir,
        };
        let addresses = cluster.addresses();
        let output = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .context("run redis-cli --cluster create (Debian's redis-tools)")?;
        anyhow::ensure!(
            output.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        cluster.settled(masters, replicas).await?;
        Ok(cluster)
    }

    /// `127.0.0.1:<port>` of every node.
    pub fn addresses(&self) -> Vec<String> {
        self.nodes.iter().map(PrivateServer::address).collect()
    }

    /// Every node as a seed, `redis.cluster_nodes` form.
    pub fn seed_nodes(&self) -> String {
        self.addresses()
            .iter()
            .map(|address| format!("redis://{address}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Points `settings` at this cluster (`redis.mode = cluster`).
    pub fn point(&self, settings: &mut RedisSettings) {
        settings.mode = RedisMode::Cluster;
        settings.cluster_nodes = Secret::new(self.seed_nodes());
    }

    /// The node at `address`, to kill, freeze or resume.
    pub fn node_mut(&mut self, address: &str) -> Option<&mut PrivateServer> {
        self.nodes.iter_mut().find(|node| node.address() == address)
    }

    /// The slot of `key`, as the cluster computes it (`CLUSTER KEYSLOT`).
    pub async fn slot_of(&self, key: &str) -> anyhow::Result<u16> {
        let address = self.addresses().into_iter().next().context("no node")?;
        let slot: i64 = query(&address, redis::cmd("CLUSTER").arg("KEYSLOT").arg(key)).await?;
        Ok(u16::try_from(slot)?)
    }

    /// The slot ranges as `node` sees them (`CLUSTER SLOTS`).
    pub async fn slots_seen_by(&self, node: &str) -> anyhow::Result<Vec<SlotRange>> {
        let reply: Value = query(node, redis::cmd("CLUSTER").arg("SLOTS")).await?;
        parse_slots(&reply)
    }

    /// The range holding `slot`, as the first node that answers sees it.
    pub async fn range_of(&self, slot: u16) -> anyhow::Result<SlotRange> {
        let mut last = None;
        for node in self.addresses() {
            match self.slots_seen_by(&node).await {
                Ok(ranges) => {
                    return ranges
                        .into_iter()
                        .find(|range| range.slots.contains(&slot))
                        .with_context(|| format!("slot {slot} not served"));
                }
                Err(error) => last = Some(error),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no node")))
    }

    /// A manual failover (`CLUSTER FAILOVER`, no data lost: the master stops writes until
    /// `replica` caught up) of the master `replica` replicates; returns once every node
    /// serves `replica`'s slots from it and the cluster is whole again.
    pub async fn failover(&self, replica: &str) -> anyhow::Result<()> {
        let ok: String = query(replica, redis::cmd("CLUSTER").arg("FAILOVER")).await?;
        anyhow::ensure!(ok == "OK", "CLUSTER FAILOVER: {ok}");
        eventually(
            SETTLE,
            "every node to see the promoted replica",
            async || {
                for node in self.addresses() {
                    let ranges = self.slots_seen_by(&node).await.ok()?;
                    if !ranges.iter().any(|range| range.master == replica) {
                        return None;
                    }
                    if !cluster_ok(&node).await {
                        return None;
                    }
                }
                Some(())
            },
        )
        .await
    }

    /// Waits until every node says `cluster_state:ok`, agrees on `masters` masters each with
    /// `replicas` replicas, and every replica's link to its master is up.
    async fn settled(&self, masters: usize, replicas: usize) -> anyhow::Result<()> {
        eventually(SETTLE, "the new cluster to settle", async || {
            let mut seen: Option<Vec<SlotRange>> = None;
            for node in self.addresses() {
                if !cluster_ok(&node).await {
                    return None;
                }
                let ranges = self.slots_seen_by(&node).await.ok()?;
                let whole = ranges.len() == masters
                    && ranges.iter().all(|range| range.replicas.len() == replicas);
                if !whole || seen.as_ref().is_some_and(|seen| *seen != ranges) {
                    return None;
                }
                seen = Some(ranges);
            }
            for replica in seen?.iter().flat_map(|range| range.replicas.clone()) {
                let info: String = query(&replica, redis::cmd("INFO").arg("replication"))
                    .await
                    .ok()?;
                if !info.contains("master_link_status:up") {
                    return None;
                }
            }
            Some(())
        })
        .await
    }
}

impl PrivateCluster {
    /// One command to the node at `address` by itself (no cluster routing: a key another
    /// node serves is answered with MOVED).
    pub async fn query_node<T: redis::FromRedisValue>(
        &self,
        address: &str,
        cmd: &redis::Cmd,
    ) -> anyhow::Result<T> {
        query(address, cmd).await
    }
}

/// Whether `node` says `cluster_state:ok`.
async fn cluster_ok(node: &str) -> bool {
    query::<String>(node, redis::cmd("CLUSTER").arg("INFO"))
        .await
        .is_ok_and(|info| info.contains("cluster_state:ok"))
}

/// `CLUSTER SLOTS`: `[[first, last, [host, port, id, …], [replica host, port, …]…]…]`,
/// sorted by first slot.
fn parse_slots(reply: &Value) -> anyhow::Result<Vec<SlotRange>> {
    let Value::Array(entries) = reply else {
        anyhow::bail!("CLUSTER SLOTS: {reply:?}");
    };
    let mut ranges = Vec::with_capacity(entries.len());
    for entry in entries {
        let Value::Array(parts) = entry else {
            anyhow::bail!("CLUSTER SLOTS entry: {entry:?}");
        };
        let number = |value: Option<&Value>| match value {
            Some(Value::Int(n)) => u16::try_from(*n).ok(),
            _ => None,
        };
        let node = |value: &Value| match value {
            Value::Array(node) => match (node.first(), number(node.get(1))) {
                (Some(Value::BulkString(host)), Some(port)) => {
                    Some(format!("{}:{port}", String::from_utf8_lossy(host)))
                }
                _ => None,
            },
            _ => None,
        };
        let (Some(first), Some(last)) = (number(parts.first()), number(parts.get(1))) else {
            anyhow::bail!("CLUSTER SLOTS entry: {entry:?}");
        };
        let mut nodes = parts.iter().skip(2).map(node);
        let master = nodes.next().flatten().context("CLUSTER SLOTS: no master")?;
        let mut replicas: Vec<String> = nodes.collect::<Option<_>>().context("replica")?;
        replicas.sort();
        ranges.push(SlotRange {
            slots: first..=last,
            master,
            replicas,
        });
    }
    ranges.sort_by_key(|range| *range.slots.start());
    Ok(ranges)
}

/// `count` ports of [`TEST_PORTS`] that are free with their bus ports, each leased by a file
/// lock that other test processes respect (released when the holder exits, even killed).
fn lease_ports(count: usize) -> anyhow::Result<(Vec<u16>, Vec<File>)> {
    let dir = std::env::temp_dir().join("couponrush-cluster-ports");
    std::fs::create_dir_all(&dir)?;
    // Start somewhere random, so parallel tests do not all try the same ports first.
    let span = TEST_PORTS.end() - TEST_PORTS.start() + 1;
    // (A UUIDv7's low bits are random.)
    let offset = u16::try_from(uuid::Uuid::now_v7().as_u128() % u128::from(span))?;
    let (mut ports, mut leases) = (Vec::new(), Vec::new());
    for step in 0..span {
        let port = TEST_PORTS.start() + (offset + step) % span;
        let lease = File::create(lease_path(&dir, port))?;
        if lease.try_lock().is_err() || !free(port) || !free(port + 10_000) {
            continue;
        }
        ports.push(port);
        leases.push(lease);
        if ports.len() == count {
            return Ok((ports, leases));
        }
    }
    anyhow::bail!(
        "fewer than {count} free ports in {TEST_PORTS:?} (each with its bus port + 10000)"
    )
}

fn lease_path(dir: &std::path::Path, port: u16) -> PathBuf {
    dir.join(format!("{port}.lock"))
}

fn free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}
