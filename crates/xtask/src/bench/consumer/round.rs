//! One batch size: phase A (a backlog, then a fresh consumer), phase B (a full backlog for the
//! joined consumer, frozen while it is preloaded), then the checks.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::Context;
use couponrush_cache::ReservationStore;
use couponrush_config::{KafkaSettings, Settings};
use couponrush_domain::{CouponId, IssueRequested};
use couponrush_storage::{CouponStore, IssuanceStore};
use couponrush_testkit::{Preload, Preloaded, TopicCount, count_topic, issue_request};

use super::Bench;
use super::phases::{
    Batches, Drained, Poller, Scrape, batches, issued_groups, persist_share, scrape,
};
use crate::bench::cpu::{self as cpu, Usage};
use crate::binaries::release_binary;
use crate::process::Service;

/// How long reading a topic back may take.
const READ_BACK: Duration = Duration::from_secs(120);
/// The consumer records a batch's metrics just after its commit: wait this long before reading.
const METRICS_SETTLE: Duration = Duration::from_millis(200);

/// One phase's figures.
#[derive(Debug)]
pub struct Phase {
    pub messages: u64,
    pub preload: Preloaded,
    pub drained: Drained,
    pub batches: Batches,
    /// Mean ms per batch in persist() and its share of the phase (from the consumer's metrics).
    pub persist: Option<(f64, f64)>,
    pub cpu: Usage,
}

/// The end-of-round checks; `problems` is empty when every one held.
#[derive(Debug, Default)]
pub struct Checks {
    pub rows: u64,
    pub distinct: usize,
    pub available: i64,
    pub total: u32,
    pub redis_issued: u64,
    pub redis_users: u64,
    pub dlq: u64,
    pub error_lines: usize,
    pub problems: Vec<String>,
}

/// One batch size's results.
#[derive(Debug)]
pub struct Round {
    pub batch_size: usize,
    pub a: Phase,
    pub b: Phase,
    /// From SIGSTOP to SIGCONT.
    pub frozen_s: f64,
    /// CPU per consumer thread during B.
    pub threads: String,
    pub rejoined: bool,
    pub topic: TopicCount,
    pub checks: Checks,
}

pub async fn run(
    bench: &Bench,
    settings: &Settings,
    batch_size: usize,
    coupon: CouponId,
    topic: String,
) -> anyhow::Result<Round> {
    let args = &bench.args;
    let kafka = KafkaSettings {
        topic: topic.clone(),
        dlq_topic: format!("{topic}.dlq"),
        consumer_group: format!("{topic}-group"),
        ..settings.kafka.clone()
    };
    let name = format!("consumer-b{batch_size}");
    eprintln!("[xtask] === batch size {batch_size}: topic {topic}, coupon {coupon}");
    let poller = Poller::new(&bench.run.mysql, coupon, args.poll);
    let every = Duration::from_millis(args.poll_ms);
    let timeout = Duration::from_secs(args.drain_timeout);

    // A: the backlog, then a fresh consumer.
    let preload_a = preload(&kafka, &events(bench, coupon, 0, args.backlog)?).await?;
    read_back(&kafka, &topic, args.backlog).await?;
    let mut env = bench.run.env.clone();
    env.extend(
        [
            ("COUPON__KAFKA__TOPIC", kafka.topic.clone()),
            ("COUPON__KAFKA__DLQ_TOPIC", kafka.dlq_topic.clone()),
            (
                "COUPON__KAFKA__CONSUMER_GROUP",
                kafka.consumer_group.clone(),
            ),
            ("COUPON__CONSUMER__BATCH_SIZE", batch_size.to_string()),
            ("COUPON__CONSUMER__OPS_BIND", args.ops_bind.clone()),
            ("COUPON__OUTBOX__ENABLED", args.outbox.to_string()),
            ("RUST_LOG", "warn".to_owned()),
            ("NO_COLOR", "1".to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    let base = poller.rows().await?;
    let t0 = Instant::now();
    let mut consumer = Service::spawn(
        &name,
        &release_binary("coupon-consumer")?,
        [""; 0],
        &env,
        &bench.run.logs,
    )?;
    let pid = consumer.pid().context("the consumer exited at once")?;
    let watch = bench.run.watch.with("consumer", pid).with_generator();
    let before = watch.snapshot()?;
    let drained_a = poller.drain(base, args.backlog, t0, every, timeout).await;
    let cpu_a = watch.usage(&before, &watch.snapshot()?);
    consumer.check_alive()?;
    let drained_a = drained_a?;
    eprintln!(
        "[xtask] A: {} rows in {:.3} s from the start ({:.0}/s), {:.3} s from the first row ({:.0}/s), COUNT(*) then {}; CPU {cpu_a}",
        drained_a.rows,
        drained_a.total_s,
        drained_a.rate_total(),
        drained_a.after_first_s,
        drained_a.rate_after_first(),
        drained_a.count_star
    );
    tokio::time::sleep(METRICS_SETTLE).await;
    let metrics_a = scrape(&args.ops_url()?).await;
    let groups_a = issued_groups(&bench.run.mysql, coupon).await?;
    let a = Phase {
        messages: args.backlog,
        preload: preload_a,
        drained: drained_a,
        batches: batches(&groups_a, &BTreeSet::new()),
        persist: metrics_a.map(|m| persist_share(Scrape::default(), m, drained_a.total_s)),
        cpu: cpu_a,
    };

    // B: freeze the joined consumer, preload, thaw: a full backlog, no join in the clock.
    let target = args.backlog + args.more;
    let prepared = Preload::prepare(
        &kafka,
        &topic,
        &events(bench, coupon, args.backlog, args.more)?,
    )
    .await?;
    consumer.signal("STOP").await?;
    let stopped = Instant::now();
    let preload_b = prepared.send().await;
    let base = poller.rows().await;
    let threads_before = cpu::thread_ticks(pid);
    let before = watch.snapshot()?;
    let t0 = Instant::now();
    consumer.signal("CONT").await?;
    let frozen_s = (t0 - stopped).as_secs_f64();
    let (preload_b, base) = (preload_b?, base?);
    eprintln!(
        "[xtask] B: preloaded {} messages in {:.3} s",
        preload_b.messages,
        preload_b.elapsed.as_secs_f64()
    );
    let drained_b = poller.drain(base, target, t0, every, timeout).await;
    let cpu_b = watch.usage(&before, &watch.snapshot()?);
    let threads = cpu::per_thread(&threads_before, &cpu::thread_ticks(pid), t0.elapsed());
    consumer.check_alive()?;
    let drained_b = drained_b?;
    eprintln!(
        "[xtask] B: {} rows in {:.3} s ({:.0}/s), COUNT(*) then {}; CPU {cpu_b}",
        drained_b.rows,
        drained_b.total_s,
        drained_b.rate_total(),
        drained_b.count_star
    );
    tokio::time::sleep(METRICS_SETTLE).await;
    let metrics_b = scrape(&args.ops_url()?).await;
    let earlier: BTreeSet<_> = groups_a.into_keys().collect();
    let groups_b = issued_groups(&bench.run.mysql, coupon).await?;
    let log = std::fs::read_to_string(consumer.log()).unwrap_or_default();
    let rebalanced =
        matches!((metrics_a, metrics_b), (Some(a), Some(b)) if b.rebalances > a.rebalances);
    let rejoined = rebalanced || log.contains("SESSTMOUT") || log.contains("rejoin");
    if rejoined {
        eprintln!(
            "[xtask] warning: batch {batch_size} B: the consumer left and rejoined its group (see {}); B includes a rejoin",
            consumer.log().display()
        );
    }
    let b = Phase {
        messages: args.more,
        preload: preload_b,
        drained: drained_b,
        batches: batches(&groups_b, &earlier),
        persist: metrics_a
            .zip(metrics_b)
            .map(|(a, b)| persist_share(a, b, drained_b.total_s)),
        cpu: cpu_b,
    };
    consumer.stop(Duration::from_secs(15)).await?;

    let topic_count = read_back(&kafka, &topic, target).await?;
    let mut checks = check(bench, settings, &kafka, coupon, target).await?;
    checks.error_lines = log
        .lines()
        .filter(|l| l.contains("\"level\":\"ERROR\""))
        .count();
    eprintln!(
        "[xtask] batch size {batch_size}: checks {}",
        if checks.problems.is_empty() {
            "OK".to_owned()
        } else {
            checks.problems.join("; ")
        }
    );
    Ok(Round {
        batch_size,
        a,
        b,
        frozen_s,
        threads,
        rejoined,
        topic: topic_count,
        checks,
    })
}

/// `count` issue requests of distinct users `<tag>u<n>` from n = `first`, as issuer-api makes them.
fn events(
    bench: &Bench,
    coupon: CouponId,
    first: u64,
    count: u64,
) -> anyhow::Result<Vec<IssueRequested>> {
    (first..first + count)
        .map(|n| issue_request(coupon, &format!("{}u{n}", bench.user_tag)))
        .collect()
}

async fn preload(kafka: &KafkaSettings, events: &[IssueRequested]) -> anyhow::Result<Preloaded> {
    let sent = Preload::prepare(kafka, &kafka.topic, events)
        .await?
        .send()
        .await?;
    eprintln!(
        "[xtask] preloaded {} messages in {:.3} s",
        sent.messages,
        sent.elapsed.as_secs_f64()
    );
    Ok(sent)
}

/// Proves `topic` holds `want` messages of distinct keys without gaps, by reading it back.
async fn read_back(kafka: &KafkaSettings, topic: &str, want: u64) -> anyhow::Result<TopicCount> {
    let count = count_topic(kafka, topic, READ_BACK).await?;
    let keys = u64::try_from(count.distinct_keys)?;
    anyhow::ensure!(
        count.messages == want && keys == want && count.offset_gaps == 0,
        "topic {topic} holds {} messages ({keys} distinct keys, {} offset gaps), expected {want}",
        count.messages,
        count.offset_gaps
    );
    eprintln!(
        "[xtask] topic {topic} holds {} messages, {keys} distinct users (ListOffsets says {})",
        count.messages, count.high_watermarks
    );
    Ok(count)
}

async fn check(
    bench: &Bench,
    settings: &Settings,
    kafka: &KafkaSettings,
    coupon: CouponId,
    want: u64,
) -> anyhow::Result<Checks> {
    let coupons = CouponStore::new(bench.run.mysql.clone());
    let rows = coupons.issued_count(coupon).await?;
    let holders = IssuanceStore::new(bench.run.mysql.clone())
        .holders(coupon)
        .await?
        .context("the coupon is gone")?;
    let counters = ReservationStore::new(&settings.redis)?
        .counters(coupon)
        .await?
        .context("the coupon is not in Redis")?;
    let dlq = count_topic(kafka, &kafka.dlq_topic, READ_BACK)
        .await?
        .messages;
    let c = Checks {
        rows,
        distinct: holders.holders.len(),
        available: holders.available,
        total: holders.total,
        redis_issued: counters.issued,
        redis_users: counters.participants,
        dlq,
        ..Checks::default()
    };
    let mut problems = Vec::new();
    let distinct = u64::try_from(c.distinct)?;
    if rows != want {
        problems.push(format!("rows {rows} != {want}"));
    }
    if distinct != rows {
        problems.push(format!("distinct users {distinct} != rows {rows}"));
    }
    if c.available != i64::from(c.total) - i64::try_from(rows)? {
        problems.push(format!(
            "available_quantity {} != total {} - rows {rows}",
            c.available, c.total
        ));
    }
    if dlq != 0 {
        problems.push(format!("{dlq} message(s) in {}", kafka.dlq_topic));
    }
    if c.redis_issued != rows {
        problems.push(format!(
            "redis issued counter {} != rows {rows}",
            c.redis_issued
        ));
    }
    if c.redis_users != rows {
        problems.push(format!("redis users hash {} != rows {rows}", c.redis_users));
    }
    Ok(Checks { problems, ..c })
}
