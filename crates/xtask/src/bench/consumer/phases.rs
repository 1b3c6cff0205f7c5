//! What a phase measures: MySQL polled until it holds the target, the consumer's transactions
//! read back from `coupon_user.issued_at` (one value per batch), and its own metrics.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use couponrush_domain::CouponId;
use couponrush_storage::{CouponStore, Database, IssuanceStore};
use time::OffsetDateTime;

use super::Poll;
use crate::bench::ceiling::rate;
use crate::report::to_f64;

/// How a phase drained.
#[derive(Debug, Clone, Copy, Default)]
pub struct Drained {
    /// Rows the phase added.
    pub rows: u64,
    pub total_s: f64,
    /// When the first of its rows was seen, from the clock's zero.
    pub first_s: f64,
    pub after_first_s: f64,
    /// `COUNT(*)` once the target was reached (the polled figure is total - available).
    pub count_star: u64,
}

impl Drained {
    pub fn rate_total(&self) -> f64 {
        rate(self.rows, self.total_s)
    }

    pub fn rate_after_first(&self) -> f64 {
        rate(self.rows, self.after_first_s)
    }
}

/// Reads how many rows a coupon holds, as `--poll` says.
#[derive(Debug)]
pub struct Poller {
    coupons: CouponStore,
    coupon: CouponId,
    poll: Poll,
}

impl Poller {
    pub fn new(mysql: &Database, coupon: CouponId, poll: Poll) -> Self {
        Self {
            coupons: CouponStore::new(mysql.clone()),
            coupon,
            poll,
        }
    }

    /// Rows issued now: total - available (the consumer changes both in one transaction, so
    /// every committed snapshot agrees with `COUNT(*)`), or `COUNT(*)`.
    pub async fn rows(&self) -> anyhow::Result<u64> {
        match self.poll {
            Poll::Count => Ok(self.coupons.issued_count(self.coupon).await?),
            Poll::Stock => {
                let coupon = self
                    .coupons
                    .find(self.coupon)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("coupon {} is gone", self.coupon))?;
                let taken = i64::from(coupon.spec.total_quantity) - coupon.available_quantity;
                Ok(u64::try_from(taken)?)
            }
        }
    }

    /// Polls every `every` until `target` rows, for at most `timeout`; times from `t0`.
    pub async fn drain(
        &self,
        base: u64,
        target: u64,
        t0: Instant,
        every: Duration,
        timeout: Duration,
    ) -> anyhow::Result<Drained> {
        let mut first = None;
        loop {
            let rows = self.rows().await?;
            let now = t0.elapsed();
            if first.is_none() && rows > base {
                first = Some(now);
            }
            if rows >= target {
                let total_s = now.as_secs_f64();
                let first_s = first.unwrap_or(now).as_secs_f64();
                return Ok(Drained {
                    rows: target - base,
                    total_s,
                    first_s,
                    after_first_s: total_s - first_s,
                    count_star: self.coupons.issued_count(self.coupon).await?,
                });
            }
            anyhow::ensure!(
                now < timeout,
                "MySQL holds {rows} rows of coupon {} after {timeout:?}, not {target} (BENCH_DRAIN_TIMEOUT)",
                self.coupon
            );
            tokio::time::sleep(every).await;
        }
    }
}

/// Rows per `issued_at` value of a coupon: each value is one consumer transaction.
pub async fn issued_groups(
    mysql: &Database,
    coupon: CouponId,
) -> anyhow::Result<BTreeMap<OffsetDateTime, u64>> {
    let holders = IssuanceStore::new(mysql.clone())
        .holders(coupon)
        .await?
        .ok_or_else(|| anyhow::anyhow!("coupon {coupon} is gone"))?;
    let mut groups = BTreeMap::new();
    for held in holders.holders.values() {
        *groups.entry(held.issued_at).or_default() += 1;
    }
    Ok(groups)
}

/// A phase's transactions: count, mean rows, mean interval between two starts.
#[derive(Debug, Clone, Copy, Default)]
pub struct Batches {
    pub transactions: usize,
    pub rows_per_transaction: f64,
    pub ms_per_transaction: f64,
}

/// The transactions in `groups` that are not in `earlier` (a previous phase's).
pub fn batches(
    groups: &BTreeMap<OffsetDateTime, u64>,
    earlier: &BTreeSet<OffsetDateTime>,
) -> Batches {
    let mine: Vec<(&OffsetDateTime, &u64)> = groups
        .iter()
        .filter(|(at, _)| !earlier.contains(at))
        .collect();
    let (Some(first), Some(last)) = (mine.first(), mine.last()) else {
        return Batches::default();
    };
    let count = u64::try_from(mine.len()).unwrap_or(1);
    let rows: u64 = mine.iter().map(|(_, n)| **n).sum();
    let span_ms = (*last.0 - *first.0).as_seconds_f64() * 1000.0;
    Batches {
        transactions: mine.len(),
        rows_per_transaction: to_f64(rows) / to_f64(count),
        ms_per_transaction: span_ms / to_f64(count.saturating_sub(1).max(1)),
    }
}

/// What the consumer's /metrics said at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scrape {
    /// `coupon_consumer_transaction_duration_seconds` count and sum: batches persisted and
    /// the time spent persisting them (decode + MySQL transaction + Redis confirm).
    pub batches: f64,
    pub persist_s: f64,
    /// Every `kafka_consumer_rebalances_total` event: a rejoin adds to it.
    pub rebalances: f64,
}

/// The consumer's /metrics now; `None` when its ops port does not answer.
pub async fn scrape(ops_url: &str) -> Option<Scrape> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .ok()?;
    let text = client
        .get(format!("{ops_url}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    Some(parse_metrics(&text))
}

/// The figures of an OpenMetrics text this benchmark reads.
fn parse_metrics(text: &str) -> Scrape {
    let mut scrape = Scrape::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let value: f64 = value.parse().unwrap_or(0.0);
        let name = series.split('{').next().unwrap_or(series);
        match name {
            "coupon_consumer_transaction_duration_seconds_count" => scrape.batches = value,
            "coupon_consumer_transaction_duration_seconds_sum" => scrape.persist_s = value,
            "kafka_consumer_rebalances_total" => scrape.rebalances += value,
            _ => {}
        }
    }
    scrape
}

/// Mean ms per batch in persist() and its share (%) of the phase's `total_s`.
pub fn persist_share(before: Scrape, after: Scrape, total_s: f64) -> (f64, f64) {
    let batches = after.batches - before.batches;
    let spent = after.persist_s - before.persist_s;
    let ms = if batches > 0.0 {
        spent * 1000.0 / batches
    } else {
        0.0
    };
    let pct = if total_s > 0.0 {
        spent * 100.0 / total_s
    } else {
        0.0
    };
    (ms, pct)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn metrics_are_read_by_name_whatever_their_labels() {
        let text = "# HELP x\ncoupon_consumer_transaction_duration_seconds_sum 1.5\n\
            coupon_consumer_transaction_duration_seconds_count 30\n\
            kafka_consumer_rebalances_total{event=\"assign\"} 1\n\
            kafka_consumer_rebalances_total{event=\"revoke\"} 2\n# EOF\n";
        let scrape = parse_metrics(text);
        assert_eq!(
            (scrape.batches, scrape.persist_s, scrape.rebalances),
            (30.0, 1.5, 3.0)
        );
        let (ms, pct) = persist_share(Scrape::default(), scrape, 3.0);
        assert_eq!((ms, pct), (50.0, 50.0));
    }

    #[test]
    fn a_phase_counts_only_the_transactions_after_the_earlier_ones() {
        let t = |ms: i64| datetime!(2026-01-01 00:00 UTC) + time::Duration::milliseconds(ms);
        let groups = BTreeMap::from([
            (t(0), 10),
            (t(40), 10),
            (t(100), 20),
            (t(150), 20),
            (t(200), 20),
        ]);
        let earlier = BTreeSet::from([t(0), t(40)]);
        let b = batches(&groups, &earlier);
        assert_eq!(b.transactions, 3);
        assert!((b.rows_per_transaction - 20.0).abs() < 1e-9);
        assert!((b.ms_per_transaction - 50.0).abs() < 1e-9);
        assert_eq!(
            batches(&groups, &groups.keys().copied().collect()).transactions,
            0
        );
    }
}
