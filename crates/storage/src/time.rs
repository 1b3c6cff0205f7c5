//! MySQL `DATETIME(3)` holds UTC wall-clock time with millisecond precision.

use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

/// To the column's form: UTC, truncated to milliseconds so a value reads back equal.
pub(crate) fn to_db(t: OffsetDateTime) -> PrimitiveDateTime {
    let utc = t.to_offset(UtcOffset::UTC);
    let utc = utc.replace_millisecond(utc.millisecond()).unwrap_or(utc);
    PrimitiveDateTime::new(utc.date(), utc.time())
}

pub(crate) fn from_db(t: PrimitiveDateTime) -> OffsetDateTime {
    t.assume_utc()
}
