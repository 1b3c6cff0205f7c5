//! MySQL adapter: schema, embedded migrations and the issuance write path.
//!
//! Pure Rust (diesel-async over mysql_async): no libmysqlclient, so every binary links the
//! same way on a bare Debian machine. Storage errors are mapped here, once, into
//! [`StorageError`]; callers never see diesel's error type.

mod compensations;
mod connect;
mod coupons;
mod database;
mod error;
mod inline_values;
mod issuance_reads;
mod issuances;
mod outbox;
mod outbox_store;
mod participation_log;
mod request_ids;
pub mod schema;
mod time;

pub use compensations::{
    CompensationCoupon, CompensationRefused, CompensationStore, CompensationWindow, EligibleCounts,
    ResolvedCompensation,
};
pub use connect::connect;
pub use coupons::{CouponRecord, CouponStore};
pub use database::{Database, MIGRATIONS};
pub use error::StorageError;
pub use issuance_reads::{Holders, IssuedCoupon};
pub use issuances::{IssuanceStore, Persisted};
pub use outbox_store::{OutboxLag, OutboxStore, PendingEvent};
