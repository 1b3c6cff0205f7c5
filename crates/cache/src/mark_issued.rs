//! The consumer's confirmation: requests persisted in MySQL marked ISSUED in Redis.

use couponrush_domain::{CouponId, ParticipantState, RequestId, UserId};
use deadpool_redis::redis;
use time::OffsetDateTime;

use crate::error::CacheError;
use crate::state::encode_state;
use crate::store::ReservationStore;

/// Requests marked issued per script call. One call per request cost Redis a command's
/// overhead each (a quarter of a core at 32,000 issuances/s); one call for a whole batch would
/// hold Redis, which serves every reservation, for milliseconds. 500 keeps a call well under one.
const MARKED_PER_CALL: usize = 500;

impl ReservationStore {
    /// Marks persisted requests issued, in one round trip per coupon (a consumer batch is
    /// usually one coupon): each pipeline keeps to one coupon's hash tag, so in cluster mode it
    /// goes to that coupon's master whole, and each script call marks up to
    /// [`MARKED_PER_CALL`] requests. A user whose state belongs to another request is
    /// left untouched. Returns how many states moved to issued.
    pub async fn mark_issued_many(
        &self,
        issued: &[(CouponId, &UserId, RequestId, OffsetDateTime)],
    ) -> Result<u64, CacheError> {
        let mut coupons: Vec<CouponId> = issued.iter().map(|(id, ..)| *id).collect();
        coupons.sort_unstable();
        coupons.dedup();
        let mut moved = 0;
        for coupon in coupons {
            let of_coupon: Vec<_> = issued.iter().filter(|(id, ..)| *id == coupon).collect();
            moved += self.mark_issued_of(coupon, &of_coupon).await?;
        }
        Ok(moved)
    }

    async fn mark_issued_of(
        &self,
        id: CouponId,
        issued: &[&(CouponId, &UserId, RequestId, OffsetDateTime)],
    ) -> Result<u64, CacheError> {
        let script = &self.scripts.mark_issued;
        let [participants, issued_counter] = self.keys.mark_issued_keys(id);
        let moved: Vec<i64> = self
            .run(async |conn| {
                let mut pipe = redis::pipe();
                // Loading first makes the EVALSHAs below safe even on a Redis that restarted
                // (in cluster mode: on the master of this coupon's slot, where the pipeline
                // goes).
                pipe.cmd("SCRIPT").arg("LOAD").arg(script.text()).ignore();
                for chunk in issued.chunks(MARKED_PER_CALL) {
                    let call = pipe
                        .cmd("EVALSHA")
                        .arg(script.hash())
                        .arg(2)
                        .arg(&participants)
                        .arg(&issued_counter);
                    for (_, user, request_id, at) in chunk {
                        call.arg(user.as_str())
                            .arg(request_id.to_string())
                            .arg(encode_state(&ParticipantState::Issued {
                                request_id: *request_id,
                                at: *at,
                            }));
                    }
                }
                pipe.query_async(conn).await
            })
            .await?;
        Ok(moved.iter().map(|m| u64::try_from(*m).unwrap_or(0)).sum())
    }
}
