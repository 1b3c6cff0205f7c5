//! Reads of what the consumer wrote: one user's coupon, a coupon's holders (reconciliation),
//! the participation log's counts.

use std::collections::HashMap;

use couponrush_domain::{CouponId, IdError, ParticipantState, RequestId, UserId};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use time::OffsetDateTime;

use crate::error::StorageError;
use crate::issuances::IssuanceStore;
use crate::schema::{coupon, coupon_user, event_participation_log};
use crate::time::from_db;

/// A coupon held by a user, as MySQL records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IssuedCoupon {
    /// `None` only for rows not written by the consumer (e.g. compensation).
    pub request_id: Option<RequestId>,
    pub issued_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

impl IssuedCoupon {
    /// The holder's state as Redis records it. A row without a request id (not written by the
    /// consumer) gets a fresh one: no message will ever need to match it.
    pub fn state(&self) -> ParticipantState {
        ParticipantState::Issued {
            request_id: self.request_id.unwrap_or_else(RequestId::generate),
            at: self.issued_at,
        }
    }
}

/// A coupon's holders with its counts, from one consistent read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holders {
    pub total: u32,
    pub available: i64,
    /// User id to their coupon.
    pub holders: HashMap<String, IssuedCoupon>,
}

impl Holders {
    /// Every holder with their state as Redis records it; fails on a user id that is not one.
    pub fn states(&self) -> Result<Vec<(UserId, ParticipantState)>, IdError> {
        self.holders
            .iter()
            .map(|(user, held)| Ok((UserId::parse(user)?, held.state())))
            .collect()
    }
}

/// `(request_id, issued_at)` of a `coupon_user` row.
type IssuedRow = (String, time::PrimitiveDateTime);
/// `(request_id, occurred_at)` of an ACCEPTED participation row.
type AcceptedRow = (String, time::PrimitiveDateTime);

impl IssuanceStore {
    /// The user's coupon of `coupon_id`, if one was issued.
    pub async fn find(
        &self,
        coupon_id: CouponId,
        user_id: &UserId,
    ) -> Result<Option<IssuedCoupon>, StorageError> {
        let row: Option<(String, time::PrimitiveDateTime, time::PrimitiveDateTime)> = self
            .db
            .run(async |conn| {
                Ok(coupon_user::table
                    .filter(coupon_user::coupon_id.eq(coupon_id.as_i64()))
                    .filter(coupon_user::user_id.eq(user_id.as_str()))
                    .select((
                        coupon_user::request_id,
                        coupon_user::issued_at,
                        coupon_user::expires_at,
                    ))
                    .first(conn)
                    .await
                    .optional()?)
            })
            .await?;
        Ok(row.map(|(request_id, issued_at, expires_at)| IssuedCoupon {
            request_id: request_id.parse().ok(),
            issued_at: from_db(issued_at),
            expires_at: from_db(expires_at),
        }))
    }

    /// Every holder of `coupon_id` with the request that issued it, and the coupon's total
    /// and available quantity, read in one transaction so the counts and rows agree even while
    /// consumers commit (reconciliation). `None` if the coupon does not exist.
    pub async fn holders(&self, coupon_id: CouponId) -> Result<Option<Holders>, StorageError> {
        self.db
            .run(async |conn| {
                conn.transaction(async |conn| -> Result<Option<Holders>, StorageError> {
                    let Some((total, available)) = coupon::table
                        .find(coupon_id.as_i64())
                        .select((coupon::total_quantity, coupon::available_quantity))
                        .first::<(u32, i32)>(conn)
                        .await
                        .optional()?
                    else {
                        return Ok(None);
                    };
                    let rows: Vec<(
                        String,
                        String,
                        time::PrimitiveDateTime,
                        time::PrimitiveDateTime,
                    )> = coupon_user::table
                        .filter(coupon_user::coupon_id.eq(coupon_id.as_i64()))
                        .select((
                            coupon_user::user_id,
                            coupon_user::request_id,
                            coupon_user::issued_at,
                            coupon_user::expires_at,
                        ))
                        .load(conn)
                        .await?;
                    let holders = rows
                        .into_iter()
                        .map(|(user, request_id, issued_at, expires_at)| {
                            let coupon = IssuedCoupon {
                                request_id: request_id.parse().ok(),
                                issued_at: from_db(issued_at),
                                expires_at: from_db(expires_at),
                            };
                            (user, coupon)
                        })
                        .collect();
                    Ok(Some(Holders {
                        total,
                        available: i64::from(available),
                        holders,
                    }))
                })
                .await
            })
            .await
    }

    /// How many attempts the participation log holds for a coupon, by outcome.
    pub async fn participation_counts(
        &self,
        coupon_id: CouponId,
    ) -> Result<HashMap<String, u64>, StorageError> {
        let rows: Vec<(String, i64)> = self
            .db
            .run(async |conn| {
                Ok(event_participation_log::table
                    .filter(event_participation_log::coupon_id.eq(coupon_id.as_i64()))
                    .group_by(event_participation_log::outcome)
                    .select((event_participation_log::outcome, diesel::dsl::count_star()))
                    .load(conn)
                    .await?)
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|(outcome, n)| (outcome, u64::try_from(n).unwrap_or(0)))
            .collect())
    }

    /// For each coupon of `coupon_id` the consumer issued, the time from the API's acceptance
    /// (its ACCEPTED row's `occurred_at`, the API's clock) to the issuance (`issued_at`, the
    /// consumer's clock, read in the transaction that wrote the row): what a user who got a
    /// 202 waits for ISSUED. Rows without an ACCEPTED record (compensation) are left out.
    pub async fn issue_delays(
        &self,
        coupon_id: CouponId,
    ) -> Result<Vec<time::Duration>, StorageError> {
        let (issued, accepted): (Vec<IssuedRow>, Vec<AcceptedRow>) = self
            .db
            .run(async |conn| {
                let issued = coupon_user::table
                    .filter(coupon_user::coupon_id.eq(coupon_id.as_i64()))
                    .select((coupon_user::request_id, coupon_user::issued_at))
                    .load(conn)
                    .await?;
                let accepted = event_participation_log::table
                    .filter(event_participation_log::coupon_id.eq(coupon_id.as_i64()))
                    .filter(
                        event_participation_log::outcome
                            .eq(couponrush_domain::ParticipationOutcome::Accepted.as_str()),
                    )
                    .select((
                        event_participation_log::request_id,
                        event_participation_log::occurred_at,
                    ))
                    .load(conn)
                    .await?;
                Ok((issued, accepted))
            })
            .await?;
        let accepted: HashMap<String, time::PrimitiveDateTime> = accepted.into_iter().collect();
        Ok(issued
            .into_iter()
            .filter_map(|(request_id, issued_at)| {
                let at = accepted.get(&request_id)?;
                Some(from_db(issued_at) - from_db(*at))
            })
            .collect())
    }

    /// Attempts logged for `coupon_id`, per user and outcome.
    pub async fn participation_by_user(
        &self,
        coupon_id: CouponId,
    ) -> Result<HashMap<String, HashMap<String, u64>>, StorageError> {
        let rows: Vec<(String, String, i64)> = self
            .db
            .run(async |conn| {
                Ok(event_participation_log::table
                    .filter(event_participation_log::coupon_id.eq(coupon_id.as_i64()))
                    .group_by((
                        event_participation_log::user_id,
                        event_participation_log::outcome,
                    ))
                    .select((
                        event_participation_log::user_id,
                        event_participation_log::outcome,
                        diesel::dsl::count_star(),
                    ))
                    .load(conn)
                    .await?)
            })
            .await?;
        let mut users: HashMap<String, HashMap<String, u64>> = HashMap::new();
        for (user, outcome, count) in rows {
            users
                .entry(user)
                .or_default()
                .insert(outcome, u64::try_from(count).unwrap_or(0));
        }
        Ok(users)
    }
}
