//! The timed runs of compensation-batch (compensate: dry run, run, re-run; reconcile), the
//! checks on what they leave, and the ceilings of the same work.

use std::collections::HashSet;

use couponrush_domain::CouponId;
use couponrush_storage::{CouponStore, IssuanceStore};
use time::format_description::well_known::Rfc3339;

use super::Bench;
use super::seed::{Seeded, check};
use crate::bench::ceiling::{self, Kind, Measured};
use crate::bench::cpu::Watch;
use crate::binaries::release_binary;
use crate::process::run_to_end;

/// The compensation coupon's name, discount and expiry.
const COMPENSATION: (&str, &str, &str) = ("Apology", "3000", "30");

/// One timed run of compensation-batch.
#[derive(Debug, Clone)]
pub struct Timed {
    /// The exit code; `None` if a signal ended it.
    pub exit: Option<i32>,
    /// Wall clock of the process, start-up checks included.
    pub seconds: f64,
    /// The `elapsed_ms` its JSON reports, if any.
    pub own_ms: Option<f64>,
    /// How busy the machine was meanwhile (% of one core).
    pub machine: f64,
}

impl Timed {
    pub fn ok(&self) -> bool {
        self.exit == Some(0)
    }
}

/// What the jobs did.
#[derive(Debug)]
pub struct Ran {
    pub dry_run: Timed,
    pub compensate: Timed,
    pub rerun: Timed,
    pub reconcile: Timed,
    pub compensation_coupon: Option<CouponId>,
    /// Rows the compensation coupon holds after the run, and those the re-run added.
    pub granted: u64,
    pub rerun_added: u64,
    pub grant_ceiling: Measured,
    pub reads_ceiling: Measured,
}

/// Runs `compensation-batch args`, timed; prints its stdout (the JSON) as it is.
// The jobs' own output is part of the task's report.
#[allow(clippy::print_stdout)]
async fn batch(bench: &Bench, name: &str, args: &[String]) -> anyhow::Result<Timed> {
    eprintln!("[xtask] {name}: compensation-batch {}", args.join(" "));
    let watch = Watch::default();
    let before = watch.snapshot()?;
    let finished = run_to_end(
        name,
        &release_binary("compensation-batch")?,
        args,
        &bench.run.env,
        &bench.run.logs,
    )
    .await?;
    let machine = watch.usage(&before, &watch.snapshot()?).machine_percent();
    let seconds = finished.elapsed.as_secs_f64();
    let exit = finished.status.code();
    println!(
        "--- {name}: stdout of compensation-batch {} (exit {}, {seconds:.3} s)",
        args.join(" "),
        exit.map_or("signal".to_owned(), |c| c.to_string())
    );
    println!(
        "{}",
        if finished.stdout.trim().is_empty() {
            "(nothing on stdout)"
        } else {
            finished.stdout.trim_end()
        }
    );
    let own_ms = serde_json::from_str::<serde_json::Value>(&finished.stdout)
        .ok()
        .and_then(|v| v.get("elapsed_ms").and_then(serde_json::Value::as_f64));
    if exit != Some(0) {
        eprintln!(
            "[xtask] {name}: exit {exit:?}; see {}",
            bench.run.logs.join(format!("{name}.log")).display()
        );
    }
    Ok(Timed {
        exit,
        seconds,
        own_ms,
        machine,
    })
}

/// Rows and total_quantity of `coupon` (0 and 0 when there is none).
async fn rows_and_total(
    coupons: &CouponStore,
    coupon: Option<CouponId>,
) -> anyhow::Result<(u64, u32)> {
    let Some(id) = coupon else {
        return Ok((0, 0));
    };
    let total = coupons.find(id).await?.map_or(0, |c| c.spec.total_quantity);
    Ok((coupons.issued_count(id).await?, total))
}

/// The users holding `coupon`.
async fn holders(issuances: &IssuanceStore, coupon: CouponId) -> anyhow::Result<HashSet<String>> {
    let held = issuances.holders(coupon).await?;
    Ok(held
        .map(|h| h.holders.into_keys().collect())
        .unwrap_or_default())
}

/// Rows of every coupon but `except`: what a run granted where it must not.
async fn rows_elsewhere(coupons: &CouponStore, except: &[CouponId]) -> anyhow::Result<u64> {
    let mut rows = 0;
    for coupon in coupons.list().await? {
        if !except.contains(&coupon.id) {
            rows += coupons.issued_count(coupon.id).await?;
        }
    }
    Ok(rows)
}

pub async fn run(
    bench: &Bench,
    seeded: &Seeded,
    problems: &mut Vec<String>,
) -> anyhow::Result<Ran> {
    let args = &bench.args;
    let coupons = CouponStore::new(bench.run.mysql.clone());
    let issuances = IssuanceStore::new(bench.run.mysql.clone());
    let (name, discount, expiry) = COMPENSATION;
    let mut compensate: Vec<String> = [
        "compensate",
        "--source-coupon",
        &seeded.source.to_string(),
        "--from",
        &seeded.window.from.format(&Rfc3339)?,
        "--until",
        &seeded.window.until.format(&Rfc3339)?,
        "--name",
        name,
        "--discount",
        discount,
        "--expiry-days",
        expiry,
        "--batch-size",
        &args.batch_size.to_string(),
        "--output",
        "json",
    ]
    .map(str::to_owned)
    .to_vec();
    let seeded_coupons = [seeded.source, seeded.reconcile];

    let coupons_before = coupons.list().await?.len();
    compensate.push("--dry-run".to_owned());
    let dry_run = batch(bench, "compensate-dry-run", &compensate).await?;
    compensate.pop();
    check(
        problems,
        "compensate --dry-run: exit code",
        dry_run.exit,
        Some(0),
    );
    check(
        problems,
        "compensate --dry-run: coupons afterwards",
        coupons.list().await?.len(),
        coupons_before,
    );
    check(
        problems,
        "compensate --dry-run: coupon_user rows granted",
        rows_elsewhere(&coupons, &seeded_coupons).await?,
        0,
    );

    let run = batch(bench, "compensate", &compensate).await?;
    check(problems, "compensate: exit code", run.exit, Some(0));
    let named: Vec<_> = coupons
        .list()
        .await?
        .into_iter()
        .filter(|c| c.spec.name == name)
        .collect();
    check(
        problems,
        &format!("compensate: coupons named {name}"),
        named.len(),
        1,
    );
    let granted_coupon = named.first().map(|c| c.id);
    let (granted, total) = rows_and_total(&coupons, granted_coupon).await?;
    check(
        problems,
        "compensate: coupon_user rows of the compensation coupon",
        granted,
        args.eligible(),
    );
    check(
        problems,
        "compensate: its total_quantity",
        u64::from(total),
        args.eligible(),
    );
    let compensated = match granted_coupon {
        Some(id) => holders(&issuances, id).await?,
        None => HashSet::new(),
    };
    let source_holders = holders(&issuances, seeded.source).await?;
    check(
        problems,
        "compensate: holders of the source coupon compensated",
        compensated.intersection(&source_holders).count(),
        0,
    );
    let refused_left = issuances
        .participation_by_user(seeded.source)
        .await?
        .into_iter()
        .filter(|(user, outcomes)| outcomes.contains_key("SOLD_OUT") && !compensated.contains(user))
        .count();
    check(
        problems,
        "compensate: refused participants not compensated",
        refused_left,
        0,
    );
    let except: Vec<CouponId> = seeded_coupons
        .iter()
        .copied()
        .chain(granted_coupon)
        .collect();
    check(
        problems,
        "compensate: rows granted to other coupons",
        rows_elsewhere(&coupons, &except).await?,
        0,
    );

    let rerun = batch(bench, "compensate-rerun", &compensate).await?;
    check(
        problems,
        "compensate re-run: exit code",
        rerun.exit,
        Some(0),
    );
    let named = coupons
        .list()
        .await?
        .into_iter()
        .filter(|c| c.spec.name == name)
        .count();
    check(
        problems,
        &format!("compensate re-run: coupons named {name}"),
        named,
        1,
    );
    let (after, total_after) = rows_and_total(&coupons, granted_coupon).await?;
    check(
        problems,
        "compensate re-run: coupon_user rows of the compensation coupon",
        after,
        granted,
    );
    check(
        problems,
        "compensate re-run: its total_quantity",
        total_after,
        total,
    );
    check(
        problems,
        "compensate re-run: rows granted to other coupons",
        rows_elsewhere(&coupons, &except).await?,
        0,
    );

    let reconcile_args: Vec<String> = [
        "reconcile",
        "--coupon",
        &seeded.reconcile.to_string(),
        "--output",
        "json",
    ]
    .map(str::to_owned)
    .to_vec();
    let reconcile = batch(bench, "reconcile", &reconcile_args).await?;
    if reconcile.exit == Some(3) {
        eprintln!(
            "[xtask] reconcile: exit 3: coupon {} is neither CONSISTENT nor PENDING (see its JSON)",
            seeded.reconcile
        );
    }
    check(
        problems,
        "reconcile: exit code (0 = CONSISTENT)",
        reconcile.exit,
        Some(0),
    );
    let participants = bench
        .cache
        .counters(seeded.reconcile)
        .await?
        .map_or(0, |c| c.participants);
    check(
        problems,
        "reconcile: participants afterwards (read-only)",
        participants,
        args.reconcile_participants,
    );

    // Ceilings, last: the grant ceiling's coupon would count as "another coupon" above.
    let ceiling_coupon = coupons
        .create(&couponrush_domain::CouponSpec {
            name: format!("bench-batch grant ceiling {}", bench.run.info.id),
            discount_amount: 1000,
            total_quantity: 0,
            ..coupons
                .find(seeded.source)
                .await?
                .map(|c| c.spec)
                .ok_or_else(|| anyhow::anyhow!("source coupon gone"))?
        })
        .await?
        .id;
    let grant = ceiling::Args {
        kind: Kind::Grant,
        coupon: ceiling_coupon,
        prefix: "u".to_owned(),
        first: args.holders + 1,
        count: args.eligible(),
        width: args.uid_width(),
        per_batch: usize::try_from(args.batch_size)?,
    };
    let (grant_ceiling, _) = ceiling::measure(
        "ceiling-grant",
        &grant,
        &bench.run.env,
        &bench.run.logs,
        &bench.run.watch,
    )
    .await?;
    let reads = ceiling::Args {
        kind: Kind::ReconcileReads,
        coupon: seeded.reconcile,
        prefix: String::new(),
        first: 0,
        count: 0,
        width: 0,
        per_batch: 1,
    };
    let (reads_ceiling, _) = ceiling::measure(
        "ceiling-reconcile-reads",
        &reads,
        &bench.run.env,
        &bench.run.logs,
        &bench.run.watch,
    )
    .await?;
    Ok(Ran {
        dry_run,
        compensate: run,
        rerun,
        reconcile,
        compensation_coupon: granted_coupon,
        granted,
        rerun_added: after.saturating_sub(granted),
        grant_ceiling,
        reads_ceiling,
    })
}
