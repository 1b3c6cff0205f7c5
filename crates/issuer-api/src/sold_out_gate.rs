//! The sold-out gate: once Redis has said SOLD_OUT for a coupon, this process answers SOLD_OUT
//! itself to whoever does not hold a reservation, for a short lease, without a call to Redis.
//! In a rush most requests arrive after the stock is gone; each then costs the HTTP work and
//! its participation record, not a script run and its round trip (docs/scaling.md, "The
//! sold-out gate").
//!
//! Never SOLD_OUT to someone who holds a reservation:
//! - The gate keeps a copy of the coupon's participants read under one *generation*
//!   ([`couponrush_cache::SoldOutCopy`]). `reserve.lua` names the generation in each SOLD_OUT;
//!   every way a participant can appear without stock being taken (stock given back, a restore)
//!   changes it. A participant of the copy, or anyone once the generation differs, is asked
//!   about in Redis as before.
//! - A SOLD_OUT heard at `t` is trusted until `t + lease`. Redis keeps stock given back during
//!   any lease out of reach until the lease ends plus a margin (`gate_until_ms`, `quarantined`
//!   in `reserve.lua`), so nobody new can take a unit while a gate may still answer from a
//!   copy without them.
//! - Only what Redis would answer SOLD_OUT is answered: after the window's end the request
//!   goes to Redis (CLOSED). A coupon with more participants than `sold_out_gate.max_participants`
//!   keeps no copy.
//!
//! The abuse limits live in Redis; a client the limits apply to gets at most its event's
//! per-client limit of gated answers per window from this process, then its requests go to
//! Redis, whose limiter decides. A flood from one address thus cannot turn into a flood of
//! participation records, which the limits exist to prevent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use couponrush_cache::{CopyRead, LimitCheck, ReservationStore, SoldOutCopy};
use couponrush_domain::{CouponId, UserId};
use prometheus_client::metrics::counter::Counter;

/// Most clients whose gated answers one coupon's gate counts per window; a client beyond it is
/// sent to Redis (the limiter there counts it), never remembered without bound.
const MAX_CLIENTS: usize = 100_000;
/// A coupon's gate not trusted for this long is forgotten (its copy freed) when another coupon
/// sells out: events end, and a process runs many of them.
const FORGET_AFTER: Duration = Duration::from_secs(60);

/// See the module docs.
#[derive(Debug)]
pub struct SoldOutGate {
    lease: Duration,
    max_participants: usize,
    coupons: RwLock<HashMap<CouponId, Arc<Mutex<CouponGate>>>>,
    answered: Counter,
}

/// One coupon's gate.
#[derive(Debug, Default)]
struct CouponGate {
    copy: Option<Arc<SoldOutCopy>>,
    /// SOLD_OUT under the copy's generation was heard; trusted until then.
    trusted_until: Option<Instant>,
    /// A generation whose copy is being read, or was too large to keep: not read again.
    read: Option<u64>,
    clients: ClientBudget,
}

impl CouponGate {
    /// Whether the gate is still of use at `at`: trusted recently, or a copy being read.
    fn in_use(&self, at: Instant) -> bool {
        let reading = self.read.is_some() && self.copy.is_none();
        reading
            || self
                .trusted_until
                .is_some_and(|until| at.saturating_duration_since(until) < FORGET_AFTER)
    }
}

/// Gated answers per client in the current fixed window.
#[derive(Debug, Default)]
struct ClientBudget {
    window_started: Option<Instant>,
    answered: HashMap<String, u32>,
}

impl ClientBudget {
    /// Counts one gated answer for `client`, if its budget has room.
    fn take(&mut self, client: &str, limit: u32, window: Duration, at: Instant) -> bool {
        if self
            .window_started
            .is_none_or(|started| at.saturating_duration_since(started) >= window)
        {
            self.window_started = Some(at);
            self.answered.clear();
        }
        if let Some(answered) = self.answered.get_mut(client) {
            if *answered >= limit {
                return false;
            }
            *answered += 1;
            return true;
        }
        if self.answered.len() >= MAX_CLIENTS {
            return false;
        }
        self.answered.insert(client.to_owned(), 1);
        true
    }
}

impl SoldOutGate {
    /// A gate trusting each SOLD_OUT for `lease` (zero: off: every request goes to Redis),
    /// copying coupons of at most `max_participants`.
    pub fn new(lease: Duration, max_participants: usize, answered: Counter) -> Self {
        Self {
            lease,
            max_participants,
            coupons: RwLock::new(HashMap::new()),
            answered,
        }
    }

    /// The lease `reserve.lua` is told about (zero: off).
    pub fn lease(&self) -> Duration {
        self.lease
    }

    fn coupon(&self, id: CouponId) -> Option<Arc<Mutex<CouponGate>>> {
        self.coupons.read().ok()?.get(&id).cloned()
    }

    /// Whether `user`'s request for coupon `id` is answered SOLD_OUT here: the coupon was
    /// heard sold out within the lease, its window is open at `now_ms`, the user is not among
    /// its participants, and a limited client has budget left.
    pub fn sold_out(
        &self,
        id: CouponId,
        user: &UserId,
        limited: Option<LimitCheck<'_>>,
        now_ms: i64,
        at: Instant,
    ) -> bool {
        if self.lease.is_zero() {
            return false;
        }
        let Some(gate) = self.coupon(id) else {
            return false;
        };
        let Ok(mut gate) = gate.lock() else {
            return false;
        };
        let Some(copy) = gate.copy.clone() else {
            return false;
        };
        if gate.trusted_until.is_none_or(|until| at >= until)
            || now_ms >= copy.ends_ms
            || copy.participants.contains(user.as_str())
        {
            return false;
        }
        if let Some(limited) = limited {
            let per_client = copy.per_client.unwrap_or(limited.defaults.per_client);
            let window = copy.window_ms.unwrap_or(limited.defaults.window_ms);
            if per_client > 0
                && !gate.clients.take(
                    limited.client,
                    per_client,
                    Duration::from_millis(window.into()),
                    at,
                )
            {
                return false;
            }
        }
        self.answered.inc();
        true
    }

    /// Adds coupon `id`'s gate, forgetting gates no longer in use at `at`.
    fn add(&self, id: CouponId, at: Instant) -> Option<Arc<Mutex<CouponGate>>> {
        let mut coupons = self.coupons.write().ok()?;
        coupons.retain(|_, gate| gate.lock().is_ok_and(|gate| gate.in_use(at)));
        Some(coupons.entry(id).or_default().clone())
    }

    /// Redis answered SOLD_OUT under `generation` to a call made at `asked_at`: trust it for
    /// the lease if the copy is of that generation, else read a copy of it in the background
    /// (on `store`, the worker's own connection).
    pub fn heard_sold_out(
        self: &Arc<Self>,
        id: CouponId,
        generation: u64,
        asked_at: Instant,
        store: &ReservationStore,
    ) {
        if self.lease.is_zero() {
            return;
        }
        let Some(gate) = self.coupon(id).or_else(|| self.add(id, asked_at)) else {
            return;
        };
        let Ok(mut coupon) = gate.lock() else {
            return;
        };
        if coupon
            .copy
            .as_ref()
            .is_some_and(|copy| copy.generation == generation)
        {
            let until = asked_at + self.lease;
            coupon.trusted_until = Some(coupon.trusted_until.map_or(until, |t| t.max(until)));
            return;
        }
        // A copy of another generation may lack someone: it answers nothing from now on.
        coupon.trusted_until = None;
        if coupon.read == Some(generation) {
            return;
        }
        coupon.read = Some(generation);
        drop(coupon);
        let this = Arc::clone(self);
        let store = store.clone();
        actix_web::rt::spawn(async move {
            this.read_copy(id, generation, asked_at, &store, &gate)
                .await;
        });
    }

    async fn read_copy(
        &self,
        id: CouponId,
        generation: u64,
        asked_at: Instant,
        store: &ReservationStore,
        gate: &Mutex<CouponGate>,
    ) {
        let read = store.sold_out_copy(id, self.max_participants).await;
        let Ok(mut coupon) = gate.lock() else {
            return;
        };
        match read {
            Ok(CopyRead::Copied(copy)) if copy.generation == generation => {
                tracing::info!(
                    coupon.id = %id,
                    generation,
                    participants = copy.participants.len(),
                    "sold out: answering SOLD_OUT here to whoever holds nothing"
                );
                coupon.copy = Some(Arc::new(copy));
                coupon.trusted_until = Some(asked_at + self.lease);
                coupon.read = None;
            }
            Ok(CopyRead::TooMany(count)) => {
                // Kept as read: not tried again under this generation.
                tracing::info!(
                    coupon.id = %id,
                    participants = count,
                    max = self.max_participants,
                    "sold out, but too many participants to copy: every request goes to Redis"
                );
            }
            Ok(CopyRead::Copied(_) | CopyRead::Changed | CopyRead::Missing) => coupon.read = None,
            Err(error) => {
                tracing::warn!(coupon.id = %id, %error, "could not copy a sold-out coupon's participants");
                coupon.read = None;
            }
        }
    }

    /// Redis answered something other than SOLD_OUT or a participant's own state (stock
    /// taken, held, not open, unknown): whatever this process believed, it asks again.
    pub fn heard_not_sold_out(&self, id: CouponId) {
        if let Some(gate) = self.coupon(id)
            && let Ok(mut gate) = gate.lock()
        {
            gate.trusted_until = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use couponrush_domain::RateLimits;

    use super::*;

    const NOW_MS: i64 = 1_000_000;

    type Scene = (SoldOutGate, CouponId, Instant);

    /// A gate that heard coupon 1 sold out just now, with a copy holding `participants`.
    fn gate_with_copy(participants: &[&str]) -> anyhow::Result<Scene> {
        let gate = SoldOutGate::new(Duration::from_millis(200), 10, Counter::default());
        let id = CouponId::new(1)?;
        let at = Instant::now();
        let copy = SoldOutCopy {
            generation: 7,
            participants: participants
                .iter()
                .map(|s| (*s).to_owned())
                .collect::<HashSet<_>>(),
            ends_ms: NOW_MS + 60_000,
            per_client: None,
            window_ms: None,
        };
        let coupon = CouponGate {
            copy: Some(Arc::new(copy)),
            trusted_until: Some(at + Duration::from_millis(200)),
            ..CouponGate::default()
        };
        gate.coupons
            .write()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .insert(id, Arc::new(Mutex::new(coupon)));
        Ok((gate, id, at))
    }

    fn edit(gate: &SoldOutGate, id: CouponId, change: impl FnOnce(&mut CouponGate)) {
        if let Some(coupon) = gate.coupon(id)
            && let Ok(mut coupon) = coupon.lock()
        {
            change(&mut coupon);
        }
    }

    fn user(name: &str) -> anyhow::Result<UserId> {
        Ok(UserId::parse(name)?)
    }

    #[test]
    fn answers_only_those_outside_the_copy_within_the_lease_and_window() -> anyhow::Result<()> {
        let (gate, id, at) = gate_with_copy(&["holder"])?;
        assert!(gate.sold_out(id, &user("late")?, None, NOW_MS, at));
        assert!(
            !gate.sold_out(id, &user("holder")?, None, NOW_MS, at),
            "a holder asks Redis"
        );
        let after_lease = at + Duration::from_millis(200);
        assert!(!gate.sold_out(id, &user("late")?, None, NOW_MS, after_lease));
        assert!(
            !gate.sold_out(id, &user("late")?, None, NOW_MS + 60_000, at),
            "CLOSED is Redis's answer"
        );
        assert!(!gate.sold_out(CouponId::new(2)?, &user("late")?, None, NOW_MS, at));
        assert_eq!(gate.answered.get(), 1);
        Ok(())
    }

    #[test]
    fn another_answer_or_generation_ends_the_trust() -> anyhow::Result<()> {
        let (gate, id, at) = gate_with_copy(&[])?;
        gate.heard_not_sold_out(id);
        assert!(!gate.sold_out(id, &user("late")?, None, NOW_MS, at));
        let gate = Arc::new(gate);
        // The same generation again renews the lease without reading anything.
        let store = ReservationStore::new(&couponrush_config::ConfigArgs::default().load()?.redis)?;
        gate.heard_sold_out(id, 7, at, &store);
        assert!(gate.sold_out(id, &user("late")?, None, NOW_MS, at));
        // A new generation: the copy may lack someone, so it answers nothing (reading the new
        // copy needs a runtime and Redis: tests/sold_out_gate.rs in the e2e crate).
        edit(&gate, id, |coupon| coupon.read = Some(8));
        gate.heard_sold_out(id, 8, at, &store);
        assert!(!gate.sold_out(id, &user("late")?, None, NOW_MS, at));
        Ok(())
    }

    #[test]
    fn a_coupon_not_trusted_for_a_minute_is_forgotten_when_another_sells_out() -> anyhow::Result<()>
    {
        let (gate, id, at) = gate_with_copy(&[])?;
        // Still in use a moment later: kept; a copy being read is kept too.
        gate.add(CouponId::new(2)?, at + Duration::from_secs(1));
        assert!(gate.coupon(id).is_some());
        edit(&gate, CouponId::new(2)?, |coupon| coupon.read = Some(1));
        // A minute after its trust ended: freed.
        gate.add(
            CouponId::new(3)?,
            at + FORGET_AFTER + Duration::from_secs(1),
        );
        assert!(gate.coupon(id).is_none());
        assert!(gate.coupon(CouponId::new(2)?).is_some(), "still reading");
        Ok(())
    }

    #[test]
    fn a_limited_client_gets_its_per_client_limit_then_goes_to_redis() -> anyhow::Result<()> {
        let (gate, id, at) = gate_with_copy(&[])?;
        let defaults = RateLimits {
            per_user: 10,
            per_client: 2,
            window_ms: 1000,
        };
        let bot = Some(LimitCheck {
            client: "10.0.0.9",
            defaults,
        });
        let other = Some(LimitCheck {
            client: "10.0.0.10",
            defaults,
        });
        assert!(gate.sold_out(id, &user("a")?, bot, NOW_MS, at));
        assert!(gate.sold_out(id, &user("b")?, bot, NOW_MS, at));
        assert!(
            !gate.sold_out(id, &user("c")?, bot, NOW_MS, at),
            "over its budget"
        );
        assert!(gate.sold_out(id, &user("c")?, other, NOW_MS, at));
        let next_window = at + Duration::from_millis(1000);
        edit(&gate, id, |coupon| {
            coupon.trusted_until = Some(next_window + Duration::from_millis(1));
        });
        assert!(
            gate.sold_out(id, &user("d")?, bot, NOW_MS, next_window),
            "a new window, a new budget"
        );
        Ok(())
    }
}
