//! The data the jobs run on, written through the project's own code: MySQL as the consumer
//! leaves it (`persist_batch`), Redis as issuer-api and the consumer leave it (the cache
//! crate's restore), then checked.

use std::time::{Duration, Instant};

use anyhow::Context;
use couponrush_domain::{
    CouponId, CouponSpec, IssueRequested, ParticipantState, ParticipationOutcome,
    ParticipationRecorded, RequestId, UserId,
};
use couponrush_storage::{CompensationStore, CompensationWindow, CouponStore, IssuanceStore};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::Bench;
use crate::bench::ceiling::user_ids;

/// Rows per seeding transaction (the consumer's inline inserts take up to 4,000 in one
/// statement).
const SEED_BATCH: usize = 4000;

/// What was seeded.
#[derive(Debug)]
pub struct Seeded {
    pub source: CouponId,
    pub window: CompensationWindow,
    pub reconcile: CouponId,
    pub compensate_seed: Duration,
    pub reconcile_mysql_seed: Duration,
    pub reconcile_redis_seed: Duration,
}

/// Records a check: logged, and kept in `problems` when it does not hold.
pub fn check<T: PartialEq + std::fmt::Debug>(
    problems: &mut Vec<String>,
    what: &str,
    actual: T,
    expected: T,
) {
    if actual == expected {
        eprintln!("[xtask] check: {what} = {actual:?}: OK");
    } else {
        eprintln!("[xtask] check FAILED: {what} = {actual:?}, expected {expected:?}");
        problems.push(format!("{what} = {actual:?}, expected {expected:?}"));
    }
}

fn user(bench: &Bench, n: u64) -> anyhow::Result<UserId> {
    let id = user_ids("u", n, 1, bench.args.uid_width())
        .pop()
        .unwrap_or_default();
    Ok(UserId::parse(&id)?)
}

/// A sold-out (or to be sold out) coupon issued from `starts` for an hour or until `ends`.
async fn coupon(
    bench: &Bench,
    label: &str,
    total: u64,
    starts: OffsetDateTime,
    ends: OffsetDateTime,
) -> anyhow::Result<(CouponId, CouponSpec)> {
    let spec = CouponSpec {
        name: format!("bench-batch {label} {}", bench.run.info.id),
        discount_amount: 1000,
        total_quantity: u32::try_from(total)?,
        issue_starts_at: starts,
        issue_ends_at: ends,
        expiry_days: 30,
        rate_limit: Default::default(),
    };
    let record = CouponStore::new(bench.run.mysql.clone())
        .create(&spec)
        .await?;
    Ok((record.id, spec))
}

pub async fn seed(bench: &Bench, problems: &mut Vec<String>) -> anyhow::Result<Seeded> {
    let args = &bench.args;
    let issuances = IssuanceStore::new(bench.run.mysql.clone());
    let now = OffsetDateTime::now_utc().replace_nanosecond(0)?;

    // compensate: an event a day ago, one attempt per user every 10 ms, holders first; the
    // window [from, until) covers them all.
    let event = now - time::Duration::days(1);
    let at = |n: u64| event + time::Duration::milliseconds(i64::try_from(n).unwrap_or(0) * 10);
    let window = CompensationWindow {
        from: event,
        until: event + time::Duration::seconds(i64::try_from(args.participants / 100 + 1)?),
    };
    eprintln!(
        "[xtask] seeding the compensation case: {} participants, {} holders, window {} .. {}",
        args.participants,
        args.holders,
        window.from.format(&Rfc3339)?,
        window.until.format(&Rfc3339)?
    );
    let started = Instant::now();
    let (source, _) = coupon(
        bench,
        "source",
        args.holders,
        event,
        event + time::Duration::hours(1),
    )
    .await?;
    let holders: Vec<IssueRequested> = (1..=args.holders)
        .map(|n| {
            Ok(IssueRequested::new(
                RequestId::generate(),
                source,
                user(bench, n)?,
                at(n),
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    for chunk in holders.chunks(SEED_BATCH) {
        let issued_at = chunk.first().map_or(event, |r| r.requested_at);
        issuances.persist_batch(chunk, &[], issued_at).await?;
    }
    let refused: Vec<ParticipationRecorded> = (args.holders + 1..=args.participants)
        .map(|n| {
            let user = user(bench, n)?;
            Ok(ParticipationRecorded::new(
                RequestId::generate(),
                source,
                user,
                ParticipationOutcome::SoldOut,
                at(n),
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    for chunk in refused.chunks(SEED_BATCH) {
        issuances.persist_batch(&[], chunk, now).await?;
    }
    let compensate_seed = started.elapsed();
    let by_user = issuances.participation_by_user(source).await?;
    let outcomes = issuances.participation_counts(source).await?;
    check(
        problems,
        "seed: distinct participants",
        u64::try_from(by_user.len())?,
        args.participants,
    );
    check(
        problems,
        "seed: ACCEPTED attempts",
        outcomes.get("ACCEPTED").copied().unwrap_or(0),
        args.holders,
    );
    check(
        problems,
        "seed: SOLD_OUT attempts",
        outcomes.get("SOLD_OUT").copied().unwrap_or(0),
        args.eligible(),
    );
    let counts = CompensationStore::new(bench.run.mysql.clone())
        .counts(source, window, None)
        .await?;
    check(
        problems,
        "seed: eligible in the window",
        counts.eligible,
        args.eligible(),
    );
    let coupons = CouponStore::new(bench.run.mysql.clone());
    check(
        problems,
        "seed: holders of the source coupon",
        coupons.issued_count(source).await?,
        args.holders,
    );
    eprintln!(
        "[xtask] seeded coupon {source} in {:.3} s: {} eligible",
        compensate_seed.as_secs_f64(),
        args.eligible()
    );

    // reconcile: a closed event (two hours ago, one hour long), every unit issued.
    let total = args.reconcile_participants;
    let starts = now - time::Duration::hours(2);
    eprintln!("[xtask] seeding the reconcile case: {total} coupon_user rows");
    let started = Instant::now();
    let (reconcile, spec) = coupon(
        bench,
        "reconcile",
        total,
        starts,
        now - time::Duration::hours(1),
    )
    .await?;
    let requests: Vec<IssueRequested> = (1..=total)
        .map(|n| {
            let at = starts + time::Duration::milliseconds(i64::try_from(n)?);
            Ok(IssueRequested::new(
                RequestId::generate(),
                reconcile,
                user(bench, n)?,
                at,
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    for chunk in requests.chunks(SEED_BATCH) {
        let issued_at = chunk.first().map_or(starts, |r| r.requested_at);
        issuances.persist_batch(chunk, &[], issued_at).await?;
    }
    let reconcile_mysql_seed = started.elapsed();
    let held = issuances
        .holders(reconcile)
        .await?
        .context("the reconcile coupon is gone")?;
    check(
        problems,
        "seed: coupon_user rows of the reconcile coupon",
        u64::try_from(held.holders.len())?,
        total,
    );
    check(
        problems,
        "seed: available_quantity of the reconcile coupon",
        held.available,
        0,
    );

    // Redis as the API and the consumer leave a sold-out event: meta, stock 0, every holder
    // issued under the request MySQL records, the issued counter.
    let started = Instant::now();
    let states = held.states()?;
    bench
        .cache
        .rebuild_lost(reconcile, &spec, &states, &[])
        .await?;
    let reconcile_redis_seed = started.elapsed();
    let counters = bench
        .cache
        .counters(reconcile)
        .await?
        .context("the reconcile coupon is not in Redis")?;
    check(
        problems,
        "redis: participants",
        counters.participants,
        total,
    );
    check(problems, "redis: issued counter", counters.issued, total);
    check(problems, "redis: stock", counters.stock, 0);
    let snapshot = bench
        .cache
        .stock_snapshot(reconcile)
        .await?
        .context("no snapshot")?;
    check(problems, "redis: meta total", snapshot.total, total);
    // First, middle and last participant: issued, under MySQL's request id and time (ms).
    for n in [1, total.div_ceil(2), total] {
        let user = user(bench, n)?;
        let mysql = held.holders.get(user.as_str()).map(|h| h.state());
        let redis = bench.cache.state(reconcile, &user).await?;
        let ms = |s: Option<ParticipantState>| {
            s.map(|s| match s {
                ParticipantState::Pending { request_id, at }
                | ParticipantState::Issued { request_id, at } => {
                    (s.label(), request_id, at.unix_timestamp_nanos() / 1_000_000)
                }
            })
        };
        check(
            problems,
            &format!("redis: state of {user}"),
            ms(redis),
            ms(mysql),
        );
    }
    eprintln!(
        "[xtask] seeded coupon {reconcile}: MySQL {:.3} s, Redis {:.3} s",
        reconcile_mysql_seed.as_secs_f64(),
        reconcile_redis_seed.as_secs_f64()
    );
    Ok(Seeded {
        source,
        window,
        reconcile,
        compensate_seed,
        reconcile_mysql_seed,
        reconcile_redis_seed,
    })
}
