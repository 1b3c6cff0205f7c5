//! MySQL that stops answering with its connections open (a hung server, a network that drops
//! packets without a reset) used to hang a consumer for ever, ready all along. Through a
//! fault proxy: the batch in hand fails within the deadline, is retried with its partitions
//! kept, readiness turns false; after the thaw everything is issued exactly once, without a
//! restart.

use std::time::{Duration, Instant};

use anyhow::Context;
use couponrush_domain::CouponId;
use couponrush_e2e::{RowLock, Running, consumer_metric, consumer_ready_is};
use couponrush_testkit::{FaultProxy, TestEnv, eventually};

async fn issue_users(
    running: &Running,
    coupon: CouponId,
    prefix: &str,
    count: usize,
) -> anyhow::Result<()> {
    for i in 0..count {
        let user = format!("{prefix}-{i}");
        let (status, body) = running.issue(coupon, &user).await?;
        anyhow::ensure!(status == 202, "{user}: {status} {body}");
    }
    Ok(())
}

async fn metric(running: &Running, series: &str) -> anyhow::Result<Option<f64>> {
    let consumer = running.consumer.as_ref().context("a consumer")?;
    Ok(consumer_metric(&running.client, consumer, series).await)
}

async fn metric_until(
    running: &Running,
    series: &str,
    within: Duration,
    wanted: impl Fn(f64) -> bool,
) -> anyhow::Result<f64> {
    let consumer = running.consumer.as_ref().context("a consumer")?;
    eventually(within, series, async || {
        consumer_metric(&running.client, consumer, series)
            .await
            .filter(|v| wanted(*v))
    })
    .await
}

async fn ready_is(running: &Running, status: u16, within: Duration) -> anyhow::Result<String> {
    let consumer = running.consumer.as_ref().context("a consumer")?;
    consumer_ready_is(&running.client, consumer, status, within).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_mysql_fails_the_batch_within_its_deadline_and_recovers() -> anyhow::Result<()> {
    let env = TestEnv::new(1).await?;
    let proxy = FaultProxy::start(format!(
        "{}:{}",
        env.settings.mysql.host, env.settings.mysql.port
    ))
    .await?;
    // The consumer reaches MySQL only through the proxy (over TCP: a Unix socket would
    // bypass it); the API and the checks below go straight to MySQL.
    let mut consumer_settings = env.settings.clone();
    consumer_settings.mysql.port = proxy.port();
    consumer_settings.mysql.prefer_socket = false;
    // A unit of MySQL work gets 1 s of lock wait plus 1 s: a 2 s deadline.
    consumer_settings.mysql.lock_wait_timeout_s = 1;
    consumer_settings.mysql.connect_timeout_ms = 1000;
    let deadline = Duration::from_secs(2);

    let mut running = Running::api_only(&env).await?;
    running.consumer = Some(coupon_consumer::start(consumer_settings).await?);
    let coupon = running.create_coupon(100).await?;
    issue_users(&running, coupon, "before", 5).await?;
    metric_until(
        &running,
        "coupon_consumer_issued_total",
        Duration::from_secs(20),
        |v| v == 5.0,
    )
    .await?;
    ready_is(&running, 200, Duration::from_secs(10)).await?;

    // Requests keep arriving while MySQL hangs, so a batch is in flight when it does.
    let frozen_at = Instant::now();
    proxy.freeze().await?;
    issue_users(&running, coupon, "during", 20).await?;
    metric_until(
        &running,
        "coupon_consumer_batch_retries_total",
        deadline * 5,
        |v| v >= 1.0,
    )
    .await?;
    let failed_after = frozen_at.elapsed();
    let body = ready_is(&running, 503, Duration::from_secs(10)).await?;
    let unready_after = frozen_at.elapsed();
    assert!(body.contains("mysql"), "{body}");
    // Held long enough for several attempts to miss their deadline.
    metric_until(
        &running,
        "coupon_consumer_batch_retries_total",
        Duration::from_secs(20),
        |v| v >= 3.0,
    )
    .await?;
    assert_eq!(
        metric(&running, "coupon_consumer_issued_total").await?,
        Some(5.0)
    );

    let thawed_at = Instant::now();
    proxy.pass().await?;
    metric_until(
        &running,
        "coupon_consumer_issued_total",
        Duration::from_secs(10),
        |v| v == 25.0,
    )
    .await?;
    let issued_after = thawed_at.elapsed();
    ready_is(&running, 200, Duration::from_secs(10)).await?;
    let ready_after = thawed_at.elapsed();
    eprintln!(
        "frozen MySQL: first retry {failed_after:.1?} and not ready {unready_after:.1?} after \
         the freeze; all issued {issued_after:.1?} and ready {ready_after:.1?} after the thaw"
    );
    assert!(
        failed_after < deadline * 3,
        "first retry after {failed_after:?}"
    );

    let db = couponrush_storage::Database::new(&env.settings.mysql)?;
    let holders = couponrush_storage::IssuanceStore::new(db)
        .holders(coupon)
        .await?
        .context("coupon in MySQL")?;
    assert_eq!((holders.holders.len(), holders.available), (25, 75));
    assert_eq!(
        metric(&running, "coupon_consumer_dead_letters_total").await?,
        Some(0.0)
    );
    running.verify(&env, coupon, 100).await?;
    running.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_stuck_behind_a_lock_turns_the_consumer_not_ready() -> anyhow::Result<()> {
    let mut env = TestEnv::new(1).await?;
    // One attempt: 1 s to connect, a 2 s MySQL deadline, 3 s to publish dead letters, then up
    // to 5 s of backoff: a batch in progress for more than 11 s is stuck.
    env.settings.mysql.lock_wait_timeout_s = 1;
    env.settings.mysql.connect_timeout_ms = 1000;
    env.settings.kafka.publish_timeout_ms = 3000;
    let running = Running::start(&env).await?;
    let coupon = running.create_coupon(10).await?;
    ready_is(&running, 200, Duration::from_secs(20)).await?;

    // Someone else holds the coupon row: MySQL and the broker answer, the batch cannot commit.
    let locker = RowLock::coupon(&env, coupon).await?;
    let locked_at = Instant::now();
    issue_users(&running, coupon, "stuck", 3).await?;
    let body = ready_is(&running, 503, Duration::from_secs(20)).await?;
    let unready_after = locked_at.elapsed();
    let body: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(body["checks"]["batch"]["status"], "DOWN", "{body}");
    assert_eq!(body["checks"]["mysql"]["status"], "UP", "{body}");
    assert_eq!(body["checks"]["kafka"]["status"], "UP", "{body}");

    locker.release().await?;
    let released = Instant::now();
    metric_until(
        &running,
        "coupon_consumer_issued_total",
        Duration::from_secs(10),
        |v| v == 3.0,
    )
    .await?;
    ready_is(&running, 200, Duration::from_secs(10)).await?;
    eprintln!(
        "stuck batch: not ready {unready_after:.1?} after the lock, ready {:.1?} after its release",
        released.elapsed()
    );
    running.verify(&env, coupon, 10).await?;
    running.stop().await?;
    Ok(())
}
