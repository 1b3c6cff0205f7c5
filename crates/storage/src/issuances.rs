use couponrush_domain::coupon::expires_at;
use couponrush_domain::{CouponId, IssueRequested, RequestId};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use time::OffsetDateTime;

use crate::database::Database;
use crate::error::StorageError;
use crate::schema::{coupon, coupon_user};
use crate::time::{from_db, to_db};

/// What persisting one request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persisted {
    /// A new `coupon_user` row; stock was decremented by one.
    Issued { issued_at: OffsetDateTime },
    /// The user already held this coupon (redelivery); nothing changed.
    AlreadyIssued { issued_at: OffsetDateTime },
}

/// A coupon held by a user, as MySQL records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IssuedCoupon {
    /// `None` only for rows not written by the consumer (e.g. compensation).
    pub request_id: Option<RequestId>,
    pub issued_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

#[derive(Insertable)]
#[diesel(table_name = coupon_user)]
struct NewCouponUser<'a> {
    coupon_id: i64,
    user_id: &'a str,
    request_id: String,
    status: &'static str,
    issued_at: time::PrimitiveDateTime,
    expires_at: time::PrimitiveDateTime,
}

/// Writes issuances: the consumer's side of the pipeline.
#[derive(Debug, Clone)]
pub struct IssuanceStore {
    db: Database,
}

impl IssuanceStore {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// Issues the coupon of `request` to its user, at most once, in one transaction.
    ///
    /// Locks the coupon row first: that proves the coupon exists (so `INSERT IGNORE` can only
    /// skip a duplicate) and serialises concurrent decrements of its stock. The decrement is
    /// guarded by `available_quantity > 0`; if no stock is left the transaction rolls back and
    /// nothing is issued.
    pub async fn issue(
        &self,
        request: &IssueRequested,
        now: OffsetDateTime,
    ) -> Result<Persisted, StorageError> {
        let coupon_id = request.coupon_id;
        let mut conn = self.db.conn().await?;
        conn.transaction(async |conn| -> Result<Persisted, StorageError> {
            {
                let (available, expiry_days): (i32, u16) = coupon::table
                    .find(coupon_id.as_i64())
                    .select((coupon::available_quantity, coupon::expiry_days))
                    .for_update()
                    .first(conn)
                    .await
                    .optional()?
                    .ok_or(StorageError::UnknownCoupon(coupon_id))?;

                let issued_at = to_db(now);
                let row = NewCouponUser {
                    coupon_id: coupon_id.as_i64(),
                    user_id: request.user_id.as_str(),
                    request_id: request.request_id.to_string(),
                    status: "ACTIVE",
                    issued_at,
                    expires_at: to_db(expires_at(from_db(issued_at), expiry_days)),
                };
                let inserted = diesel::insert_or_ignore_into(coupon_user::table)
                    .values(&row)
                    .execute(conn)
                    .await?;
                if inserted == 0 {
                    let existing = existing_issued_at(conn, coupon_id, request).await?;
                    return Ok(Persisted::AlreadyIssued {
                        issued_at: existing,
                    });
                }
                if available <= 0 {
                    return Err(StorageError::OutOfStock(coupon_id));
                }
                let updated = diesel::update(
                    coupon::table
                        .find(coupon_id.as_i64())
                        .filter(coupon::available_quantity.gt(0)),
                )
                .set(coupon::available_quantity.eq(coupon::available_quantity - 1))
                .execute(conn)
                .await?;
                if updated != 1 {
                    return Err(StorageError::OutOfStock(coupon_id));
                }
                Ok(Persisted::Issued {
                    issued_at: from_db(issued_at),
                })
            }
        })
        .await
    }

    /// The user's coupon of `coupon_id`, if one was issued.
    pub async fn find(
        &self,
        coupon_id: CouponId,
        user_id: &couponrush_domain::UserId,
    ) -> Result<Option<IssuedCoupon>, StorageError> {
        let mut conn = self.db.conn().await?;
        let row: Option<(String, time::PrimitiveDateTime, time::PrimitiveDateTime)> =
            coupon_user::table
                .filter(coupon_user::coupon_id.eq(coupon_id.as_i64()))
                .filter(coupon_user::user_id.eq(user_id.as_str()))
                .select((
                    coupon_user::request_id,
                    coupon_user::issued_at,
                    coupon_user::expires_at,
                ))
                .first(&mut conn)
                .await
                .optional()?;
        Ok(row.map(|(request_id, issued_at, expires_at)| IssuedCoupon {
            request_id: request_id.parse().ok(),
            issued_at: from_db(issued_at),
            expires_at: from_db(expires_at),
        }))
    }
}

async fn existing_issued_at(
    conn: &mut diesel_async::AsyncMysqlConnection,
    coupon_id: CouponId,
    request: &IssueRequested,
) -> Result<OffsetDateTime, StorageError> {
    let at: time::PrimitiveDateTime = coupon_user::table
        .filter(coupon_user::coupon_id.eq(coupon_id.as_i64()))
        .filter(coupon_user::user_id.eq(request.user_id.as_str()))
        .select(coupon_user::issued_at)
        .first(conn)
        .await?;
    Ok(from_db(at))
}
