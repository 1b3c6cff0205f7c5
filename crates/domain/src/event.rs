//! The message the API publishes for each accepted request.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::{CouponId, RequestId, UserId};

/// Why a message could not be read as an [`IssueRequested`].
#[derive(Debug, thiserror::Error)]
pub enum EventDecodeError {
    #[error("message is not valid JSON for an issue request: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("unsupported schema version {0} (this build reads version {current})", current = IssueRequested::SCHEMA_VERSION)]
    UnsupportedVersion(u32),
}

/// A user's accepted request for a coupon, published once the reservation succeeded.
///
/// Keyed by user id on the topic, so all of one user's messages stay in order on one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IssueRequested {
    pub version: u32,
    pub request_id: RequestId,
    pub coupon_id: CouponId,
    pub user_id: UserId,
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
}

#[derive(Deserialize)]
struct VersionProbe {
    version: u32,
}

impl IssueRequested {
    pub const SCHEMA_VERSION: u32 = 1;

    pub fn new(
        request_id: RequestId,
        coupon_id: CouponId,
        user_id: UserId,
        requested_at: OffsetDateTime,
    ) -> Self {
        Self {
            version: Self::SCHEMA_VERSION,
            request_id,
            coupon_id,
            user_id,
            requested_at,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        // Serialising a struct of plain fields into a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a message, checking the schema version before the fields so that a newer
    /// producer's message is reported as such rather than as garbage.
    pub fn decode(bytes: &[u8]) -> Result<Self, EventDecodeError> {
        let probe: VersionProbe = serde_json::from_slice(bytes)?;
        if probe.version != Self::SCHEMA_VERSION {
            return Err(EventDecodeError::UnsupportedVersion(probe.version));
        }
        Ok(serde_json::from_slice(bytes)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn event() -> Result<IssueRequested, crate::IdError> {
        Ok(IssueRequested::new(
            RequestId::generate(),
            CouponId::new(7)?,
            UserId::parse("smoke-test-1")?,
            datetime!(2025-12-26 14:00:00.123 UTC),
        ))
    }

    #[test]
    fn round_trip() -> Result<(), Box<dyn std::error::Error>> {
        let e = event()?;
        assert_eq!(IssueRequested::decode(&e.encode())?, e);
        Ok(())
    }

    #[test]
    fn rejects_other_versions_and_garbage() -> Result<(), Box<dyn std::error::Error>> {
        let mut v: serde_json::Value = serde_json::from_slice(&event()?.encode())?;
        v["version"] = 2.into();
        let bytes = serde_json::to_vec(&v)?;
        assert!(matches!(
            IssueRequested::decode(&bytes),
            Err(EventDecodeError::UnsupportedVersion(2))
        ));
        assert!(matches!(
            IssueRequested::decode(b"not json"),
            Err(EventDecodeError::Malformed(_))
        ));
        v["version"] = 1.into();
        v["userId"] = "bad user".into();
        assert!(IssueRequested::decode(&serde_json::to_vec(&v)?).is_err());
        Ok(())
    }
}
