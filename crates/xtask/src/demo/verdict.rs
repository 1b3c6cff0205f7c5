//! The verdict, from what the stores hold, never from k6's counters: `compensation-batch
//! reconcile` (every participant compared on both sides) plus direct reads of MySQL and Redis
//! set against the stats endpoint's last answer.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use couponrush_cache::ReservationStore;
use couponrush_domain::CouponId;
use couponrush_storage::{CouponStore, Database, IssuanceStore};
use serde::Deserialize;

use super::rush::Stats;
use crate::binaries::release_binary;
use crate::process::run_to_end;
use crate::run_env::RunEnv;

/// How long reconcile may take over one coupon (it reads every participant on both sides).
const RECONCILE_TIMEOUT: Duration = Duration::from_secs(300);

/// One coupon's part of `reconcile --output json`.
#[derive(Debug, Deserialize)]
pub struct Reconciled {
    pub verdict: String,
    pub reasons: Vec<String>,
    pub counts: ReconcileCounts,
}

#[derive(Debug, Deserialize)]
pub struct ReconcileCounts {
    pub issued: u64,
    pub pending: u64,
    pub lost: u64,
    pub orphan: u64,
    pub unconfirmed: u64,
}

/// Read from MySQL and Redis directly, not through the API.
#[derive(Debug)]
pub struct Direct {
    pub rows: u64,
    pub distinct_users: u64,
    pub available: i64,
    pub total: u32,
    /// Redis `GET stock` and `HLEN users`; `None` when Redis does not have the coupon.
    pub redis_stock: Option<u64>,
    pub redis_users: Option<u64>,
}

/// The verdict and everything it was computed from.
#[derive(Debug)]
pub struct Verdict {
    pub stats: Stats,
    pub reconciled: Reconciled,
    pub direct: Direct,
    /// Empty: CONSISTENT.
    pub problems: Vec<String>,
}

impl Verdict {
    pub fn consistent(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Runs reconcile for `coupon`, reads both stores, and compares.
pub async fn judge(
    env: &RunEnv,
    coupon: CouponId,
    stats: Stats,
    log_dir: &Path,
) -> anyhow::Result<Verdict> {
    let reconciled = reconcile(env, coupon, log_dir).await?;
    let direct = read_direct(env, coupon).await?;
    let problems = compare(&stats, &reconciled, &direct);
    Ok(Verdict {
        stats,
        reconciled,
        direct,
        problems,
    })
}

/// `compensation-batch reconcile --coupon ID --output json` (the release binary, with the
/// run's settings); its JSON on stdout, its log in `reconcile.log`.
async fn reconcile(env: &RunEnv, coupon: CouponId, log_dir: &Path) -> anyhow::Result<Reconciled> {
    let (binary, vars, id) = (
        release_binary("compensation-batch")?,
        env.vars(),
        coupon.to_string(),
    );
    let args = ["reconcile", "--coupon", &id, "--output", "json"];
    let run = run_to_end("reconcile", &binary, args, &vars, log_dir);
    // A run that does not end in time is killed (kill_on_drop) when the timeout drops it.
    let output = tokio::time::timeout(RECONCILE_TIMEOUT, run)
        .await
        .with_context(|| format!("reconcile did not end within {RECONCILE_TIMEOUT:?}"))??;
    let log = log_dir.join("reconcile.log");
    std::fs::write(log_dir.join("reconcile.json"), &output.stdout)?;
    // Exit 3: it ran and found a coupon that needs attention; the JSON says which.
    anyhow::ensure!(
        output.status.success() || output.status.code() == Some(3),
        "reconcile failed ({}); see {}",
        output.status,
        log.display()
    );
    #[derive(Deserialize)]
    struct Summary {
        coupons: Vec<Reconciled>,
    }
    let summary: Summary = serde_json::from_str(&output.stdout)
        .with_context(|| format!("reconcile printed no JSON summary; see {}", log.display()))?;
    summary
        .coupons
        .into_iter()
        .next()
        .with_context(|| format!("reconcile reported no coupon {coupon}"))
}

async fn read_direct(env: &RunEnv, coupon: CouponId) -> anyhow::Result<Direct> {
    let settings = env.settings();
    let db = Database::new(&settings.mysql)?;
    let rows = CouponStore::new(db.clone()).issued_count(coupon).await?;
    let holders = IssuanceStore::new(db)
        .holders(coupon)
        .await?
        .with_context(|| format!("coupon {coupon} is not in MySQL"))?;
    let counters = ReservationStore::new(&settings.redis)?
        .counters(coupon)
        .await?;
    Ok(Direct {
        rows,
        distinct_users: u64::try_from(holders.holders.len())?,
        available: holders.available,
        total: holders.total,
        redis_stock: counters.as_ref().map(|c| c.stock),
        redis_users: counters.as_ref().map(|c| c.participants),
    })
}

/// The script's checks, each a sentence when it fails.
fn compare(stats: &Stats, reconciled: &Reconciled, direct: &Direct) -> Vec<String> {
    let mut problems = Vec::new();
    if reconciled.verdict != "CONSISTENT" {
        problems.push(format!(
            "reconcile: {} ({})",
            reconciled.verdict,
            reconciled.reasons.join("; ")
        ));
    }
    let redis = &stats.redis;
    let (Some(r_stock), Some(r_accepted), Some(r_pending)) =
        (redis.stock, redis.accepted, redis.pending)
    else {
        problems.push("Redis does not have the coupon (stats show no counters)".to_owned());
        return problems;
    };
    let total = stats.total_quantity;
    let m_issued = stats.mysql.issued;
    let m_avail = stats.mysql.available_quantity;
    let mut check = |ok: bool, what: String| {
        if !ok {
            problems.push(what);
        }
    };
    check(
        m_issued == r_accepted,
        format!("mysql.issued {m_issued} != redis.accepted {r_accepted}"),
    );
    check(
        i128::from(m_issued) == i128::from(total) - i128::from(m_avail),
        format!("mysql.issued {m_issued} != total {total} - mysql.available {m_avail}"),
    );
    check(
        i128::from(m_issued) == i128::from(total) - i128::from(r_stock),
        format!("mysql.issued {m_issued} != total {total} - redis.stock {r_stock}"),
    );
    check(
        m_issued <= total,
        format!("mysql.issued {m_issued} > total {total}"),
    );
    check(r_pending == 0, format!("redis.pending {r_pending} != 0"));
    check(
        direct.rows == m_issued,
        format!(
            "coupon_user rows {} != mysql.issued {m_issued}",
            direct.rows
        ),
    );
    check(
        direct.distinct_users == direct.rows,
        format!(
            "coupon_user distinct users {} != rows {}",
            direct.distinct_users, direct.rows
        ),
    );
    check(
        direct.available == m_avail,
        format!(
            "coupon.available_quantity {} != stats {m_avail}",
            direct.available
        ),
    );
    check(
        u64::from(direct.total) == total,
        format!("coupon.total_quantity {} != stats {total}", direct.total),
    );
    check(
        direct.redis_stock == Some(r_stock),
        format!(
            "redis GET stock {:?} != stats {r_stock}",
            direct.redis_stock
        ),
    );
    check(
        direct.redis_users == Some(r_accepted),
        format!(
            "redis HLEN users {:?} != stats {r_accepted}",
            direct.redis_users
        ),
    );
    problems
}

#[cfg(test)]
mod tests {
    use super::super::rush::{MysqlStats, RedisStats};
    use super::*;

    fn stats(stock: u64, accepted: u64, mysql_issued: u64) -> Stats {
        Stats {
            total_quantity: 500,
            redis: RedisStats {
                stock: Some(stock),
                accepted: Some(accepted),
                issued: Some(accepted),
                pending: Some(0),
            },
            mysql: MysqlStats {
                issued: mysql_issued,
                available_quantity: 500 - i64::try_from(mysql_issued).unwrap_or(0),
            },
        }
    }

    fn reconciled(verdict: &str) -> Reconciled {
        Reconciled {
            verdict: verdict.to_owned(),
            reasons: vec![],
            counts: ReconcileCounts {
                issued: 500,
                pending: 0,
                lost: 0,
                orphan: 0,
                unconfirmed: 0,
            },
        }
    }

    fn direct(rows: u64, distinct_users: u64) -> Direct {
        Direct {
            rows,
            distinct_users,
            available: 500 - i64::try_from(rows).unwrap_or(0),
            total: 500,
            redis_stock: Some(0),
            redis_users: Some(500),
        }
    }

    #[test]
    fn stores_that_agree_are_consistent() {
        let problems = compare(
            &stats(0, 500, 500),
            &reconciled("CONSISTENT"),
            &direct(500, 500),
        );
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn every_disagreement_is_named() {
        let problems = compare(&stats(0, 500, 499), &reconciled("LOST"), &direct(499, 498));
        let all = problems.join("\n");
        for needle in [
            "reconcile: LOST",
            "mysql.issued 499 != redis.accepted 500",
            "mysql.issued 499 != total 500 - redis.stock 0",
            "coupon_user distinct users 498 != rows 499",
        ] {
            assert!(all.contains(needle), "{needle:?} missing from:\n{all}");
        }
    }

    #[test]
    fn a_coupon_redis_lost_is_a_problem() {
        let mut lost = stats(0, 500, 500);
        lost.redis = RedisStats {
            stock: None,
            accepted: None,
            issued: None,
            pending: None,
        };
        let problems = compare(&lost, &reconciled("CONSISTENT"), &direct(500, 500));
        assert_eq!(
            problems,
            ["Redis does not have the coupon (stats show no counters)"]
        );
    }
}
