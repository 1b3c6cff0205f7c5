//! Redis restarted empty (a private redis-server killed and started again): a live coupon is
//! "not loaded", not "not found", and says so on every surface until it is reloaded; once
//! reloaded, the ledger's invariants hold for everything users were told.

use std::time::Duration;

use anyhow::Context;

use couponrush_domain::CouponId;
use couponrush_e2e::{Running, sample};
use couponrush_testkit::{PrivateServer, TestEnv, eventually};
use serde_json::Value;

async fn get(running: &Running, path: &str) -> anyhow::Result<(u16, Value)> {
    let response = running
        .client
        .get(format!("{}{path}", running.base))
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await?))
}

/// A private Redis, the API on it, and one coupon of `total` with `winners` already queued.
async fn start(
    total: u32,
    winners: &[&str],
) -> anyhow::Result<(PrivateServer, TestEnv, Running, CouponId)> {
    let redis = PrivateServer::redis().await?;
    let mut env = TestEnv::new(1).await?;
    env.settings.redis.url = couponrush_config::Secret::new(format!("redis://{}", redis.address()));
    let running = Running::api_only(&env).await?;
    let coupon = running.create_coupon(total).await?;
    for user in winners {
        assert_eq!(running.issue(coupon, user).await?.0, 202, "{user}");
    }
    Ok((redis, env, running, coupon))
}

async fn restart_empty(redis: &mut PrivateServer, running: &Running) -> anyhow::Result<()> {
    redis.kill();
    redis.resume().await?;
    eventually(
        Duration::from_secs(10),
        "ready after Redis returned",
        async || {
            let (status, _) = get(running, "/health/ready").await.ok()?;
            (status == 200).then_some(())
        },
    )
    .await
}

/// `GET /admin/coupons/{id}/stats`, `None` when it does not answer 200.
async fn stats(running: &Running, coupon: CouponId) -> Option<Value> {
    let path = format!("/admin/coupons/{coupon}/stats");
    let (status, stats) = running
        .admin(reqwest::Method::GET, &path, None)
        .await
        .ok()?;
    (status == 200).then_some(stats)
}

/// An issue request, again while it meets a worker's connection that the Redis restart broke
/// (503 UNAVAILABLE, and the call reconnects). Only ever repeated when nothing was reserved.
async fn issue_past_restart(
    running: &Running,
    coupon: CouponId,
    user: &str,
) -> anyhow::Result<(u16, Value)> {
    eventually(Duration::from_secs(10), "Redis answering", async || {
        let (status, body) = running.issue(coupon, user).await.ok()?;
        (body["code"] != "UNAVAILABLE").then_some((status, body))
    })
    .await
}

/// `PUT /admin/coupons/{id}/stock`, again while it meets a worker's connection that the Redis
/// restart broke (503 UNAVAILABLE; the call reconnects). Loading is idempotent.
async fn warm_up(running: &Running, coupon: CouponId) -> anyhow::Result<(u16, Value)> {
    let path = format!("/admin/coupons/{coupon}/stock");
    eventually(
        Duration::from_secs(10),
        "a warm-up Redis answers",
        async || {
            let (status, body) = running
                .admin(reqwest::Method::PUT, &path, None)
                .await
                .ok()?;
            (body["code"] != "UNAVAILABLE").then_some((status, body))
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coupon_redis_lost_is_not_loaded_not_unknown() -> anyhow::Result<()> {
    let (mut redis, env, mut running, coupon) = start(10, &["alice"]).await?;
    restart_empty(&mut redis, &running).await?;

    // Each API worker's Redis connection broke with the restart: its next call fails (503
    // UNAVAILABLE) and reconnects, so poll until the answer is Redis's.
    let (status, body, retry_after) =
        eventually(Duration::from_secs(10), "Redis answering", async || {
            let response = running
                .client
                .post(format!("{}/coupons/{coupon}/issue", running.base))
                .header("userId", "bob")
                .send()
                .await
                .ok()?;
            let retry_after = response.headers().get("retry-after").cloned();
            let status = response.status().as_u16();
            let body: Value = response.json().await.ok()?;
            running.ledger.record(coupon, "bob", status, &body);
            (body["code"] != "UNAVAILABLE").then_some((status, body, retry_after))
        })
        .await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("COUPON_NOT_LOADED")),
        "{body}"
    );
    assert!(retry_after.is_some(), "503 without Retry-After");
    // Still 503 from memory on the next request; a coupon that never existed is still 404.
    let (status, body) = issue_past_restart(&running, coupon, "carol").await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("COUPON_NOT_LOADED")),
        "{body}"
    );
    let (status, body) = issue_past_restart(&running, CouponId::new(777_777)?, "bob").await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("COUPON_NOT_FOUND")),
        "{body}"
    );

    // The status endpoint cannot see alice's request (only Redis had it): it does not say
    // NOT_REQUESTED.
    let (status, body) = eventually(Duration::from_secs(10), "Redis answering", async || {
        let (status, body) = running.status(coupon, "alice").await.ok()?;
        let body: Value = serde_json::from_str(&body).ok()?;
        (body["code"] != "UNAVAILABLE").then_some((status, body))
    })
    .await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("COUPON_NOT_LOADED")),
        "{body}"
    );

    // reconcile does not call it healthy: no row disagrees, but nobody can take part.
    let id = coupon.to_string();
    let check = couponrush_e2e::batch(&env, &["reconcile", "--coupon", &id]).await?;
    assert!(check.needs_attention, "{}", check.summary);
    assert_eq!(
        check.summary["coupons"][0]["unusable"], true,
        "{}",
        check.summary
    );

    // Reported: ready (other coupons are fine), with the coupon listed, and counted.
    let (status, body) = get(&running, "/health/ready").await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["coupons"]["notLoaded"][0]["couponId"],
        coupon.as_i64(),
        "{body}"
    );
    let text = running
        .client
        .get(format!("{}/metrics", running.base))
        .send()
        .await?
        .text()
        .await?;
    assert_eq!(
        sample(&text, "couponrush_api_coupon_not_loaded_total"),
        Some(2.0),
        "{text}"
    );

    // Reloaded: the coupon answers again and is no longer listed.
    let (status, body) = warm_up(&running, coupon).await?;
    assert_eq!(status, 200, "{body}");
    assert_ne!(running.issue(coupon, "bob").await?.0, 503);
    let (_, body) = get(&running, "/health/ready").await?;
    assert_eq!(
        body["coupons"]["notLoaded"],
        serde_json::json!([]),
        "{body}"
    );

    running.start_consumer(&env).await?;
    running.verify(&env, coupon, 10).await?;
    running.stop().await?;
    Ok(())
}

/// An event of 10 where alice and bob are persisted (rows in MySQL, offsets committed), carol
/// and dave are only in Kafka (no consumer running), then Redis restarts empty.
async fn lost_with_rows_and_in_flight()
-> anyhow::Result<(PrivateServer, TestEnv, Running, CouponId)> {
    let redis = PrivateServer::redis().await?;
    let mut env = TestEnv::new(1).await?;
    env.settings.redis.url = couponrush_config::Secret::new(format!("redis://{}", redis.address()));
    let mut running = Running::start(&env).await?;
    let coupon = running.create_coupon(10).await?;
    for user in ["alice", "bob"] {
        assert_eq!(running.issue(coupon, user).await?.0, 202, "{user}");
    }
    eventually(
        Duration::from_secs(30),
        "alice and bob persisted",
        async || {
            let stats = stats(&running, coupon).await?;
            (stats["mysql"]["issued"] == 2).then_some(())
        },
    )
    .await?;
    if let Some(consumer) = running.consumer.take() {
        consumer.stop().await?;
    }
    for user in ["carol", "dave"] {
        assert_eq!(running.issue(coupon, user).await?.0, 202, "{user}");
    }
    let mut redis = redis;
    restart_empty(&mut redis, &running).await?;
    Ok((redis, env, running, coupon))
}

/// Nobody who was told 202 is accepted again, and the stock left is what nobody holds.
async fn assert_rebuilt(running: &Running, coupon: CouponId) -> anyhow::Result<()> {
    let (status, body) = issue_past_restart(running, coupon, "alice").await?;
    assert_eq!(
        (status, body["status"].as_str()),
        (409, Some("ISSUED")),
        "{body}"
    );
    let (status, body) = issue_past_restart(running, coupon, "carol").await?;
    assert_eq!(
        (status, body["status"].as_str()),
        (409, Some("PENDING")),
        "{body}"
    );
    assert_eq!(issue_past_restart(running, coupon, "erin").await?.0, 202);
    // A pooled connection the restart broke may fail one read (503, truthfully): ask again.
    let stats = eventually(Duration::from_secs(5), "stats", async || {
        stats(running, coupon).await
    })
    .await?;
    assert_eq!(stats["redis"]["stock"], 10 - 2 - 2 - 1, "{stats}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_up_after_a_loss_counts_rows_and_requests_in_flight() -> anyhow::Result<()> {
    let (_redis, env, mut running, coupon) = lost_with_rows_and_in_flight().await?;
    let (status, body) = warm_up(&running, coupon).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            &body["redisStock"],
            &body["restoredIssued"],
            &body["restoredPending"]
        ),
        (&Value::from(6), &Value::from(2), &Value::from(2)),
        "{body}"
    );
    assert_rebuilt(&running, coupon).await?;

    // The requests in flight are persisted once each: 5 rows, nothing dead-lettered.
    running.start_consumer(&env).await?;
    eventually(Duration::from_secs(30), "5 rows", async || {
        let stats = stats(&running, coupon).await?;
        (stats["mysql"]["issued"] == 5 && stats["redis"]["issued"] == 5).then_some(())
    })
    .await?;
    running.verify(&env, coupon, 10).await?;

    running.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_after_a_loss_counts_requests_in_flight_and_is_healthy_only_then()
-> anyhow::Result<()> {
    let (_redis, env, mut running, coupon) = lost_with_rows_and_in_flight().await?;
    let id = coupon.to_string();
    let done = couponrush_e2e::batch(&env, &["reconcile", "--coupon", &id, "--repair"]).await?;
    let repair = &done.summary["coupons"][0]["repair"];
    assert_eq!(
        (
            &repair["loaded_stock"],
            &repair["restored"],
            &repair["restored_pending"]
        ),
        (&Value::from(6), &Value::from(2), &Value::from(2)),
        "{}",
        done.summary
    );
    assert!(!done.needs_attention, "{}", done.summary);
    // A second look, without repairing: carol and dave are in flight, nothing is wrong.
    let check = couponrush_e2e::batch(&env, &["reconcile", "--coupon", &id]).await?;
    assert_eq!(
        check.summary["coupons"][0]["verdict"], "PENDING",
        "{}",
        check.summary
    );
    assert!(!check.needs_attention);
    assert_rebuilt(&running, coupon).await?;
    running.start_consumer(&env).await?;
    running.verify(&env, coupon, 10).await?;

    running.stop().await?;
    Ok(())
}

/// The one scenario without the ledger's check at the end: Redis and the (in-memory) broker
/// both lose alice's accepted request, so nothing anywhere can honour it; the point is that
/// the repair refuses to guess.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_refuses_to_rebuild_without_the_broker_and_exits_non_zero() -> anyhow::Result<()> {
    let mut broker = PrivateServer::tansu().await?;
    let mut redis = PrivateServer::redis().await?;
    let mut env = TestEnv::new(1).await?;
    env.use_broker(broker.address(), 1).await?;
    env.settings.redis.url = couponrush_config::Secret::new(format!("redis://{}", redis.address()));
    env.settings.startup.probe_timeout_ms = 1000;
    let running = Running::api_only(&env).await?;
    let coupon = running.create_coupon(10).await?;
    assert_eq!(running.issue(coupon, "alice").await?.0, 202);
    restart_empty(&mut redis, &running).await?;
    broker.kill();

    let started = std::time::Instant::now();
    let id = coupon.to_string();
    let refused = couponrush_e2e::batch(&env, &["reconcile", "--coupon", &id, "--repair"]).await;
    let error = format!(
        "{:#}",
        refused.err().context("repair ran without a broker")?
    );
    assert!(error.contains("Kafka"), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // Nothing was loaded: the coupon still answers COUPON_NOT_LOADED, not 202 from a full stock.
    let (status, body) = issue_past_restart(&running, coupon, "bob").await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("COUPON_NOT_LOADED")),
        "{body}"
    );
    // The warm-up refuses too.
    let (status, body) = warm_up(&running, coupon).await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("IN_FLIGHT_UNKNOWN")),
        "{body}"
    );

    running.stop().await?;
    Ok(())
}
