//! The rush: k6 (`scripts/load/issue.js`) fires the users and retries at the event while the
//! stats endpoint is polled, to see when it sold out and when MySQL held every accepted
//! reservation; then the wait until it does.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use couponrush_domain::CouponId;
use serde::Deserialize;

use super::say;
use crate::apps::Api;
use crate::binaries::workspace_root;
use crate::process::Service;

/// `GET /admin/coupons/{id}/stats`: Redis and MySQL counters side by side.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub total_quantity: u64,
    pub redis: RedisStats,
    pub mysql: MysqlStats,
}

/// The Redis half; every counter is absent when the coupon is not loaded.
#[derive(Debug, Clone, Deserialize)]
pub struct RedisStats {
    pub stock: Option<u64>,
    pub accepted: Option<u64>,
    pub issued: Option<u64>,
    pub pending: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MysqlStats {
    pub issued: u64,
    pub available_quantity: i64,
}

impl Stats {
    /// No more reservations can come (sold out, or the load is over) and MySQL holds every
    /// accepted one.
    fn persisted(&self, load_done: bool) -> bool {
        let redis = &self.redis;
        (redis.stock == Some(0) || load_done)
            && redis.accepted == Some(self.mysql.issued)
            && redis.pending == Some(0)
    }
}

/// What the load asks for.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub users: u32,
    pub retries: u32,
    pub vus: u32,
    pub poll: Duration,
    pub persist_timeout: Duration,
}

/// What k6 counted (`handleSummary`'s JSON): requests by answer, and latency in ms.
#[derive(Debug, Default)]
pub struct K6Counts {
    pub requests: u64,
    pub accepted: u64,
    pub sold_out: u64,
    pub duplicate: u64,
    pub errors: u64,
    pub retries: u64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl K6Counts {
    fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("k6 wrote no summary ({})", path.display()))?;
        let summary: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("k6 summary {} is not JSON", path.display()))?;
        let metrics = &summary["metrics"];
        let count = |name: &str| metrics[name]["values"]["count"].as_f64().unwrap_or(0.0);
        let latency = |stat: &str| {
            metrics["http_req_duration"]["values"][stat]
                .as_f64()
                .unwrap_or(0.0)
        };
        // k6 counters are JSON numbers; the counts fit a u64 exactly.
        let whole = |value: f64| format!("{value:.0}").parse::<u64>().unwrap_or(0);
        Ok(Self {
            requests: whole(count("http_reqs")),
            accepted: whole(count("accepted")),
            sold_out: whole(count("sold_out")),
            duplicate: whole(count("duplicate")),
            errors: whole(count("errors")),
            retries: whole(count("retries_sent")),
            p50: latency("p(50)"),
            p95: latency("p(95)"),
            p99: latency("p(99)"),
            max: latency("max"),
        })
    }
}

/// The rush's outcome; times are from the first request.
#[derive(Debug)]
pub struct Rush {
    pub load: Duration,
    pub k6: K6Counts,
    pub sold_out_at: Option<Duration>,
    pub persisted_at: Option<Duration>,
}

/// Runs k6 against `coupon` and watches the stats; returns when MySQL holds every accepted
/// reservation or `persist_timeout` after the load, whichever comes first.
pub async fn run(
    api: &Api,
    coupon: CouponId,
    k6: &Path,
    load: Load,
    log_dir: &Path,
) -> anyhow::Result<Rush> {
    let summary_file = log_dir.join("k6-summary.json");
    let script: PathBuf = workspace_root().join("scripts/load/issue.js");
    say(&format!(
        "k6: {} users + {} retries, {} VUs -> {} (log {})",
        load.users,
        load.retries,
        load.vus,
        api.base_url(),
        log_dir.join("k6.log").display()
    ));
    let env = [
        ("BASE_URL", api.base_url().to_owned()),
        ("COUPON_ID", coupon.to_string()),
        ("USERS", load.users.to_string()),
        ("RETRIES", load.retries.to_string()),
        ("VUS", load.vus.to_string()),
        ("SUMMARY_FILE", summary_file.display().to_string()),
    ]
    .map(|(k, v)| (k.to_owned(), v));
    let mut watch = Watch::new(api, coupon);
    let mut k6_run = Service::spawn(
        "k6",
        k6,
        [
            "run".as_ref(),
            "--no-usage-report".as_ref(),
            "--quiet".as_ref(),
            script.as_os_str(),
        ],
        &env,
        log_dir,
    )?;
    let k6_status = loop {
        if let Some(status) = k6_run.try_wait()? {
            break status;
        }
        watch.observe(false).await;
        tokio::time::sleep(load.poll).await;
    };
    let load_time = watch.started.elapsed();
    say(&format!(
        "k6 finished after {} s ({k6_status})",
        secs(load_time)
    ));
    if !k6_status.success() {
        say(&format!(
            "warning: k6 exited with {k6_status} (see {})",
            k6_run.log().display()
        ));
    }
    let k6 =
        K6Counts::read(&summary_file).with_context(|| format!("see {}", k6_run.log().display()))?;

    let deadline = Instant::now() + load.persist_timeout;
    loop {
        watch.observe(true).await;
        if watch.persisted_at.is_some() || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if watch.persisted_at.is_none() {
        say(&format!(
            "NOT PERSISTED: MySQL did not catch up with Redis within {:?} after the load (last: {:?})",
            load.persist_timeout, watch.last
        ));
    }
    Ok(Rush {
        load: load_time,
        k6,
        sold_out_at: watch.sold_out_at,
        persisted_at: watch.persisted_at,
    })
}

/// The stats seen while the load runs.
struct Watch<'a> {
    api: &'a Api,
    path: String,
    started: Instant,
    sold_out_at: Option<Duration>,
    persisted_at: Option<Duration>,
    last_print: Option<Duration>,
    last: Option<Stats>,
}

impl<'a> Watch<'a> {
    fn new(api: &'a Api, coupon: CouponId) -> Self {
        Self {
            api,
            path: format!("/admin/coupons/{coupon}/stats"),
            started: Instant::now(),
            sold_out_at: None,
            persisted_at: None,
            last_print: None,
            last: None,
        }
    }

    /// One poll: notes when it sold out and when it was persisted, and prints a progress line
    /// once a second. A slow answer under load is skipped, not fatal.
    async fn observe(&mut self, load_done: bool) {
        let Ok(stats) = self
            .api
            .admin_get::<Stats>(&self.path, Duration::from_secs(2))
            .await
        else {
            return;
        };
        let now = self.started.elapsed();
        if self.sold_out_at.is_none() && stats.redis.stock == Some(0) {
            self.sold_out_at = Some(now);
            say(&format!("sold out after {} s", secs(now)));
        }
        // A released reservation (failed publish) re-opens stock: persisted starts over.
        if stats.persisted(load_done) {
            self.persisted_at.get_or_insert(now);
        } else {
            self.persisted_at = None;
        }
        if self
            .last_print
            .is_none_or(|at| now.saturating_sub(at) >= Duration::from_secs(1))
        {
            self.last_print = Some(now);
            let r = &stats.redis;
            say(&format!(
                "t={}s redis stock={} accepted={} issued={} pending={} | mysql issued={} available={}",
                secs(now),
                shown(r.stock),
                shown(r.accepted),
                shown(r.issued),
                shown(r.pending),
                stats.mysql.issued,
                stats.mysql.available_quantity
            ));
        }
        self.last = Some(stats);
    }
}

/// A counter, or `-` when Redis does not have the coupon.
pub fn shown(value: Option<u64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// Seconds with two decimals, truncated (`3.25`).
pub fn secs(duration: Duration) -> String {
    let ms = duration.as_millis();
    format!("{}.{:02}", ms / 1000, (ms % 1000) / 10)
}
