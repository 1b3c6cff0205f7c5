use couponrush_domain::CouponId;

/// Names of the keys of one coupon. The `{id}` hash tag keeps them in one Cluster slot.
#[derive(Debug, Clone)]
pub struct KeySpace {
    prefix: String,
}

impl KeySpace {
    /// `prefix` separates environments and tests sharing a Redis; it must not contain braces
    /// (the config layer checks).
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    fn key(&self, coupon: CouponId, part: &str) -> String {
        format!("{}coupon:issue:{{{coupon}}}:{part}", self.prefix)
    }

    /// Hash: total, starts_ms, ends_ms.
    pub fn meta(&self, coupon: CouponId) -> String {
        self.key(coupon, "meta")
    }

    /// Counter: stock left to reserve.
    pub fn stock(&self, coupon: CouponId) -> String {
        self.key(coupon, "stock")
    }

    /// Hash: user id -> encoded participant state.
    pub fn participants(&self, coupon: CouponId) -> String {
        self.key(coupon, "users")
    }

    /// Counter: participants the consumer has marked issued.
    pub fn issued(&self, coupon: CouponId) -> String {
        self.key(coupon, "issued")
    }

    /// Sorted set: request ids whose reservation took stock and whose publish is not decided
    /// yet, scored by when they reserved (ms). Stock they hold is not "sold out" yet.
    pub fn holds(&self, coupon: CouponId) -> String {
        self.key(coupon, "holds")
    }

    /// Marker: the API gave up on `request` (its reserve call timed out); a late run of that
    /// call must take nothing.
    pub fn void(&self, coupon: CouponId, request: &str) -> String {
        self.key(coupon, &format!("void:{request}"))
    }

    /// Hash of the coupon's abuse-limit state: GCRA theoretical arrival times (ms) under
    /// `u:<user>` and `c:<client>` (IP address or IPv6 /64). One hash, in the coupon's slot,
    /// so the reserve script reads both subjects in one command and counts both in one.
    pub fn limits(&self, coupon: CouponId) -> String {
        self.key(coupon, "rl")
    }

    // The keys of each script call and pipeline, in the order they are sent. Each call must
    // stay in one Cluster slot; `crate::slots` (tests) proves it for every list below.

    /// KEYS of `load.lua`: meta, stock, the limits hash.
    pub(crate) fn load_keys(&self, coupon: CouponId) -> [String; 3] {
        [self.meta(coupon), self.stock(coupon), self.limits(coupon)]
    }

    /// KEYS of `release.lua`: stock, participants, holds, the request's void marker, meta.
    pub(crate) fn release_keys(&self, coupon: CouponId, request: &str) -> [String; 5] {
        [
            self.stock(coupon),
            self.participants(coupon),
            self.holds(coupon),
            self.void(coupon, request),
            self.meta(coupon),
        ]
    }

    /// KEYS of `mark_issued.lua`: participants, issued counter.
    pub(crate) fn mark_issued_keys(&self, coupon: CouponId) -> [String; 2] {
        [self.participants(coupon), self.issued(coupon)]
    }

    /// KEYS of `restore.lua`: meta, stock, participants, issued counter, the limits hash.
    pub(crate) fn restore_keys(&self, coupon: CouponId) -> [String; 5] {
        [
            self.meta(coupon),
            self.stock(coupon),
            self.participants(coupon),
            self.issued(coupon),
            self.limits(coupon),
        ]
    }

    /// The status read's pipeline: participants, stock, meta.
    pub(crate) fn user_view_keys(&self, coupon: CouponId) -> [String; 3] {
        [
            self.participants(coupon),
            self.stock(coupon),
            self.meta(coupon),
        ]
    }

    /// The counters' pipeline: stock, participants, issued counter.
    pub(crate) fn counters_keys(&self, coupon: CouponId) -> [String; 3] {
        [
            self.stock(coupon),
            self.participants(coupon),
            self.issued(coupon),
        ]
    }

    /// The stock snapshot's transaction (`MULTI`): meta, stock, participants.
    pub(crate) fn snapshot_keys(&self, coupon: CouponId) -> [String; 3] {
        [
            self.meta(coupon),
            self.stock(coupon),
            self.participants(coupon),
        ]
    }

    /// Pattern matching every key under this prefix (testkit deletes a test's keys with it).
    pub fn all_pattern(&self) -> String {
        format!("{}coupon:issue:*", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_one_hash_tag() -> Result<(), couponrush_domain::IdError> {
        let ks = KeySpace::new("t1:");
        let id = CouponId::new(42)?;
        assert_eq!(ks.stock(id), "t1:coupon:issue:{42}:stock");
        for key in [
            ks.meta(id),
            ks.participants(id),
            ks.issued(id),
            ks.holds(id),
            ks.void(id, "r"),
            ks.limits(id),
        ] {
            assert!(key.contains("{42}"), "{key}");
        }
        Ok(())
    }
}
