//! The incident's consumer was disconnected for 45 minutes and nothing said so. Ours exports
//! its connection count, lag and progress, and turns not-ready within seconds of losing the
//! broker, and ready again when it returns.

use std::time::Duration;

use couponrush_e2e::{Running, ops_get, sample};
use couponrush_testkit::{GatedBroker, TestEnv, eventually};

async fn get(running: &Running, path: &str) -> Option<(u16, String)> {
    ops_get(&running.client, running.consumer.as_ref()?, path).await
}

async fn metric_reaches(running: &Running, series: &str, wanted: f64) -> anyhow::Result<()> {
    eventually(Duration::from_secs(20), series, async || {
        let (_, text) = get(running, "/metrics").await?;
        (sample(&text, series)? == wanted).then_some(())
    })
    .await
}

async fn ready_is(running: &Running, status: u16) -> anyhow::Result<()> {
    eventually(Duration::from_secs(20), "consumer readiness", async || {
        (get(running, "/health/ready").await?.0 == status).then_some(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_reports_progress_and_a_lost_broker() -> anyhow::Result<()> {
    let mut broker = GatedBroker::start().await?;
    let mut env = TestEnv::new(1).await?;
    env.use_broker(broker.address(), 1).await?;
    let running = Running::start(&env).await?;
    let coupon = running.create_coupon(10).await?;

    assert_eq!(get(&running, "/health/live").await.map(|r| r.0), Some(200));
    metric_reaches(&running, "kafka_consumer_connection_count", 1.0).await?;
    ready_is(&running, 200).await?;

    for user in ["a", "b", "c"] {
        assert_eq!(running.issue(coupon, user).await?.0, 202);
    }
    metric_reaches(&running, "coupon_consumer_issued_total", 3.0).await?;
    metric_reaches(&running, "kafka_consumer_records_consumed_total", 3.0).await?;
    let lag = format!(
        "kafka_consumer_lag{{topic=\"{}\",partition=\"0\"}}",
        env.settings.kafka.topic
    );
    metric_reaches(&running, &lag, 0.0).await?;
    let (_, text) = get(&running, "/metrics")
        .await
        .ok_or_else(|| anyhow::anyhow!("metrics"))?;
    assert!(
        text.contains("coupon_consumer_transaction_duration_seconds_count"),
        "{text}"
    );

    broker.cut();
    metric_reaches(&running, "kafka_consumer_connection_count", 0.0).await?;
    ready_is(&running, 503).await?;

    broker.restore().await?;
    ready_is(&running, 200).await?;
    // The same group member goes on where it stopped.
    assert_eq!(running.issue(coupon, "d").await?.0, 202);
    metric_reaches(&running, "coupon_consumer_issued_total", 4.0).await?;

    running.stop().await?;
    Ok(())
}
