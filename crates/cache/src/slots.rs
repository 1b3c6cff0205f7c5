//! Every script call and pipeline this crate sends must keep to one Redis Cluster slot: a
//! script whose keys span slots fails on a cluster (CROSSSLOT), and a pipeline is sent whole to
//! the node of its first key. These tests build each call exactly as the store does (the same
//! `KeySpace` lists and `ReserveCall`) and compute each key's slot as Redis does (CRC16-XMODEM
//! of the hash tag, mod 16384, by redis-rs's own routing function).

use std::time::Duration;

use couponrush_domain::{CouponId, RateLimits, RequestId};
use redis::cluster_routing::Slot;
use time::macros::datetime;

use crate::keys::KeySpace;
use crate::reserve_call::ReserveCall;

/// The distinct slots of `keys`.
fn slots(keys: &[String]) -> Vec<Slot> {
    let mut slots: Vec<Slot> = Vec::new();
    for key in keys {
        let slot = Slot::for_key(key);
        if !slots.contains(&slot) {
            slots.push(slot);
        }
    }
    slots
}

/// Every key list the crate sends for `coupon`, named.
fn calls(keys: &KeySpace, coupon: CouponId) -> Vec<(&'static str, Vec<String>)> {
    let request = RequestId::generate();
    let reserve = ReserveCall::new(
        keys,
        coupon,
        "user-1",
        &request.to_string(),
        request,
        datetime!(2026-01-01 00:00 UTC),
        Duration::from_secs(5),
    );
    let limits = RateLimits {
        per_user: 3,
        per_client: 100,
        window_ms: 1000,
    };
    let limited = reserve
        .clone()
        .limited(keys, coupon, "2001:db8::/64", limits);
    vec![
        ("reserve.lua", reserve.keys),
        ("reserve.lua with limits", limited.keys),
        ("load.lua", keys.load_keys(coupon).to_vec()),
        (
            "release.lua",
            keys.release_keys(coupon, &request.to_string()).to_vec(),
        ),
        ("mark_issued.lua", keys.mark_issued_keys(coupon).to_vec()),
        ("restore.lua", keys.restore_keys(coupon).to_vec()),
        ("status pipeline", keys.user_view_keys(coupon).to_vec()),
        ("counters pipeline", keys.counters_keys(coupon).to_vec()),
        ("stock snapshot MULTI", keys.snapshot_keys(coupon).to_vec()),
    ]
}

#[test]
fn the_slot_function_is_redis_cluster_s() -> Result<(), couponrush_domain::IdError> {
    // CLUSTER KEYSLOT 123456789 = 12739 (CRC16-XMODEM 0x31C3), the Redis Cluster spec's
    // example; a hash tag hashes only what is between the first braces.
    assert_eq!(Some(Slot::for_key("123456789")), Slot::new(12739));
    assert_eq!(
        Slot::for_key("{123456789}:stock"),
        Slot::for_key("123456789")
    );
    assert_eq!(
        Slot::for_key("prefix:{123456789}:users"),
        Slot::for_key("123456789")
    );
    // And the check below can fail: keys of two coupons are two slots.
    let keys = KeySpace::new("t:");
    let (one, two) = (CouponId::new(1)?, CouponId::new(2)?);
    assert_eq!(slots(&[keys.stock(one), keys.stock(two)]).len(), 2);
    Ok(())
}

#[test]
fn every_script_call_and_pipeline_keeps_to_one_slot() -> Result<(), couponrush_domain::IdError> {
    for prefix in ["", "test:abc:", "prod:eu-1:"] {
        let keys = KeySpace::new(prefix);
        let mut coupon_slots = Vec::new();
        for id in [1, 2, 3, 42, 1_000_007, u64::from(u32::MAX)] {
            let coupon = CouponId::new(id)?;
            let mut all = Vec::new();
            for (call, call_keys) in calls(&keys, coupon) {
                assert!(!call_keys.is_empty(), "{call}");
                assert_eq!(
                    slots(&call_keys).len(),
                    1,
                    "{call} of coupon {id} under {prefix:?} spans slots: {call_keys:?}"
                );
                all.extend(call_keys);
            }
            // Every key of one coupon, across calls, is in that one slot too (the holds
            // ZREM and the participants HSCAN/HMGET/HGET are single-key commands on them).
            all.extend([keys.holds(coupon), keys.participants(coupon)]);
            let one = slots(&all);
            assert_eq!(one.len(), 1, "coupon {id}: {all:?}");
            coupon_slots.extend(one);
        }
        // The coupons spread over the slots (no constant tag shared by all coupons).
        assert!(slots_distinct(&coupon_slots) > 1, "{prefix:?}");
    }
    Ok(())
}

fn slots_distinct(slots: &[Slot]) -> usize {
    let mut seen: Vec<Slot> = Vec::new();
    for slot in slots {
        if !seen.contains(slot) {
            seen.push(*slot);
        }
    }
    seen.len()
}
