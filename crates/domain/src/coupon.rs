//! A coupon event: what is offered, how many, when.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::rate_limit::{RateLimitError, RateLimitOverride};

/// Why a coupon specification is refused. Shown to the admin who submitted it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CouponSpecError {
    #[error("name must be 1 to {max} characters and not blank", max = CouponSpec::MAX_NAME_LEN)]
    Name,
    #[error("discount_amount must be positive")]
    Discount,
    #[error("total_quantity must be between 1 and {max}", max = CouponSpec::MAX_QUANTITY)]
    Quantity,
    #[error("issue_ends_at must be after issue_starts_at")]
    Window,
    #[error("issue_starts_at and issue_ends_at must lie between 1970-01-01 and 9999-12-31 UTC")]
    OutOfRange,
    #[error("expiry_days must be between 1 and {max}", max = CouponSpec::MAX_EXPIRY_DAYS)]
    ExpiryDays,
    #[error(transparent)]
    RateLimit(#[from] RateLimitError),
}

/// Everything needed to open a first-come-first-served coupon event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CouponSpec {
    pub name: String,
    /// Discount in the smallest currency unit (KRW has no minor unit).
    pub discount_amount: u32,
    pub total_quantity: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub issue_starts_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub issue_ends_at: OffsetDateTime,
    /// An issued coupon expires this many days after it was issued.
    pub expiry_days: u16,
    /// This event's abuse limits where they differ from the configured defaults.
    #[serde(
        default,
        skip_serializing_if = "RateLimitOverride::is_empty",
        deserialize_with = "crate::rate_limit::object_only"
    )]
    pub rate_limit: RateLimitOverride,
}

impl CouponSpec {
    pub const MAX_NAME_LEN: usize = 100;
    pub const MAX_QUANTITY: u32 = 10_000_000;
    pub const MAX_EXPIRY_DAYS: u16 = 3650;

    pub fn validate(&self) -> Result<(), CouponSpecError> {
        let name_len = self.name.chars().count();
        if self.name.trim().is_empty() || name_len > Self::MAX_NAME_LEN {
            return Err(CouponSpecError::Name);
        }
        if self.discount_amount == 0 {
            return Err(CouponSpecError::Discount);
        }
        if self.total_quantity == 0 || self.total_quantity > Self::MAX_QUANTITY {
            return Err(CouponSpecError::Quantity);
        }
        let in_range = |t: OffsetDateTime| {
            t.checked_to_offset(time::UtcOffset::UTC)
                .is_some_and(|utc| (1970..=9999).contains(&utc.year()))
        };
        if !in_range(self.issue_starts_at) || !in_range(self.issue_ends_at) {
            return Err(CouponSpecError::OutOfRange);
        }
        if self.issue_ends_at <= self.issue_starts_at {
            return Err(CouponSpecError::Window);
        }
        if self.expiry_days == 0 || self.expiry_days > Self::MAX_EXPIRY_DAYS {
            return Err(CouponSpecError::ExpiryDays);
        }
        self.rate_limit.validate()?;
        Ok(())
    }

    /// When a coupon issued at `issued_at` stops being usable.
    pub fn expires_at(&self, issued_at: OffsetDateTime) -> OffsetDateTime {
        expires_at(issued_at, self.expiry_days)
    }
}

/// Expiry of a coupon issued at `issued_at` with a validity of `expiry_days`.
pub fn expires_at(issued_at: OffsetDateTime, expiry_days: u16) -> OffsetDateTime {
    issued_at + Duration::days(i64::from(expiry_days))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn spec() -> CouponSpec {
        CouponSpec {
            name: "Christmas 5,000 KRW".into(),
            discount_amount: 5000,
            total_quantity: 5000,
            issue_starts_at: datetime!(2025-12-26 14:00 +9),
            issue_ends_at: datetime!(2025-12-26 18:00 +9),
            expiry_days: 30,
            rate_limit: RateLimitOverride::default(),
        }
    }

    #[test]
    fn valid_spec_passes() {
        assert_eq!(spec().validate(), Ok(()));
    }

    type Mutation = fn(&mut CouponSpec);

    #[test]
    fn each_rule_is_enforced() {
        let cases: [(Mutation, CouponSpecError); 9] = [
            (|s| s.name = "  ".into(), CouponSpecError::Name),
            (|s| s.discount_amount = 0, CouponSpecError::Discount),
            (|s| s.total_quantity = 0, CouponSpecError::Quantity),
            (
                |s| s.issue_ends_at = s.issue_starts_at,
                CouponSpecError::Window,
            ),
            (|s| s.expiry_days = 0, CouponSpecError::ExpiryDays),
            (
                |s| s.rate_limit.window_ms = Some(0),
                CouponSpecError::RateLimit(RateLimitError::Window {
                    key: "rate_limit.window_ms",
                }),
            ),
            (
                |s| s.total_quantity = CouponSpec::MAX_QUANTITY + 1,
                CouponSpecError::Quantity,
            ),
            // 9999-12-31T23:00-05:00 is in year 10000 in UTC: beyond MySQL's DATETIME.
            (
                |s| s.issue_ends_at = datetime!(9999-12-31 23:00 -5),
                CouponSpecError::OutOfRange,
            ),
            (
                |s| s.issue_starts_at = datetime!(0000-01-01 00:00 +1),
                CouponSpecError::OutOfRange,
            ),
        ];
        for (mutate, expected) in cases {
            let mut s = spec();
            mutate(&mut s);
            assert_eq!(s.validate(), Err(expected));
        }
    }

    #[test]
    fn expiry_adds_days() {
        assert_eq!(
            spec().expires_at(datetime!(2025-12-26 14:00 +9)),
            datetime!(2026-01-25 14:00 +9)
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let json = r#"{"name":"x","discount_amount":1,"total_quantity":1,
            "issue_starts_at":"2025-12-26T14:00:00+09:00","issue_ends_at":"2025-12-26T15:00:00+09:00",
            "expiry_days":1,"stock":5}"#;
        assert!(serde_json::from_str::<CouponSpec>(json).is_err());
    }
}
