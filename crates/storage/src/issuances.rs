use std::collections::{BTreeMap, HashMap, HashSet};

use couponrush_domain::coupon::expires_at;
use couponrush_domain::{CouponEvent, CouponId, IssueRequested, ParticipationRecorded};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};
use time::OffsetDateTime;

use crate::database::Database;
use crate::error::StorageError;
use crate::inline_values::{INLINE_ROWS_PER_INSERT, InlineInsert};
use crate::participation_log::{NewParticipation, insert_log};
use crate::schema::{coupon, coupon_user};
use crate::time::{from_db, to_db};
use crate::{outbox, request_ids};

/// What persisting one request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persisted {
    /// A new `coupon_user` row; stock was decremented by one.
    Issued { issued_at: OffsetDateTime },
    /// The user already held this coupon (redelivery); nothing changed.
    AlreadyIssued { issued_at: OffsetDateTime },
    /// MySQL has no stock left for it: not issued. Redis and MySQL disagree; this must be
    /// dead-lettered and investigated, never silently issued beyond the total.
    OutOfStock,
    /// The coupon does not exist in MySQL: not issued.
    UnknownCoupon,
    /// Its request id already belongs to another user's (or coupon's) attempt: not issued.
    RequestIdConflict,
}

#[derive(Insertable)]
#[diesel(table_name = coupon_user)]
pub(crate) struct NewCouponUser<'a> {
    pub(crate) coupon_id: i64,
    pub(crate) user_id: &'a str,
    pub(crate) request_id: String,
    pub(crate) status: &'static str,
    pub(crate) issued_at: time::PrimitiveDateTime,
    pub(crate) expires_at: time::PrimitiveDateTime,
}

/// Writes issuances: the consumer's side of the pipeline.
#[derive(Debug, Clone)]
pub struct IssuanceStore {
    pub(crate) db: Database,
    /// Whether each issued row gets its `CouponIssued` event in the outbox.
    outbox: bool,
}

impl IssuanceStore {
    /// Without outbox events; see [`Self::with_outbox`].
    pub fn new(db: Database) -> Self {
        Self { db, outbox: false }
    }

    /// With `on`, every row issued gets a `CouponIssued` event in the outbox, in the same
    /// transaction; a re-delivery or a refused request gets none.
    #[must_use]
    pub fn with_outbox(self, on: bool) -> Self {
        Self { outbox: on, ..self }
    }

    /// Issues the coupon of `request` to its user, at most once.
    pub async fn issue(
        &self,
        request: &IssueRequested,
        now: OffsetDateTime,
    ) -> Result<Persisted, StorageError> {
        let mut outcome = self
            .persist_batch(std::slice::from_ref(request), &[], now)
            .await?;
        Ok(outcome.pop().unwrap_or(Persisted::UnknownCoupon))
    }

    /// Persists a batch: the participation log rows (one ACCEPTED row per request plus the
    /// given records), and for each coupon the new `coupon_user` rows with the stock
    /// decremented by exactly the number of rows inserted. Returns one [`Persisted`] per
    /// request, in order.
    ///
    /// Two transactions on two connections, in flight at once, because MySQL then writes the
    /// log's and the issuance's indexes on two cores instead of one after the other (the
    /// consumer's throughput is bound by this call): the log's, and the issuance's, which
    /// commits only after the log's has. So every issued row has its ACCEPTED record, and a
    /// log committed without its issuance (a failure in between) is a batch still pending,
    /// which the retry or the re-delivery completes: both inserts are idempotent.
    ///
    /// Each coupon's row is locked (`FOR UPDATE`, in id order so consumers never deadlock)
    /// before its users are read and inserted: no one else can insert for that coupon
    /// meanwhile, so "not there yet" stays true until we insert. A user twice in the batch, or
    /// already in MySQL, is a re-delivery and changes nothing; a request whose id another
    /// user's attempt already holds is refused. Requests beyond the MySQL stock
    /// are not issued (`OutOfStock`), and a `CHECK` keeps `available_quantity` non-negative
    /// whatever happens. With the outbox on, each row issued gets its `CouponIssued` event in
    /// the issuance's transaction, so an undone attempt undoes its events too.
    pub async fn persist_batch(
        &self,
        requests: &[IssueRequested],
        participation: &[ParticipationRecorded],
        now: OffsetDateTime,
    ) -> Result<Vec<Persisted>, StorageError> {
        let log: Vec<NewParticipation<'_>> = requests
            .iter()
            .map(NewParticipation::accepted)
            .chain(participation.iter().map(NewParticipation::of))
            .collect();
        if requests.is_empty() {
            if !log.is_empty() {
                self.db
                    .run(async |conn| {
                        conn.transaction(async |conn| insert_log(conn, &log).await)
                            .await
                    })
                    .await?;
            }
            return Ok(Vec::new());
        }
        self.db
            .run_pair(async |log_conn, issue_conn| {
                let (logged_tx, logged_rx) = tokio::sync::oneshot::channel();
                let write_log = async {
                    let logged = log_conn
                        .transaction(async |conn| insert_log(conn, &log).await)
                        .await?;
                    // Sent once committed: the issuance commits only after its log.
                    logged_tx.send(logged).ok();
                    Ok::<_, StorageError>(())
                };
                let issue = issue_conn.transaction(async |conn| {
                    let issue = Issue::new(requests, now, self.outbox);
                    issue_if_all_logged(conn, &issue, logged_rx, log.len()).await
                });
                let (logged, issued) = tokio::join!(write_log, issue);
                // The log's failure first: the issuance's is then only that it was missing.
                logged?;
                if let Some(outcomes) = issued? {
                    return Ok(outcomes);
                }
                // Some log rows were there already (a re-delivery, or a request id reused):
                // with the log committed, read who owns each id, then issue.
                issue_conn
                    .transaction(async |conn| {
                        let conflicts = request_ids::conflicting(conn, requests).await?;
                        issue_all(conn, &Issue::new(requests, now, self.outbox), &conflicts).await
                    })
                    .await
            })
            .await
    }

    /// The issuance part of [`Self::persist_batch`] alone, in one transaction: per coupon the
    /// row lock, the `coupon_user` insert and the stock decrement, without the participation
    /// log and the request-id check that rests on it. The consumer never calls it: it is what
    /// the issuance itself costs MySQL, the benchmark's "plain" insert ceiling, measured with
    /// the consumer's own statements instead of a copy of them.
    pub async fn issue_without_log(
        &self,
        requests: &[IssueRequested],
        now: OffsetDateTime,
    ) -> Result<Vec<Persisted>, StorageError> {
        self.db
            .run(async |conn| {
                conn.transaction(async |conn| {
                    let issue = Issue::new(requests, now, false);
                    issue_all(conn, &issue, &HashSet::new()).await
                })
                .await
            })
            .await
    }
}

/// Issues `requests` as first deliveries, then waits for the log's transaction to commit and
/// keeps the issuance only if every log row went in (`expected`). Request ids are unique in the
/// log: when all went in, no id was anyone's before, so none conflicts and the read of their
/// owners is saved (almost every batch). Otherwise the issuance is undone and `None` returned:
/// the caller checks the ids against the committed log and issues again.
async fn issue_if_all_logged(
    conn: &mut AsyncMysqlConnection,
    issue: &Issue<'_>,
    logged: tokio::sync::oneshot::Receiver<usize>,
    expected: usize,
) -> Result<Option<Vec<Persisted>>, StorageError> {
    diesel::sql_query("SAVEPOINT unchecked_ids")
        .execute(conn)
        .await?;
    let outcomes = issue_all(conn, issue, &HashSet::new()).await?;
    let Ok(logged) = logged.await else {
        // The log's transaction failed: its error is the one reported.
        return Err(StorageError::Conflict(
            "the batch's participation log was not written".to_owned(),
        ));
    };
    if logged == expected {
        return Ok(Some(outcomes));
    }
    diesel::sql_query("ROLLBACK TO SAVEPOINT unchecked_ids")
        .execute(conn)
        .await?;
    Ok(None)
}

/// What one issuance writes: the requests, when, and whether with outbox events.
struct Issue<'a> {
    requests: &'a [IssueRequested],
    now: OffsetDateTime,
    outbox: bool,
}

impl<'a> Issue<'a> {
    fn new(requests: &'a [IssueRequested], now: OffsetDateTime, outbox: bool) -> Self {
        Self {
            requests,
            now,
            outbox,
        }
    }
}

/// Issues the requests coupon by coupon (in id order, so consumers never deadlock), except
/// those at `conflicts` (refused); one [`Persisted`] per request, in order.
async fn issue_all(
    conn: &mut AsyncMysqlConnection,
    issue: &Issue<'_>,
    conflicts: &HashSet<usize>,
) -> Result<Vec<Persisted>, StorageError> {
    let requests = issue.requests;
    let mut outcomes = vec![Persisted::UnknownCoupon; requests.len()];
    let mut by_coupon: BTreeMap<CouponId, Vec<usize>> = BTreeMap::new();
    for (index, request) in requests.iter().enumerate() {
        if conflicts.contains(&index) {
            outcomes[index] = Persisted::RequestIdConflict;
        } else {
            by_coupon.entry(request.coupon_id).or_default().push(index);
        }
    }
    for (coupon_id, indices) in by_coupon {
        issue_for_coupon(conn, coupon_id, issue, &indices, &mut outcomes).await?;
    }
    Ok(outcomes)
}

/// Issues the requests at `indices` (all of `coupon_id`), under the coupon's row lock.
///
/// First deliveries are the common case, so the rows are inserted without looking for the
/// users first; only when the insert shows a re-delivery (fewer rows went in), or the stock
/// does not cover the batch, is it undone to a savepoint and redone after reading which users
/// already hold the coupon. That saves a `SELECT … IN (batch)` on almost every batch.
async fn issue_for_coupon(
    conn: &mut AsyncMysqlConnection,
    coupon_id: CouponId,
    issue: &Issue<'_>,
    indices: &[usize],
    outcomes: &mut [Persisted],
) -> Result<(), StorageError> {
    let requests = issue.requests;
    let Some((available, expiry_days)) = coupon::table
        .find(coupon_id.as_i64())
        .select((coupon::available_quantity, coupon::expiry_days))
        .for_update()
        .first::<(i32, u16)>(conn)
        .await
        .optional()?
    else {
        // `outcomes` already says UnknownCoupon for these.
        return Ok(());
    };
    let issued_at = to_db(issue.now);
    let plan = Plan {
        coupon_id,
        requests,
        indices,
        stock: usize::try_from(available).unwrap_or(0),
        issued_at,
        expires_at: to_db(expires_at(from_db(issued_at), expiry_days)),
    };

    diesel::sql_query("SAVEPOINT first_delivery")
        .execute(conn)
        .await?;
    let (rows, planned) = plan.rows(&HashMap::new());
    let fits = planned.iter().all(|p| *p != Persisted::OutOfStock);
    let inserted = insert_rows(conn, &rows).await?;
    let (inserted, planned) = if fits && inserted == rows.len() {
        diesel::sql_query("RELEASE SAVEPOINT first_delivery")
            .execute(conn)
            .await?;
        (inserted, planned)
    } else {
        diesel::sql_query("ROLLBACK TO SAVEPOINT first_delivery")
            .execute(conn)
            .await?;
        let users: Vec<&str> = indices
            .iter()
            .map(|&i| requests[i].user_id.as_str())
            .collect();
        let existing: HashMap<String, time::PrimitiveDateTime> = coupon_user::table
            .filter(coupon_user::coupon_id.eq(coupon_id.as_i64()))
            .filter(coupon_user::user_id.eq_any(&users))
            .select((coupon_user::user_id, coupon_user::issued_at))
            .load::<(String, time::PrimitiveDateTime)>(conn)
            .await?
            .into_iter()
            .collect();
        let (rows, planned) = plan.rows(&existing);
        let inserted = insert_rows(conn, &rows).await?;
        if inserted != rows.len() {
            // Cannot happen while every writer holds the coupon lock; if it does, roll back
            // and let the retry re-read what is there.
            return Err(StorageError::Conflict(format!(
                "coupon {coupon_id}: inserted {inserted} of {} rows",
                rows.len()
            )));
        }
        (inserted, planned)
    };
    for (&index, outcome) in indices.iter().zip(planned) {
        outcomes[index] = outcome;
    }
    if inserted == 0 {
        return Ok(());
    }
    let taken = i32::try_from(inserted).unwrap_or(i32::MAX);
    let updated = diesel::update(
        coupon::table
            .find(coupon_id.as_i64())
            .filter(coupon::available_quantity.ge(taken)),
    )
    .set(coupon::available_quantity.eq(coupon::available_quantity - taken))
    .execute(conn)
    .await?;
    if updated != 1 {
        return Err(StorageError::Conflict(format!(
            "coupon {coupon_id}: stock changed under the lock"
        )));
    }
    if issue.outbox {
        // Exactly the rows inserted above: the requests this call planned as Issued.
        let (issued_at, expires_at) = (from_db(plan.issued_at), from_db(plan.expires_at));
        let events: Vec<CouponEvent> = indices
            .iter()
            .filter(|&&index| matches!(outcomes[index], Persisted::Issued { .. }))
            .map(|&index| {
                let request = &requests[index];
                CouponEvent::issued(
                    request.coupon_id,
                    request.user_id.clone(),
                    request.request_id,
                    issued_at,
                    expires_at,
                )
            })
            .collect();
        outbox::append(conn, &events, issue.now).await?;
    }
    Ok(())
}

/// What a batch of one coupon would do, given who already holds it.
struct Plan<'a> {
    coupon_id: CouponId,
    requests: &'a [IssueRequested],
    indices: &'a [usize],
    stock: usize,
    issued_at: time::PrimitiveDateTime,
    expires_at: time::PrimitiveDateTime,
}

impl<'a> Plan<'a> {
    /// The rows to insert and each request's outcome, in `indices` order: a holder (in
    /// `existing`, or earlier in the batch) is a re-delivery, then the stock goes in order.
    fn rows(
        &self,
        existing: &HashMap<String, time::PrimitiveDateTime>,
    ) -> (Vec<NewCouponUser<'a>>, Vec<Persisted>) {
        let mut stock = self.stock;
        let mut seen: HashSet<&str> = HashSet::new();
        let mut rows = Vec::new();
        let issued_at = from_db(self.issued_at);
        let outcomes = self
            .indices
            .iter()
            .map(|&index| {
                let request = &self.requests[index];
                let user = request.user_id.as_str();
                if let Some(at) = existing.get(user) {
                    Persisted::AlreadyIssued {
                        issued_at: from_db(*at),
                    }
                } else if !seen.insert(user) {
                    Persisted::AlreadyIssued { issued_at }
                } else if stock == 0 {
                    Persisted::OutOfStock
                } else {
                    stock -= 1;
                    rows.push(NewCouponUser {
                        coupon_id: self.coupon_id.as_i64(),
                        user_id: user,
                        request_id: request.request_id.to_string(),
                        status: "ACTIVE",
                        issued_at: self.issued_at,
                        expires_at: self.expires_at,
                    });
                    Persisted::Issued { issued_at }
                }
            })
            .collect();
        (rows, outcomes)
    }
}

/// `INSERT IGNORE`s `rows` in chunks; returns how many went in.
async fn insert_rows(
    conn: &mut AsyncMysqlConnection,
    rows: &[NewCouponUser<'_>],
) -> Result<usize, StorageError> {
    let mut inserted = 0;
    for chunk in rows.chunks(INLINE_ROWS_PER_INSERT) {
        let mut insert = InlineInsert::ignoring(
            "coupon_user",
            &[
                "coupon_id",
                "user_id",
                "request_id",
                "status",
                "issued_at",
                "expires_at",
            ],
        );
        for row in chunk {
            insert
                .row()
                .int(row.coupon_id)
                .text(row.user_id)?
                .text(&row.request_id)?
                .text(row.status)?
                .datetime(row.issued_at)
                .datetime(row.expires_at)
                .end();
        }
        if let Some(sql) = insert.finish() {
            inserted += diesel::sql_query(sql).execute(conn).await?;
        }
    }
    Ok(inserted)
}
