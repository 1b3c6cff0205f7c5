//! Read views of a coupon in Redis: one user's state, the counters, an atomic stock snapshot
//! and the participants page by page. Decoded types cross the boundary; callers never parse
//! the stored `P|…` / `I|…` strings.

use std::collections::HashMap;

use couponrush_domain::{CouponId, ParticipantState, UserId};
use deadpool_redis::redis::{self, AsyncCommands};

use crate::error::CacheError;
use crate::state::decode_state;
use crate::store::ReservationStore;

/// Participant states per call of `HSCAN`: small enough that no call holds Redis for long.
const SCAN_COUNT: usize = 1000;

/// What Redis knows about one user of one loaded coupon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserView {
    pub state: Option<ParticipantState>,
    pub stock: u64,
    pub expiry_days: Option<u16>,
}

/// Live counters of one coupon in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CouponCounters {
    pub stock: u64,
    /// Users holding a reservation (pending or issued).
    pub participants: u64,
    /// Of those, how many the consumer has marked issued.
    pub issued: u64,
}

/// A coupon's stock and participant count read atomically, with its loaded total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StockSnapshot {
    pub total: u64,
    /// Signed: a negative stock is a fault reconciliation must see, not hide.
    pub stock: i64,
    pub participants: u64,
}

impl ReservationStore {
    /// The user's state, if Redis knows it.
    pub async fn state(
        &self,
        id: CouponId,
        user: &UserId,
    ) -> Result<Option<ParticipantState>, CacheError> {
        let raw: Option<String> = self
            .run(async |conn| conn.hget(self.keys.participants(id), user.as_str()).await)
            .await?;
        raw.map(|raw| decode_state(&raw).ok_or(CacheError::Corrupt(raw)))
            .transpose()
    }

    /// The user's state with the coupon's stock and validity, in one round trip; `None` if the
    /// coupon is not loaded.
    pub async fn user_view(
        &self,
        id: CouponId,
        user: &UserId,
    ) -> Result<Option<UserView>, CacheError> {
        let [participants, stock, meta] = self.keys.user_view_keys(id);
        let (raw, stock, expiry_days): (Option<String>, Option<u64>, Option<u16>) = self
            .run(async |conn| {
                redis::pipe()
                    .hget(&participants, user.as_str())
                    .get(&stock)
                    .hget(&meta, "expiry_days")
                    .query_async(conn)
                    .await
            })
            .await?;
        let Some(stock) = stock else {
            return Ok(None);
        };
        let state = raw
            .map(|raw| decode_state(&raw).ok_or(CacheError::Corrupt(raw)))
            .transpose()?;
        Ok(Some(UserView {
            state,
            stock,
            expiry_days,
        }))
    }

    /// Stock, participants and issued counters; `None` if the coupon is not loaded.
    pub async fn counters(&self, id: CouponId) -> Result<Option<CouponCounters>, CacheError> {
        let [stock, participants, issued] = self.keys.counters_keys(id);
        let (stock, participants, issued): (Option<u64>, u64, Option<u64>) = self
            .run(async |conn| {
                redis::pipe()
                    .get(&stock)
                    .hlen(&participants)
                    .get(&issued)
                    .query_async(conn)
                    .await
            })
            .await?;
        Ok(stock.map(|stock| CouponCounters {
            stock,
            participants,
            issued: issued.unwrap_or(0),
        }))
    }

    /// Total, stock and participant count in one `MULTI`, so they agree with each other even
    /// while requests are reserving; `None` if the coupon is not loaded.
    pub async fn stock_snapshot(&self, id: CouponId) -> Result<Option<StockSnapshot>, CacheError> {
        let [meta, stock, participants] = self.keys.snapshot_keys(id);
        let (total, stock, participants): (Option<u64>, Option<i64>, u64) = self
            .run(async |conn| {
                redis::pipe()
                    .atomic()
                    .hget(&meta, "total")
                    .get(&stock)
                    .hlen(&participants)
                    .query_async(conn)
                    .await
            })
            .await?;
        Ok(total.map(|total| StockSnapshot {
            total,
            stock: stock.unwrap_or(0),
            participants,
        }))
    }

    /// Every participant's state (`None`: a value this build cannot read), read with `HSCAN` a
    /// page at a time (each page its own bounded call), never one blocking `HGETALL` over a
    /// large hash. A user may appear twice if the hash is rehashed meanwhile; the map keeps one.
    pub async fn participants(
        &self,
        id: CouponId,
    ) -> Result<HashMap<String, Option<ParticipantState>>, CacheError> {
        let mut states = HashMap::new();
        self.scan_participants(id, |page| {
            states.extend(
                page.into_iter()
                    .map(|(user, raw)| (user, decode_state(&raw))),
            );
        })
        .await?;
        Ok(states)
    }

    /// Hands every (user, raw state) of coupon `id` to `page`, one `HSCAN` page at a time.
    pub(crate) async fn scan_participants(
        &self,
        id: CouponId,
        mut page: impl FnMut(Vec<(String, String)>),
    ) -> Result<(), CacheError> {
        let key = self.keys.participants(id);
        let mut cursor: u64 = 0;
        loop {
            let (next, entries): (u64, Vec<(String, String)>) = self
                .run(async |conn| {
                    redis::cmd("HSCAN")
                        .arg(&key)
                        .arg(cursor)
                        .arg("COUNT")
                        .arg(SCAN_COUNT)
                        .query_async(conn)
                        .await
                })
                .await?;
            page(entries);
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }

    /// The raw states of `users` now (a second look at discrepancies found by a scan).
    pub async fn states_of(
        &self,
        id: CouponId,
        users: &[&str],
    ) -> Result<Vec<Option<String>>, CacheError> {
        let mut states = Vec::with_capacity(users.len());
        for chunk in users.chunks(SCAN_COUNT) {
            let page: Vec<Option<String>> = self
                .run(async |conn| {
                    redis::cmd("HMGET")
                        .arg(self.keys.participants(id))
                        .arg(chunk)
                        .query_async(conn)
                        .await
                })
                .await?;
            states.extend(page);
        }
        Ok(states)
    }
}
