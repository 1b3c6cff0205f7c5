//! Every answer of the API is true and JSON with a stable code: bad input, unknown things,
//! the event window, admin access, repeated warm-up, and a broker that stops acknowledging.

use std::time::Duration;

use anyhow::Context;
use couponrush_cache::ReservationStore;
use couponrush_e2e::Running;
use couponrush_testkit::TestEnv;
use reqwest::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;

async fn call(
    running: &Running,
    method: Method,
    path: &str,
    user: Option<&[u8]>,
) -> anyhow::Result<(u16, Value)> {
    let mut request = running
        .client
        .request(method, format!("{}{path}", running.base));
    if let Some(user) = user {
        request = request.header("userId", reqwest::header::HeaderValue::from_bytes(user)?);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let body = response.json().await.context("every answer is JSON")?;
    Ok((status, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_and_unknown_things_get_clear_json_errors() -> anyhow::Result<()> {
    let env = TestEnv::new(1).await?;
    let running = Running::start(&env).await?;
    let coupon = running.create_coupon(10).await?;
    let issue = format!("/coupons/{coupon}/issue");
    let long = "x".repeat(65);

    // (method, path, userId header, expected status, expected code)
    type Case<'a> = (Method, String, Option<&'a [u8]>, u16, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            Method::POST,
            "/coupons/abc/issue".into(),
            Some(b"u1"),
            400,
            "INVALID_COUPON_ID",
        ),
        (
            Method::POST,
            "/coupons/-1/issue".into(),
            Some(b"u1"),
            400,
            "INVALID_COUPON_ID",
        ),
        (
            Method::POST,
            "/coupons/0/issue".into(),
            Some(b"u1"),
            400,
            "INVALID_COUPON_ID",
        ),
        (
            Method::POST,
            "/coupons/99999999999999999999/issue".into(),
            Some(b"u1"),
            400,
            "INVALID_COUPON_ID",
        ),
        (Method::POST, issue.clone(), None, 400, "MISSING_USER_ID"),
        (
            Method::POST,
            issue.clone(),
            Some(b""),
            400,
            "INVALID_USER_ID",
        ),
        (
            Method::POST,
            issue.clone(),
            Some(b"a b"),
            400,
            "INVALID_USER_ID",
        ),
        (
            Method::POST,
            issue.clone(),
            Some(long.as_bytes()),
            400,
            "INVALID_USER_ID",
        ),
        (
            Method::POST,
            issue.clone(),
            Some(b"caf\xc3\xa9"),
            400,
            "INVALID_USER_ID",
        ),
        (
            Method::POST,
            "/coupons/987654/issue".into(),
            Some(b"u1"),
            404,
            "COUPON_NOT_FOUND",
        ),
        (
            Method::GET,
            issue.clone(),
            Some(b"u1"),
            405,
            "METHOD_NOT_ALLOWED",
        ),
        (Method::GET, "/no/such/route".into(), None, 404, "NOT_FOUND"),
        (
            Method::POST,
            "/admin/coupons".into(),
            None,
            401,
            "UNAUTHORIZED",
        ),
        (
            Method::GET,
            format!("/admin/coupons/{coupon}/stats"),
            None,
            401,
            "UNAUTHORIZED",
        ),
    ];
    for (method, path, user, status, code) in cases {
        let (got, body) = call(&running, method.clone(), &path, user).await?;
        assert_eq!(
            (got, body["code"].as_str()),
            (status, Some(code)),
            "{method} {path}: {body}"
        );
        assert!(body["message"].is_string(), "{body}");
    }
    // 405 names what the route serves.
    let response = running
        .client
        .get(format!("{}{issue}", running.base))
        .send()
        .await?;
    assert_eq!(response.status(), 405);
    assert_eq!(
        response.headers().get("allow").map(|v| v.as_bytes()),
        Some(&b"POST"[..])
    );

    // The issue endpoint takes no body, and one userId only.
    let response = running
        .client
        .post(format!("{}{issue}", running.base))
        .header("userId", "u1")
        .body("{\"userId\":\"someone-else\"}")
        .send()
        .await?;
    assert_eq!(response.status(), 400);
    assert_eq!(response.json::<Value>().await?["code"], "UNEXPECTED_BODY");
    let response = running
        .client
        .post(format!("{}{issue}", running.base))
        .header("userId", "u1")
        .header("userId", "u2")
        .send()
        .await?;
    assert_eq!(response.status(), 400);
    assert_eq!(response.json::<Value>().await?["code"], "INVALID_USER_ID");

    // The OpenAPI document is served and is JSON.
    let (status, document) = call(&running, Method::GET, "/openapi.json", None).await?;
    assert_eq!(status, 200);
    assert_eq!(document["openapi"], "3.0.3");

    // None of those touched the stock.
    let (_, stats) = running
        .admin(Method::GET, &format!("/admin/coupons/{coupon}/stats"), None)
        .await?;
    assert_eq!(stats["redis"]["stock"], 10, "{stats}");

    // Both user id forms from the incident report work.
    for user in ["99999", "smoke-test-1"] {
        let (status, body) = running.issue(coupon, user).await?;
        assert_eq!(status, 202, "{user}: {body}");
    }

    let (status, body) = call(&running, Method::GET, "/health/live", None).await?;
    assert_eq!((status, &body["status"]), (200, &json!("UP")));
    let (status, body) = call(&running, Method::GET, "/health/ready", None).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["kafka"]["status"], "UP", "{body}");

    running.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_validates_events_and_warm_up_never_resets_a_live_event() -> anyhow::Result<()> {
    let env = TestEnv::new(1).await?;
    let running = Running::start(&env).await?;

    let valid = json!({
        "name": "n", "discount_amount": 5000, "total_quantity": 5,
        "issue_starts_at": "2025-12-26T14:00:00+09:00", "issue_ends_at": "2099-12-26T18:00:00+09:00",
        "expiry_days": 30,
    });
    let mut zero = valid.clone();
    zero["total_quantity"] = json!(0);
    let mut backwards = valid.clone();
    backwards["issue_ends_at"] = json!("2025-12-26T13:00:00+09:00");
    let mut extra = valid.clone();
    extra["stock"] = json!(5);
    let mut negative = valid.clone();
    negative["total_quantity"] = json!(-5);
    let mut beyond_mysql = valid.clone();
    beyond_mysql["issue_ends_at"] = json!("9999-12-31T23:00:00-05:00");
    let mut before_epoch = valid.clone();
    before_epoch["issue_starts_at"] = json!("0000-01-01T00:00:00+01:00");
    for (body, status, code) in [
        (zero, 422, "INVALID_COUPON"),
        (backwards, 422, "INVALID_COUPON"),
        (extra, 400, "INVALID_BODY"),
        (negative, 400, "INVALID_BODY"),
        (beyond_mysql, 422, "INVALID_COUPON"),
        (before_epoch, 422, "INVALID_COUPON"),
        (json!("not an object"), 400, "INVALID_BODY"),
    ] {
        let (got, answer) = running
            .admin(Method::POST, "/admin/coupons", Some(body.clone()))
            .await?;
        assert_eq!(
            (got, answer["code"].as_str()),
            (status, Some(code)),
            "{body}: {answer}"
        );
    }
    let wrong_token = running
        .client
        .post(format!("{}/admin/coupons", running.base))
        .bearer_auth("not-the-token")
        .json(&valid)
        .send()
        .await?;
    assert_eq!(wrong_token.status(), 401);

    // Warm-up is safe to repeat: it never gives back stock that users already took.
    let coupon = running.create_coupon(5).await?;
    for user in ["a", "b"] {
        assert_eq!(running.issue(coupon, user).await?.0, 202);
    }
    for _ in 0..2 {
        let (status, body) = running
            .admin(Method::PUT, &format!("/admin/coupons/{coupon}/stock"), None)
            .await?;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["loaded"], false, "{body}");
        assert_eq!(body["redisStock"], 3, "{body}");
    }
    let (status, _) = running
        .admin(Method::PUT, "/admin/coupons/424242/stock", None)
        .await?;
    assert_eq!(status, 404);

    running.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_issuance_window_is_enforced() -> anyhow::Result<()> {
    let env = TestEnv::new(1).await?;
    let running = Running::start(&env).await?;
    let now = OffsetDateTime::now_utc();
    let hour = Duration::from_secs(3600);

    let future = running
        .create_coupon_in_window(5, now + hour, now + 2 * hour)
        .await?;
    let (status, body) = running.issue(future, "early-bird").await?;
    assert_eq!(
        (status, &body["status"]),
        (409, &json!("NOT_OPEN")),
        "{body}"
    );

    let past = running
        .create_coupon_in_window(5, now - 2 * hour, now - hour)
        .await?;
    let (status, body) = running.issue(past, "latecomer").await?;
    assert_eq!((status, &body["status"]), (409, &json!("CLOSED")), "{body}");

    let redis = ReservationStore::new(&env.settings.redis)?;
    for coupon in [future, past] {
        let counters = redis.counters(coupon).await?.context("loaded")?;
        assert_eq!((counters.stock, counters.participants), (5, 0));
    }
    running.stop().await?;
    Ok(())
}
