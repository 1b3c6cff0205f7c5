//! `/metrics` counts what happened, and `/health/ready` follows real outages of the broker and
//! of Redis within seconds, both ways.

use std::time::Duration;

use couponrush_e2e::{Running, sample};
use couponrush_testkit::{PrivateServer, TestEnv, eventually};

async fn ready_status(running: &Running) -> Option<u16> {
    let response = running
        .client
        .get(format!("{}/health/ready", running.base))
        .send()
        .await
        .ok()?;
    Some(response.status().as_u16())
}

async fn wait_ready(running: &Running, status: u16, what: &str) -> anyhow::Result<()> {
    eventually(Duration::from_secs(10), what, async || {
        (ready_status(running).await? == status).then_some(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_readiness_follow_a_broker_outage() -> anyhow::Result<()> {
    let mut broker = PrivateServer::tansu().await?;
    let mut env = TestEnv::new(1).await?;
    env.use_broker(broker.address(), 1).await?;
    env.settings.kafka.publish_timeout_ms = 1000;
    let running = Running::api_only(&env).await?;
    let coupon = running.create_coupon(10).await?;

    assert_eq!(running.issue(coupon, "u1").await?.0, 202);
    assert_eq!(running.issue(coupon, "u1").await?.0, 409);
    let text = running.metrics().await?;
    assert_eq!(
        sample(
            &text,
            "couponrush_api_issue_outcomes_total{outcome=\"QUEUED\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "couponrush_api_issue_outcomes_total{outcome=\"PENDING\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "couponrush_api_http_requests_total{route=\"/coupons/{coupon_id}/issue\",method=\"POST\",status=\"202\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        text.contains("couponrush_api_kafka_publish_duration_seconds_count 1"),
        "{text}"
    );

    broker.kill();
    wait_ready(&running, 503, "not ready after the broker died").await?;
    let (status, body) = running.issue(coupon, "u2").await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("UNAVAILABLE")),
        "{body}"
    );
    // The producer is known not to publish: the reservation was given back without trying.
    let text = running.metrics().await?;
    assert_eq!(
        sample(
            &text,
            "couponrush_api_issue_outcomes_total{outcome=\"UNAVAILABLE\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "couponrush_api_reservation_releases_total{outcome=\"released\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "couponrush_api_dependency_up{dependency=\"kafka\"}"),
        Some(0.0),
        "{text}"
    );

    broker.resume().await?;
    env.ensure_topic(1).await?;
    wait_ready(&running, 200, "ready again after the broker returned").await?;

    running.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_a_redis_outage_and_requests_fail_cleanly() -> anyhow::Result<()> {
    let mut redis = PrivateServer::redis().await?;
    let mut env = TestEnv::new(1).await?;
    env.settings.redis.url = couponrush_config::Secret::new(format!("redis://{}", redis.address()));
    let running = Running::api_only(&env).await?;
    let coupon = running.create_coupon(10).await?;
    wait_ready(&running, 200, "ready").await?;

    redis.kill();
    wait_ready(&running, 503, "not ready after Redis died").await?;
    // The first call may have gone out on the connection Redis dropped: it cannot know
    // whether Redis ran it and says so. Once no connection can be made, nothing was sent.
    let (status, body) = running.issue(coupon, "u1").await?;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["code"] == "UNAVAILABLE" || body["code"] == "UNCONFIRMED",
        "{body}"
    );
    let (status, body) = running.issue(coupon, "u2").await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("UNAVAILABLE")),
        "{body}"
    );
    let text = running.metrics().await?;
    assert!(
        sample(&text, "couponrush_api_redis_errors_total").is_some_and(|n| n >= 1.0),
        "{text}"
    );

    // Redis comes back empty (it keeps nothing on disk): ready again, and an admin warm-up
    // reloads the event from MySQL.
    redis.resume().await?;
    wait_ready(&running, 200, "ready again after Redis returned").await?;
    // A 503 (e.g. IN_FLIGHT_UNKNOWN while the broker is slow to scan) asks to retry, as an
    // operator would; it must not load anything meanwhile, and the retry must succeed.
    let warm_up = format!("/admin/coupons/{coupon}/stock");
    let mut refusals = Vec::new();
    let loaded = eventually(
        Duration::from_secs(20),
        "a warm-up that loads",
        async || {
            let (status, body) = running
                .admin(reqwest::Method::PUT, &warm_up, None)
                .await
                .ok()?;
            if status == 503 {
                refusals.push(body);
                return None;
            }
            Some((status, body))
        },
    )
    .await?;
    assert_eq!(loaded.0, 200, "{} after 503s {refusals:?}", loaded.1);
    assert_eq!(loaded.1["loaded"], true, "{}", loaded.1);
    assert_eq!(running.issue(coupon, "u1").await?.0, 202);

    running.stop().await?;
    Ok(())
}
