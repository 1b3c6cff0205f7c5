//! The coupon issuance domain, free of infrastructure.
//!
//! Everything here is plain data and rules: identifiers that validate themselves, the coupon
//! event specification, the outcome of a reservation, the event the API publishes for the
//! consumer, and the events the rest of the company learns from the outbox. Adapters (Redis,
//! Kafka, MySQL, HTTP) translate to and from these types; they never leak into this crate,
//! which CI proves with `cargo tree -i`.

pub mod coupon;
pub mod coupon_events;
pub mod event;
pub mod ids;
pub mod outcome;
pub mod rate_limit;
pub mod reconciliation;

pub use coupon::{CouponSpec, CouponSpecError};
pub use coupon_events::{CompensationSource, CouponEvent, CouponEventType};
pub use event::{EventDecodeError, IssueRequested, ParticipationRecorded, TopicMessage};
pub use ids::{CouponId, IdError, RequestId, UserId};
pub use outcome::{ParticipantState, ParticipationOutcome, Reservation};
pub use rate_limit::{LimitedBy, RateLimitError, RateLimitOverride, RateLimits};
