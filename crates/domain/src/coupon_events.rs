//! What couponrush tells the rest of the company (the coupon box, notifications, analytics,
//! the CS tools) once it is true: a coupon issued by the consumer, or granted by a
//! compensation. Written to the outbox in the transaction that makes it true, published from
//! there to the `coupon-events` topic; `docs/events/` holds the JSON Schema and the consumers'
//! contract (at least once: deduplicate on `eventId`).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::ids::{CouponId, RequestId, UserId};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CouponEventType {
    /// A first-come-first-served request became a coupon held by its user.
    CouponIssued,
    /// A compensation gave its coupon to someone who took part in a source event.
    CouponGranted,
}

impl CouponEventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CouponIssued => "CouponIssued",
            Self::CouponGranted => "CouponGranted",
        }
    }
}

/// Which compensation granted a coupon: its source event and the window of participation it
/// makes good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompensationSource {
    pub source_coupon_id: CouponId,
    #[serde(with = "time::serde::rfc3339")]
    pub window_starts_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub window_ends_at: OffsetDateTime,
}

/// One event of the `coupon-events` topic (the outbox row's payload).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CouponEvent {
    pub version: u32,
    /// Unique per event, the same on every delivery of it: what consumers deduplicate on.
    pub event_id: Uuid,
    #[serde(rename = "type")]
    pub event_type: CouponEventType,
    pub coupon_id: CouponId,
    pub user_id: UserId,
    /// The request the coupon was issued for (its `coupon_user` row's).
    pub request_id: RequestId,
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Only in `CouponGranted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compensation: Option<CompensationSource>,
}

impl CouponEvent {
    pub const SCHEMA_VERSION: u32 = 1;
    /// The outbox's aggregate type: events are about a user's coupon, keyed by user.
    pub const AGGREGATE_TYPE: &'static str = "coupon";

    /// A coupon issued for a request. A new event id, ordered by time (UUIDv7).
    pub fn issued(
        coupon_id: CouponId,
        user_id: UserId,
        request_id: RequestId,
        issued_at: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Self {
        Self {
            version: Self::SCHEMA_VERSION,
            event_id: Uuid::now_v7(),
            event_type: CouponEventType::CouponIssued,
            coupon_id,
            user_id,
            request_id,
            issued_at,
            expires_at,
            compensation: None,
        }
    }

    /// A coupon granted by the compensation `source`.
    pub fn granted(
        coupon_id: CouponId,
        user_id: UserId,
        request_id: RequestId,
        issued_at: OffsetDateTime,
        expires_at: OffsetDateTime,
        source: CompensationSource,
    ) -> Self {
        Self {
            event_type: CouponEventType::CouponGranted,
            compensation: Some(source),
            ..Self::issued(coupon_id, user_id, request_id, issued_at, expires_at)
        }
    }

    pub fn encode(&self) -> String {
        // Serialising plain fields into a string cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn at(seconds: i64) -> Result<OffsetDateTime, time::error::ComponentRange> {
        OffsetDateTime::from_unix_timestamp(1_790_000_000 + seconds)
    }

    #[test]
    fn an_issued_event_reads_back_as_written_without_a_compensation() -> TestResult {
        let event = CouponEvent::issued(
            CouponId::new(7)?,
            UserId::parse("user-1")?,
            RequestId::generate(),
            at(0)?,
            at(86_400)?,
        );
        let json = event.encode();
        assert!(json.contains(r#""type":"CouponIssued""#), "{json}");
        assert!(!json.contains("compensation"), "{json}");
        assert_eq!(CouponEvent::decode(json.as_bytes())?, event);
        Ok(())
    }

    #[test]
    fn a_granted_event_carries_its_compensation_and_a_new_id() -> TestResult {
        let source = CompensationSource {
            source_coupon_id: CouponId::new(3)?,
            window_starts_at: at(-600)?,
            window_ends_at: at(-60)?,
        };
        let coupon = CouponId::new(8)?;
        let user = UserId::parse("user-2")?;
        let request = RequestId::generate();
        let first = CouponEvent::granted(coupon, user.clone(), request, at(0)?, at(60)?, source);
        let second = CouponEvent::granted(coupon, user, request, at(0)?, at(60)?, source);
        assert_eq!(first.event_type, CouponEventType::CouponGranted);
        assert_ne!(first.event_id, second.event_id);
        let json = first.encode();
        assert!(json.contains(r#""sourceCouponId":3"#), "{json}");
        assert_eq!(CouponEvent::decode(json.as_bytes())?, first);
        Ok(())
    }
}
