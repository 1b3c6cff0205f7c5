//! Identifiers that can only exist in a valid form.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why a string is not a valid identifier. The messages are shown to API callers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("coupon id must be a positive integer, got {0:?}")]
    InvalidCouponId(String),
    #[error("user id must not be empty")]
    EmptyUserId,
    #[error("user id must be at most {max} characters, got {len}", max = UserId::MAX_LEN)]
    UserIdTooLong { len: usize },
    #[error("user id may contain only letters, digits, '_' and '-'")]
    UserIdCharset,
    #[error("request id must be a UUID, got {0:?}")]
    InvalidRequestId(String),
}

/// A coupon (one first-come-first-served event). Positive, fits MySQL `BIGINT UNSIGNED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct CouponId(u64);

impl CouponId {
    /// Largest id accepted: MySQL `BIGINT` (signed) so that both column types can hold it.
    pub const MAX: u64 = i64::MAX.unsigned_abs();

    pub fn new(raw: u64) -> Result<Self, IdError> {
        if raw == 0 || raw > Self::MAX {
            return Err(IdError::InvalidCouponId(raw.to_string()));
        }
        Ok(Self(raw))
    }

    pub fn get(self) -> u64 {
        self.0
    }

    /// The id as MySQL's signed `BIGINT`; lossless because `new` caps it at `i64::MAX`.
    pub fn as_i64(self) -> i64 {
        i64::try_from(self.0).unwrap_or(i64::MAX)
    }
}

impl TryFrom<u64> for CouponId {
    type Error = IdError;
    fn try_from(raw: u64) -> Result<Self, IdError> {
        Self::new(raw)
    }
}

impl TryFrom<i64> for CouponId {
    type Error = IdError;
    fn try_from(raw: i64) -> Result<Self, IdError> {
        u64::try_from(raw)
            .map_err(|_| IdError::InvalidCouponId(raw.to_string()))
            .and_then(Self::new)
    }
}

impl From<CouponId> for u64 {
    fn from(id: CouponId) -> u64 {
        id.0
    }
}

impl FromStr for CouponId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        // `u64::from_str` accepts a leading '+'; an id in a URL should be plain digits.
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdError::InvalidCouponId(s.to_owned()));
        }
        s.parse::<u64>()
            .map_err(|_| IdError::InvalidCouponId(s.to_owned()))
            .and_then(Self::new)
    }
}

impl fmt::Display for CouponId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An opaque user identifier: 1 to 64 characters of `[A-Za-z0-9_-]`.
///
/// Opaque on purpose: the incident's users were both `99999` and `smoke-test-1`. The charset
/// keeps ids safe to embed in Redis values, Kafka keys and log lines without escaping.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(String);

impl UserId {
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, IdError> {
        if raw.is_empty() {
            return Err(IdError::EmptyUserId);
        }
        if raw.len() > Self::MAX_LEN {
            return Err(IdError::UserIdTooLong { len: raw.len() });
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(IdError::UserIdCharset);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for UserId {
    type Error = IdError;
    fn try_from(raw: String) -> Result<Self, IdError> {
        Self::parse(&raw)
    }
}

impl From<UserId> for String {
    fn from(id: UserId) -> String {
        id.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Identifies one accepted issue request end to end (API answer, Kafka message, MySQL row).
/// UUIDv7, so ids sort by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RequestId(Uuid);

impl RequestId {
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl FromStr for RequestId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Uuid::parse_str(s)
            .map(Self)
            .map_err(|_| IdError::InvalidRequestId(s.to_owned()))
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.as_hyphenated().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coupon_id_accepts_plain_positive_digits_only() {
        assert_eq!("1".parse::<CouponId>().map(CouponId::get), Ok(1));
        for bad in [
            "",
            "0",
            "-1",
            "+1",
            "1.5",
            "abc",
            " 1",
            "99999999999999999999",
        ] {
            assert!(bad.parse::<CouponId>().is_err(), "{bad:?} must be rejected");
        }
        let max = CouponId::MAX.to_string();
        assert!(max.parse::<CouponId>().is_ok());
        assert!((CouponId::MAX + 1).to_string().parse::<CouponId>().is_err());
    }

    #[test]
    fn user_id_rules() {
        assert!(UserId::parse("99999").is_ok());
        assert!(UserId::parse("smoke-test-1").is_ok());
        assert!(UserId::parse("A_b-9").is_ok());
        assert_eq!(UserId::parse(""), Err(IdError::EmptyUserId));
        assert_eq!(
            UserId::parse(&"x".repeat(65)),
            Err(IdError::UserIdTooLong { len: 65 })
        );
        assert!(UserId::parse(&"x".repeat(64)).is_ok());
        for bad in ["a b", "a|b", "é", "a:b", "a{b}", "a\nb"] {
            assert_eq!(UserId::parse(bad), Err(IdError::UserIdCharset), "{bad:?}");
        }
    }

    #[test]
    fn request_id_round_trips() {
        let id = RequestId::generate();
        assert_eq!(id.to_string().parse::<RequestId>(), Ok(id));
        assert!("nope".parse::<RequestId>().is_err());
    }
}
