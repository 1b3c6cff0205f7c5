//! The outbox's rows (migration `outbox`): the events other systems learn from couponrush,
//! appended in the transaction that issues or grants the coupons they announce, so an event
//! exists exactly when its coupon does: never for a re-delivery, a refused request or a
//! transaction rolled back.

use couponrush_domain::CouponEvent;
use diesel_async::{AsyncMysqlConnection, RunQueryDsl};
use time::OffsetDateTime;

use crate::error::StorageError;
use crate::inline_values::InlineInsert;
use crate::time::to_db;

/// Rows per INSERT: a payload is about 330 bytes, so a statement of 1,000 stays under 1 MiB
/// (an old `max_allowed_packet`).
const OUTBOX_ROWS_PER_INSERT: usize = 1000;

/// Appends `events`, in order, in multi-row INSERTs on `conn`'s transaction.
pub(crate) async fn append(
    conn: &mut AsyncMysqlConnection,
    events: &[CouponEvent],
    now: OffsetDateTime,
) -> Result<(), StorageError> {
    let created_at = to_db(now);
    for chunk in events.chunks(OUTBOX_ROWS_PER_INSERT) {
        let mut insert = InlineInsert::new(
            "outbox",
            &[
                "id",
                "aggregatetype",
                "aggregateid",
                "type",
                "payload",
                "coupon_id",
                "created_at",
            ],
        );
        for event in chunk {
            insert
                .row()
                .text(&event.event_id.to_string())?
                .text(CouponEvent::AGGREGATE_TYPE)?
                .text(event.user_id.as_str())?
                .text(event.event_type.as_str())?
                .json(&event.encode())?
                .int(event.coupon_id.as_i64())
                .datetime(created_at)
                .end();
        }
        if let Some(sql) = insert.finish() {
            let inserted = diesel::sql_query(sql).execute(conn).await?;
            if inserted != chunk.len() {
                return Err(StorageError::Conflict(format!(
                    "outbox: inserted {inserted} of {} events",
                    chunk.len()
                )));
            }
        }
    }
    Ok(())
}
