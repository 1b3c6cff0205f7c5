//! Rebuilding a coupon's Redis state from the records: MySQL's holders and, for a coupon Redis
//! lost entirely, the requests still in flight in Kafka.

use couponrush_domain::{CouponId, CouponSpec, ParticipantState, UserId};

use crate::error::CacheError;
use crate::reserve_call::{limit_fields, limits_expire_ms};
use crate::state::{encode_state, epoch_ms};
use crate::store::ReservationStore;

/// Participant states per restore script call.
const RESTORE_CHUNK: usize = 500;

/// What a rebuild from MySQL changed in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Restored {
    /// The coupon was missing from Redis and was loaded now.
    pub loaded: bool,
    /// Participants Redis did not know, now recorded (issued holders and pending requests).
    pub holders: u64,
}

/// A rebuild of a coupon Redis lost: what it loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rebuilt {
    pub restored: Restored,
    /// The stock loaded: total − holders − pending (never below zero).
    pub stock: u64,
}

impl ReservationStore {
    /// Loads a coupon Redis lost with the stock nobody holds or is about to hold:
    /// `total − holders (MySQL rows) − pending (requests in flight, not persisted)`, and
    /// records each holder as issued and each pending request as pending, so none of them is
    /// accepted a second time. `holders` and `pending` must not share a user. If the coupon was
    /// loaded meanwhile, it behaves as [`Self::restore`] (one unit per participant it adds).
    pub async fn rebuild_lost(
        &self,
        id: CouponId,
        spec: &CouponSpec,
        holders: &[(UserId, ParticipantState)],
        pending: &[(UserId, ParticipantState)],
    ) -> Result<Rebuilt, CacheError> {
        let taken = u64::try_from(holders.len() + pending.len()).unwrap_or(u64::MAX);
        let stock = u64::from(spec.total_quantity).saturating_sub(taken);
        let everyone: Vec<(&UserId, ParticipantState)> = holders
            .iter()
            .chain(pending)
            .map(|(user, state)| (user, *state))
            .collect();
        let restored = self
            .restore(id, spec, i64::try_from(stock).unwrap_or(0), &everyone)
            .await?;
        Ok(Rebuilt { restored, stock })
    }

    /// Records each participant Redis does not know with its state (taking one unit of stock
    /// each), or, if the coupon is missing, loads it with `stock_if_missing` (which must already
    /// count them) and records them. Users Redis knows are never touched, so running it twice
    /// changes nothing the second time.
    pub async fn restore(
        &self,
        id: CouponId,
        spec: &CouponSpec,
        stock_if_missing: i64,
        holders: &[(&UserId, ParticipantState)],
    ) -> Result<Restored, CacheError> {
        let mut restored = Restored::default();
        // Even with no holder to restore, one call loads a coupon Redis lost.
        let chunks: Vec<&[(&UserId, ParticipantState)]> = if holders.is_empty() {
            vec![&[]]
        } else {
            holders.chunks(RESTORE_CHUNK).collect()
        };
        for chunk in chunks {
            // Once this run loaded the coupon, later chunks must not take stock again for
            // participants the loaded stock already counts.
            let take_stock = if restored.loaded { "0" } else { "1" };
            let [meta, stock, participants, issued, limits] = self.keys.restore_keys(id);
            let reply: Vec<i64> = self
                .run(async |conn| {
                    let mut call = self.scripts.restore.prepare_invoke();
                    call.key(&meta)
                        .key(&stock)
                        .key(&participants)
                        .key(&issued)
                        .key(&limits)
                        .arg(spec.total_quantity)
                        .arg(epoch_ms(spec.issue_starts_at))
                        .arg(epoch_ms(spec.issue_ends_at))
                        .arg(spec.expiry_days)
                        .arg(stock_if_missing.max(0))
                        .arg(take_stock)
                        .arg(&limit_fields(spec)[..])
                        .arg(limits_expire_ms(spec));
                    for (user, state) in chunk {
                        call.arg(user.as_str()).arg(encode_state(state));
                    }
                    call.invoke_async(conn).await
                })
                .await?;
            let [loaded, count] = reply[..] else {
                return Err(CacheError::Corrupt(format!("restore reply {reply:?}")));
            };
            // Only the first call can load: the meta hash exists afterwards.
            restored.loaded |= loaded == 1;
            restored.holders += u64::try_from(count).unwrap_or(0);
        }
        Ok(restored)
    }
}
