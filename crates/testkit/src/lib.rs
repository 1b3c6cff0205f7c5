//! Test support against the real services (`scripts/stack.sh up`): every test gets its own
//! MySQL database (cloned from a migrated template), Redis key prefix, Kafka topic and
//! consumer group, so tests run in parallel and re-runs start clean; what a test made is
//! removed when its [`TestEnv`] is dropped. No mocks: if a service is down, the test fails
//! saying which.

use std::net::TcpListener;
use std::time::{Duration, Instant};

mod binaries;
mod cleanup;
mod database_template;
mod env;
mod fault_proxy;
mod gate;
mod kafka;
mod private_cluster;
mod private_mariadb;
mod private_server;
mod redis_keys;
mod split_broker;
mod test_ca;
mod tls_proxy;
mod topics;
pub use binaries::{Refusal, assert_each_dependency_refused_promptly, run_binary};
pub use database_template::drop_database;
pub use env::TestEnv;
pub use fault_proxy::{FaultProxy, Mode as FaultMode};
pub use gate::GatedBroker;
pub use kafka::ReadMessage;
pub use private_cluster::{PrivateCluster, SlotRange};
pub use private_mariadb::PrivateMariadb;
pub use private_server::PrivateServer;
pub use redis_keys::{RedisKeys, delete_keys};
pub use split_broker::SplitBroker;
pub use test_ca::{Issued, TestCa};
pub use tls_proxy::{TlsProxy, tansu_behind_tls};
pub use topics::{Preload, Preloaded, TopicCount, count_topic};

/// Name prefix of test databases and their templates; `scripts/test.sh` drops leftovers of
/// interrupted runs (the first test of the next run builds the template again).
pub const TEST_DATABASE_PREFIX: &str = "crt_";

/// Prefix of every Redis key a test writes; only keys under it are ever deleted.
pub const TEST_KEY_PREFIX: &str = "test:";

/// Polls `check` every 50 ms until it yields a value or `deadline` passes.
pub async fn eventually<T>(
    deadline: Duration,
    what: &str,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> anyhow::Result<T> {
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if start.elapsed() > deadline {
            anyhow::bail!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A new issue request of `user` for `coupon`, as issuer-api would publish it now.
pub fn issue_request(
    coupon: couponrush_domain::CouponId,
    user: &str,
) -> anyhow::Result<couponrush_domain::IssueRequested> {
    Ok(couponrush_domain::IssueRequested::new(
        couponrush_domain::RequestId::generate(),
        coupon,
        couponrush_domain::UserId::parse(user)?,
        time::OffsetDateTime::now_utc(),
    ))
}

/// A loopback port nothing listens on (bound, then released).
pub fn closed_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}
