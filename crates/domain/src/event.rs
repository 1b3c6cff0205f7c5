//! The messages of the issue topic: an accepted request to persist, or the record of an attempt
//! that reserved nothing (for the participation log). Both are keyed by user id, so all of one
//! user's messages stay in order on one partition.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::{CouponId, RequestId, UserId};
use crate::outcome::ParticipationOutcome;

/// Why a message could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EventDecodeError {
    #[error("message is not valid JSON of a known kind: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("unknown message kind {0:?}")]
    UnknownKind(String),
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
struct Probe {
    version: u32,
    /// Absent in issue requests, which predate other kinds.
    kind: Option<String>,
}

/// The outcome of one attempt that did not become an issue request, recorded for later
/// compensation. Accepted attempts are logged from their [`IssueRequested`] instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipationRecorded {
    pub version: u32,
    pub kind: String,
    /// Unique per attempt: makes re-delivery harmless.
    pub request_id: RequestId,
    pub coupon_id: CouponId,
    pub user_id: UserId,
    pub outcome: ParticipationOutcome,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
}

impl ParticipationRecorded {
    pub const KIND: &'static str = "participation";

    pub fn new(
        request_id: RequestId,
        coupon_id: CouponId,
        user_id: UserId,
        outcome: ParticipationOutcome,
        occurred_at: OffsetDateTime,
    ) -> Self {
        Self {
            version: IssueRequested::SCHEMA_VERSION,
            kind: Self::KIND.to_owned(),
            request_id,
            coupon_id,
            user_id,
            outcome,
            occurred_at,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Any message of the issue topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicMessage {
    IssueRequested(IssueRequested),
    Participation(ParticipationRecorded),
}

impl TopicMessage {
    /// Reads a message, checking version and kind before the fields so that a newer
    /// producer's message is reported as such rather than as garbage.
    pub fn decode(bytes: &[u8]) -> Result<Self, EventDecodeError> {
        let probe: Probe = serde_json::from_slice(bytes)?;
        if probe.version != IssueRequested::SCHEMA_VERSION {
            return Err(EventDecodeError::UnsupportedVersion(probe.version));
        }
        match probe.kind.as_deref() {
            None => Ok(Self::IssueRequested(serde_json::from_slice(bytes)?)),
            Some(ParticipationRecorded::KIND) => {
                Ok(Self::Participation(serde_json::from_slice(bytes)?))
            }
            Some(other) => Err(EventDecodeError::UnknownKind(other.to_owned())),
        }
    }
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

    /// Reads a message that must be an issue request.
    pub fn decode(bytes: &[u8]) -> Result<Self, EventDecodeError> {
        match TopicMessage::decode(bytes)? {
            TopicMessage::IssueRequested(request) => Ok(request),
            TopicMessage::Participation(p) => Err(EventDecodeError::UnknownKind(p.kind)),
        }
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
        v["kind"] = "refund".into();
        assert!(matches!(
            TopicMessage::decode(&serde_json::to_vec(&v)?),
            Err(EventDecodeError::UnknownKind(_))
        ));
        v.as_object_mut().map(|o| o.remove("kind"));
        v["userId"] = "bad user".into();
        assert!(IssueRequested::decode(&serde_json::to_vec(&v)?).is_err());
        Ok(())
    }
}

#[cfg(test)]
mod participation_tests {
    use super::*;

    #[test]
    fn participation_round_trips_as_its_own_kind() -> Result<(), Box<dyn std::error::Error>> {
        let record = ParticipationRecorded::new(
            RequestId::generate(),
            CouponId::new(3)?,
            UserId::parse("99999")?,
            ParticipationOutcome::SoldOut,
            OffsetDateTime::UNIX_EPOCH,
        );
        assert_eq!(
            TopicMessage::decode(&record.encode())?,
            TopicMessage::Participation(record.clone())
        );
        assert!(IssueRequested::decode(&record.encode()).is_err());
        Ok(())
    }
}
