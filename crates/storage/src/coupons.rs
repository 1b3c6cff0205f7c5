use couponrush_domain::{CouponId, CouponSpec, RateLimitOverride};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use time::OffsetDateTime;

use crate::database::{Database, last_insert_id};
use crate::error::StorageError;
use crate::schema::{coupon, coupon_user};
use crate::time::{from_db, to_db};

/// A coupon as stored, with its live MySQL stock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponRecord {
    pub id: CouponId,
    pub spec: CouponSpec,
    pub available_quantity: i64,
    pub created_at: OffsetDateTime,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = coupon)]
#[diesel(check_for_backend(diesel::mysql::Mysql))]
struct CouponRow {
    id: i64,
    name: String,
    discount_amount: u32,
    total_quantity: u32,
    available_quantity: i32,
    issue_starts_at: time::PrimitiveDateTime,
    issue_ends_at: time::PrimitiveDateTime,
    expiry_days: u16,
    created_at: time::PrimitiveDateTime,
    rate_limit_per_user: Option<u32>,
    rate_limit_per_client: Option<u32>,
    rate_limit_window_ms: Option<u32>,
}

impl TryFrom<CouponRow> for CouponRecord {
    type Error = StorageError;
    fn try_from(row: CouponRow) -> Result<Self, StorageError> {
        let id = CouponId::try_from(row.id)
            .map_err(|e| StorageError::Migration(format!("corrupt coupon row: {e}")))?;
        Ok(Self {
            id,
            spec: CouponSpec {
                name: row.name,
                discount_amount: row.discount_amount,
                total_quantity: row.total_quantity,
                issue_starts_at: from_db(row.issue_starts_at),
                issue_ends_at: from_db(row.issue_ends_at),
                expiry_days: row.expiry_days,
                rate_limit: RateLimitOverride {
                    per_user: row.rate_limit_per_user,
                    per_client: row.rate_limit_per_client,
                    window_ms: row.rate_limit_window_ms,
                },
            },
            available_quantity: i64::from(row.available_quantity),
            created_at: from_db(row.created_at),
        })
    }
}

#[derive(Insertable)]
#[diesel(table_name = coupon)]
struct NewCoupon<'a> {
    name: &'a str,
    discount_amount: u32,
    total_quantity: u32,
    available_quantity: i32,
    issue_starts_at: time::PrimitiveDateTime,
    issue_ends_at: time::PrimitiveDateTime,
    expiry_days: u16,
    rate_limit_per_user: Option<u32>,
    rate_limit_per_client: Option<u32>,
    rate_limit_window_ms: Option<u32>,
}

/// Coupon definitions and their MySQL stock.
#[derive(Debug, Clone)]
pub struct CouponStore {
    db: Database,
}

impl CouponStore {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// Stores a new coupon with its full stock available; returns its id.
    /// The spec must have been validated (the quantity fits the column).
    pub async fn create(&self, spec: &CouponSpec) -> Result<CouponRecord, StorageError> {
        let available = i32::try_from(spec.total_quantity).unwrap_or(i32::MAX);
        let row = NewCoupon {
            name: &spec.name,
            discount_amount: spec.discount_amount,
            total_quantity: spec.total_quantity,
            available_quantity: available,
            issue_starts_at: to_db(spec.issue_starts_at),
            issue_ends_at: to_db(spec.issue_ends_at),
            expiry_days: spec.expiry_days,
            rate_limit_per_user: spec.rate_limit.per_user,
            rate_limit_per_client: spec.rate_limit.per_client,
            rate_limit_window_ms: spec.rate_limit.window_ms,
        };
        let id = self
            .db
            .run(async |conn| {
                conn.transaction(async |conn| -> Result<i64, StorageError> {
                    diesel::insert_into(coupon::table)
                        .values(&row)
                        .execute(conn)
                        .await?;
                    // Same connection, same transaction: this is our row's id.
                    last_insert_id(conn).await
                })
                .await
            })
            .await?;
        let id = CouponId::try_from(id)
            .map_err(|e| StorageError::Migration(format!("unexpected coupon id: {e}")))?;
        self.find(id).await?.ok_or(StorageError::UnknownCoupon(id))
    }

    pub async fn find(&self, id: CouponId) -> Result<Option<CouponRecord>, StorageError> {
        let row = self
            .db
            .run(async |conn| {
                Ok(coupon::table
                    .find(id.as_i64())
                    .select(CouponRow::as_select())
                    .first(conn)
                    .await
                    .optional()?)
            })
            .await?;
        row.map(CouponRecord::try_from).transpose()
    }

    /// The oldest coupon named `name` whose window is open from `open_at` until at least
    /// `open_until` with `at_least` units left in MySQL: the smoke command's dedicated coupon,
    /// found again by every run (never a real event's, which are named otherwise).
    pub async fn find_open_by_name(
        &self,
        name: &str,
        open_at: OffsetDateTime,
        open_until: OffsetDateTime,
        at_least: u32,
    ) -> Result<Option<CouponRecord>, StorageError> {
        let at_least = i32::try_from(at_least).unwrap_or(i32::MAX);
        let row = self
            .db
            .run(async |conn| {
                Ok(coupon::table
                    .filter(coupon::name.eq(name))
                    .filter(coupon::issue_starts_at.le(to_db(open_at)))
                    .filter(coupon::issue_ends_at.gt(to_db(open_until)))
                    .filter(coupon::available_quantity.ge(at_least))
                    .order(coupon::id)
                    .select(CouponRow::as_select())
                    .first(conn)
                    .await
                    .optional()?)
            })
            .await?;
        row.map(CouponRecord::try_from).transpose()
    }

    /// Every coupon, in id order.
    pub async fn list(&self) -> Result<Vec<CouponRecord>, StorageError> {
        let rows: Vec<CouponRow> = self
            .db
            .run(async |conn| {
                Ok(coupon::table
                    .order(coupon::id)
                    .select(CouponRow::as_select())
                    .load(conn)
                    .await?)
            })
            .await?;
        rows.into_iter().map(CouponRecord::try_from).collect()
    }

    /// How many coupons of `id` are held by users, as MySQL sees it.
    pub async fn issued_count(&self, id: CouponId) -> Result<u64, StorageError> {
        let count: i64 = self
            .db
            .run(async |conn| {
                Ok(coupon_user::table
                    .filter(coupon_user::coupon_id.eq(id.as_i64()))
                    .count()
                    .get_result(conn)
                    .await?)
            })
            .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}
