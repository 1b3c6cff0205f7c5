//! `compensation-batch smoke`, run as the real binary against the real API and consumer
//! (in this process, on the test's own database, Redis prefix and topic): green on a working
//! stack, and red naming the right step when the consumer is not running (the incident) and
//! when the broker is gone.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use compensation_batch::EXIT_NEEDS_ATTENTION;
use couponrush_domain::{CouponId, UserId};
use couponrush_storage::{CouponStore, Database, IssuanceStore};
use couponrush_testkit::{GatedBroker, TestEnv, eventually, run_binary};
use serde_json::Value;

const BINARY: &str = env!("CARGO_BIN_EXE_compensation-batch");
const SMOKE_COUPON: &str = "couponrush smoke test";
const STEPS: [&str; 5] = [
    "api-ready",
    "consumers-ready",
    "consumer-lag",
    "issue",
    "issued",
];

/// What one run of the binary printed and how it exited.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    report: Value,
    stderr: String,
}

impl Run {
    fn parse(output: Output) -> anyhow::Result<Self> {
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let report = serde_json::from_str(&stdout)
            .map_err(|e| anyhow::anyhow!("no JSON report ({e}): {stdout}\nstderr:\n{stderr}"))?;
        Ok(Self {
            code: output.status.code(),
            report,
            stderr,
        })
    }

    fn step_names(&self) -> Vec<String> {
        self.steps()
            .iter()
            .filter_map(|s| s["name"].as_str().map(str::to_owned))
            .collect()
    }

    fn steps(&self) -> Vec<Value> {
        self.report["steps"].as_array().cloned().unwrap_or_default()
    }

    /// Asserts the run failed at `step` (exit 3, the report naming it, no step after it) and
    /// returns what the step saw.
    fn failed_at(&self, step: &str) -> String {
        assert_eq!(
            self.code,
            Some(i32::from(EXIT_NEEDS_ATTENTION)),
            "{:#}\n{}",
            self.report,
            self.stderr
        );
        assert_eq!(self.report["ok"], false, "{:#}", self.report);
        assert_eq!(self.report["failed_step"], step, "{:#}", self.report);
        let names = self.step_names();
        assert_eq!(names.last().map(String::as_str), Some(step), "{names:?}");
        let failed = self.step(step);
        assert_eq!(failed["ok"], false, "{failed}");
        failed["detail"].as_str().unwrap_or("").to_owned()
    }

    fn step(&self, name: &str) -> Value {
        self.steps()
            .into_iter()
            .find(|s| s["name"] == name)
            .unwrap_or(Value::Null)
    }
}

/// `compensation-batch smoke --output json` against `api` and `consumers` given as flags.
async fn smoke(env: &TestEnv, api: &str, consumers: &[String]) -> anyhow::Result<Run> {
    let mut args = vec!["--output", "json", "--api-url", api];
    for url in consumers {
        args.extend(["--consumer-ops-url", url]);
    }
    Run::parse(run_smoke(env, &args, Vec::new()).await?)
}

/// `compensation-batch smoke ARGS`, with the test's MySQL and admin token (and `vars`) in the
/// environment, as a Kubernetes Job gets them.
async fn run_smoke(
    env: &TestEnv,
    args: &[&str],
    vars: Vec<(&'static str, String)>,
) -> anyhow::Result<Output> {
    let args: Vec<String> = ["smoke", "--deadline-ms", "30000"]
        .into_iter()
        .chain(args.iter().copied())
        .map(str::to_owned)
        .collect();
    let mut env_vars = env.env_vars();
    env_vars.push((
        "COUPON__ADMIN__TOKEN",
        env.settings.admin.token.expose().to_owned(),
    ));
    env_vars.push(("COUPON__SMOKE__HTTP_TIMEOUT_MS", "3000".to_owned()));
    env_vars.extend(vars);
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_binary(Path::new(BINARY), &args, &env_vars, Duration::from_secs(90))
    })
    .await?
}

/// Waits until `url` answers `status`.
async fn answers(client: &reqwest::Client, url: &str, status: u16) -> anyhow::Result<()> {
    eventually(
        Duration::from_secs(30),
        &format!("{url} to answer {status}"),
        async || {
            let got = client.get(url).send().await.ok()?.status().as_u16();
            (got == status).then_some(())
        },
    )
    .await
}

/// The API and one consumer on the test's slice of the stack, both ready, as after a rollout.
struct Deployed {
    api: issuer_api::RunningApi,
    consumer: coupon_consumer::RunningConsumer,
    api_url: String,
    ops_url: String,
    client: reqwest::Client,
}

impl Deployed {
    async fn start(env: &TestEnv) -> anyhow::Result<Self> {
        let api = issuer_api::start(env.settings.clone()).await?;
        let consumer = coupon_consumer::start(env.settings.clone()).await?;
        let deployed = Self {
            api_url: format!("http://{}", api.addr),
            ops_url: format!("http://{}", consumer.ops_addr),
            api,
            consumer,
            client: reqwest::Client::new(),
        };
        deployed.api_ready_is(200).await?;
        answers(
            &deployed.client,
            &format!("{}/health/ready", deployed.ops_url),
            200,
        )
        .await?;
        Ok(deployed)
    }

    async fn api_ready_is(&self, status: u16) -> anyhow::Result<()> {
        answers(
            &self.client,
            &format!("{}/health/ready", self.api_url),
            status,
        )
        .await
    }

    async fn smoke(&self, env: &TestEnv) -> anyhow::Result<Run> {
        smoke(env, &self.api_url, std::slice::from_ref(&self.ops_url)).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn green_on_a_working_stack_and_the_next_run_reuses_the_smoke_coupon() -> anyhow::Result<()> {
    let env = TestEnv::new(3).await?;
    let deployed = Deployed::start(&env).await?;

    let first = deployed.smoke(&env).await?;
    assert_eq!(first.code, Some(0), "{:#}\n{}", first.report, first.stderr);
    assert_eq!(first.report["ok"], true, "{:#}", first.report);
    assert_eq!(first.step_names(), STEPS, "{:#}", first.report);
    for step in first.steps() {
        assert_eq!(step["ok"], true, "{step}");
        assert!(step["duration_ms"].is_u64(), "{step}");
    }
    let coupon = CouponId::new(first.report["coupon_id"].as_u64().unwrap_or(0))?;

    // Every smoke user is in MySQL, read here independently of the binary.
    let db = Database::new(&env.settings.mysql)?;
    let issuances = IssuanceStore::new(db.clone());
    let users = first.report["users"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(users.len(), 5, "{:#}", first.report);
    for user in &users {
        let user = UserId::parse(user.as_str().unwrap_or(""))?;
        assert!(user.as_str().starts_with("smoke-"), "{user}");
        assert!(
            issuances.find(coupon, &user).await?.is_some(),
            "{user} is not in MySQL"
        );
    }

    // A second run, configured as a Kubernetes Job is (environment only): other users, the
    // same smoke coupon, and still only one such coupon.
    let second = Run::parse(
        run_smoke(
            &env,
            &["--output", "json"],
            vec![
                ("COUPON__SMOKE__API_URL", deployed.api_url.clone()),
                ("COUPON__SMOKE__CONSUMER_OPS_URLS", deployed.ops_url.clone()),
            ],
        )
        .await?,
    )?;
    assert_eq!(
        second.code,
        Some(0),
        "{:#}\n{}",
        second.report,
        second.stderr
    );
    assert_eq!(second.report["coupon_id"], first.report["coupon_id"]);
    assert_ne!(second.report["run"], first.report["run"]);
    let smoke_coupons = CouponStore::new(db)
        .list()
        .await?
        .into_iter()
        .filter(|c| c.spec.name == SMOKE_COUPON)
        .count();
    assert_eq!(smoke_coupons, 1);

    // For people: one line per step.
    let url = deployed.ops_url.as_str();
    let text = run_smoke(
        &env,
        &["--api-url", &deployed.api_url, "--consumer-ops-url", url],
        Vec::new(),
    )
    .await?;
    let stdout = String::from_utf8_lossy(&text.stdout);
    eprintln!("{stdout}");
    assert_eq!(text.status.code(), Some(0), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), STEPS.len(), "{stdout}");
    for (line, step) in lines.iter().zip(STEPS) {
        assert!(line.starts_with(&format!("ok   {step} ")), "{line}");
    }

    deployed.consumer.stop().await?;
    deployed.api.handle.stop(true).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn red_at_consumers_ready_when_the_consumer_is_not_running() -> anyhow::Result<()> {
    let env = TestEnv::new(1).await?;
    let deployed = Deployed::start(&env).await?;
    // The incident: the API answers, and no consumer is there to persist anything.
    deployed.consumer.stop().await?;
    let absent = deployed.ops_url.clone();

    let run = smoke(&env, &deployed.api_url, std::slice::from_ref(&absent)).await?;
    let detail = run.failed_at("consumers-ready");
    assert_eq!(run.step_names(), ["api-ready", "consumers-ready"]);
    assert_eq!(run.step("api-ready")["ok"], true);
    assert!(detail.contains(&absent), "names the URL: {detail}");
    assert!(
        detail.to_ascii_lowercase().contains("connection refused"),
        "says what it saw: {detail}"
    );
    // Nothing was issued: no smoke coupon was even looked for.
    assert!(run.report["coupon_id"].is_null(), "{:#}", run.report);

    deployed.api.handle.stop(true).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn red_at_api_ready_when_the_broker_is_unreachable() -> anyhow::Result<()> {
    // Behind a gate, cut rather than killed: a killed memory broker forgets its topics, and
    // librdkafka can crash on its answers when it returns (see testkit's gate.rs).
    let mut broker = GatedBroker::start().await?;
    let mut env = TestEnv::new(1).await?;
    env.use_broker(broker.address(), 1).await?;
    let deployed = Deployed::start(&env).await?;
    let api_url = deployed.api_url.clone();

    broker.cut();
    // The API checks the broker every second: the truth is that it is not ready.
    deployed.api_ready_is(503).await?;
    let run = deployed.smoke(&env).await;

    // Whatever the run did, give the consumer its broker back to leave, then stop both.
    broker.restore().await?;
    deployed.api.handle.stop(true).await;
    deployed.consumer.stop().await.ok();

    let run = run?;
    let detail = run.failed_at("api-ready");
    assert_eq!(run.step_names(), ["api-ready"]);
    assert!(
        detail.contains(&format!("GET {api_url}/health/ready answered 503")),
        "names the URL and the status: {detail}"
    );
    assert!(
        detail.contains("\"kafka\"") && detail.contains("DOWN"),
        "shows the readiness body naming the broker: {detail}"
    );
    Ok(())
}
