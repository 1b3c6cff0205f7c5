//! The participation log's rows as the consumer writes them: one per attempt, idempotent on its
//! request id, so a re-delivered record is ignored.

use couponrush_domain::{IssueRequested, ParticipationOutcome, ParticipationRecorded};
use diesel_async::{AsyncMysqlConnection, RunQueryDsl};

use crate::error::StorageError;
use crate::inline_values::{INLINE_ROWS_PER_INSERT, InlineInsert};
use crate::time::to_db;

/// One row of the participation log, written with [`InlineInsert`].
pub(crate) struct NewParticipation<'a> {
    coupon_id: i64,
    user_id: &'a str,
    outcome: &'static str,
    request_id: String,
    occurred_at: time::PrimitiveDateTime,
}

impl<'a> NewParticipation<'a> {
    pub(crate) fn of(record: &'a ParticipationRecorded) -> Self {
        Self {
            coupon_id: record.coupon_id.as_i64(),
            user_id: record.user_id.as_str(),
            outcome: record.outcome.as_str(),
            request_id: record.request_id.to_string(),
            occurred_at: to_db(record.occurred_at),
        }
    }

    pub(crate) fn accepted(request: &'a IssueRequested) -> Self {
        Self {
            coupon_id: request.coupon_id.as_i64(),
            user_id: request.user_id.as_str(),
            outcome: ParticipationOutcome::Accepted.as_str(),
            request_id: request.request_id.to_string(),
            occurred_at: to_db(request.requested_at),
        }
    }
}

/// `INSERT IGNORE`s participation log rows in chunks (a re-delivered attempt is already there);
/// returns how many went in.
pub(crate) async fn insert_log(
    conn: &mut AsyncMysqlConnection,
    log: &[NewParticipation<'_>],
) -> Result<usize, StorageError> {
    let mut inserted = 0;
    for chunk in log.chunks(INLINE_ROWS_PER_INSERT) {
        let mut insert = InlineInsert::ignoring(
            "event_participation_log",
            &[
                "coupon_id",
                "user_id",
                "outcome",
                "request_id",
                "occurred_at",
            ],
        );
        for row in chunk {
            insert
                .row()
                .int(row.coupon_id)
                .text(row.user_id)?
                .text(row.outcome)?
                .text(&row.request_id)?
                .datetime(row.occurred_at)
                .end();
        }
        if let Some(sql) = insert.finish() {
            inserted += diesel::sql_query(sql).execute(conn).await?;
        }
    }
    Ok(inserted)
}
