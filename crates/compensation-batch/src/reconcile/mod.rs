//! `reconcile`: compare Redis and MySQL per coupon and name what is wrong.
//!
//! In the incident Redis and MySQL were compared by hand, and the check accepted 9,500 issued
//! against 5,000. Here every participant is compared on both sides and every coupon gets a
//! verdict (see `couponrush_domain::reconciliation`). Reads only, unless `--repair`.
//!
//! Read order matters while an event is live: Redis first, then MySQL. A row is committed
//! before Redis hears of it, so a user Redis calls issued always has a visible row by the time
//! MySQL is read; a user MySQL has but the earlier Redis scan missed is looked up again in
//! Redis before being called an orphan.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use anyhow::Context;
use couponrush_cache::ReservationStore;
use couponrush_config::Settings;
use couponrush_domain::CouponId;
use couponrush_domain::reconciliation::{CouponCounts, Finding, RedisCounts, Verdict, judge};
use couponrush_messaging::{InFlight, InFlightScan, IssuePublisher};
use couponrush_ops::StartupProbes;
use couponrush_storage::{CompensationStore, CouponRecord, CouponStore, IssuanceStore};
use time::{Duration, OffsetDateTime};

use crate::connect;
use crate::output::OutputArgs;
use compare::Comparison;
use repair::apply_repairs;
use report::{CouponReport, Kind, Summary};

mod compare;
mod repair;
mod report;

/// Publishes in flight at once when re-driving lost requests.
const REPUBLISH_CONCURRENCY: usize = 512;

#[derive(Debug, clap::Args)]
pub struct ReconcileArgs {
    /// Coupons to check (repeatable); all coupons when absent.
    #[arg(long = "coupon", value_name = "ID")]
    pub coupons: Vec<CouponId>,
    /// How long an accepted request may stay unpersisted before it counts as LOST.
    #[arg(long, value_name = "MS", default_value_t = 60_000)]
    pub grace_ms: u32,
    /// Re-publish LOST requests, rebuild what Redis lost from MySQL and confirm rows Redis
    /// still calls pending. Without it nothing is changed.
    #[arg(long)]
    pub repair: bool,
    /// Sample user ids shown per finding.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub samples: usize,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Everything a reconciliation run talks to.
struct Sources {
    coupons: CouponStore,
    issuances: IssuanceStore,
    cache: ReservationStore,
    publisher: Option<IssuePublisher>,
    /// Counts the requests in flight, when repairing.
    in_flight_scan: Option<InFlightScan>,
    /// One scan serves every coupon Redis lost: made on the first, before its MySQL read.
    in_flight: tokio::sync::OnceCell<Result<InFlight, String>>,
}

impl Sources {
    async fn in_flight(&self) -> &Result<InFlight, String> {
        self.in_flight
            .get_or_init(async || match &self.in_flight_scan {
                Some(scan) => scan.scan().await.map_err(|e| e.to_string()),
                None => Err("not repairing".to_owned()),
            })
            .await
    }
}

/// Runs the reconciliation; the summary and whether every coupon is healthy.
pub async fn run(
    args: &ReconcileArgs,
    settings: &Settings,
) -> anyhow::Result<(serde_json::Value, bool)> {
    let started = Instant::now();
    let db = connect::mysql(settings).await?;
    let cache = connect::redis(settings).await?;
    let probes = StartupProbes::new(&settings.startup);
    let publisher = if args.repair {
        probes.kafka(&settings.kafka, &settings.kafka.topic).await?;
        Some(IssuePublisher::new(
            &settings.kafka,
            &settings.message_signing,
        )?)
    } else {
        None
    };
    let sources = Sources {
        coupons: CouponStore::new(db.clone()),
        issuances: IssuanceStore::new(db.clone()),
        cache,
        publisher,
        in_flight_scan: args
            .repair
            .then(|| InFlightScan::new(&settings.kafka, probes.timeout())),
        in_flight: tokio::sync::OnceCell::new(),
    };
    let granted: HashSet<CouponId> = CompensationStore::new(db)
        .compensation_coupon_ids()
        .await?
        .into_iter()
        .collect();

    let coupons = if args.coupons.is_empty() {
        sources.coupons.list().await?
    } else {
        let mut found = Vec::new();
        for id in &args.coupons {
            found.push(
                sources
                    .coupons
                    .find(*id)
                    .await?
                    .with_context(|| format!("coupon {id} does not exist"))?,
            );
        }
        found
    };

    let mut reports = Vec::with_capacity(coupons.len());
    for coupon in &coupons {
        let kind = if granted.contains(&coupon.id) {
            Kind::Compensation
        } else {
            Kind::Event
        };
        let report = reconcile_coupon(args, &sources, coupon, kind)
            .await
            .with_context(|| format!("reconciling coupon {}", coupon.id))?;
        tracing::info!(coupon = %coupon.id, verdict = %report.verdict, "reconciled");
        reports.push(report);
    }
    if let Some(publisher) = &sources.publisher {
        publisher.flush(settings.kafka.publish_timeout());
    }

    // After a repair, what was lost or orphaned has been acted on; only what no repair can fix
    // (over-issue), and what a repair refused to touch, still needs a person.
    let healthy = reports.iter().all(|r| {
        let refused = r.repair.as_ref().is_some_and(|r| r.refused.is_some());
        let rebuilt = r.repair.as_ref().is_some_and(|r| r.redis_reloaded);
        !refused
            && (!r.unusable || rebuilt)
            && (r.verdict.is_healthy()
                || (args.repair && matches!(r.verdict, Verdict::Lost | Verdict::Orphan)))
    });
    let mut verdicts = BTreeMap::new();
    for report in &reports {
        *verdicts
            .entry(
                serde_json::to_value(report.verdict)?
                    .as_str()
                    .unwrap_or("?")
                    .to_owned(),
            )
            .or_insert(0) += 1;
    }
    let summary = Summary {
        healthy,
        repair: args.repair,
        grace_ms: args.grace_ms,
        verdicts,
        coupons: reports,
        elapsed_ms: started.elapsed().as_millis(),
    };
    Ok((args.output.emit(&summary)?, healthy))
}

async fn reconcile_coupon(
    args: &ReconcileArgs,
    sources: &Sources,
    coupon: &CouponRecord,
    kind: Kind,
) -> anyhow::Result<CouponReport> {
    let id = coupon.id;
    let now = OffsetDateTime::now_utc();
    let grace = Duration::milliseconds(i64::from(args.grace_ms));

    // Redis first (see the module docs), then MySQL in one consistent read.
    let (snapshot, states) = match kind {
        Kind::Event => (
            sources.cache.stock_snapshot(id).await?,
            sources.cache.participants(id).await?,
        ),
        Kind::Compensation => (None, HashMap::new()),
    };
    // A coupon Redis lost is rebuilt with the requests in flight counted: read them before
    // MySQL, so a request persisted in between is seen twice (and counted once), never missed.
    let lost = args.repair && kind == Kind::Event && snapshot.is_none();
    let in_flight = if lost {
        Some(sources.in_flight().await)
    } else {
        None
    };
    let mysql = sources
        .issuances
        .holders(id)
        .await?
        .with_context(|| format!("coupon {id} disappeared from MySQL"))?;
    let (total, available, holders) = (mysql.total, mysql.available, &mysql.holders);

    let rows = u64::try_from(holders.len()).unwrap_or(u64::MAX);
    let compared = Comparison::make(&sources.cache, id, kind, &states, holders, now, grace).await?;
    let counts = compared.counts();

    let redis = snapshot.map(|s| RedisCounts {
        total: s.total,
        stock: s.stock,
        participants: s.participants,
    });
    let (verdict, mut reasons) = judge(&CouponCounts {
        total: u64::from(total),
        mysql_rows: rows,
        mysql_available: available,
        redis,
        pending: counts.pending,
        lost: counts.lost,
        orphans: counts.orphan,
    });
    let verdict = if compared.unreadable > 0 {
        reasons.push(format!(
            "{} participant states in Redis are unreadable",
            compared.unreadable
        ));
        Verdict::OverIssued
    } else {
        verdict
    };
    // An open event Redis does not have refuses every request (503 COUPON_NOT_LOADED), however
    // well its counts agree.
    let unusable = kind == Kind::Event && snapshot.is_none() && now < coupon.spec.issue_ends_at;
    if unusable {
        reasons.push(format!(
            "not loaded in Redis while its window is open: its requests answer 503 \
             COUPON_NOT_LOADED until --repair or PUT /admin/coupons/{id}/stock rebuilds it"
        ));
    }

    let repair = if let Some(in_flight) = in_flight {
        Some(repair::rebuild_lost(sources, coupon, &mysql, in_flight).await?)
    } else if args.repair && kind == Kind::Event {
        Some(
            apply_repairs(
                sources,
                coupon,
                available,
                &compared.lost,
                compared.users(Finding::Orphan),
                compared.users(Finding::Unconfirmed),
                holders,
            )
            .await?,
        )
    } else {
        None
    };

    Ok(CouponReport {
        coupon_id: id,
        name: coupon.spec.name.clone(),
        kind,
        verdict,
        reasons,
        total,
        mysql_issued: rows,
        mysql_available: available,
        redis_loaded: snapshot.is_some(),
        unusable,
        redis_stock: snapshot.map(|s| s.stock),
        redis_participants: snapshot.map(|s| s.participants),
        counts,
        samples: compared.samples(args.samples),
        repair,
    })
}
