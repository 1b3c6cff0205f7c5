use couponrush_domain::CouponId;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// Failures of the MySQL layer, classified once so callers can decide to retry or give up.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("MySQL at {address} did not answer within {timeout_ms} ms")]
    Timeout { address: String, timeout_ms: u128 },
    #[error("MySQL at {address} is unreachable: {reason}")]
    Unavailable { address: String, reason: String },
    #[error("MySQL query failed: {0}")]
    Query(#[from] DieselError),
    #[error("coupon {0} does not exist in MySQL")]
    UnknownCoupon(CouponId),
    #[error("migrations failed: {0}")]
    Migration(String),
    #[error("concurrent change detected, transaction rolled back: {0}")]
    Conflict(String),
    #[error("value {0:?} cannot be written into SQL text")]
    Unwritable(String),
}

impl StorageError {
    /// Whether trying again later may succeed (outage, deadlock, lock wait), as opposed to a
    /// verdict about the data that a retry cannot change.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Timeout { .. } | Self::Unavailable { .. } => true,
            Self::Query(DieselError::DatabaseError(kind, info)) => {
                matches!(
                    kind,
                    DatabaseErrorKind::SerializationFailure | DatabaseErrorKind::ClosedConnection
                ) || {
                    // mysql_async reports deadlocks (1213) and lock wait timeouts (1205) as
                    // `Unknown` with the server's message.
                    let message = info.message().to_ascii_lowercase();
                    message.contains("deadlock") || message.contains("lock wait timeout")
                }
            }
            Self::Query(DieselError::BrokenTransactionManager) | Self::Conflict(_) => true,
            Self::Query(_) | Self::UnknownCoupon(_) | Self::Migration(_) | Self::Unwritable(_) => {
                false
            }
        }
    }
}
