//! `cargo xtask check incident`: the incident, replayed live, must page. The report's team
//! learned from customer service, 15 minutes in, that the consumer had never reached Kafka
//! while the API told everyone "accepted". Here the real issuer-api and coupon-consumer run,
//! users take part, and the consumer loses its broker while the API keeps it; the real
//! Prometheus (the rules of deploy/prometheus) and Alertmanager (the routing of
//! deploy/alertmanager) must page, and the seconds from the fault to the page are measured.
//!
//! 1. A private broker ([`couponrush_testkit::SplitBroker`]) that can cut one Kafka client by
//!    its `client.id`; the consumer gets a client id of its own, the API keeps the default.
//!    The run's database, topics, group and keys are its own ([`RunEnv`]).
//! 2. issuer-api and one coupon-consumer; [`pager::Pager`] stands in for every receiver;
//!    [`monitoring::Monitoring`] scrapes and evaluates every `--interval`.
//! 3. The event opens with a burst of users (the early-event lag the report found noisy), then
//!    a steady trickle; one request of an unknown coupon is dead-lettered (a warning, to chat,
//!    never a page). `check metrics` runs on these binaries (every name the rules and
//!    dashboards read is exported). For `--quiet` seconds nothing may page, and at the end of
//!    them no critical alert may even be pending.
//! 4. The fault: the consumer's connections are cut, the API's are not. A webhook call on the
//!    receiver critical alerts route to (per `amtool config routes test`), reporting a
//!    critical alert firing, must arrive within `--deadline` seconds; its delay is printed.
//!
//! Every process it starts (binaries, Prometheus, Alertmanager, the private broker) is stopped
//! on every exit path; the run's database, topics and keys are removed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use couponrush_testkit::SplitBroker;

use super::alerts::Layout;
use super::metrics;
use super::users::{Answers, Users, dead_letter_one};
use crate::apps::Apps;
use crate::binaries::{build_release, workspace_root};
use crate::coupon;
use crate::lock::RunLock;
use crate::run_env::{Cleanup, Isolation, RunEnv};
use crate::tools;

mod monitoring;
mod pager;
#[cfg(test)]
mod tests;

use monitoring::{Monitoring, Targets};
use pager::{Notification, Pager};

/// Settings of the check (each also read from its `INCIDENT_*` variable).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Seconds users take part with nothing wrong, before the fault: nothing may page.
    #[arg(long, env = "INCIDENT_QUIET", default_value_t = 65,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub quiet: u64,
    /// Seconds from the fault within which the page must arrive, or the check fails.
    #[arg(long, env = "INCIDENT_DEADLINE", default_value_t = 180,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub deadline: u64,
    /// The goal for the fault-to-page delay, in seconds (reported; the deadline fails).
    #[arg(long, env = "INCIDENT_GOAL", default_value_t = 120)]
    pub goal: u64,
    /// Prometheus's scrape and rule evaluation interval, in seconds.
    #[arg(long, env = "INCIDENT_INTERVAL", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub interval: u64,
    /// Users in the opening burst.
    #[arg(long, env = "INCIDENT_BURST", default_value_t = 2000)]
    pub burst: u32,
    /// Milliseconds between two users of the trickle that follows.
    #[arg(long, env = "INCIDENT_TRICKLE_MS", default_value_t = 200,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub trickle_ms: u64,
    /// Logs, generated configurations, Prometheus's and Alertmanager's data, stack state
    /// [default: <repo>/.stack/check-incident].
    #[arg(long, env = "INCIDENT_DIR")]
    pub dir: Option<PathBuf>,
    /// Leave the stack services this run started running.
    #[arg(long, env = "INCIDENT_KEEP_STACK")]
    pub keep_stack: bool,
}

fn say(message: &str) {
    eprintln!("[check-incident] {message}");
}

/// What the run measured.
#[derive(Debug)]
struct Outcome {
    /// Seconds from the fault to the page, and the critical alerts it reported.
    paged_after: f64,
    alerts: Vec<String>,
    receiver: String,
    /// Problems of the metric names check.
    names: Vec<String>,
}

#[allow(clippy::print_stdout)] // the check's report
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let layout = Layout::new(&workspace_root());
    let referenced = metrics::referenced(&layout)?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| workspace_root().join(".stack/check-incident"));
    let (_lock, log_dir) = RunLock::with_fresh_logs(&dir, "check-incident")?;
    let monitoring_dir = dir.join("monitoring");
    if monitoring_dir.exists() {
        std::fs::remove_dir_all(&monitoring_dir)
            .with_context(|| format!("remove {}", monitoring_dir.display()))?;
    }
    let pager_receiver = receiver_of_critical(&layout).await?;
    build_release(&["issuer-api", "coupon-consumer"]).await?;

    // Declared before the run's environment: it outlives the clean-up, which deletes the
    // run's topics on it.
    let broker = SplitBroker::start()
        .await
        .context("start the run's private broker")?;
    let names = Isolation::unique("incident", "couponrush_incident".to_owned(), 3);
    let mut env = RunEnv::up(&dir.join("stack"), names).await?;
    env.use_broker(&broker.address())?;
    let mut apps = Apps::new(None);
    let outcome = env
        .run_then_clean(
            "check-incident",
            Cleanup {
                stack: !args.keep_stack,
                ..Cleanup::all_unless(false)
            },
            &log_dir,
            async |env| {
                let outcome = replay(
                    &args,
                    env,
                    &mut apps,
                    &broker,
                    &layout,
                    &referenced,
                    &pager_receiver,
                    &monitoring_dir,
                    &log_dir,
                )
                .await;
                apps.stop_all().await;
                outcome
            },
        )
        .await?;
    drop(broker);
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(code) => return Ok(code),
    };
    let names_code = metrics::report(&referenced, &outcome.names);
    let goal = if outcome.paged_after <= crate::report::to_f64(args.goal) {
        "goal met"
    } else {
        "goal MISSED"
    };
    println!(
        "  fault -> page: {:.1} s ({} on receiver {}; goal <= {} s: {goal}; the incident: 15 min)",
        outcome.paged_after,
        outcome.alerts.join(", "),
        outcome.receiver,
        args.goal
    );
    say(&format!(
        "the incident pages: OK in {:.1} s; whole check {:.0} s",
        outcome.paged_after,
        started.elapsed().as_secs_f64()
    ));
    Ok(names_code)
}

/// The receiver Alertmanager's routing tree sends a `severity=critical` alert to (the
/// pager), asked of the real routing with `amtool config routes test`.
async fn receiver_of_critical(layout: &Layout) -> anyhow::Result<String> {
    let amtool = tools::require("amtool").await?;
    let output = tokio::process::Command::new(&amtool)
        .args(["config", "routes", "test"])
        .arg(format!(
            "--config.file={}",
            layout.alertmanager_config().display()
        ))
        .arg("severity=critical")
        .output()
        .await
        .context("run amtool config routes test")?;
    let receiver = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    anyhow::ensure!(
        output.status.success() && !receiver.is_empty() && !receiver.contains(','),
        "amtool found no single receiver for severity=critical ({}): {receiver} {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(receiver)
}

/// The pages: webhook calls on `receiver` reporting a critical alert firing.
fn pages<'a>(
    received: &'a [Notification],
    receiver: &'a str,
) -> impl Iterator<Item = (&'a Notification, Vec<String>)> {
    received
        .iter()
        .filter(move |n| n.receiver == receiver)
        .map(|n| (n, n.firing("critical")))
        .filter(|(_, firing)| !firing.is_empty())
}

#[allow(clippy::too_many_arguments)] // the run's parts, each owned by `run`
async fn replay(
    args: &Args,
    env: &RunEnv,
    apps: &mut Apps,
    broker: &SplitBroker,
    layout: &Layout,
    referenced: &metrics::Referenced,
    pager_receiver: &str,
    monitoring_dir: &Path,
    log_dir: &Path,
) -> anyhow::Result<Outcome> {
    env.recreate_database().await?;
    env.create_topics().await?;
    // Its own client id: what the fault singles out (the API keeps the default one).
    let consumer_id = format!("coupon-consumer-{}", env.names().run_id);
    apps.start_consumers_with(
        env,
        1,
        log_dir,
        &[("COUPON__KAFKA__CLIENT_ID", consumer_id.clone())],
    )?;
    let bind = format!("127.0.0.1:{}", couponrush_testkit::closed_port()?);
    apps.start_api(env, &bind, log_dir)?;
    apps.wait_ready(Duration::from_secs(60)).await?;

    let pager = Pager::start().await?;
    let host_port = |url: &str| url.trim_start_matches("http://").to_owned();
    let targets = Targets {
        api: host_port(apps.api()?.base_url()),
        consumers: apps
            .consumer_ops_urls()
            .into_iter()
            .map(host_port)
            .collect(),
    };
    let interval = Duration::from_secs(args.interval);
    let mut monitoring =
        Monitoring::start(monitoring_dir, log_dir, layout, &targets, &pager, interval).await?;
    let outcome = incident(
        args,
        env,
        apps,
        broker,
        referenced,
        &pager,
        pager_receiver,
        &mut monitoring,
        &consumer_id,
    )
    .await;
    monitoring.stop().await;
    outcome
}

#[allow(clippy::too_many_arguments)] // the run's parts, each owned by `run`
async fn incident(
    args: &Args,
    env: &RunEnv,
    apps: &mut Apps,
    broker: &SplitBroker,
    referenced: &metrics::Referenced,
    pager: &Pager,
    pager_receiver: &str,
    monitoring: &mut Monitoring,
    consumer_id: &str,
) -> anyhow::Result<Outcome> {
    let interval = Duration::from_secs(args.interval);
    couponrush_testkit::eventually(
        interval * 6,
        "Prometheus to scrape the API and the consumer",
        async || {
            let up = monitoring.query("up == 1").await.ok()?;
            (up.len() == 2).then_some(())
        },
    )
    .await?;

    let api = apps.api()?;
    let trickle_per_second = 1000 / args.trickle_ms.max(1) + 1;
    let stock = args.burst + u32::try_from(trickle_per_second * 3600).unwrap_or(u32::MAX / 2);
    let spec = coupon::open_now(
        format!("incident check {}", env.names().run_id),
        5000,
        stock,
        7,
        time::Duration::hours(1),
    );
    let id = api.create_coupon(&spec).await?;
    let users = Users::new(api.base_url(), id, "incident-user")?;
    let opened = Instant::now();
    let burst = users.burst(args.burst, 50).await;
    say(&format!(
        "coupon {id} opened: a burst of {} users in {:.1} s ({burst}), then one every {} ms",
        args.burst,
        opened.elapsed().as_secs_f64(),
        args.trickle_ms
    ));
    anyhow::ensure!(burst.accepted() > 0, "the burst got no 202: {burst}");
    dead_letter_one(env).await?;
    let trickle = users.trickle(Duration::from_millis(args.trickle_ms));

    say("metric names of the rules and dashboards, on these binaries");
    let names = metrics::check_running(referenced, apps, Duration::from_secs(20)).await?;

    say(&format!(
        "{} s with nothing wrong: nothing may page",
        args.quiet
    ));
    let quiet_until = opened + Duration::from_secs(args.quiet);
    while Instant::now() < quiet_until {
        apps.check_alive()?;
        monitoring.check_alive()?;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let received = pager.received();
    let early: Vec<String> = pages(&received, pager_receiver)
        .flat_map(|(_, alerts)| alerts)
        .collect();
    anyhow::ensure!(
        early.is_empty(),
        "paged before any fault (a false page): {early:?}"
    );
    let pending: Vec<String> = monitoring
        .alerts()
        .await?
        .into_iter()
        .filter(|a| a.severity == "critical")
        .map(|a| a.to_string())
        .collect();
    anyhow::ensure!(
        pending.is_empty(),
        "critical alerts pending or firing before any fault (a page to come): {pending:?}"
    );
    let chat: Vec<String> = received.iter().flat_map(|n| n.firing("warning")).collect();
    let connected = monitoring
        .query("kafka_consumer_connection_count > 0")
        .await?;
    anyhow::ensure!(
        !connected.is_empty(),
        "the consumer has no broker connection before the fault: the fault would change nothing"
    );
    let before_fault = trickle.answers();
    say(&format!(
        "no page before the fault (warnings to chat: {chat:?}); the trickle so far: {before_fault}"
    ));

    broker.cut(consumer_id);
    let fault = Instant::now();
    say("FAULT: the consumer's broker connections are cut (the API keeps its own)");
    let deadline = Duration::from_secs(args.deadline);
    let mut next_report = Duration::from_secs(15);
    loop {
        let received = pager.received();
        if let Some((page, alerts)) = pages(&received, pager_receiver).next() {
            let paged_after = page.at.saturating_duration_since(fault).as_secs_f64();
            let during = subtract(&trickle.answers(), &before_fault);
            say(&format!(
                "PAGED {paged_after:.1} s after the fault: {} (receiver {pager_receiver}); users \
                 during the fault: {during}",
                alerts.join(", ")
            ));
            anyhow::ensure!(
                during.0.values().sum::<u32>() > 0,
                "no user took part during the fault"
            );
            return Ok(Outcome {
                paged_after,
                alerts,
                receiver: pager_receiver.to_owned(),
                names,
            });
        }
        apps.check_alive()?;
        monitoring.check_alive()?;
        let elapsed = fault.elapsed();
        if elapsed >= next_report || elapsed >= deadline {
            let alerts: Vec<String> = monitoring
                .alerts()
                .await
                .map(|all| all.iter().map(ToString::to_string).collect())
                .unwrap_or_else(|error| vec![format!("(cannot ask Prometheus: {error:#})")]);
            say(&format!(
                "+{:.0} s: alerts {alerts:?}; users {}",
                elapsed.as_secs_f64(),
                trickle.answers()
            ));
            next_report += Duration::from_secs(15);
            anyhow::ensure!(
                elapsed < deadline,
                "NO PAGE within {deadline:?} of the consumer losing its broker (webhook calls \
                 received: {})",
                received.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The answers of `now` not yet in `before`.
fn subtract(now: &Answers, before: &Answers) -> Answers {
    Answers(
        now.0
            .iter()
            .map(|(k, n)| {
                (
                    k.clone(),
                    n.saturating_sub(before.0.get(k).copied().unwrap_or_default()),
                )
            })
            .filter(|(_, n)| *n > 0)
            .collect(),
    )
}
