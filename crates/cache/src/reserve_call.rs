//! One call of the reservation script: its text, and its keys and arguments in the script's
//! order. [`ReservationStore::reserve`](crate::ReservationStore::reserve) sends exactly this;
//! `cargo xtask bench api` hands the same call to `redis-benchmark` (EVALSHA) for the Lua
//! ceiling, so the ceiling measures the script the API runs, with the keys it uses.

use std::time::Duration;

use couponrush_domain::{CouponId, ParticipantState, RateLimits, RequestId};
use time::OffsetDateTime;

use crate::keys::KeySpace;
use crate::state::{encode_state, epoch_ms};

/// The text of `reserve.lua`, the atomic decision of one issue request.
pub const RESERVE_LUA: &str = include_str!("lua/reserve.lua");

/// Where the sold-out gate's lease goes in ARGV (0-based).
const GATE_LEASE_ARG: usize = 5;

/// KEYS and ARGV of one `reserve.lua` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReserveCall {
    pub keys: Vec<String>,
    pub args: Vec<String>,
}

impl ReserveCall {
    /// The call deciding `user`'s request `request` for coupon `id` at `now`. If accepted it
    /// records the user as pending under `pending_id` (the request's id as a UUID; `request` is
    /// normally its text, but a benchmark may pass a placeholder its load tool fills in).
    /// `hold_for` is the longest the caller may take to decide the publish: older holds count
    /// as abandoned.
    pub fn new(
        keys: &KeySpace,
        id: CouponId,
        user: &str,
        request: &str,
        pending_id: RequestId,
        now: OffsetDateTime,
        hold_for: Duration,
    ) -> Self {
        let now_ms = epoch_ms(now);
        let hold_ms = i64::try_from(hold_for.as_millis()).unwrap_or(i64::MAX);
        let pending = encode_state(&ParticipantState::Pending {
            request_id: pending_id,
            at: now,
        });
        Self {
            keys: vec![
                keys.meta(id),
                keys.stock(id),
                keys.participants(id),
                keys.holds(id),
                keys.void(id, request),
            ],
            args: vec![
                user.to_owned(),
                pending,
                now_ms.to_string(),
                request.to_owned(),
                now_ms.saturating_sub(hold_ms).to_string(),
                // No sold-out gate unless `gated` says so.
                "0".to_owned(),
            ],
        }
    }

    /// The same call from an API that keeps a sold-out gate (`issuer-api`'s
    /// `sold_out_gate.rs`): a SOLD_OUT answer announces that it may answer SOLD_OUT itself for
    /// `lease`, and stock given back meanwhile is not offered again before the lease ends.
    pub fn gated(mut self, lease: Duration) -> Self {
        let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
        if let Some(arg) = self.args.get_mut(GATE_LEASE_ARG) {
            *arg = lease_ms.to_string();
        }
        self
    }

    /// The same call, also checking and counting the abuse limits of the call's user and
    /// `client` (`defaults`, overridden by what the coupon's meta hash holds): the coupon's
    /// limits hash, the default limits and the client. Without it the script checks no limit.
    pub fn limited(
        mut self,
        keys: &KeySpace,
        id: CouponId,
        client: &str,
        defaults: RateLimits,
    ) -> Self {
        self.keys.push(keys.limits(id));
        self.args.extend([
            defaults.per_user.to_string(),
            defaults.per_client.to_string(),
            defaults.window_ms.to_string(),
            client.to_owned(),
        ]);
        self
    }
}

/// How long the limits hash outlives the event's end. reserve.lua stops writing it at the end
/// by the API's clock and Redis expires it by its own: the margin keeps an instance whose clock
/// lags from writing it again after it expired (a hash reserve.lua created would never expire).
const LIMITS_OUTLIVE_END_MS: i64 = 3_600_000;

/// When the load and restore scripts make the coupon's limits hash expire (epoch ms).
pub(crate) fn limits_expire_ms(spec: &couponrush_domain::CouponSpec) -> i64 {
    epoch_ms(spec.issue_ends_at).saturating_add(LIMITS_OUTLIVE_END_MS)
}

/// An event's own limits as the load and restore scripts take them (per user, per client,
/// window ms; empty where the event keeps the default): they write them to the meta hash as
/// `rl_user`, `rl_client`, `rl_window_ms`, where reserve.lua reads them.
pub(crate) fn limit_fields(spec: &couponrush_domain::CouponSpec) -> [String; 3] {
    let own = spec.rate_limit;
    [own.per_user, own.per_client, own.window_ms]
        .map(|v| v.map_or_else(String::new, |v| v.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn keys_and_arguments_in_the_scripts_order() -> Result<(), couponrush_domain::IdError> {
        let id = CouponId::new(7)?;
        let pending = RequestId::generate();
        let now = datetime!(2026-01-01 00:00:10 UTC);
        let call = ReserveCall::new(
            &KeySpace::new("p:"),
            id,
            "u1",
            "r1",
            pending,
            now,
            Duration::from_secs(5),
        );
        assert_eq!(
            call.keys,
            [
                "p:coupon:issue:{7}:meta",
                "p:coupon:issue:{7}:stock",
                "p:coupon:issue:{7}:users",
                "p:coupon:issue:{7}:holds",
                "p:coupon:issue:{7}:void:r1",
            ]
        );
        let now_ms = 1_767_225_610_000_i64;
        assert_eq!(
            call.args,
            [
                "u1".to_owned(),
                format!("P|{pending}|{now_ms}"),
                now_ms.to_string(),
                "r1".to_owned(),
                (now_ms - 5000).to_string(),
                "0".to_owned(),
            ]
        );
        let gated = call.clone().gated(Duration::from_millis(250));
        assert_eq!(gated.args[5], "250");
        assert!(RESERVE_LUA.contains("SOLD_OUT"));
        let limits = RateLimits {
            per_user: 3,
            per_client: 0,
            window_ms: 1000,
        };
        let limited = call
            .clone()
            .limited(&KeySpace::new("p:"), id, "10.0.0.1", limits);
        assert_eq!(limited.keys[5..], ["p:coupon:issue:{7}:rl"]);
        assert_eq!(limited.args[6..], ["3", "0", "1000", "10.0.0.1"]);
        Ok(())
    }
}
