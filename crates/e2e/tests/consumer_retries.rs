//! A batch that cannot be persisted for a while (its coupon row locked by someone else, so
//! MySQL answers "lock wait timeout") is retried with backoff while its partitions stay
//! paused and assigned: longer than `max.poll.interval.ms`, the consumer is still the same
//! group member, then everything is issued exactly once. And offsets are committed before
//! partitions move, so a member joining the group re-delivers nothing.

use std::time::Duration;

use anyhow::Context;

use couponrush_domain::CouponId;
use couponrush_e2e::{RowLock, Running, consumer_metric};
use couponrush_testkit::{TestEnv, eventually};

/// Waits until the consumer's `series` satisfies `wanted`.
async fn metric_until(
    client: &reqwest::Client,
    consumer: &coupon_consumer::RunningConsumer,
    series: &str,
    wanted: impl Fn(f64) -> bool,
) -> anyhow::Result<f64> {
    eventually(Duration::from_secs(30), series, async || {
        consumer_metric(client, consumer, series)
            .await
            .filter(|v| wanted(*v))
    })
    .await
}

async fn issue_users(running: &Running, coupon: CouponId, users: &[String]) -> anyhow::Result<()> {
    for user in users {
        let (status, body) = running.issue(coupon, user).await?;
        anyhow::ensure!(status == 202, "{user}: {status} {body}");
    }
    Ok(())
}

fn users(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}-{i}")).collect()
}

async fn rows_and_available(env: &TestEnv, coupon: CouponId) -> anyhow::Result<(u64, i64)> {
    let db = couponrush_storage::Database::new(&env.settings.mysql)?;
    let holders = couponrush_storage::IssuanceStore::new(db)
        .holders(coupon)
        .await?
        .ok_or_else(|| anyhow::anyhow!("coupon {coupon} not in MySQL"))?;
    Ok((u64::try_from(holders.holders.len())?, holders.available))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_batch_is_retried_with_its_partitions_kept() -> anyhow::Result<()> {
    const HOLD: Duration = Duration::from_secs(10);
    let mut env = TestEnv::new(3).await?;
    // Each attempt gives up on the lock after 1 s; a member that did not poll for 6 s would
    // be put out of the group, which the hold below outlasts.
    env.settings.mysql.lock_wait_timeout_s = 1;
    env.settings.consumer.max_poll_interval_ms = 6000;
    let running = Running::start(&env).await?;
    let consumer = running
        .consumer
        .as_ref()
        .context("started with a consumer")?;
    let client = &running.client;
    let coupon = running.create_coupon(100).await?;
    issue_users(&running, coupon, &users("before", 1)).await?;
    metric_until(client, consumer, "coupon_consumer_issued_total", |v| {
        v == 1.0
    })
    .await?;
    let assigns = "kafka_consumer_rebalances_total{event=\"assign\"}";
    assert_eq!(consumer_metric(client, consumer, assigns).await, Some(1.0));

    // Someone else holds the coupon row.
    let locker = RowLock::coupon(&env, coupon).await?;
    let held_at = std::time::Instant::now();
    issue_users(&running, coupon, &users("during", 20)).await?;

    metric_until(client, consumer, "kafka_consumer_paused_partitions", |v| {
        v == 3.0
    })
    .await?;
    metric_until(
        client,
        consumer,
        "coupon_consumer_batch_retries_total",
        |v| v >= 1.0,
    )
    .await?;
    tokio::time::sleep(HOLD.saturating_sub(held_at.elapsed())).await;
    // Still held: nothing more issued, still paused, and the readiness probe stays green
    // (the broker and MySQL both answer; only one row is locked).
    assert_eq!(
        consumer_metric(client, consumer, "coupon_consumer_issued_total").await,
        Some(1.0)
    );
    assert_eq!(
        consumer_metric(client, consumer, "kafka_consumer_paused_partitions").await,
        Some(3.0)
    );
    locker.release().await?;

    metric_until(client, consumer, "coupon_consumer_issued_total", |v| {
        v == 21.0
    })
    .await?;
    metric_until(client, consumer, "kafka_consumer_paused_partitions", |v| {
        v == 0.0
    })
    .await?;
    // Retried through the whole hold (1 s lock wait plus backoff per attempt) ...
    let retries = consumer_metric(client, consumer, "coupon_consumer_batch_retries_total")
        .await
        .unwrap_or(0.0);
    assert!(retries >= 3.0, "retries {retries}");
    // ... without ever leaving the group: one assignment, no revocation.
    assert_eq!(consumer_metric(client, consumer, assigns).await, Some(1.0));
    assert_eq!(
        consumer_metric(
            client,
            consumer,
            "kafka_consumer_rebalances_total{event=\"revoke\"}"
        )
        .await,
        Some(0.0)
    );
    assert_eq!(
        consumer_metric(client, consumer, "coupon_consumer_duplicates_total").await,
        Some(0.0)
    );
    assert_eq!(rows_and_available(&env, coupon).await?, (21, 79));

    // Later batches go through without pausing anything.
    issue_users(&running, coupon, &users("after", 5)).await?;
    metric_until(client, consumer, "coupon_consumer_issued_total", |v| {
        v == 26.0
    })
    .await?;
    assert_eq!(
        consumer_metric(client, consumer, "kafka_consumer_paused_partitions").await,
        Some(0.0)
    );
    running.verify(&env, coupon, 100).await?;
    running.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_are_committed_before_partitions_move() -> anyhow::Result<()> {
    let mut env = TestEnv::new(2).await?;
    // No periodic commit within the test: only the commit before revocation can tell the
    // second member where the first one stopped.
    env.settings.consumer.commit_interval_ms = 3_600_000;
    let running = Running::start(&env).await?;
    let first = running
        .consumer
        .as_ref()
        .context("started with a consumer")?;
    let client = &running.client;
    let coupon = running.create_coupon(100).await?;
    issue_users(&running, coupon, &users("early", 30)).await?;
    metric_until(client, first, "coupon_consumer_issued_total", |v| v == 30.0).await?;

    let second = coupon_consumer::start(env.settings.clone()).await?;
    let revokes = "kafka_consumer_rebalances_total{event=\"revoke\"}";
    metric_until(client, first, revokes, |v| v >= 1.0).await?;
    metric_until(
        client,
        &second,
        "kafka_consumer_rebalances_total{event=\"assign\"}",
        |v| v >= 1.0,
    )
    .await?;
    issue_users(&running, coupon, &users("late", 30)).await?;
    let mut issued = (0.0, 0.0);
    eventually(
        Duration::from_secs(30),
        "60 issued by the two",
        async || {
            let a = consumer_metric(client, first, "coupon_consumer_issued_total").await?;
            let b = consumer_metric(client, &second, "coupon_consumer_issued_total").await?;
            issued = (a, b);
            (a + b == 60.0).then_some(())
        },
    )
    .await?;
    // The second member took partitions over and got only new messages: nothing of the
    // first 30 came to it again.
    assert!(
        issued.1 > 0.0,
        "the second member issued nothing: {issued:?}"
    );
    for consumer in [first, &second] {
        assert_eq!(
            consumer_metric(client, consumer, "coupon_consumer_duplicates_total").await,
            Some(0.0)
        );
    }
    let consumed = consumer_metric(client, first, "kafka_consumer_records_consumed_total")
        .await
        .unwrap_or(0.0)
        + consumer_metric(client, &second, "kafka_consumer_records_consumed_total")
            .await
            .unwrap_or(0.0);
    assert_eq!(consumed, 60.0);
    assert_eq!(rows_and_available(&env, coupon).await?, (60, 40));

    second.stop().await?;
    running.verify(&env, coupon, 100).await?;
    running.stop().await?;
    Ok(())
}
