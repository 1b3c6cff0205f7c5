//! Reading the outbox for its relay: claiming pending rows, marking the published ones, how far
//! behind it is, and purging what was published long ago.

use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Datetime, Nullable};
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};
use time::OffsetDateTime;

use crate::database::Database;
use crate::error::StorageError;
use crate::schema::outbox;
use crate::time::{from_db, to_db};

/// An outbox row waiting to be published.
#[derive(Debug, Clone, Queryable)]
pub struct PendingEvent {
    pub seq: i64,
    /// The event id (`eventId` in the payload).
    pub id: String,
    /// The user id: the message key.
    pub key: String,
    pub event_type: String,
    pub payload: String,
    pub traceparent: Option<String>,
    pub created_at: time::PrimitiveDateTime,
}

/// How far behind the relay is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboxLag {
    pub pending: u64,
    /// When the oldest pending row was written; `None` with nothing pending.
    pub oldest: Option<OffsetDateTime>,
}

/// The outbox as its relay and housekeeping see it.
#[derive(Debug, Clone)]
pub struct OutboxStore {
    db: Database,
}

#[derive(QueryableByName)]
struct LagRow {
    #[diesel(sql_type = BigInt)]
    pending: i64,
    #[diesel(sql_type = Nullable<Datetime>)]
    oldest: Option<time::PrimitiveDateTime>,
}

impl OutboxStore {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// Claims up to `limit` unpublished rows, oldest first, skipping rows another relay holds
    /// (`FOR UPDATE SKIP LOCKED`: several relays never publish one row twice while each is
    /// alive), hands them to `publish`, marks the ones it reports published (`true` at the
    /// same index) and commits. Returns how many were marked; 0 when nothing was pending.
    ///
    /// The rows stay locked while `publish` runs, so `publish_bound` (the longest a publish
    /// may take) extends the transaction's deadline. A relay that dies before the commit leaves
    /// its rows unmarked: they are published again, with the same event ids.
    pub async fn relay<F, Published>(
        &self,
        limit: usize,
        publish_bound: Duration,
        publish: F,
    ) -> Result<usize, StorageError>
    where
        F: FnOnce(Vec<PendingEvent>) -> Published + Send,
        Published: Future<Output = Vec<bool>> + Send,
    {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db
            .run_within(self.db.deadline() + publish_bound, async |conn| {
                conn.transaction(async |conn| {
                    let claimed: Vec<PendingEvent> = outbox::table
                        .filter(outbox::published_at.is_null())
                        .order(outbox::seq)
                        .limit(limit)
                        .select((
                            outbox::seq,
                            outbox::id,
                            outbox::aggregateid,
                            outbox::event_type,
                            outbox::payload,
                            outbox::traceparent,
                            outbox::created_at,
                        ))
                        .for_update()
                        .skip_locked()
                        .load(conn)
                        .await?;
                    if claimed.is_empty() {
                        return Ok(0);
                    }
                    let seqs: Vec<i64> = claimed.iter().map(|event| event.seq).collect();
                    let published = publish(claimed).await;
                    let done: Vec<i64> = seqs
                        .into_iter()
                        .zip(published)
                        .filter_map(|(seq, published)| published.then_some(seq))
                        .collect();
                    mark_published(conn, &done).await?;
                    Ok(done.len())
                })
                .await
            })
            .await
    }

    /// Rows not yet published and the age of the oldest.
    pub async fn lag(&self) -> Result<OutboxLag, StorageError> {
        let row: LagRow = self
            .db
            .run(async |conn| {
                Ok(diesel::sql_query(
                    "SELECT COUNT(*) AS pending, MIN(created_at) AS oldest \
                     FROM outbox WHERE published_at IS NULL",
                )
                .get_result(conn)
                .await?)
            })
            .await?;
        Ok(OutboxLag {
            pending: u64::try_from(row.pending).unwrap_or(0),
            oldest: row.oldest.map(from_db),
        })
    }

    /// Deletes up to `limit` rows published before `before`, oldest first: their keys are read,
    /// then deleted by primary key, so the delete locks those rows and no range of others;
    /// returns how many went. With
    /// `unpublished_too` (Debezium publishes, the built-in relay marks nothing), rows written
    /// before `before` go whether marked or not. Call it until it returns less than `limit`.
    pub async fn purge(
        &self,
        before: OffsetDateTime,
        unpublished_too: bool,
        limit: usize,
    ) -> Result<usize, StorageError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let before = to_db(before);
        self.db
            .run(async |conn| {
                let oldest = outbox::table
                    .select(outbox::seq)
                    .order(outbox::seq)
                    .limit(limit)
                    .into_boxed();
                let due = if unpublished_too {
                    oldest.filter(outbox::created_at.lt(before))
                } else {
                    oldest.filter(outbox::published_at.lt(before))
                };
                let seqs: Vec<i64> = due.load(conn).await?;
                if seqs.is_empty() {
                    return Ok(0);
                }
                Ok(
                    diesel::delete(outbox::table.filter(outbox::seq.eq_any(&seqs)))
                        .execute(conn)
                        .await?,
                )
            })
            .await
    }
}

/// Marks the rows at `seqs` published now.
async fn mark_published(conn: &mut AsyncMysqlConnection, seqs: &[i64]) -> Result<(), StorageError> {
    if seqs.is_empty() {
        return Ok(());
    }
    let now = to_db(OffsetDateTime::now_utc());
    diesel::update(outbox::table.filter(outbox::seq.eq_any(seqs)))
        .set(outbox::published_at.eq(Some(now)))
        .execute(conn)
        .await?;
    Ok(())
}
