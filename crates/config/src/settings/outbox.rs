//! `[outbox]`: the events the rest of the company learns from couponrush (docs/events/).

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxSettings {
    /// coupon-consumer and `compensation-batch compensate` write a `CouponIssued` /
    /// `CouponGranted` event per coupon issued or granted, in the same transaction.
    pub enabled: bool,
}
