//! What a reconciliation run reports: per coupon its verdict, counts and sample users, and the
//! run's summary as text (a person) or JSON (`--output json`).

use std::collections::BTreeMap;
use std::fmt;

use couponrush_domain::CouponId;
use couponrush_domain::reconciliation::Verdict;
use serde::Serialize;

use super::repair::Repair;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Kind {
    /// A first-come-first-served event: raced for in Redis, persisted in MySQL.
    Event,
    /// A compensation coupon: granted in MySQL only.
    Compensation,
}

#[derive(Debug, Default, Serialize)]
pub(super) struct Counts {
    pub(super) issued: u64,
    pub(super) pending: u64,
    pub(super) lost: u64,
    pub(super) orphan: u64,
    pub(super) unconfirmed: u64,
}

#[derive(Debug, Default, Serialize)]
pub(super) struct Samples {
    pub(super) pending: Vec<String>,
    pub(super) lost: Vec<String>,
    pub(super) orphan: Vec<String>,
    pub(super) unconfirmed: Vec<String>,
}

#[derive(Debug, Serialize)]
pub(super) struct CouponReport {
    pub(super) coupon_id: CouponId,
    pub(super) name: String,
    pub(super) kind: Kind,
    pub(super) verdict: Verdict,
    pub(super) reasons: Vec<String>,
    pub(super) total: u32,
    pub(super) mysql_issued: u64,
    pub(super) mysql_available: i64,
    pub(super) redis_loaded: bool,
    /// An open event Redis does not have: nobody can take part until it is rebuilt.
    pub(super) unusable: bool,
    pub(super) redis_stock: Option<i64>,
    pub(super) redis_participants: Option<u64>,
    pub(super) counts: Counts,
    pub(super) samples: Samples,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) repair: Option<Repair>,
}

#[derive(Debug, Serialize)]
pub(super) struct Summary {
    /// Exit status 0: every coupon CONSISTENT or PENDING (after repair, when repairing).
    pub(super) healthy: bool,
    pub(super) repair: bool,
    pub(super) grace_ms: u32,
    pub(super) verdicts: BTreeMap<String, u64>,
    pub(super) coupons: Vec<CouponReport>,
    pub(super) elapsed_ms: u128,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.coupons {
            writeln!(
                f,
                "coupon {} {:?} ({:?}): {}",
                c.coupon_id, c.name, c.kind, c.verdict
            )?;
            writeln!(
                f,
                "  total {}  mysql issued {} available {}  redis {}",
                c.total,
                c.mysql_issued,
                c.mysql_available,
                match (c.redis_stock, c.redis_participants) {
                    (Some(stock), Some(n)) => format!("stock {stock} participants {n}"),
                    _ => "not loaded".to_owned(),
                }
            )?;
            let n = &c.counts;
            writeln!(
                f,
                "  issued {}  pending {}  lost {}  orphan {}  unconfirmed {}",
                n.issued, n.pending, n.lost, n.orphan, n.unconfirmed
            )?;
            for (name, users) in [
                ("pending", &c.samples.pending),
                ("lost", &c.samples.lost),
                ("orphan", &c.samples.orphan),
                ("unconfirmed", &c.samples.unconfirmed),
            ] {
                if !users.is_empty() {
                    writeln!(f, "  {name} e.g. {}", users.join(", "))?;
                }
            }
            for reason in &c.reasons {
                writeln!(f, "  ! {reason}")?;
            }
            match &c.repair {
                Some(Repair {
                    refused: Some(why), ..
                }) => writeln!(f, "  ! repair refused: {why}")?,
                Some(r) => writeln!(
                    f,
                    "  repaired: republished {}, redis reloaded {}{}, restored {} issued and {} \
                     pending, confirmed {}",
                    r.republished,
                    r.redis_reloaded,
                    r.loaded_stock
                        .map(|s| format!(" with stock {s}"))
                        .unwrap_or_default(),
                    r.restored,
                    r.restored_pending,
                    r.confirmed
                )?,
                None => {}
            }
        }
        let verdicts: Vec<String> = self
            .verdicts
            .iter()
            .map(|(v, n)| format!("{v} {n}"))
            .collect();
        write!(
            f,
            "reconcile: {} coupons ({}) in {} ms: {}",
            self.coupons.len(),
            verdicts.join(", "),
            self.elapsed_ms,
            if self.healthy {
                "healthy"
            } else {
                "NEEDS ATTENTION"
            }
        )
    }
}
