//! The coupon events a task opens (the demo's, the checks', each benchmark's): the domain's
//! own `CouponSpec`, open from a minute ago (a clock a little behind still sees it open), and
//! `POST /admin/coupons` to create one through issuer-api.

use std::time::Duration;

use anyhow::Context;
use couponrush_domain::{CouponId, CouponSpec};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// An event of `total` coupons worth `discount_amount`, open from a minute ago for
/// `open_for`, each expiring `expiry_days` after issue (whole seconds: the API takes RFC 3339
/// as it prints it).
pub fn open_now(
    name: String,
    discount_amount: u32,
    total: u32,
    expiry_days: u16,
    open_for: time::Duration,
) -> CouponSpec {
    let now = OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    CouponSpec {
        name,
        discount_amount,
        total_quantity: total,
        issue_starts_at: now - time::Duration::minutes(1),
        issue_ends_at: now + open_for,
        expiry_days,
        rate_limit: Default::default(),
    }
}

/// `starts .. ends` in RFC 3339, for a log line.
pub fn window(spec: &CouponSpec) -> String {
    let rfc3339 = |at: OffsetDateTime| at.format(&Rfc3339).unwrap_or_else(|_| at.to_string());
    format!(
        "{} .. {}",
        rfc3339(spec.issue_starts_at),
        rfc3339(spec.issue_ends_at)
    )
}

/// Creates `spec` through issuer-api at `base_url` (`POST /admin/coupons` with the run's
/// admin token); its id.
pub async fn create(
    client: &reqwest::Client,
    base_url: &str,
    admin_token: &str,
    spec: &CouponSpec,
) -> anyhow::Result<CouponId> {
    let response = client
        .post(format!("{base_url}/admin/coupons"))
        .bearer_auth(admin_token)
        .timeout(Duration::from_secs(10))
        .json(spec)
        .send()
        .await
        .context("POST /admin/coupons")?;
    let status = response.status();
    let body = response.text().await?;
    anyhow::ensure!(
        status.is_success(),
        "creating the coupon failed ({status}): {body}"
    );
    let created: serde_json::Value = serde_json::from_str(&body)
        .with_context(|| format!("POST /admin/coupons answered {status} without JSON"))?;
    let id = created
        .get("couponId")
        .and_then(|id| id.as_u64().or_else(|| id.as_str()?.parse().ok()))
        .with_context(|| format!("no couponId in: {body}"))?;
    Ok(CouponId::new(id)?)
}
