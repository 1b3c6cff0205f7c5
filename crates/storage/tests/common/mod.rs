//! What the storage tests share.

use couponrush_domain::{CouponId, CouponSpec};
use couponrush_storage::CouponStore;
use time::{Duration, OffsetDateTime};

/// An event open from an hour ago for an hour, with `total` coupons.
pub async fn open_coupon(
    coupons: &CouponStore,
    name: &str,
    total: u32,
) -> anyhow::Result<CouponId> {
    let now = OffsetDateTime::now_utc();
    Ok(coupons
        .create(&CouponSpec {
            name: name.into(),
            discount_amount: 1000,
            total_quantity: total,
            issue_starts_at: now - Duration::hours(1),
            issue_ends_at: now + Duration::hours(1),
            expiry_days: 7,
            rate_limit: Default::default(),
        })
        .await?
        .id)
}
