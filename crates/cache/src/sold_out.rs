//! A copy of a sold-out coupon's participants, for the API's sold-out gate
//! (`issuer-api`'s `sold_out_gate.rs`): with it, the API tells whoever is not among them
//! SOLD_OUT without a call to Redis, while the generation it was read under stands.

use std::collections::HashSet;

use couponrush_domain::CouponId;
use deadpool_redis::redis;

use crate::error::CacheError;
use crate::store::ReservationStore;

/// A coupon's participants as they stood under one generation, with what else the gate needs
/// to answer as `reserve.lua` would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoldOutCopy {
    pub generation: u64,
    /// Every user holding a reservation (pending or issued).
    pub participants: HashSet<String>,
    /// When the issuance window ends (epoch ms): from then on the answer is CLOSED.
    pub ends_ms: i64,
    /// The event's own per-client limit and window, where it has them.
    pub per_client: Option<u32>,
    pub window_ms: Option<u32>,
}

/// What reading the copy gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyRead {
    Copied(SoldOutCopy),
    /// The generation changed while reading: stock came back or participants were restored.
    Changed,
    /// More participants than the caller keeps in memory.
    TooMany(u64),
    /// The coupon is not loaded.
    Missing,
}

impl ReservationStore {
    /// Reads coupon `id`'s participants, a page at a time, and keeps them only if the
    /// generation is the same before and after: every way a participant is added other than
    /// by a reservation changes it, and a sold-out coupon takes no reservation.
    pub async fn sold_out_copy(&self, id: CouponId, max: usize) -> Result<CopyRead, CacheError> {
        let meta = self.keys.meta(id);
        let participants_key = self.keys.participants(id);
        let (fields, count): (Vec<Option<String>>, u64) = self
            .run(async |conn| {
                redis::pipe()
                    .cmd("HMGET")
                    .arg(&meta)
                    .arg(&["generation", "ends_ms", "rl_client", "rl_window_ms"])
                    .hlen(&participants_key)
                    .query_async(conn)
                    .await
            })
            .await?;
        let field = |i: usize| fields.get(i).cloned().flatten();
        let Some(ends_ms) = field(1) else {
            return Ok(CopyRead::Missing);
        };
        let corrupt = || CacheError::Corrupt(format!("meta of coupon {id}: {fields:?}"));
        let generation = parse_generation(field(0)).ok_or_else(corrupt)?;
        let ends_ms = ends_ms.parse().map_err(|_| corrupt())?;
        let per_client = field(2)
            .map(|v| v.parse())
            .transpose()
            .map_err(|_| corrupt())?;
        let window_ms = field(3)
            .map(|v| v.parse())
            .transpose()
            .map_err(|_| corrupt())?;
        if usize::try_from(count).map_or(true, |count| count > max) {
            return Ok(CopyRead::TooMany(count));
        }
        let mut participants = HashSet::with_capacity(usize::try_from(count).unwrap_or(0));
        self.scan_participants(id, |page| {
            participants.extend(page.into_iter().map(|(user, _)| user));
        })
        .await?;
        let after: Option<String> = self
            .run(async |conn| {
                redis::cmd("HGET")
                    .arg(&meta)
                    .arg("generation")
                    .query_async(conn)
                    .await
            })
            .await?;
        if parse_generation(after) != Some(generation) {
            return Ok(CopyRead::Changed);
        }
        Ok(CopyRead::Copied(SoldOutCopy {
            generation,
            participants,
            ends_ms,
            per_client,
            window_ms,
        }))
    }
}

/// A coupon loaded before generations existed has none: `0`, as `reserve.lua` reads it.
fn parse_generation(raw: Option<String>) -> Option<u64> {
    raw.map_or(Some(0), |raw| raw.parse().ok())
}
