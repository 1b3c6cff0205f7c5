//! The dedicated smoke coupon: found in MySQL by its configured name (window open, stock
//! left), else created through the admin API with the largest stock a coupon may have. Smoke
//! issuances never take a unit of a real event's stock.

use couponrush_domain::{CouponId, CouponSpec};
use couponrush_storage::{CouponStore, Database};
use serde_json::Value;
use time::{Duration, OffsetDateTime};

use super::http::{causes, endpoint, send};
use super::plan::Plan;

/// A smoke coupon found must stay open at least this long: one about to close is replaced.
const STAYS_OPEN_AT_LEAST: Duration = Duration::days(1);
/// A created coupon opens this far in the past: an API host whose clock runs behind the smoke
/// job's must already find it open.
const OPENED_BEFORE: Duration = Duration::hours(1);

/// The smoke coupon's id, and how it was had.
pub async fn smoke_coupon(
    plan: &Plan,
    db: &Database,
    client: &reqwest::Client,
) -> Result<(CouponId, String), String> {
    let now = OffsetDateTime::now_utc();
    let found = CouponStore::new(db.clone())
        .find_open_by_name(
            &plan.coupon_name,
            now,
            now + STAYS_OPEN_AT_LEAST,
            plan.count,
        )
        .await
        .map_err(|error| {
            format!(
                "MySQL at {}: looking for the smoke coupon: {}",
                db.address(),
                causes(&error)
            )
        })?;
    if let Some(coupon) = found {
        return Ok((
            coupon.id,
            format!(
                "coupon {} {:?} ({} left in MySQL)",
                coupon.id, plan.coupon_name, coupon.available_quantity
            ),
        ));
    }
    let id = create(plan, client, now).await?;
    tracing::info!(coupon.id = %id, name = %plan.coupon_name, "smoke coupon created");
    Ok((id, format!("coupon {id} {:?} (created)", plan.coupon_name)))
}

/// `POST /admin/coupons`: the new coupon's id; anything but 201 with the stock loaded into
/// Redis is an error saying what the API answered.
async fn create(
    plan: &Plan,
    client: &reqwest::Client,
    now: OffsetDateTime,
) -> Result<CouponId, String> {
    let spec = CouponSpec {
        name: plan.coupon_name.clone(),
        discount_amount: 1,
        total_quantity: CouponSpec::MAX_QUANTITY,
        issue_starts_at: now - OPENED_BEFORE,
        issue_ends_at: now + Duration::days(i64::from(plan.coupon_window_days)),
        expiry_days: 1,
        rate_limit: Default::default(),
    };
    spec.validate()
        .map_err(|error| format!("smoke coupon {:?}: {error}", plan.coupon_name))?;
    let url = endpoint(&plan.api, "/admin/coupons")?;
    let what = format!("POST {url}");
    if plan.admin_token.is_empty() {
        return Err(format!(
            "no open smoke coupon {:?} in MySQL, and admin.token (COUPON__ADMIN__TOKEN) is \
             empty: cannot create one with {what}",
            plan.coupon_name
        ));
    }
    let seen = send(
        client
            .post(url.clone())
            .bearer_auth(plan.admin_token.expose())
            .json(&spec),
        &what,
    )
    .await?;
    if seen.status != 201 {
        return Err(format!(
            "creating the smoke coupon: {what} {}",
            seen.describe()
        ));
    }
    let body: Value = serde_json::from_str(&seen.body).map_err(|error| {
        format!("creating the smoke coupon: {what} answered 201 with no JSON ({error})")
    })?;
    let id = body["couponId"]
        .as_u64()
        .and_then(|id| CouponId::new(id).ok())
        .ok_or_else(|| format!("creating the smoke coupon: {what} {}", seen.describe()))?;
    if body["redisLoaded"] != Value::Bool(true) {
        return Err(format!(
            "smoke coupon {id} created but its stock is not in Redis: {what} {}",
            seen.describe()
        ));
    }
    Ok(id)
}
