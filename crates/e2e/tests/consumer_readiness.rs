//! Readiness says whether the consumer can make progress: it turns false within seconds of a
//! hung broker (librdkafka alone keeps a hung connection "UP" for a minute) and back after it
//! resumes; and a member the group has nothing for (more members than partitions, the
//! partition consumed by the other) is ready.

use std::time::{Duration, Instant};

use coupon_consumer::RunningConsumer;
use couponrush_e2e::consumer_ready_is;
use couponrush_testkit::{PrivateServer, TestEnv, eventually};
use serde_json::Value;

async fn ready_is(
    client: &reqwest::Client,
    consumer: &RunningConsumer,
    status: u16,
    within: Duration,
) -> anyhow::Result<Value> {
    let body = consumer_ready_is(client, consumer, status, within).await?;
    Ok(serde_json::from_str(&body)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_broker_turns_the_consumer_not_ready_within_seconds() -> anyhow::Result<()> {
    let broker = PrivateServer::tansu().await?;
    let mut env = TestEnv::new(1).await?;
    env.use_broker(broker.address(), 1).await?;
    let consumer = coupon_consumer::start(env.settings.clone()).await?;
    let client = reqwest::Client::new();
    ready_is(&client, &consumer, 200, Duration::from_secs(30)).await?;

    let stopped = Instant::now();
    broker.freeze()?;
    let body = ready_is(&client, &consumer, 503, Duration::from_secs(10)).await;
    let unready_after = stopped.elapsed();
    // Whatever happened, let the broker go on so the consumer and the broker can stop.
    broker.thaw()?;
    let body = body?;
    assert_eq!(body["checks"]["kafka"]["status"], "DOWN", "{body}");
    assert_eq!(body["checks"]["kafka"]["answering"], false, "{body}");

    let resumed = Instant::now();
    ready_is(&client, &consumer, 200, Duration::from_secs(10)).await?;
    let ready_after = resumed.elapsed();
    eprintln!(
        "hung broker: not ready {unready_after:.1?} after SIGSTOP, ready {ready_after:.1?} \
         after SIGCONT"
    );
    consumer.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_the_group_has_nothing_for_is_ready() -> anyhow::Result<()> {
    let env = TestEnv::new(1).await?;
    let client = reqwest::Client::new();
    let first = coupon_consumer::start(env.settings.clone()).await?;
    ready_is(&client, &first, 200, Duration::from_secs(30)).await?;
    let second = coupon_consumer::start(env.settings.clone()).await?;

    // Both ready once the group settled: one holds the partition, the other nothing.
    let settled = eventually(Duration::from_secs(30), "the group to settle", async || {
        let a = ready_is(&client, &first, 200, Duration::from_millis(100))
            .await
            .ok()?;
        let b = ready_is(&client, &second, 200, Duration::from_millis(100))
            .await
            .ok()?;
        let held: Vec<i64> = [&a, &b]
            .iter()
            .filter_map(|body| body["checks"]["assignment"]["partitions"].as_i64())
            .collect();
        (held.len() == 2 && held.iter().sum::<i64>() == 1).then_some((a, b))
    })
    .await?;
    let idle = [&settled.0, &settled.1]
        .into_iter()
        .find(|body| body["checks"]["assignment"]["partitions"] == 0)
        .ok_or_else(|| anyhow::anyhow!("no idle member: {settled:?}"))?;
    assert_eq!(
        idle["checks"]["assignment"]["stalled_partitions"], 0,
        "{idle}"
    );
    assert_eq!(
        idle["checks"]["assignment"]["topic_partitions"], 1,
        "{idle}"
    );

    second.stop().await?;
    first.stop().await?;
    Ok(())
}
