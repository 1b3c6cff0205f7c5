//! `cargo xtask bench consumer`: how fast ONE coupon-consumer (release) turns a Kafka backlog
//! into MySQL rows, against MySQL's own ceiling measured in the same run.
//!
//! For each batch size, on its own topic, dead-letter topic, group and coupon:
//! - A, the incident's backlog: `--backlog` issue requests preloaded (the domain's encoding,
//!   acknowledged, read back), then one consumer process started; time until MySQL holds them,
//!   from the process start and from the first row (the group join takes seconds with tansu);
//! - B, a full backlog drained by a member already in the group: the consumer is frozen
//!   (SIGSTOP), `--more` messages are preloaded, and the clock starts at SIGCONT.
//!
//! Then once, C, the ceiling: the same rows through the storage crate's own write path, one
//! batch after the other as the consumer writes them (see `bench::ceiling`): "plain" is the
//! issuance alone (lock, insert, decrement), "full" is `persist_batch`, the consumer's whole
//! write for a first delivery (the participation log's transaction beside the issuance's).
//!
//! Checks per batch size: rows == backlog + more, distinct users == rows, available == total -
//! rows, Redis issued counter and participants hash == rows, the dead-letter topic empty, no
//! rejoin during B. "Rows in MySQL" is polled as total - available (a primary-key read; the
//! consumer changes both in one transaction), or `COUNT(*)` with `--poll count`.

// `bench scale` reads the transactions back the same way.
pub(super) mod phases;
mod round;
mod summary;

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use couponrush_cache::ReservationStore;
use couponrush_domain::CouponId;
use couponrush_storage::CouponStore;

use super::ceiling::{self, Kind, Measured};
use super::cpu::Usage;
use super::run_args::{QuietArgs, RunArgs, positive_list};
use super::run_info::RunInfo;
use super::session::Session;
use crate::binaries::{build_release, release_binary};
use crate::coupon;
use crate::run_env::{Isolation, RunEnv, check_database_name};
use round::Round;

/// How "rows in MySQL" is polled while draining.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Poll {
    /// total - available of the coupon: a primary-key read.
    Stock,
    /// `COUNT(*)` of its rows: 50-100 ms of MariaDB per poll at 245,000 rows.
    Count,
}

/// Settings of `bench consumer` (each also read from its `BENCH_*` variable).
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// `consumer.batch_size` of each round, space-separated.
    #[arg(long, env = "BENCH_BATCH_SIZES", default_value = "2000 500")]
    pub batch_sizes: String,
    /// Phase A messages.
    #[arg(long, env = "BENCH_BACKLOG", default_value_t = 45_000)]
    pub backlog: u64,
    /// Phase B messages.
    #[arg(long, env = "BENCH_MORE", default_value_t = 200_000)]
    pub more: u64,
    /// total_quantity of each coupon (at least backlog + more and the ceiling's rows).
    #[arg(long, env = "BENCH_STOCK", default_value_t = 250_000)]
    pub stock: u32,
    /// Rows of each ceiling (0: no ceiling).
    #[arg(long, env = "BENCH_CEILING_ROWS", default_value_t = 245_000)]
    pub ceiling_rows: u64,
    /// Rows per transaction of the ceiling.
    #[arg(long, env = "BENCH_CEILING_PER_STMT", default_value_t = 2000)]
    pub ceiling_per_stmt: usize,
    /// MySQL polling interval while draining, in ms.
    #[arg(long, env = "BENCH_POLL_MS", default_value_t = 50)]
    pub poll_ms: u64,
    #[arg(long, env = "BENCH_POLL", value_enum, default_value_t = Poll::Stock)]
    pub poll: Poll,
    /// Seconds a phase may take before the run is declared failed.
    #[arg(long, env = "BENCH_DRAIN_TIMEOUT", default_value_t = 180)]
    pub drain_timeout: u64,
    /// Dropped and recreated each run (must contain "bench").
    #[arg(
        long,
        env = "BENCH_DATABASE",
        default_value = "couponrush_bench_consumer"
    )]
    pub database: String,
    /// Partitions of each round's topic.
    #[arg(long, env = "BENCH_PARTITIONS", default_value_t = 3)]
    pub partitions: i32,
    /// The consumer's ops port (its /metrics is read after A and B).
    #[arg(long, env = "BENCH_OPS_BIND", default_value = "127.0.0.1:19093")]
    pub ops_bind: String,
    /// `outbox.enabled` of the consumer: each row issued also writes its `CouponIssued` event.
    #[arg(long, env = "BENCH_OUTBOX", default_value_t = false, action = clap::ArgAction::Set)]
    pub outbox: bool,
    #[command(flatten)]
    pub quiet: QuietArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

impl Args {
    fn batch_sizes(&self) -> anyhow::Result<Vec<usize>> {
        positive_list(&self.batch_sizes, "BENCH_BATCH_SIZES")
    }

    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.backlog >= 1 && self.more >= 1 && self.poll_ms >= 1 && self.partitions >= 1,
            "BENCH_BACKLOG, BENCH_MORE, BENCH_POLL_MS and BENCH_PARTITIONS must be at least 1"
        );
        anyhow::ensure!(
            self.ceiling_per_stmt >= 1,
            "BENCH_CEILING_PER_STMT must be at least 1"
        );
        let stock = u64::from(self.stock);
        anyhow::ensure!(
            stock >= self.backlog + self.more && stock >= self.ceiling_rows,
            "BENCH_STOCK ({stock}) must be at least BENCH_BACKLOG + BENCH_MORE and BENCH_CEILING_ROWS"
        );
        check_database_name(&self.database, "bench", "BENCH_DATABASE")?;
        self.ops_url()?;
        self.batch_sizes().map(drop)
    }

    /// The ops port as the harness reaches it (0.0.0.0 is reached on the loopback).
    fn ops_url(&self) -> anyhow::Result<String> {
        let address = crate::apps::loopback_address(&self.ops_bind).with_context(|| {
            format!("BENCH_OPS_BIND must be host:port, got {:?}", self.ops_bind)
        })?;
        anyhow::ensure!(
            address.port() > 0,
            "BENCH_OPS_BIND needs a port, got {:?}",
            self.ops_bind
        );
        Ok(format!("http://{address}"))
    }
}

/// Everything the rounds share.
pub struct Bench {
    pub args: Args,
    /// Each round adds its topic, group and batch size to `run.env`.
    pub run: Session,
    /// Every user id of this run starts with it.
    pub user_tag: String,
    /// The consumer settings that shape a drain, as the consumer will load them.
    pub consumer: String,
}

/// What the whole run measured.
#[derive(Debug, Default)]
pub struct Results {
    pub rounds: Vec<Round>,
    /// plain and full ceilings: what they measured and the CPU meanwhile.
    pub ceilings: Vec<(Kind, Measured, Usage)>,
    pub background: f64,
}

/// The topic of the round of `batch_size` (its dead-letter topic adds `.dlq`).
fn round_topic(run_id: &str, batch_size: usize) -> String {
    format!("{}{run_id}-b{batch_size}", Isolation::topic_stem("benchc"))
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    args.validate()?;
    let dir = args.run.take_dir("bench-consumer", "benchmark")?;
    let mut names = Isolation::unique("benchc", args.database.clone(), args.partitions);
    // The run's topic is its first round's (stack.sh creates it); the others come per round.
    let first_topic = round_topic(&names.run_id, args.batch_sizes()?[0]);
    names.dlq_topic = Some(format!("{first_topic}.dlq"));
    names.topic = Some(first_topic);
    let info = RunInfo::collect(&names.run_id).await;
    let env = RunEnv::up(&dir.path.join("stack"), names).await?;
    dir.run(&args.run, env, async |env| {
        measure(args.clone(), info, env, &dir.logs).await
    })
    .await
}

async fn measure(args: Args, info: RunInfo, env: &RunEnv, logs: &Path) -> anyhow::Result<ExitCode> {
    let settings = env.settings();
    let mysql = env.recreate_database().await?;
    let cache = ReservationStore::new(&settings.redis)?;
    if args.run.build {
        build_release(&["coupon-consumer", "xtask"]).await?;
    }
    release_binary("coupon-consumer")?;
    release_binary("xtask")?;

    // The coupons, created and loaded into Redis as POST /admin/coupons does it.
    let sizes = args.batch_sizes()?;
    let coupons = CouponStore::new(mysql.clone());
    let create = async |label: &str| -> anyhow::Result<CouponId> {
        let spec = coupon::open_now(
            format!("bench-consumer {} {label}", info.id),
            1000,
            args.stock,
            30,
            time::Duration::days(1),
        );
        spec.validate()?;
        let record = coupons.create(&spec).await?;
        cache.load(record.id, &record.spec).await?;
        Ok(record.id)
    };
    let mut round_coupons = Vec::new();
    for size in &sizes {
        round_coupons.push(create(&format!("batch {size}")).await?);
    }
    let ceiling_coupons = if args.ceiling_rows > 0 {
        vec![
            (Kind::IssuePlain, create("ceiling plain").await?),
            (Kind::IssueFull, create("ceiling full").await?),
        ]
    } else {
        Vec::new()
    };

    let bench = Bench {
        user_tag: format!("c{}x", std::process::id()),
        consumer: format!(
            "batch_wait_ms {}, mysql pool {}, session timeout {} ms",
            settings.consumer.batch_wait_ms,
            settings.mysql.pool_size,
            settings.kafka.session_timeout_ms
        ),
        run: Session::new(
            info,
            env.vars_with(&[
                ("COUPON__LOG__FORMAT", "json".to_owned()),
                ("COUPON__LOG__FILTER", "warn".to_owned()),
            ]),
            logs.to_owned(),
            mysql,
            settings,
        )
        .await,
        args,
    };
    let mut results = Results {
        background: bench.args.quiet.wait().await?,
        ..Results::default()
    };

    for (size, coupon) in sizes.iter().zip(round_coupons) {
        let topic = round_topic(&env.names().run_id, *size);
        env.create_topic(&topic, bench.args.partitions).await?;
        env.create_topic(&format!("{topic}.dlq"), 1).await?;
        results
            .rounds
            .push(round::run(&bench, settings, *size, coupon, topic).await?);
    }
    for (kind, coupon) in ceiling_coupons {
        let mode = if kind == Kind::IssuePlain {
            "plain"
        } else {
            "full"
        };
        let params = ceiling::Args {
            kind,
            coupon,
            prefix: format!("{}{mode}", bench.user_tag),
            first: 0,
            count: bench.args.ceiling_rows,
            width: 0,
            per_batch: bench.args.ceiling_per_stmt,
        };
        let name = format!("ceiling-{mode}");
        let (measured, usage) = ceiling::measure(
            &name,
            &params,
            &bench.run.env,
            &bench.run.logs,
            &bench.run.watch,
        )
        .await?;
        results.ceilings.push((kind, measured, usage));
    }
    let ok = summary::print(&bench, &results);
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
