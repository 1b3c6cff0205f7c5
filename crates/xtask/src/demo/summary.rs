//! The block a demo run ends with: the load as k6 saw it, what MySQL and Redis hold, the times
//! to sell out and to persist, and the VERDICT.

use std::path::Path;

use couponrush_domain::CouponId;

use super::rush::{Rush, secs, shown};
use super::verdict::Verdict;

/// What the summary is made of.
#[derive(Debug)]
pub struct Report<'a> {
    pub coupon: CouponId,
    pub users: u32,
    pub retries: u32,
    pub vus: u32,
    pub persist_timeout_s: u64,
    pub rush: &'a Rush,
    pub verdict: &'a Verdict,
    /// 202 to ISSUED over the coupons issued; `None` when none was.
    pub issue_delays: Option<&'a IssueDelays>,
    /// Why the rush itself failed (not exactly the stock sold); empty when it did not.
    pub rush_problems: &'a [String],
    pub log_dir: &'a Path,
}

/// How long users who got a 202 waited for ISSUED: from the API's acceptance (the ACCEPTED
/// row's time) to the consumer's commit (`issued_at`), over every coupon issued, in ms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IssueDelays {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl IssueDelays {
    /// Nearest-rank percentiles of `delays`; `None` when empty.
    pub fn of(mut delays: Vec<time::Duration>) -> Option<Self> {
        delays.sort_unstable();
        let ms = |d: &time::Duration| d.as_seconds_f64() * 1000.0;
        let rank = |p: usize| {
            // ceil(p/100 * n), 1-based; at least the first.
            let nearest = (p * delays.len()).div_ceil(100).max(1);
            delays.get(nearest - 1).map(ms)
        };
        Some(Self {
            count: delays.len(),
            p50_ms: rank(50)?,
            p99_ms: rank(99)?,
            max_ms: delays.last().map(ms)?,
        })
    }
}

const RULE: &str =
    "=========================================================================================";

/// Prints the summary on stdout: the demo's one result (progress and logs go to stderr).
#[allow(clippy::print_stdout)] // the task's report, for a person at the terminal
pub fn print(report: &Report<'_>) {
    let Report { rush, verdict, .. } = report;
    let k6 = &rush.k6;
    let stats = &verdict.stats;
    let redis = &stats.redis;
    let direct = &verdict.direct;
    let load_ms = rush.load.as_millis();
    let rps = (u128::from(k6.requests) * 1000)
        .checked_div(load_ms)
        .unwrap_or(0);
    // k6 never runs more VUs than requests.
    let vus_used = report.vus.min(report.users.saturating_add(report.retries));
    let sold_out = rush.sold_out_at.map_or_else(
        || "not sold out".to_owned(),
        |at| format!("{} s after the first request", secs(at)),
    );
    let persisted = rush.persisted_at.map_or_else(
        || {
            format!(
                "NOT REACHED within {}s after the load",
                report.persist_timeout_s
            )
        },
        |at| {
            format!(
                "{} s after the first request (every accepted reservation in MySQL)",
                secs(at)
            )
        },
    );
    let direct_redis = match (direct.redis_stock, direct.redis_users) {
        (Some(stock), Some(users)) => format!(" (direct: GET stock {stock}, HLEN users {users})"),
        _ => " (direct: not loaded)".to_owned(),
    };
    let counts = &verdict.reconciled.counts;
    println!();
    println!(
        "==================================== couponrush demo ===================================="
    );
    println!(
        " event              coupon {}: {} coupons, 5000 off, users {}, retries {}",
        report.coupon, stats.total_quantity, report.users, report.retries
    );
    println!(
        " load (k6)          {} requests ({} retries) by {vus_used} VUs in {} s, ~{rps} req/s",
        k6.requests,
        k6.retries,
        secs(rush.load)
    );
    println!("   accepted (202)           {}", k6.accepted);
    println!("   sold out (409)           {}", k6.sold_out);
    println!("   duplicates (409)         {}", k6.duplicate);
    println!("   errors                   {}", k6.errors);
    println!(
        "   latency p50/p95/p99      {:.2} / {:.2} / {:.2} ms (max {:.2} ms)",
        k6.p50, k6.p95, k6.p99, k6.max
    );
    println!(
        " MySQL              coupon_user rows {} (distinct users {}), available_quantity {}",
        direct.rows, direct.distinct_users, direct.available
    );
    println!(
        " Redis              stock {}, accepted {}, issued {}, pending {}{direct_redis}",
        shown(redis.stock),
        shown(redis.accepted),
        shown(redis.issued),
        shown(redis.pending)
    );
    println!(" time to sell out   {sold_out}");
    println!(" time to persist    {persisted}");
    if let Some(delays) = report.issue_delays {
        println!(
            " 202 -> ISSUED      p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms over {} coupons (API acceptance to MySQL commit)",
            delays.p50_ms, delays.p99_ms, delays.max_ms, delays.count
        );
    }
    let word = if verdict.consistent() {
        "CONSISTENT"
    } else {
        "INCONSISTENT"
    };
    println!(" VERDICT            {word}");
    println!(
        "   reconcile {}: issued {}, pending {}, lost {}, orphan {}, unconfirmed {}",
        verdict.reconciled.verdict,
        counts.issued,
        counts.pending,
        counts.lost,
        counts.orphan,
        counts.unconfirmed
    );
    if verdict.consistent() {
        let total = stats.total_quantity;
        let m_issued = stats.mysql.issued;
        println!(
            "   mysql.issued {m_issued} == redis.accepted {} == total-available {} == total-stock {} <= total {total}; no user twice",
            shown(redis.accepted),
            i128::from(total) - i128::from(stats.mysql.available_quantity),
            i128::from(total) - redis.stock.map_or(0, i128::from),
        );
    } else {
        for problem in &verdict.problems {
            println!("   {problem}");
        }
    }
    for problem in report.rush_problems {
        println!(" RUSH               {problem}");
    }
    if k6.errors > 0 {
        println!(
            " note               {} requests ended in errors (see {}/k6.log)",
            k6.errors,
            report.log_dir.display()
        );
    }
    println!("{RULE}");
}

#[cfg(test)]
mod tests {
    use super::IssueDelays;

    #[test]
    fn issue_delays_are_nearest_rank_percentiles() {
        let delays = (1..=200).map(time::Duration::milliseconds).collect();
        assert_eq!(
            IssueDelays::of(delays),
            Some(IssueDelays {
                count: 200,
                p50_ms: 100.0,
                p99_ms: 198.0,
                max_ms: 200.0,
            })
        );
        assert_eq!(IssueDelays::of(Vec::new()), None);
        let one = IssueDelays::of(vec![time::Duration::milliseconds(7)]);
        assert_eq!(one.map(|d| (d.p50_ms, d.p99_ms)), Some((7.0, 7.0)));
    }
}
