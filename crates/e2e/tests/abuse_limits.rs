//! The abuse limits of `POST /coupons/{couponId}/issue` on the real stack: per user and per
//! client, shared by API instances through Redis, overridable per event, answered 429 with
//! `Retry-After`, counted by reason, and never taking stock.

use std::time::Duration;

use anyhow::Context;
use couponrush_domain::CouponId;
use couponrush_e2e::Running;
use couponrush_testkit::{TestEnv, eventually};
use reqwest::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;

/// A test's slice of the stack with the limits on (TestEnv turns them off for every other
/// test, whose crowds all come from 127.0.0.1).
async fn limited_env(per_user: u32, per_client: u32, window_ms: u32) -> anyhow::Result<TestEnv> {
    let mut env = TestEnv::new(1).await?;
    let limits = &mut env.settings.rate_limit;
    limits.enabled = true;
    limits.per_user = per_user;
    limits.per_client = per_client;
    limits.window_ms = window_ms;
    Ok(env)
}

/// One issue request with extra headers: status, `Retry-After`, body.
async fn issue_with(
    running: &Running,
    coupon: CouponId,
    user: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<(u16, Option<u64>, Value)> {
    let mut request = running
        .client
        .post(format!("{}/coupons/{coupon}/issue", running.base))
        .header("userId", user);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    Ok((status, retry_after, response.json().await?))
}

async fn issue(
    running: &Running,
    coupon: CouponId,
    user: &str,
) -> anyhow::Result<(u16, Option<u64>, Value)> {
    issue_with(running, coupon, user, &[]).await
}

/// `couponrush_api_rate_limited_requests_total{reason=…}` of one instance.
async fn limited(running: &Running, reason: &str) -> anyhow::Result<f64> {
    running
        .metric(&format!(
            "couponrush_api_rate_limited_requests_total{{reason=\"{reason}\"}}"
        ))
        .await
}

/// (Redis stock, users Redis recorded) from the admin stats.
async fn taken(running: &Running, coupon: CouponId) -> anyhow::Result<(u64, u64)> {
    let (status, stats) = running
        .admin(Method::GET, &format!("/admin/coupons/{coupon}/stats"), None)
        .await?;
    anyhow::ensure!(status == 200, "stats: {status} {stats}");
    let stock = stats["redis"]["stock"].as_u64().context("redis.stock")?;
    let accepted = stats["redis"]["accepted"]
        .as_u64()
        .context("redis.accepted")?;
    Ok((stock, accepted))
}

/// Creates an event open now with `total` coupons and, if given, its own `rate_limit`.
async fn create(
    running: &Running,
    total: u32,
    rate_limit: Option<Value>,
) -> anyhow::Result<(u16, Value)> {
    let fmt = &time::format_description::well_known::Rfc3339;
    let now = OffsetDateTime::now_utc();
    let mut spec = json!({
        "name": "bot magnet",
        "discount_amount": 5000,
        "total_quantity": total,
        "issue_starts_at": (now - Duration::from_secs(60)).format(fmt)?,
        "issue_ends_at": (now + Duration::from_secs(3600)).format(fmt)?,
        "expiry_days": 30,
    });
    if let Some(rate_limit) = rate_limit {
        spec["rate_limit"] = rate_limit;
    }
    running
        .admin(Method::POST, "/admin/coupons", Some(spec))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_user_limit_answers_429_with_retry_after_then_the_window_lets_them_in()
-> anyhow::Result<()> {
    // 3 per 3 s: one more every second, so a slow machine's first requests still come
    // within the burst, and Retry-After is 1.
    let env = limited_env(3, 0, 3000).await?;
    let running = Running::api_only(&env).await?;
    let coupon = running.create_coupon(10).await?;

    let mut answers = Vec::new();
    for _ in 0..3 {
        answers.push(issue(&running, coupon, "alice").await?.0);
    }
    assert_eq!(
        answers,
        [202, 409, 409],
        "three requests are within the limit"
    );
    let (status, retry_after, body) = issue(&running, coupon, "alice").await?;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["code"], "RATE_LIMITED", "{body}");
    assert_eq!(
        retry_after,
        Some(1),
        "one request frees every second: {body}"
    );
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("this user")),
        "{body}"
    );
    // Another user is not limited by alice's count.
    assert_eq!(issue(&running, coupon, "bob").await?.0, 202);
    // Once the window frees a slot alice is decided again (her state, PENDING, not a 429).
    // Each refused look while waiting is counted too.
    let mut refused = 1.0;
    let (status, _, body) = eventually(Duration::from_secs(5), "alice let in again", async || {
        let answer = issue(&running, coupon, "alice").await.ok()?;
        if answer.0 == 429 {
            refused += 1.0;
            return None;
        }
        Some(answer)
    })
    .await?;
    assert_eq!(
        (status, &body["status"]),
        (409, &json!("PENDING")),
        "{body}"
    );
    assert_eq!(limited(&running, "user").await?, refused);
    assert_eq!(limited(&running, "client").await?, 0.0);
    assert_eq!(taken(&running, coupon).await?, (8, 2));
    running.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_client_limit_stops_made_up_user_ids_and_limited_requests_take_no_stock()
-> anyhow::Result<()> {
    let env = limited_env(10, 5, 60_000).await?;
    let running = Running::api_only(&env).await?;
    let coupon = running.create_coupon(100).await?;

    let mut statuses = Vec::new();
    for i in 0..20 {
        let (status, retry_after, body) = issue(&running, coupon, &format!("bot-{i}")).await?;
        if status == 429 {
            assert_eq!(body["code"], "RATE_LIMITED");
            assert!(
                body["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("this client")),
                "{body}"
            );
            // One request frees every 60 s / 5 = 12 s.
            assert!(
                retry_after.is_some_and(|s| (1..=12).contains(&s)),
                "{retry_after:?}"
            );
        }
        statuses.push(status);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 202).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        15,
        "{statuses:?}"
    );
    assert_eq!(limited(&running, "client").await?, 15.0);
    assert_eq!(limited(&running, "user").await?, 0.0);
    // The 15 refused requests took no stock and recorded no user.
    assert_eq!(taken(&running, coupon).await?, (95, 5));
    let (status, body) = running.status(coupon, "bot-19").await?;
    assert_eq!(status, 200);
    assert!(body.contains("NOT_REQUESTED"), "{body}");
    // The operator's own checks (the smoke test, with the admin token) are not limited, though
    // they come from the same, exhausted, client.
    let admin = format!("Bearer {}", running.token);
    let (status, _, body) = issue_with(
        &running,
        coupon,
        "smoke-1",
        &[("Authorization", admin.as_str())],
    )
    .await?;
    assert_eq!(status, 202, "{body}");
    assert_eq!(limited(&running, "client").await?, 15.0);
    running.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_header_names_the_client() -> anyhow::Result<()> {
    let mut env = limited_env(10, 2, 60_000).await?;
    env.settings.rate_limit.client_header = "X-Forwarded-For".to_owned();
    let running = Running::api_only(&env).await?;
    let coupon = running.create_coupon(100).await?;
    let from = |ip: &'static str| [("X-Forwarded-For", ip)];
    let mut statuses = Vec::new();
    for (user, ip) in [
        ("a1", "198.51.100.1, 10.0.0.1"),
        ("a2", "198.51.100.1"),
        ("a3", "198.51.100.1"),
        ("b1", "198.51.100.2"),
    ] {
        statuses.push(issue_with(&running, coupon, user, &from(ip)).await?.0);
    }
    assert_eq!(
        statuses,
        [202, 202, 429, 202],
        "counted per forwarded address"
    );
    running.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_api_instances_share_one_count() -> anyhow::Result<()> {
    let env = limited_env(2, 0, 60_000).await?;
    let first = Running::api_only(&env).await?;
    let second = Running::api_only(&env).await?;
    let coupon = first.create_coupon(10).await?;
    assert_eq!(issue(&first, coupon, "carol").await?.0, 202);
    assert_eq!(issue(&second, coupon, "carol").await?.0, 409);
    // Two requests in all: each instance now refuses the third, whichever gets it.
    assert_eq!(issue(&first, coupon, "carol").await?.0, 429);
    assert_eq!(issue(&second, coupon, "carol").await?.0, 429);
    assert_eq!(limited(&first, "user").await?, 1.0);
    assert_eq!(limited(&second, "user").await?, 1.0);
    second.stop().await?;
    first.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_events_own_limit_wins_over_the_default_and_bad_values_get_422() -> anyhow::Result<()> {
    let env = limited_env(1, 0, 60_000).await?;
    let running = Running::api_only(&env).await?;
    let (status, created) = create(&running, 10, Some(json!({ "per_user": 3 }))).await?;
    anyhow::ensure!(status == 201, "create: {status} {created}");
    assert_eq!(created["coupon"]["rate_limit"], json!({ "per_user": 3 }));
    let own = CouponId::new(created["couponId"].as_u64().context("couponId")?)?;
    let plain = running.create_coupon(10).await?;

    let mut on_own = Vec::new();
    let mut on_plain = Vec::new();
    for _ in 0..4 {
        on_own.push(issue(&running, own, "dave").await?.0);
        on_plain.push(issue(&running, plain, "dave").await?.0);
    }
    assert_eq!(on_own, [202, 409, 409, 429], "the event allows 3 per user");
    assert_eq!(
        on_plain,
        [202, 429, 429, 429],
        "the default allows 1 per user"
    );

    let (status, stats) = running
        .admin(Method::GET, &format!("/admin/coupons/{own}/stats"), None)
        .await?;
    assert_eq!(status, 200);
    assert_eq!(
        stats["rateLimit"],
        json!({
            "enabled": true,
            "perUser": 3,
            "perClient": 0,
            "windowMs": 60000,
            "eventOverrides": { "per_user": 3 },
        })
    );

    for (rate_limit, key) in [
        (json!({ "window_ms": 10 }), "rate_limit.window_ms"),
        (json!({ "per_client": 1_000_001 }), "rate_limit.per_client"),
    ] {
        let (status, body) = create(&running, 10, Some(rate_limit)).await?;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["code"], "INVALID_COUPON");
        assert!(
            body["message"].as_str().is_some_and(|m| m.contains(key)),
            "{body}"
        );
    }
    let (status, body) = create(&running, 10, Some(json!({ "per_ip": 1 }))).await?;
    assert_eq!(
        (status, &body["code"]),
        (400, &json!("INVALID_BODY")),
        "{body}"
    );
    running.stop().await
}
