//! `cargo xtask demo`: the incident's event replayed on this machine. In order: the stack with
//! the demo's own database (recreated each run), topic, consumer group and Redis key prefix
//! (unique per run); the release binaries built; N coupon-consumers and issuer-api started and
//! ready; an event of `--stock` coupons; k6 fires `--users` distinct users plus `--retries`
//! retries at it while the stats are polled; the wait until MySQL holds every accepted
//! reservation; a summary and a VERDICT from what MySQL and Redis hold. Everything it started
//! is stopped on every exit path, Ctrl-C included. Exit status 0 iff CONSISTENT, persisted, and
//! (when users outnumber the stock) exactly the stock sold.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use couponrush_storage::{Database, IssuanceStore};

use crate::apps::Apps;
use crate::binaries::{build_release, workspace_root};
use crate::coupon;
use crate::lock::RunLock;
use crate::run_env::{Cleanup, Isolation, RunEnv, check_database_name};
use crate::{signals, tools};

mod rush;
mod summary;
mod verdict;

use summary::IssueDelays;

/// Settings of a demo run (each also read from its `DEMO_*` variable).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Coupons in the event.
    #[arg(long, env = "DEMO_STOCK", default_value_t = 5000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub stock: u32,
    /// Distinct users, each trying once.
    #[arg(long, env = "DEMO_USERS", default_value_t = 50_000)]
    pub users: u32,
    /// Extra requests by users who already tried (a person pressing the button again).
    #[arg(long, env = "DEMO_RETRIES", default_value_t = 5000)]
    pub retries: u32,
    /// k6 virtual users.
    #[arg(long, env = "DEMO_VUS", default_value_t = 200,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub vus: u32,
    /// The demo's database: dropped and recreated each run, kept afterwards for inspection
    /// (must match [A-Za-z0-9_]+ and contain "demo").
    #[arg(long, env = "DEMO_DATABASE", default_value = "couponrush_demo")]
    pub database: String,
    /// issuer-api address (not 8080: leaves a developer's API alone).
    #[arg(long, env = "DEMO_HTTP_BIND", default_value = "127.0.0.1:18080")]
    pub http_bind: String,
    /// coupon-consumer processes (one per partition).
    #[arg(long, env = "DEMO_CONSUMERS", default_value_t = 3,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub consumers: u16,
    /// Partitions of the demo's topic.
    #[arg(long, env = "DEMO_PARTITIONS", default_value_t = 3,
          value_parser = clap::value_parser!(i32).range(1..))]
    pub partitions: i32,
    /// Seconds for the API and the consumers to become ready.
    #[arg(long, env = "DEMO_READY_TIMEOUT", default_value_t = 60)]
    pub ready_timeout: u64,
    /// Seconds after the load for MySQL to catch up with Redis.
    #[arg(long, env = "DEMO_PERSIST_TIMEOUT", default_value_t = 180)]
    pub persist_timeout: u64,
    /// Stats polling interval during the load, in milliseconds.
    #[arg(long, env = "DEMO_POLL_MS", default_value_t = 150,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub poll_ms: u64,
    /// Keep this run's Redis keys and topics (the database is always kept until the next run).
    #[arg(long, env = "DEMO_KEEP")]
    pub keep: bool,
    /// Logs (logs/ is replaced each run) and stack state [default: <repo>/.stack/demo].
    #[arg(long, env = "DEMO_DIR")]
    pub dir: Option<PathBuf>,
    /// RUST_LOG of the demo's processes.
    #[arg(long, env = "DEMO_RUST_LOG", default_value = "info")]
    pub rust_log: String,
}

impl Args {
    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            u64::from(self.users) + u64::from(self.retries) >= 1,
            "DEMO_USERS + DEMO_RETRIES must be at least 1"
        );
        check_database_name(&self.database, "demo", "DEMO_DATABASE")
    }
}

/// A progress line on stderr.
fn say(message: &str) {
    eprintln!("[demo] {message}");
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    args.validate()?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| workspace_root().join(".stack/demo"));
    // One demo at a time: they share the database.
    let (_lock, log_dir) = RunLock::with_fresh_logs(&dir, "demo")?;
    let k6 = tools::require("k6").await?;
    let names = Isolation::unique("demo", args.database.clone(), args.partitions);
    say(&format!(
        "run {}: stock {}, users {}, retries {}, {} VUs; logs in {}",
        names.run_id,
        args.stock,
        args.users,
        args.retries,
        args.vus,
        log_dir.display()
    ));
    let env = RunEnv::up(&dir.join("stack"), names).await?;
    let mut apps = Apps::new(Some(args.rust_log.clone()));
    let outcome = signals::unless_interrupted(
        "demo",
        Box::pin(demo(&args, &env, &mut apps, &k6, &log_dir)),
    )
    .await;
    say("stopping the demo's processes");
    apps.stop_all().await;
    let keep = args.keep;
    env.cleanup(Cleanup {
        keys: !keep,
        topics: !keep,
        database: false,
        stack: true,
    })
    .await;
    match outcome {
        Ok(Ok(true)) => {
            say(&format!(
                "database {} is kept for inspection until the next run; logs in {}",
                args.database,
                log_dir.display()
            ));
            Ok(ExitCode::SUCCESS)
        }
        Ok(Ok(false)) => {
            say(&format!("failed; logs are in {}", log_dir.display()));
            Ok(ExitCode::FAILURE)
        }
        Ok(Err(code)) => Ok(code),
        Err(error) => Err(error.context(format!("demo failed; logs are in {}", log_dir.display()))),
    }
}

/// The demo up to its summary; whether it succeeded.
async fn demo(
    args: &Args,
    env: &RunEnv,
    apps: &mut Apps,
    k6: &Path,
    log_dir: &Path,
) -> anyhow::Result<bool> {
    say("building release binaries (several minutes the first time)");
    build_release(&["issuer-api", "coupon-consumer", "compensation-batch"]).await?;
    env.recreate_database().await?;
    env.create_topics().await?;

    apps.start_consumers(env, usize::from(args.consumers), log_dir)?;
    apps.start_api(env, &args.http_bind, log_dir)?;
    say(&format!(
        "waiting for the API and {} consumers to be ready (up to {}s)",
        args.consumers, args.ready_timeout
    ));
    apps.wait_ready(Duration::from_secs(args.ready_timeout))
        .await?;
    say(&format!("API and {} consumers ready", args.consumers));

    let api = apps.api()?;
    let event = coupon::open_now(
        format!("couponrush demo {}", env.names().run_id),
        5000,
        args.stock,
        30,
        time::Duration::hours(1),
    );
    let coupon = api.create_coupon(&event).await?;
    say(&format!(
        "event created: coupon {coupon}, {} coupons, window {}",
        args.stock,
        coupon::window(&event)
    ));

    let load = rush::Load {
        users: args.users,
        retries: args.retries,
        vus: args.vus,
        poll: Duration::from_millis(args.poll_ms),
        persist_timeout: Duration::from_secs(args.persist_timeout),
    };
    let rush = rush::run(api, coupon, k6, load, log_dir).await?;
    let stats = api
        .admin_get(
            &format!("/admin/coupons/{coupon}/stats"),
            Duration::from_secs(5),
        )
        .await
        .context("stats endpoint did not answer after the load")?;
    let verdict = verdict::judge(env, coupon, stats, log_dir).await?;
    let issue_delays = IssueDelays::of(
        IssuanceStore::new(Database::new(&env.settings().mysql)?)
            .issue_delays(coupon)
            .await?,
    );

    // The rush itself: more users than coupons must sell exactly the stock.
    let mut rush_problems = Vec::new();
    let stock = u64::from(args.stock);
    if args.users > args.stock {
        if rush.k6.accepted != stock {
            rush_problems.push(format!(
                "k6 saw {} accepted (202), stock is {stock}",
                rush.k6.accepted
            ));
        }
        if verdict.stats.mysql.issued != stock {
            rush_problems.push(format!(
                "MySQL holds {} coupons, stock is {stock}",
                verdict.stats.mysql.issued
            ));
        }
    }
    summary::print(&summary::Report {
        coupon,
        users: args.users,
        retries: args.retries,
        vus: args.vus,
        persist_timeout_s: args.persist_timeout,
        rush: &rush,
        verdict: &verdict,
        issue_delays: issue_delays.as_ref(),
        rush_problems: &rush_problems,
        log_dir,
    });
    Ok(verdict.consistent() && rush_problems.is_empty() && rush.persisted_at.is_some())
}
