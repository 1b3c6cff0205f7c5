//! `GET /coupons/{couponId}/issuances/{userId}` tells each state truthfully, from Redis when it
//! knows and from MySQL when it does not.

use std::time::Duration;

use anyhow::Context;
use couponrush_domain::{CouponId, IssueRequested, RequestId, UserId};
use couponrush_e2e::Running;
use couponrush_storage::{Database, IssuanceStore};
use couponrush_testkit::{TestEnv, delete_keys, eventually};
use reqwest::Method;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

async fn status(running: &Running, coupon: CouponId, user: &str) -> anyhow::Result<(u16, Value)> {
    let response = running
        .client
        .get(format!(
            "{}/coupons/{coupon}/issuances/{user}",
            running.base
        ))
        .header("userId", user)
        .send()
        .await?;
    Ok((response.status().as_u16(), response.json().await?))
}

fn time_of(body: &Value, field: &str) -> anyhow::Result<OffsetDateTime> {
    let raw = body[field]
        .as_str()
        .with_context(|| format!("{field} in {body}"))?;
    Ok(OffsetDateTime::parse(raw, &Rfc3339)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_state_is_reported_and_mysql_answers_when_redis_forgets() -> anyhow::Result<()> {
    let env = TestEnv::new(1).await?;
    let running = Running::start(&env).await?;
    let coupon = running.create_coupon(1).await?;

    let (code, body) = status(&running, coupon, "alice").await?;
    assert_eq!(
        (code, body["status"].as_str()),
        (200, Some("NOT_REQUESTED")),
        "{body}"
    );

    assert_eq!(running.issue(coupon, "alice").await?.0, 202);
    let issued = eventually(Duration::from_secs(30), "alice ISSUED", async || {
        let (_, body) = status(&running, coupon, "alice").await.ok()?;
        (body["status"] == "ISSUED").then_some(body)
    })
    .await?;
    let issued_at = time_of(&issued, "issuedAt")?;
    assert_eq!(
        time_of(&issued, "expiresAt")?,
        issued_at + Duration::from_secs(30 * 86_400)
    );
    assert!(issued["requestId"].is_string(), "{issued}");

    let (_, body) = status(&running, coupon, "bob").await?;
    assert_eq!(body["status"], "SOLD_OUT", "{body}");

    // Input errors and unknown coupons.
    let (code, body) = status(&running, coupon, "not%20valid").await?;
    assert_eq!(
        (code, body["code"].as_str()),
        (400, Some("INVALID_USER_ID")),
        "{body}"
    );
    let (code, body) = status(&running, CouponId::new(777_777)?, "alice").await?;
    assert_eq!(
        (code, body["code"].as_str()),
        (404, Some("COUPON_NOT_FOUND")),
        "{body}"
    );

    // Redis loses everything about the coupon: MySQL still tells the truth.
    delete_keys(&env.settings.redis).await?;
    let (_, body) = status(&running, coupon, "alice").await?;
    assert_eq!(body["status"], "ISSUED", "{body}");
    assert_eq!(time_of(&body, "issuedAt")?, issued_at);
    let (_, body) = status(&running, coupon, "bob").await?;
    assert_eq!(body["status"], "SOLD_OUT", "{body}");

    running.stop().await?;
    Ok(())
}

/// A consumer that committed MySQL but died before confirming in Redis: the status endpoint
/// must already say ISSUED (MySQL is the record), and nothing says ISSUED before that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_is_issued_as_soon_as_mysql_has_the_row() -> anyhow::Result<()> {
    let env = TestEnv::new(1).await?;
    let running = Running::api_only(&env).await?;
    let coupon = running.create_coupon(5).await?;

    let (code, body) = running.issue(coupon, "carol").await?;
    assert_eq!(code, 202, "{body}");
    let request_id: RequestId = body["requestId"].as_str().context("requestId")?.parse()?;

    let (_, body) = status(&running, coupon, "carol").await?;
    assert_eq!(body["status"], "PENDING", "{body}");
    assert_eq!(body["requestId"], request_id.to_string());
    let (code, body) = running.issue(coupon, "carol").await?;
    assert_eq!(
        (code, body["status"].as_str()),
        (409, Some("PENDING")),
        "{body}"
    );

    // What a consumer does first: the MySQL transaction.
    let issuances = IssuanceStore::new(Database::new(&env.settings.mysql)?);
    let event = IssueRequested::new(
        request_id,
        coupon,
        UserId::parse("carol")?,
        OffsetDateTime::now_utc(),
    );
    issuances.issue(&event, OffsetDateTime::now_utc()).await?;

    let (_, body) = status(&running, coupon, "carol").await?;
    assert_eq!(body["status"], "ISSUED", "{body}");
    assert_eq!(body["requestId"], request_id.to_string());

    let (_, stats) = running
        .admin(Method::GET, &format!("/admin/coupons/{coupon}/stats"), None)
        .await?;
    assert_eq!(stats["mysql"]["issued"], 1, "{stats}");

    running.stop().await?;
    Ok(())
}
