//! Compensation grants: who took part in an event during a window and holds none of its
//! coupons, and the one-row-per-user grant of a compensation coupon to them.
//!
//! Exactly once comes from MySQL, not from the job: `coupon_user` is unique per (coupon, user),
//! every grant batch locks the compensation coupon's row, inserts with `INSERT IGNORE` and grows
//! `total_quantity` by the rows actually inserted, all in one transaction. A re-run, a second
//! run at the same time and a run resumed after a kill therefore all converge on one coupon per
//! user and a total equal to the rows held.

use couponrush_domain::coupon::expires_at;
use couponrush_domain::{CompensationSource, CouponId, RequestId};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Datetime, Unsigned, Varchar};
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};
use time::OffsetDateTime;

use crate::coupons::{CouponRecord, CouponStore};
use crate::database::{Database, ROWS_PER_INSERT, last_insert_id};
use crate::error::StorageError;
use crate::issuances::NewCouponUser;
use crate::outbox;
use crate::schema::{compensation, coupon, coupon_user};
use crate::time::{from_db, to_db};

/// Participation in `[from, until)`: the window an outage or a fault covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompensationWindow {
    pub from: OffsetDateTime,
    pub until: OffsetDateTime,
}

/// The coupon to grant: one that exists, or one to create on the first run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompensationCoupon {
    Existing(CouponId),
    New {
        name: String,
        discount_amount: u32,
        expiry_days: u16,
    },
}

/// The compensation coupon a run grants, and whether this run created it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedCompensation {
    pub coupon: CouponRecord,
    pub created: bool,
}

/// How many took part and how many of them are already compensated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EligibleCounts {
    /// Distinct users who took part in the window and hold no coupon of the source.
    pub eligible: u64,
    /// Of those, holders of the compensation coupon.
    pub already_compensated: u64,
}

/// Why a compensation cannot go ahead as asked. Shown to the operator.
#[derive(Debug, thiserror::Error)]
pub enum CompensationRefused {
    #[error("source coupon {0} does not exist")]
    UnknownSource(CouponId),
    #[error("compensation coupon {0} does not exist")]
    UnknownCoupon(CouponId),
    #[error("the compensation coupon cannot be the source coupon itself")]
    SameCoupon,
    #[error(
        "coupon {source_coupon} was already compensated for this window with coupon {existing} \
         ({name:?}); pass --coupon {existing} to continue that compensation"
    )]
    AlreadyCompensatedWith {
        source_coupon: CouponId,
        existing: CouponId,
        name: String,
    },
}

#[derive(QueryableByName)]
struct UserRow {
    #[diesel(sql_type = Varchar)]
    user_id: String,
}

#[derive(QueryableByName)]
struct Counts {
    #[diesel(sql_type = BigInt)]
    eligible: i64,
    #[diesel(sql_type = BigInt)]
    already: i64,
}

/// Distinct participants of `source` in the window holding no coupon of `source` nor of
/// `granted`, after `after` in byte order: one keyset page. The `(coupon_id, user_id)` index of
/// the log serves the order, so each page costs its own rows, not the whole log.
const ELIGIBLE_PAGE: &str = "\
    SELECT DISTINCT p.user_id FROM event_participation_log p \
    WHERE p.coupon_id = ? AND p.occurred_at >= ? AND p.occurred_at < ? AND p.user_id > ? \
      AND NOT EXISTS (SELECT 1 FROM coupon_user s WHERE s.coupon_id = ? AND s.user_id = p.user_id) \
      AND NOT EXISTS (SELECT 1 FROM coupon_user g WHERE g.coupon_id = ? AND g.user_id = p.user_id) \
    ORDER BY p.user_id LIMIT ?";

const ELIGIBLE_COUNTS: &str = "\
    SELECT COUNT(*) AS eligible, COALESCE(SUM(EXISTS (SELECT 1 FROM coupon_user g \
        WHERE g.coupon_id = ? AND g.user_id = e.user_id)), 0) AS already \
    FROM (SELECT DISTINCT p.user_id FROM event_participation_log p \
          WHERE p.coupon_id = ? AND p.occurred_at >= ? AND p.occurred_at < ? \
            AND NOT EXISTS (SELECT 1 FROM coupon_user s \
                            WHERE s.coupon_id = ? AND s.user_id = p.user_id)) e";

/// Compensations and their grants.
#[derive(Debug, Clone)]
pub struct CompensationStore {
    db: Database,
    /// Whether each grant gets its `CouponGranted` event in the outbox.
    outbox: bool,
}

impl CompensationStore {
    /// Without outbox events; see [`Self::with_outbox`].
    pub fn new(db: Database) -> Self {
        Self { db, outbox: false }
    }

    /// With `on`, every row granted gets a `CouponGranted` event in the outbox, in the same
    /// transaction; a user who already held the coupon gets none.
    #[must_use]
    pub fn with_outbox(self, on: bool) -> Self {
        Self { outbox: on, ..self }
    }

    /// The compensation coupon already recorded for `source` and `window`, if any.
    pub async fn find(
        &self,
        source: CouponId,
        window: CompensationWindow,
    ) -> Result<Option<CouponRecord>, StorageError> {
        let id = self
            .db
            .run(async |conn| find_recorded(conn, source, window).await)
            .await?;
        match id {
            Some(id) => self.coupons().find(id).await,
            None => Ok(None),
        }
    }

    /// Finds the compensation of `source` for `window`, or records it (creating the coupon when
    /// asked to). Two runs racing here agree on one coupon: the `(source, window)` key is
    /// unique, so the loser's transaction rolls back, coupon included, and it reads the winner.
    pub async fn resolve(
        &self,
        source: CouponId,
        window: CompensationWindow,
        wanted: &CompensationCoupon,
        now: OffsetDateTime,
    ) -> Result<Result<ResolvedCompensation, CompensationRefused>, StorageError> {
        let coupons = self.coupons();
        if coupons.find(source).await?.is_none() {
            return Ok(Err(CompensationRefused::UnknownSource(source)));
        }
        if let CompensationCoupon::Existing(id) = wanted {
            if *id == source {
                return Ok(Err(CompensationRefused::SameCoupon));
            }
            if coupons.find(*id).await?.is_none() {
                return Ok(Err(CompensationRefused::UnknownCoupon(*id)));
            }
        }
        for _ in 0..3 {
            if let Some(existing) = self.find(source, window).await? {
                return Ok(check_matches(source, existing, wanted).map(|coupon| {
                    ResolvedCompensation {
                        coupon,
                        created: false,
                    }
                }));
            }
            match self.record(source, window, wanted, now).await {
                Ok((id, created)) => {
                    let coupon = coupons
                        .find(id)
                        .await?
                        .ok_or(StorageError::UnknownCoupon(id))?;
                    return Ok(Ok(ResolvedCompensation { coupon, created }));
                }
                // Another run recorded it first: read theirs on the next turn.
                Err(StorageError::Query(diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::UniqueViolation,
                    _,
                ))) => continue,
                Err(other) => return Err(other),
            }
        }
        Err(StorageError::Conflict(format!(
            "compensation of coupon {source} kept changing while it was being recorded"
        )))
    }

    async fn record(
        &self,
        source: CouponId,
        window: CompensationWindow,
        wanted: &CompensationCoupon,
        now: OffsetDateTime,
    ) -> Result<(CouponId, bool), StorageError> {
        self.db
            .run(async |conn| {
                conn.transaction(async |conn| -> Result<(CouponId, bool), StorageError> {
                    let (id, created) = match wanted {
                        CompensationCoupon::Existing(id) => (id.as_i64(), false),
                        CompensationCoupon::New {
                            name,
                            discount_amount,
                            expiry_days,
                        } => {
                            // Granted, never raced for: no stock (its total grows with each grant) and
                            // an issuance window that is only informative, from now until the last
                            // grant would expire.
                            diesel::insert_into(coupon::table)
                                .values((
                                    coupon::name.eq(name),
                                    coupon::discount_amount.eq(discount_amount),
                                    coupon::total_quantity.eq(0),
                                    coupon::available_quantity.eq(0),
                                    coupon::issue_starts_at.eq(to_db(now)),
                                    coupon::issue_ends_at
                                        .eq(to_db(expires_at(now, (*expiry_days).max(1)))),
                                    coupon::expiry_days.eq(expiry_days),
                                ))
                                .execute(conn)
                                .await?;
                            (last_insert_id(conn).await?, true)
                        }
                    };
                    diesel::insert_into(compensation::table)
                        .values((
                            compensation::source_coupon_id.eq(source.as_i64()),
                            compensation::window_starts_at.eq(to_db(window.from)),
                            compensation::window_ends_at.eq(to_db(window.until)),
                            compensation::compensation_coupon_id.eq(id),
                        ))
                        .execute(conn)
                        .await?;
                    let id = CouponId::try_from(id).map_err(|e| {
                        StorageError::Conflict(format!("unexpected coupon id: {e}"))
                    })?;
                    Ok((id, created))
                })
                .await
            })
            .await
    }

    /// Every coupon recorded as a compensation coupon: granted, not raced for in Redis.
    pub async fn compensation_coupon_ids(&self) -> Result<Vec<CouponId>, StorageError> {
        let ids: Vec<i64> = self
            .db
            .run(async |conn| {
                Ok(compensation::table
                    .select(compensation::compensation_coupon_id)
                    .distinct()
                    .load(conn)
                    .await?)
            })
            .await?;
        Ok(ids
            .into_iter()
            .filter_map(|id| CouponId::try_from(id).ok())
            .collect())
    }

    /// Eligible participants and, when the compensation coupon exists, how many hold it.
    pub async fn counts(
        &self,
        source: CouponId,
        window: CompensationWindow,
        granted: Option<CouponId>,
    ) -> Result<EligibleCounts, StorageError> {
        // No compensation coupon yet: id 0 never exists, so nobody holds it.
        let granted = granted.map_or(0, CouponId::as_i64);
        let counts: Counts = self
            .db
            .run(async |conn| {
                Ok(diesel::sql_query(ELIGIBLE_COUNTS)
                    .bind::<BigInt, _>(granted)
                    .bind::<BigInt, _>(source.as_i64())
                    .bind::<Datetime, _>(to_db(window.from))
                    .bind::<Datetime, _>(to_db(window.until))
                    .bind::<BigInt, _>(source.as_i64())
                    .get_result(conn)
                    .await?)
            })
            .await?;
        Ok(EligibleCounts {
            eligible: u64::try_from(counts.eligible).unwrap_or(0),
            already_compensated: u64::try_from(counts.already).unwrap_or(0),
        })
    }

    /// The next page of users still to compensate, after `after` in byte order.
    pub async fn next_page(
        &self,
        source: CouponId,
        window: CompensationWindow,
        granted: CouponId,
        after: &str,
        limit: u32,
    ) -> Result<Vec<String>, StorageError> {
        let rows: Vec<UserRow> = self
            .db
            .run(async |conn| {
                Ok(diesel::sql_query(ELIGIBLE_PAGE)
                    .bind::<BigInt, _>(source.as_i64())
                    .bind::<Datetime, _>(to_db(window.from))
                    .bind::<Datetime, _>(to_db(window.until))
                    .bind::<Varchar, _>(after)
                    .bind::<BigInt, _>(source.as_i64())
                    .bind::<BigInt, _>(granted.as_i64())
                    .bind::<Unsigned<BigInt>, _>(u64::from(limit))
                    .load(conn)
                    .await?)
            })
            .await?;
        Ok(rows.into_iter().map(|r| r.user_id).collect())
    }

    /// Grants `granted` to `users` in one transaction; returns how many rows were new. Users
    /// who already hold it (another run got there first) are skipped, and the coupon's total
    /// grows by exactly the rows inserted. `source` is the compensation's, for the events.
    pub async fn grant(
        &self,
        granted: CouponId,
        source: CompensationSource,
        users: &[String],
        now: OffsetDateTime,
    ) -> Result<u64, StorageError> {
        if users.is_empty() {
            return Ok(0);
        }
        self.db
            .run(async |conn| {
                conn.transaction(async |conn| -> Result<u64, StorageError> {
                    // Serialises grants of one coupon: concurrent runs take turns per batch and can
                    // neither deadlock on each other's rows nor race on the total.
                    let expiry_days: u16 = coupon::table
                        .find(granted.as_i64())
                        .select(coupon::expiry_days)
                        .for_update()
                        .first(conn)
                        .await
                        .optional()?
                        .ok_or(StorageError::UnknownCoupon(granted))?;
                    let issued_at = to_db(now);
                    let expires = to_db(expires_at(from_db(issued_at), expiry_days));
                    let rows: Vec<NewCouponUser<'_>> = users
                        .iter()
                        .map(|user| NewCouponUser {
                            coupon_id: granted.as_i64(),
                            user_id: user,
                            request_id: RequestId::generate().to_string(),
                            status: "ACTIVE",
                            issued_at,
                            expires_at: expires,
                        })
                        .collect();
                    let mut inserted = 0usize;
                    for chunk in rows.chunks(ROWS_PER_INSERT) {
                        inserted += diesel::insert_or_ignore_into(coupon_user::table)
                            .values(chunk)
                            .execute(conn)
                            .await?;
                    }
                    if self.outbox {
                        let events = outbox::granted_events(conn, granted, source, &rows).await?;
                        outbox::append(conn, &events, now).await?;
                    }
                    let added = u32::try_from(inserted).unwrap_or(u32::MAX);
                    diesel::update(coupon::table.find(granted.as_i64()))
                        .set(coupon::total_quantity.eq(coupon::total_quantity + added))
                        .execute(conn)
                        .await?;
                    Ok(u64::try_from(inserted).unwrap_or(u64::MAX))
                })
                .await
            })
            .await
    }

    fn coupons(&self) -> CouponStore {
        CouponStore::new(self.db.clone())
    }
}

async fn find_recorded(
    conn: &mut AsyncMysqlConnection,
    source: CouponId,
    window: CompensationWindow,
) -> Result<Option<CouponId>, StorageError> {
    let id: Option<i64> = compensation::table
        .filter(compensation::source_coupon_id.eq(source.as_i64()))
        .filter(compensation::window_starts_at.eq(to_db(window.from)))
        .filter(compensation::window_ends_at.eq(to_db(window.until)))
        .select(compensation::compensation_coupon_id)
        .first(conn)
        .await
        .optional()?;
    Ok(id.and_then(|id| CouponId::try_from(id).ok()))
}

/// A recorded compensation may be continued with the same coupon, or by asking for a new one
/// with the same name, discount and expiry (the re-run of the same command); anything else
/// would silently grant a different coupon than the operator asked for.
fn check_matches(
    source: CouponId,
    existing: CouponRecord,
    wanted: &CompensationCoupon,
) -> Result<CouponRecord, CompensationRefused> {
    let same = match wanted {
        CompensationCoupon::Existing(id) => *id == existing.id,
        CompensationCoupon::New {
            name,
            discount_amount,
            expiry_days,
        } => {
            *name == existing.spec.name
                && *discount_amount == existing.spec.discount_amount
                && *expiry_days == existing.spec.expiry_days
        }
    };
    if same {
        Ok(existing)
    } else {
        Err(CompensationRefused::AlreadyCompensatedWith {
            source_coupon: source,
            existing: existing.id,
            name: existing.spec.name,
        })
    }
}
