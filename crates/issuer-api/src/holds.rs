//! Clearing reservation holds once their publish is decided, in batches off the answer's path.
//!
//! A hold keeps `SOLD_OUT` from being answered while stock might still come back. Once a
//! publish is acknowledged (or kept to be published again) its hold must go, but a Redis call
//! per accepted request would double Redis's work on the busiest path. Decided request ids are
//! collected per coupon and removed with one `ZREM` per coupon every [`FLUSH_EVERY`]; a hold
//! that is never cleared (Redis down, process gone) expires by itself after the longest
//! publish wait, so nothing depends on every flush succeeding.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use couponrush_cache::ReservationStore;
use couponrush_domain::{CouponId, RequestId};

/// How long a decided hold may wait to be cleared: a few answers of `STOCK_HELD` at the very
/// end of a sell-out, against one Redis call per coupon instead of one per request.
const FLUSH_EVERY: Duration = Duration::from_millis(5);

/// Collects decided holds; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct HoldSettler {
    decided: Arc<Mutex<HashMap<CouponId, Vec<RequestId>>>>,
}

impl HoldSettler {
    /// Starts the flushing task on the current (main) runtime; abort it at shutdown.
    pub fn start(reservations: ReservationStore) -> (Self, tokio::task::JoinHandle<()>) {
        let settler = Self::default();
        let flushing = settler.clone();
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(FLUSH_EVERY);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                flushing.flush(&reservations).await;
            }
        });
        (settler, task)
    }

    /// The publish of `request_id` is decided: clear its hold at the next flush.
    pub fn settle(&self, coupon: CouponId, request_id: RequestId) {
        if let Ok(mut decided) = self.decided.lock() {
            decided.entry(coupon).or_default().push(request_id);
        }
    }

    async fn flush(&self, reservations: &ReservationStore) {
        let decided = match self.decided.lock() {
            Ok(mut decided) if !decided.is_empty() => std::mem::take(&mut *decided),
            _ => return,
        };
        for (coupon, requests) in decided {
            if let Err(error) = reservations.settle(coupon, &requests).await {
                // They expire by themselves; until then SOLD_OUT is answered as STOCK_HELD.
                tracing::warn!(%error, coupon.id = %coupon, holds = requests.len(), "holds not cleared");
            }
        }
    }
}
