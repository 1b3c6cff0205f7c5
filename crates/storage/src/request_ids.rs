//! A request id names one attempt, by one user, at one coupon. A message that reuses an id
//! for another user or coupon (a client bug, a replayed or forged message) must not issue
//! anything: the first holder of the id keeps it and the other is refused.
//!
//! The participation log is where ids are unique (`participation_attempt_once`), and every
//! request's ACCEPTED row is inserted there (first wins) before the batch issues anything, so
//! one indexed read of the batch's ids tells who owns each.

use std::collections::{HashMap, HashSet};

use couponrush_domain::IssueRequested;
use diesel::prelude::*;
use diesel_async::{AsyncMysqlConnection, RunQueryDsl};

use crate::database::ROWS_PER_INSERT;
use crate::error::StorageError;
use crate::schema::event_participation_log;

/// Indices of the `requests` whose id the log gives to another user or coupon. Run after the
/// batch's log rows were inserted, in the same transaction.
pub(crate) async fn conflicting(
    conn: &mut AsyncMysqlConnection,
    requests: &[IssueRequested],
) -> Result<HashSet<usize>, StorageError> {
    let ids: Vec<String> = requests.iter().map(|r| r.request_id.to_string()).collect();
    let mut owners: HashMap<String, (String, i64)> = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(ROWS_PER_INSERT) {
        let rows: Vec<(String, String, i64)> = event_participation_log::table
            .filter(event_participation_log::request_id.eq_any(chunk))
            .select((
                event_participation_log::request_id,
                event_participation_log::user_id,
                event_participation_log::coupon_id,
            ))
            .load(conn)
            .await?;
        owners.extend(
            rows.into_iter()
                .map(|(id, user, coupon)| (id, (user, coupon))),
        );
    }
    Ok(requests
        .iter()
        .zip(&ids)
        .enumerate()
        .filter(|(_, (request, id))| {
            owners.get(*id).is_some_and(|(user, coupon)| {
                user != request.user_id.as_str() || *coupon != request.coupon_id.as_i64()
            })
        })
        .map(|(index, _)| index)
        .collect())
}
