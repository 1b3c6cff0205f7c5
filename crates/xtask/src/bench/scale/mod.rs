//! `cargo xtask bench scale`: more partitions, more consumers, more events at once. One topic
//! of `--partitions` (12) per case; for each number of consumers (1, 3, 6), each number of
//! coupons live at once (1, 3) and each batch size, the consumers are started and ready (in
//! the group, partitions assigned), frozen (SIGSTOP), a backlog of `--messages` issue requests
//! spread evenly over the coupons is preloaded, and the clock starts when they are thawed:
//! the time until MySQL holds every row is theirs alone, group joins excluded.
//!
//! What it shows: whether more consumers drain faster, and where the coupon row lock (every
//! issuance of a coupon decrements its one `coupon` row, so transactions of one coupon
//! serialise) and the batch size (rows per transaction, hence per lock hold) cap them.
//! Checks per case: rows == messages, the dead-letter topic empty, every consumer alive. Each
//! consumer's peak resident set (`VmHWM`) is read after the drain, and the transactions that
//! wrote the rows are counted from `coupon_user.issued_at` (rows per transaction).

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use couponrush_cache::ReservationStore;
use couponrush_config::KafkaSettings;
use couponrush_domain::{CouponId, IssueRequested};
use couponrush_storage::CouponStore;
use couponrush_testkit::{Preload, count_topic, issue_request};

use super::ceiling::rate;
use super::consumer::phases::issued_groups;
use super::cpu::Usage;
use super::rss::rss;
use super::run_args::{QuietArgs, RunArgs, positive_list};
use super::run_info::RunInfo;
use super::session::Session;
use crate::apps::Apps;
use crate::binaries::{build_release, release_binary};
use crate::coupon;
use crate::run_env::{Isolation, RunEnv, check_database_name};

mod summary;

/// Settings of `bench scale` (each also read from its `BENCH_*` variable).
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Partitions of each case's topic.
    #[arg(long, env = "BENCH_PARTITIONS", default_value_t = 12,
          value_parser = clap::value_parser!(i32).range(1..))]
    pub partitions: i32,
    /// Consumer processes of each case, space-separated.
    #[arg(long, env = "BENCH_CONSUMERS", default_value = "1 3 6")]
    pub consumers: String,
    /// Coupons live at once in each case (the backlog is spread evenly over them).
    #[arg(long, env = "BENCH_COUPONS", default_value = "1 3")]
    pub coupons: String,
    /// `consumer.batch_size` of each case.
    #[arg(long, env = "BENCH_BATCH_SIZES", default_value = "500 2000")]
    pub batch_sizes: String,
    /// Issue requests preloaded per case.
    #[arg(long, env = "BENCH_MESSAGES", default_value_t = 60_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub messages: u64,
    /// MySQL polling interval while draining, in ms.
    #[arg(long, env = "BENCH_POLL_MS", default_value_t = 50,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub poll_ms: u64,
    /// Seconds a drain may take before the case is declared failed.
    #[arg(long, env = "BENCH_DRAIN_TIMEOUT", default_value_t = 300)]
    pub drain_timeout: u64,
    /// Seconds for a case's consumers to become ready.
    #[arg(long, env = "BENCH_READY_TIMEOUT", default_value_t = 90)]
    pub ready_timeout: u64,
    /// Dropped and recreated each run (must contain "bench").
    #[arg(long, env = "BENCH_DATABASE", default_value = "couponrush_bench_scale")]
    pub database: String,
    #[command(flatten)]
    pub quiet: QuietArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

impl Args {
    fn cases(&self) -> anyhow::Result<Vec<Case>> {
        let consumers: Vec<u16> = positive_list(&self.consumers, "BENCH_CONSUMERS")?;
        let coupons: Vec<u16> = positive_list(&self.coupons, "BENCH_COUPONS")?;
        let sizes: Vec<u16> = positive_list(&self.batch_sizes, "BENCH_BATCH_SIZES")?;
        let mut cases = Vec::new();
        for &batch_size in &sizes {
            for &coupons in &coupons {
                for &consumers in &consumers {
                    cases.push(Case {
                        consumers,
                        coupons,
                        batch_size,
                    });
                }
            }
        }
        Ok(cases)
    }

    fn validate(&self) -> anyhow::Result<()> {
        check_database_name(&self.database, "bench", "BENCH_DATABASE")?;
        for case in self.cases()? {
            anyhow::ensure!(
                i32::from(case.consumers) <= self.partitions,
                "{} consumers on {} partitions would leave some idle (BENCH_CONSUMERS, BENCH_PARTITIONS)",
                case.consumers,
                self.partitions
            );
            anyhow::ensure!(
                self.messages >= u64::from(case.coupons),
                "BENCH_MESSAGES ({}) must give every coupon at least one",
                self.messages
            );
        }
        Ok(())
    }
}

/// One combination measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Case {
    consumers: u16,
    coupons: u16,
    batch_size: u16,
}

impl Case {
    fn label(&self) -> String {
        format!("n{}-c{}-b{}", self.consumers, self.coupons, self.batch_size)
    }
}

/// What one case measured.
#[derive(Debug)]
struct Measured {
    case: Case,
    rows: u64,
    /// Preloading the backlog, s.
    preload_s: f64,
    /// From the thaw until MySQL held every row, and from the first row seen.
    total_s: f64,
    after_first_s: f64,
    cpu: Usage,
    /// The highest peak resident set (`VmHWM`) of the case's consumers, KiB.
    consumer_peak_kib: u64,
    /// Consumer transactions that wrote the rows (one `issued_at` per transaction and coupon;
    /// two of one coupon in the same millisecond count as one).
    transactions: usize,
    problems: Vec<String>,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    args.validate()?;
    let dir = args.run.take_dir("bench-scale", "benchmark")?;
    let names = Isolation::unique("benchs", args.database.clone(), args.partitions);
    let info = RunInfo::collect(&names.run_id).await;
    let env = RunEnv::up(&dir.path.join("stack"), names).await?;
    dir.run(&args.run, env, async |env| {
        measure(&args, info, env, &dir.logs).await
    })
    .await
}

async fn measure(
    args: &Args,
    info: RunInfo,
    env: &RunEnv,
    logs: &Path,
) -> anyhow::Result<ExitCode> {
    let settings = env.settings();
    let mysql = env.recreate_database().await?;
    if args.run.build {
        build_release(&["coupon-consumer"]).await?;
    }
    release_binary("coupon-consumer")?;
    let session = Session::new(info, env.vars(), logs.to_owned(), mysql, settings).await;
    let background = args.quiet.wait().await?;
    let mut results = Vec::new();
    for case in args.cases()? {
        results.push(run_case(args, env, &session, case).await?);
    }
    let ok = summary::print(args, &session, background, &results);
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn run_case(
    args: &Args,
    env: &RunEnv,
    session: &Session,
    case: Case,
) -> anyhow::Result<Measured> {
    let label = case.label();
    let topic = format!(
        "{}{}-{label}",
        Isolation::topic_stem("benchs"),
        env.names().run_id
    );
    let kafka = KafkaSettings {
        topic: topic.clone(),
        dlq_topic: format!("{topic}.dlq"),
        consumer_group: format!("{topic}-group"),
        ..env.settings().kafka.clone()
    };
    env.create_topic(&kafka.topic, args.partitions).await?;
    env.create_topic(&kafka.dlq_topic, 1).await?;
    let coupons = create_coupons(env, session, case, args.messages, &label).await?;
    eprintln!(
        "[xtask] === {label}: {} consumer(s), {} coupon(s), batch {}, topic {topic} ({} partitions)",
        case.consumers, case.coupons, case.batch_size, args.partitions
    );

    let log_dir = session.logs.join(&label);
    std::fs::create_dir_all(&log_dir)?;
    let mut apps = Apps::new(Some("warn".to_owned())).with_vars(vec![
        ("COUPON__KAFKA__TOPIC", kafka.topic.clone()),
        ("COUPON__KAFKA__DLQ_TOPIC", kafka.dlq_topic.clone()),
        (
            "COUPON__KAFKA__CONSUMER_GROUP",
            kafka.consumer_group.clone(),
        ),
        ("COUPON__CONSUMER__BATCH_SIZE", case.batch_size.to_string()),
        ("COUPON__LOG__FORMAT", "json".to_owned()),
    ]);
    apps.start_consumers(env, usize::from(case.consumers), &log_dir)?;
    let measured = drain(args, session, &mut apps, &kafka, &coupons, case).await;
    apps.stop_all().await;
    let mut measured = measured?;
    let dlq = count_topic(&kafka, &kafka.dlq_topic, Duration::from_secs(60))
        .await?
        .messages;
    if dlq > 0 {
        measured
            .problems
            .push(format!("{dlq} message(s) in {}", kafka.dlq_topic));
    }
    eprintln!(
        "[xtask] {label}: {} rows in {:.3} s ({:.0}/s), {:.0}/s from the first row; CPU {}{}",
        measured.rows,
        measured.total_s,
        rate(measured.rows, measured.total_s),
        rate(measured.rows, measured.after_first_s),
        measured.cpu,
        if measured.problems.is_empty() {
            String::new()
        } else {
            format!("; PROBLEMS: {}", measured.problems.join("; "))
        }
    );
    Ok(measured)
}

/// `case.coupons` coupons of `messages` stock each, created and loaded into Redis as
/// `POST /admin/coupons` does it.
async fn create_coupons(
    env: &RunEnv,
    session: &Session,
    case: Case,
    messages: u64,
    label: &str,
) -> anyhow::Result<Vec<CouponId>> {
    let store = CouponStore::new(session.mysql.clone());
    let cache = ReservationStore::new(&env.settings().redis)?;
    let stock = u32::try_from(messages)?;
    let mut coupons = Vec::new();
    for n in 0..case.coupons {
        let spec = coupon::open_now(
            format!("bench-scale {} {label} #{n}", session.info.id),
            1000,
            stock,
            30,
            time::Duration::days(1),
        );
        spec.validate()?;
        let record = store.create(&spec).await?;
        cache.load(record.id, &record.spec).await?;
        coupons.push(record.id);
    }
    Ok(coupons)
}

/// Ready, frozen, preloaded, thawed: polls MySQL until the coupons hold every message.
async fn drain(
    args: &Args,
    session: &Session,
    apps: &mut Apps,
    kafka: &KafkaSettings,
    coupons: &[CouponId],
    case: Case,
) -> anyhow::Result<Measured> {
    apps.wait_ready(Duration::from_secs(args.ready_timeout))
        .await?;
    let events = backlog(coupons, args.messages, &case.label())?;
    let prepared = Preload::prepare(kafka, &kafka.topic, &events).await?;
    let mut watch = session.watch.with_generator();
    for (n, pid) in apps.consumer_pids().into_iter().enumerate() {
        watch = watch.with(&format!("consumer-{}", n + 1), pid);
    }
    apps.signal_consumers("STOP").await?;
    let preloaded = prepared.send().await;
    let thaw = apps.signal_consumers("CONT");
    let (preloaded, ()) = (preloaded?, thaw.await?);
    let t0 = Instant::now();
    let before = watch.snapshot()?;
    let store = CouponStore::new(session.mysql.clone());
    let target = args.messages;
    let timeout = Duration::from_secs(args.drain_timeout);
    let mut first = None;
    let total = loop {
        let mut rows = 0u64;
        for coupon in coupons {
            let record = store
                .find(*coupon)
                .await?
                .with_context(|| format!("coupon {coupon} is gone"))?;
            rows +=
                u64::try_from(i64::from(record.spec.total_quantity) - record.available_quantity)?;
        }
        let now = t0.elapsed();
        if first.is_none() && rows > 0 {
            first = Some(now);
        }
        if rows >= target {
            break now;
        }
        anyhow::ensure!(
            now < timeout,
            "MySQL holds {rows} of {target} rows after {timeout:?} (BENCH_DRAIN_TIMEOUT)"
        );
        apps.check_alive()?;
        tokio::time::sleep(Duration::from_millis(args.poll_ms)).await;
    };
    let cpu = watch.usage(&before, &watch.snapshot()?);
    apps.check_alive()?;
    let mut consumer_peak_kib = 0;
    for pid in apps.consumer_pids() {
        consumer_peak_kib = consumer_peak_kib.max(rss(pid)?.peak_kib);
    }
    let mut transactions = 0;
    for coupon in coupons {
        transactions += issued_groups(&session.mysql, *coupon).await?.len();
    }
    let first = first.unwrap_or(total);
    Ok(Measured {
        case,
        rows: target,
        preload_s: preloaded.elapsed.as_secs_f64(),
        total_s: total.as_secs_f64(),
        after_first_s: (total - first).as_secs_f64(),
        cpu,
        consumer_peak_kib,
        transactions,
        problems: Vec::new(),
    })
}

/// `messages` issue requests of distinct users, dealt round-robin over `coupons` (so each
/// coupon's requests are spread over every partition, keyed by user as issuer-api keys them).
fn backlog(
    coupons: &[CouponId],
    messages: u64,
    label: &str,
) -> anyhow::Result<Vec<IssueRequested>> {
    let tag = format!("s{}{label}", std::process::id());
    (0..messages)
        .zip(coupons.iter().cycle())
        .map(|(n, coupon)| issue_request(*coupon, &format!("{tag}u{n}")))
        .collect()
}
