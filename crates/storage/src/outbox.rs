//! The outbox's rows (migration `outbox`): the events other systems learn from couponrush,
//! appended in the transaction that issues or grants the coupons they announce, so an event
//! exists exactly when its coupon does: never for a re-delivery, a refused request or a
//! transaction rolled back.

use std::collections::HashMap;

use couponrush_domain::{CompensationSource, CouponEvent, CouponId, UserId};
use diesel::prelude::*;
use diesel_async::{AsyncMysqlConnection, RunQueryDsl};
use time::OffsetDateTime;

use crate::database::ROWS_PER_INSERT;
use crate::error::StorageError;
use crate::inline_values::InlineInsert;
use crate::issuances::NewCouponUser;
use crate::schema::coupon_user;
use crate::time::{from_db, to_db};

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

/// The `CouponGranted` events of the `rows` that went in: the users' rows that carry the request
/// ids this grant generated (a user who already held the coupon kept an older one). Read by
/// the `(coupon_id, user_id)` key, under the coupon's lock.
pub(crate) async fn granted_events(
    conn: &mut AsyncMysqlConnection,
    granted: CouponId,
    source: CompensationSource,
    rows: &[NewCouponUser<'_>],
) -> Result<Vec<CouponEvent>, StorageError> {
    let ours: HashMap<&str, &NewCouponUser<'_>> = rows
        .iter()
        .map(|row| (row.request_id.as_str(), row))
        .collect();
    let users: Vec<&str> = rows.iter().map(|row| row.user_id).collect();
    let mut events = Vec::new();
    for chunk in users.chunks(ROWS_PER_INSERT) {
        let held: Vec<String> = coupon_user::table
            .filter(coupon_user::coupon_id.eq(granted.as_i64()))
            .filter(coupon_user::user_id.eq_any(chunk))
            .select(coupon_user::request_id)
            .load(conn)
            .await?;
        for request_id in held {
            let Some(row) = ours.get(request_id.as_str()) else {
                continue;
            };
            let (Ok(user), Ok(request)) = (UserId::parse(row.user_id), request_id.parse()) else {
                return Err(StorageError::Conflict(format!(
                    "coupon {granted}: granted row {request_id} of {:?} does not read back",
                    row.user_id
                )));
            };
            events.push(CouponEvent::granted(
                granted,
                user,
                request,
                from_db(row.issued_at),
                from_db(row.expires_at),
                source,
            ));
        }
    }
    Ok(events)
}
