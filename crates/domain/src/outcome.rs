//! What happened to one issue request.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::RequestId;
use crate::rate_limit::LimitedBy;

/// Where a participant stands, as recorded at reservation time and updated by the consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParticipantState {
    /// Accepted and published; not yet persisted in MySQL. Never shown as issued.
    Pending {
        request_id: RequestId,
        at: OffsetDateTime,
    },
    /// Persisted in MySQL: the coupon is the user's.
    Issued {
        request_id: RequestId,
        at: OffsetDateTime,
    },
}

impl ParticipantState {
    pub fn request_id(&self) -> RequestId {
        match self {
            Self::Pending { request_id, .. } | Self::Issued { request_id, .. } => *request_id,
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            Self::Pending { .. } => "PENDING",
            Self::Issued { .. } => "ISSUED",
        }
    }
}

/// The single decision the atomic reservation makes for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// Stock was taken for this user; `remaining` is the stock left after it.
    Accepted { remaining: u64 },
    /// The user already holds a reservation; nothing changed.
    AlreadyRequested(ParticipantState),
    /// No stock left; nothing changed. `generation` names the coupon's participants as they
    /// stand: it changes whenever stock comes back or a participant is added other than by a
    /// reservation, so while it holds, whoever is not among them is told the same.
    SoldOut { generation: u64 },
    /// No stock left to take, but some is held by reservations whose publish is not decided
    /// yet and may come back: not sold out yet. Nothing changed.
    Held,
    /// The API had already given this request up (its call timed out); nothing changed.
    Void,
    /// The coupon's issuance window has not started.
    NotOpen,
    /// The coupon's issuance window has ended.
    Closed,
    /// No such coupon is loaded.
    UnknownCoupon,
    /// Over the event's abuse limit for this user or client: nothing was read or changed but
    /// the limit's own state. The limit frees in `retry_after_ms`.
    RateLimited { by: LimitedBy, retry_after_ms: u64 },
}

/// Outcome of one attempt, as stored in `event_participation_log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ParticipationOutcome {
    Accepted,
    Duplicate,
    SoldOut,
    NotOpen,
    Closed,
    /// Reserved, but the broker did not acknowledge: released, the user may retry.
    Unavailable,
    Issued,
}

impl ParticipationOutcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Accepted => "ACCEPTED",
            Self::Duplicate => "DUPLICATE",
            Self::SoldOut => "SOLD_OUT",
            Self::NotOpen => "NOT_OPEN",
            Self::Closed => "CLOSED",
            Self::Unavailable => "UNAVAILABLE",
            Self::Issued => "ISSUED",
        }
    }
}
