//! Telling "no such coupon" from "the coupon's state is not loaded in Redis".
//!
//! Redis answers UNKNOWN for a coupon it has no state for: a coupon that does not exist, or a
//! live one Redis lost (restarted empty) or never got (a load that failed at creation). Only
//! MySQL can tell them apart, and a Redis loss must not send every request to MySQL, so:
//! - coupons are never deleted, so an id MySQL once knew is remembered for the life of the
//!   process (one lookup per coupon, then memory);
//! - an id MySQL does not know is remembered for [`MISSING_TTL`] (another replica may create
//!   it any moment), in a bounded map, so made-up ids cost at most one lookup each per TTL.
//!
//! Each coupon seen not loaded is reported: a counter without the coupon id (bounded
//! cardinality), one ERROR per coupon when it is first seen not loaded (and one INFO when Redis
//! knows it again), and the list of coupons seen not loaded recently for `/health/ready`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use couponrush_domain::CouponId;
use couponrush_storage::{CouponStore, StorageError};
use prometheus_client::metrics::counter::Counter;

/// How long an id MySQL does not know is answered 404 without asking MySQL again.
const MISSING_TTL: Duration = Duration::from_secs(1);
/// Most unknown ids remembered at once; the map is emptied when full (a flood of made-up ids
/// then costs one lookup each, never unbounded memory).
const MISSING_CAPACITY: usize = 10_000;
/// A coupon seen not loaded within this window is listed by `/health/ready`.
pub const RECENT: Duration = Duration::from_secs(60);

/// What MySQL says about a coupon Redis does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// It exists: its state is not loaded in Redis.
    NotLoaded,
    /// No coupon has this id.
    Unknown,
}

/// See the module docs.
#[derive(Debug)]
pub struct CouponPresence {
    existing: RwLock<HashSet<CouponId>>,
    missing: Mutex<HashMap<CouponId, Instant>>,
    /// Coupon -> when a request last found it not loaded.
    not_loaded: Mutex<HashMap<CouponId, Instant>>,
    /// Entries of `not_loaded`: lets every request for a loaded coupon skip the lock.
    not_loaded_len: AtomicUsize,
    not_loaded_total: Counter,
}

impl CouponPresence {
    pub fn new(not_loaded_total: Counter) -> Self {
        Self {
            existing: RwLock::new(HashSet::new()),
            missing: Mutex::new(HashMap::new()),
            not_loaded: Mutex::new(HashMap::new()),
            not_loaded_len: AtomicUsize::new(0),
            not_loaded_total,
        }
    }

    /// Remembers a coupon that exists (it was just created or read from MySQL).
    pub fn remember(&self, id: CouponId) {
        if let Ok(mut existing) = self.existing.write() {
            existing.insert(id);
        }
        if let Ok(mut missing) = self.missing.lock() {
            missing.remove(&id);
        }
    }

    /// Whether a coupon Redis does not know exists, from memory or else from MySQL. A coupon
    /// found not loaded is reported (see the module docs).
    pub async fn classify(
        &self,
        id: CouponId,
        coupons: &CouponStore,
    ) -> Result<Presence, StorageError> {
        let known = self.existing.read().is_ok_and(|e| e.contains(&id));
        let presence = if known {
            Presence::NotLoaded
        } else if self.recently_missing(id) {
            Presence::Unknown
        } else if coupons.find(id).await?.is_some() {
            self.remember(id);
            Presence::NotLoaded
        } else {
            self.remember_missing(id);
            Presence::Unknown
        };
        if presence == Presence::NotLoaded {
            self.report_not_loaded(id);
        }
        Ok(presence)
    }

    /// Redis knows the coupon (a request was decided, or a warm-up loaded it).
    pub fn loaded(&self, id: CouponId) {
        if self.not_loaded_len.load(Ordering::Relaxed) == 0 {
            return;
        }
        let Ok(mut not_loaded) = self.not_loaded.lock() else {
            return;
        };
        if not_loaded.remove(&id).is_some() {
            self.not_loaded_len
                .store(not_loaded.len(), Ordering::Relaxed);
            tracing::info!(coupon.id = %id, "coupon state is loaded in Redis again");
        }
    }

    /// Coupons a request found not loaded within [`RECENT`], in id order, with how long ago.
    pub fn recently_not_loaded(&self) -> Vec<(CouponId, Duration)> {
        let Ok(mut not_loaded) = self.not_loaded.lock() else {
            return Vec::new();
        };
        // Forgotten after the window: a coupon seen not loaded again later is a new incident
        // and logs its ERROR again.
        not_loaded.retain(|_, seen| seen.elapsed() < RECENT);
        self.not_loaded_len
            .store(not_loaded.len(), Ordering::Relaxed);
        let mut list: Vec<(CouponId, Duration)> = not_loaded
            .iter()
            .map(|(id, seen)| (*id, seen.elapsed()))
            .collect();
        list.sort_unstable_by_key(|(id, _)| *id);
        list
    }

    fn report_not_loaded(&self, id: CouponId) {
        self.not_loaded_total.inc();
        let Ok(mut not_loaded) = self.not_loaded.lock() else {
            return;
        };
        let first = not_loaded.insert(id, Instant::now()).is_none();
        self.not_loaded_len
            .store(not_loaded.len(), Ordering::Relaxed);
        drop(not_loaded);
        if first {
            tracing::error!(
                coupon.id = %id,
                "coupon exists in MySQL but its state is not loaded in Redis (Redis lost it?): \
                 its requests answer 503 COUPON_NOT_LOADED until PUT /admin/coupons/{id}/stock \
                 or `compensation-batch reconcile --repair` reloads it"
            );
        }
    }

    fn recently_missing(&self, id: CouponId) -> bool {
        self.missing
            .lock()
            .ok()
            .and_then(|m| m.get(&id).copied())
            .is_some_and(|at| at.elapsed() < MISSING_TTL)
    }

    fn remember_missing(&self, id: CouponId) {
        if let Ok(mut missing) = self.missing.lock() {
            if missing.len() >= MISSING_CAPACITY {
                missing.clear();
            }
            missing.insert(id, Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_coupon_is_listed_until_redis_knows_it_again() -> Result<(), couponrush_domain::IdError> {
        let counter = Counter::default();
        let presence = CouponPresence::new(counter.clone());
        let (a, b) = (CouponId::new(7)?, CouponId::new(3)?);
        presence.report_not_loaded(a);
        presence.report_not_loaded(a);
        presence.report_not_loaded(b);
        assert_eq!(counter.get(), 3);
        let listed: Vec<CouponId> = presence
            .recently_not_loaded()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(listed, vec![b, a]);
        presence.loaded(a);
        let listed: Vec<CouponId> = presence
            .recently_not_loaded()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(listed, vec![b]);
        Ok(())
    }

    #[test]
    fn missing_ids_are_forgotten_once_a_coupon_is_remembered()
    -> Result<(), couponrush_domain::IdError> {
        let presence = CouponPresence::new(Counter::default());
        let id = CouponId::new(9)?;
        presence.remember_missing(id);
        assert!(presence.recently_missing(id));
        presence.remember(id);
        assert!(!presence.recently_missing(id));
        Ok(())
    }
}
