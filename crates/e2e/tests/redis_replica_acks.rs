//! Reservations that survive a failover (`redis.min_replica_acks`): on a private master with a
//! real replica, a reservation no replica acknowledged is given back and answered 503, never
//! 202; every reservation answered 202 is on the replica when the master is killed and the
//! replica promoted.

use std::time::Duration;

use anyhow::Context;
use couponrush_cache::ReservationStore;
use couponrush_config::Secret;
use couponrush_domain::{CouponId, UserId};
use couponrush_e2e::Running;
use couponrush_testkit::{PrivateServer, TestEnv, eventually};

/// What the replica waits for before answering: long enough for a loaded machine's replica,
/// short enough for the frozen one to be noticed quickly.
const ACK_TIMEOUT_MS: u64 = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_replicated_reservations_are_answered_202_and_survive_a_promotion()
-> anyhow::Result<()> {
    let mut master = PrivateServer::redis().await?;
    let replica = PrivateServer::redis_replica_of(&master).await?;
    let mut env = TestEnv::new(1).await?;
    env.settings.redis.url = Secret::new(format!("redis://{}", master.address()));
    env.settings.redis.min_replica_acks = 1;
    env.settings.redis.replica_ack_timeout_ms = ACK_TIMEOUT_MS;
    let running = Running::api_only(&env).await?;
    let coupon = running.create_coupon(20).await?;
    let on_master = ReservationStore::new(&env.settings.redis)?;
    let stock = async |store: &ReservationStore, coupon: CouponId| -> anyhow::Result<u64> {
        Ok(store
            .counters(coupon)
            .await?
            .context("coupon loaded")?
            .stock)
    };

    // The replica stops answering (a stalled VM): WAIT gets no acknowledgement, so the
    // reservation is given back and the user hears 503, not a 202 a failover could undo.
    replica.freeze()?;
    let (status, body) = running.issue(coupon, "frozen").await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("UNAVAILABLE")),
        "{body}"
    );
    assert_eq!(
        stock(&on_master, coupon).await?,
        20,
        "the stock was given back"
    );
    let frozen = UserId::parse("frozen")?;
    assert_eq!(
        on_master.state(coupon, &frozen).await?,
        None,
        "nothing held"
    );
    assert_eq!(
        running
            .metric("couponrush_api_redis_replica_ack_shortfalls_total")
            .await?,
        1.0
    );
    replica.thaw()?;

    // With the replica back, the same user (who holds nothing) and others get 202.
    let mut answered = Vec::new();
    for user in ["frozen", "ann", "ben", "cat", "dan"] {
        let (status, body) = eventually(
            Duration::from_secs(10),
            "a 202 once the replica acknowledges",
            async || {
                let (status, body) = running.issue(coupon, user).await.ok()?;
                (status != 503).then_some((status, body))
            },
        )
        .await?;
        assert_eq!(status, 202, "{user}: {body}");
        let request_id = body["requestId"].as_str().context("requestId")?.to_owned();
        answered.push((user, request_id));
    }

    // The master dies right after its answers; the replica is promoted.
    master.kill();
    replica
        .query::<String>(redis::cmd("REPLICAOF").arg("NO").arg("ONE"))
        .await?;
    let mut promoted_settings = env.settings.redis.clone();
    promoted_settings.url = Secret::new(format!("redis://{}", replica.address()));
    promoted_settings.min_replica_acks = 0;
    let promoted = ReservationStore::new(&promoted_settings)?;
    for (user, request_id) in &answered {
        let state = promoted
            .state(coupon, &UserId::parse(user)?)
            .await?
            .with_context(|| format!("{user}'s 202 reservation is not on the promoted replica"))?;
        assert_eq!(
            state.request_id().to_string(),
            *request_id,
            "{user}: the promoted replica holds another request"
        );
    }
    assert_eq!(stock(&promoted, coupon).await?, 20 - 5);
    running.stop().await?;
    Ok(())
}

/// In cluster mode what counts is the acknowledgement of the coupon's own master's replica:
/// with that replica frozen the request is refused, although every other master's replica
/// answers (a WAIT sent to another master, which holds none of the writes, would pass).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_cluster_mode_the_coupon_s_own_replica_must_acknowledge() -> anyhow::Result<()> {
    let (mut cluster, mut env) = couponrush_e2e::on_redis_cluster(3, 1).await?;
    env.settings.redis.min_replica_acks = 1;
    env.settings.redis.replica_ack_timeout_ms = ACK_TIMEOUT_MS;
    let running = Running::api_only(&env).await?;
    let coupon = running.create_coupon(10).await?;
    let (status, body) = running.issue(coupon, "first").await?;
    assert_eq!(status, 202, "{body}");

    let keys = couponrush_cache::KeySpace::new(env.settings.redis.key_prefix.clone());
    let slot = cluster.slot_of(&keys.stock(coupon)).await?;
    let replica = cluster
        .range_of(slot)
        .await?
        .replicas
        .first()
        .context("the coupon's master has a replica")?
        .clone();
    let node = cluster.node_mut(&replica).context("the replica's node")?;
    node.freeze()?;
    let refused = running.issue(coupon, "second").await;
    node.thaw()?;
    let (status, body) = refused?;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("UNAVAILABLE")),
        "{body}"
    );
    let on_cluster = ReservationStore::new(&env.settings.redis)?;
    assert_eq!(
        on_cluster.state(coupon, &UserId::parse("second")?).await?,
        None,
        "the refused reservation was given back"
    );
    let (status, body) = eventually(
        Duration::from_secs(10),
        "a 202 once the replica answers",
        async || {
            let (status, body) = running.issue(coupon, "second").await.ok()?;
            (status != 503).then_some((status, body))
        },
    )
    .await?;
    assert_eq!(status, 202, "{body}");
    running.stop().await?;
    Ok(())
}
