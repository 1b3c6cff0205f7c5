//! Ceilings measured with the project's own code: the storage crate's real statements (the
//! consumer's issuance, compensate's grant) and the reads reconcile makes, called directly, one
//! call after the other, with everything built before the clock starts, so there is no copy of any
//! SQL to drift from the code it stands for.
//!
//! A ceiling runs in a process of its own, a release build of this crate (`xtask bench
//! ceiling`, hidden): compiled like the binaries it is compared with, and with its CPU counted
//! apart from the harness's.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use couponrush_cache::ReservationStore;
use couponrush_config::ConfigArgs;
use couponrush_domain::{CompensationSource, CouponId, IssueRequested, RequestId, UserId};
use couponrush_storage::{CompensationStore, Database, IssuanceStore, Persisted};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::cpu::{Usage, Watch};
use crate::binaries::release_binary;
use crate::process::run_to_end;
use crate::report::to_f64;

/// What a ceiling measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// `IssuanceStore::issue_without_log`: lock the coupon, insert, decrement, commit.
    IssuePlain,
    /// `IssuanceStore::persist_batch`: the consumer's whole transaction for a first delivery.
    IssueFull,
    /// `CompensationStore::grant`: compensate's transaction, users known in advance.
    Grant,
    /// `IssuanceStore::holders` and `ReservationStore::participants`: reconcile's two reads.
    ReconcileReads,
}

/// One ceiling run (the hidden `xtask bench ceiling`); settings come from `COUPON__*`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[arg(long, value_enum)]
    pub kind: Kind,
    #[arg(long)]
    pub coupon: CouponId,
    /// User ids are PREFIX followed by the numbers FIRST.. (zero-padded to WIDTH digits).
    #[arg(long, default_value = "")]
    pub prefix: String,
    #[arg(long, default_value_t = 0)]
    pub first: u64,
    #[arg(long, default_value_t = 0)]
    pub count: u64,
    #[arg(long, default_value_t = 0)]
    pub width: usize,
    /// Rows per transaction.
    #[arg(long, default_value_t = 2000)]
    pub per_batch: usize,
}

/// What a ceiling run did, as it prints it (one JSON line).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Measured {
    pub rows: u64,
    pub transactions: u64,
    pub seconds: f64,
}

impl Measured {
    /// `rows` written in `transactions` since `started`; an error unless they are the
    /// `expected` count (`done`: what the rows were, for that error).
    fn since(
        started: Instant,
        done: &str,
        rows: u64,
        expected: u64,
        transactions: usize,
    ) -> anyhow::Result<Self> {
        let seconds = started.elapsed().as_secs_f64();
        anyhow::ensure!(rows == expected, "{done} {rows} of {expected}");
        Ok(Self {
            rows,
            transactions: u64::try_from(transactions)?,
            seconds,
        })
    }

    pub fn rate(&self) -> f64 {
        rate(self.rows, self.seconds)
    }

    pub fn ms_per_transaction(&self) -> f64 {
        self.seconds * 1000.0 / to_f64(self.transactions.max(1))
    }
}

/// `n` per second.
pub fn rate(n: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        to_f64(n) / seconds
    } else {
        0.0
    }
}

/// User ids PREFIX<n> for n in FIRST..FIRST+COUNT, zero-padded to `width` digits.
pub fn user_ids(prefix: &str, first: u64, count: u64, width: usize) -> Vec<String> {
    (first..first + count)
        .map(|n| format!("{prefix}{n:0width$}"))
        .collect()
}

impl Args {
    fn users(&self) -> Vec<String> {
        user_ids(&self.prefix, self.first, self.count, self.width)
    }
}

// The task's result goes to stdout, for the process that started it.
#[allow(clippy::print_stdout)]
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut settings = ConfigArgs::default().load().context("ceiling settings")?;
    // The consumer persists its batches one after the other, each on two connections (the
    // log's transaction beside the issuance's): the same here.
    settings.mysql.pool_size = 2;
    let db = Database::new(&settings.mysql)?;
    let measured = match args.kind {
        Kind::IssuePlain | Kind::IssueFull => issue(&args, IssuanceStore::new(db)).await?,
        Kind::Grant => grant(&args, CompensationStore::new(db)).await?,
        Kind::ReconcileReads => {
            let cache = ReservationStore::new(&settings.redis)?;
            let store = IssuanceStore::new(db);
            // Connect first: the clock measures reading, not connecting.
            store.find(args.coupon, &UserId::parse("warm-up")?).await?;
            cache.probe(settings.redis.timeout()).await?;
            let started = Instant::now();
            let holders = store
                .holders(args.coupon)
                .await?
                .context("no such coupon")?;
            let participants = cache.participants(args.coupon).await?;
            let seconds = started.elapsed().as_secs_f64();
            anyhow::ensure!(
                holders.holders.len() == participants.len(),
                "MySQL has {} holders, Redis {} participants",
                holders.holders.len(),
                participants.len()
            );
            Measured {
                rows: u64::try_from(participants.len())?,
                transactions: 2,
                seconds,
            }
        }
    };
    println!("{}", serde_json::to_string(&measured)?);
    Ok(ExitCode::SUCCESS)
}

async fn issue(args: &Args, store: IssuanceStore) -> anyhow::Result<Measured> {
    let now = OffsetDateTime::now_utc();
    let batches = args
        .users()
        .chunks(args.per_batch.max(1))
        .map(|users| {
            users
                .iter()
                .map(|user| {
                    let user = UserId::parse(user)?;
                    Ok(IssueRequested::new(
                        RequestId::generate(),
                        args.coupon,
                        user,
                        now,
                    ))
                })
                .collect::<anyhow::Result<Vec<_>>>()
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    store.find(args.coupon, &UserId::parse("warm-up")?).await?;
    let started = Instant::now();
    let mut rows = 0u64;
    for batch in &batches {
        let now = OffsetDateTime::now_utc();
        let outcomes = if args.kind == Kind::IssuePlain {
            store.issue_without_log(batch, now).await?
        } else {
            store.persist_batch(batch, &[], now).await?
        };
        rows += u64::try_from(
            outcomes
                .iter()
                .filter(|o| matches!(o, Persisted::Issued { .. }))
                .count(),
        )?;
    }
    Measured::since(started, "issued", rows, args.count, batches.len())
}

async fn grant(args: &Args, store: CompensationStore) -> anyhow::Result<Measured> {
    let users = args.users();
    let batches: Vec<&[String]> = users.chunks(args.per_batch.max(1)).collect();
    store.find(args.coupon, warm_up_window()).await?;
    let started = Instant::now();
    let mut rows = 0;
    let window = warm_up_window();
    // Any source: without outbox events nothing reads it.
    let source = CompensationSource {
        source_coupon_id: args.coupon,
        window_starts_at: window.from,
        window_ends_at: window.until,
    };
    for batch in &batches {
        rows += store
            .grant(args.coupon, source, batch, OffsetDateTime::now_utc())
            .await?;
    }
    Measured::since(started, "granted", rows, args.count, batches.len())
}

/// Any window: the look-up only opens the connection before the clock starts.
fn warm_up_window() -> couponrush_storage::CompensationWindow {
    let now = OffsetDateTime::now_utc();
    couponrush_storage::CompensationWindow {
        from: now,
        until: now,
    }
}

/// Runs a ceiling in the release build of this crate with `env`, its stderr in
/// `logs/<name>.log`; what it measured and the CPU each watched process used meanwhile (the
/// ceiling process counts as `gen`).
pub async fn measure(
    name: &str,
    args: &Args,
    env: &[(String, String)],
    logs: &Path,
    watch: &Watch,
) -> anyhow::Result<(Measured, Usage)> {
    let xtask = release_binary("xtask")?;
    let mut argv = vec![
        "bench".to_owned(),
        "ceiling".to_owned(),
        "--kind".to_owned(),
        clap::ValueEnum::to_possible_value(&args.kind)
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default(),
        "--coupon".to_owned(),
        args.coupon.to_string(),
        "--first".to_owned(),
        args.first.to_string(),
        "--count".to_owned(),
        args.count.to_string(),
        "--width".to_owned(),
        args.width.to_string(),
        "--per-batch".to_owned(),
        args.per_batch.to_string(),
    ];
    if !args.prefix.is_empty() {
        argv.extend(["--prefix".to_owned(), args.prefix.clone()]);
    }
    // The harness's own CPU while it waits is next to nothing; `gen` (this process and the
    // children it has waited for) is the ceiling client.
    let watch = watch.with_generator();
    let before = watch.snapshot()?;
    let finished = run_to_end(name, &xtask, &argv, env, logs).await?;
    let usage = watch.usage(&before, &watch.snapshot()?);
    anyhow::ensure!(
        finished.status.success(),
        "{name} failed ({}); see {}",
        finished.status,
        logs.join(format!("{name}.log")).display()
    );
    let measured: Measured = serde_json::from_str(finished.stdout.trim())
        .with_context(|| format!("{name} printed {:?}", finished.stdout))?;
    eprintln!(
        "[xtask] {name}: {:.0} rows/s ({:.3} s); CPU {usage}",
        measured.rate(),
        measured.seconds
    );
    Ok((measured, usage))
}
