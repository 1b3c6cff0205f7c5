//! What the cache crate's tests share.

use couponrush_domain::CouponSpec;
use time::OffsetDateTime;

/// A coupon of `total` whose window is open now.
pub fn open(total: u32) -> CouponSpec {
    let now = OffsetDateTime::now_utc();
    CouponSpec {
        name: "cache test".into(),
        discount_amount: 1000,
        total_quantity: total,
        issue_starts_at: now - time::Duration::hours(1),
        issue_ends_at: now + time::Duration::hours(1),
        expiry_days: 7,
        rate_limit: Default::default(),
    }
}
