//! MySQL `DATETIME(3)` holds UTC wall-clock time with millisecond precision.

use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

/// To the column's form: UTC, truncated to milliseconds so a value reads back equal.
/// Callers pass validated times (years 1970 to 9999 in UTC); anything that would not convert
/// becomes the epoch rather than a panic.
pub(crate) fn to_db(t: OffsetDateTime) -> PrimitiveDateTime {
    let utc = t
        .checked_to_offset(UtcOffset::UTC)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let utc = utc.replace_millisecond(utc.millisecond()).unwrap_or(utc);
    PrimitiveDateTime::new(utc.date(), utc.time())
}

pub(crate) fn from_db(t: PrimitiveDateTime) -> OffsetDateTime {
    t.assume_utc()
}
