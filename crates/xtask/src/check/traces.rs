//! `cargo xtask check traces`: one request's trace, end to end, through a real OTLP receiver.
//!
//! `scripts/otlp-receiver.py` (OTLP/HTTP protobuf, decoded with the official
//! `opentelemetry-proto` messages from PyPI) receives the spans of the real `issuer-api` and
//! `coupon-consumer` processes, which export with a sample ratio of 0: only a caller's sampled
//! `traceparent` is kept (parent-based sampling). Three requests go in: one with a sampled
//! `traceparent`, one with an unsampled one, one with none. Passing means:
//! - the sampled one comes back as one trace across both services: the API's HTTP span (the
//!   caller's span its remote parent, the decision recorded on it), the Redis reservation and
//!   the publish under it, and
//!   the consumer's persist of that message as the publish span's child; the consumer's batch
//!   span links to it;
//! - nothing of the other two is exported;
//! - the API's JSON log lines of the sampled request carry its `trace_id`.
//!
//! The run has its own database, topics and key prefix, removed at the end.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::apps::Apps;
use crate::binaries::workspace_root;
use crate::check::live::LiveCheck;
use crate::coupon;
use crate::otlp_receiver::{OtlpReceiver, ReceivedSpan};
use crate::run_env::RunEnv;

/// The caller's trace (W3C's own example ids).
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
/// A trace the caller chose not to sample: nothing of it may be exported.
const UNSAMPLED_TRACE: &str = "5cf92f3577b34da6a3ce929d0e0e4737";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Seconds for the spans to arrive (the exporter sends every few seconds).
    #[arg(long, env = "TRACES_TIMEOUT", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
    /// Logs and the received spans (replaced each run) [default: <repo>/.stack/traces].
    #[arg(long, env = "TRACES_DIR")]
    pub dir: Option<PathBuf>,
    /// Leave the stack services this run started running.
    #[arg(long, env = "TRACES_KEEP_STACK")]
    pub keep_stack: bool,
}

fn say(message: &str) {
    eprintln!("[check-traces] {message}");
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| workspace_root().join(".stack/traces"));
    let live = LiveCheck {
        task: "traces",
        dir: &dir,
        binaries: &["issuer-api", "coupon-consumer"],
        partitions: 1,
        rust_log: Some("info,issuer_api=debug".to_owned()),
        keep_stack: args.keep_stack,
    };
    let outcome = live
        .run(async |env, apps, log_dir| check(&args, env, apps, log_dir).await)
        .await;
    match outcome? {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(code) => Ok(code),
    }
}

async fn check(args: &Args, env: &RunEnv, apps: &mut Apps, log_dir: &Path) -> anyhow::Result<()> {
    let receiver = OtlpReceiver::start(log_dir, false).await?;
    let endpoint = receiver.endpoint();
    say(&format!(
        "OTLP receiver on {endpoint}, spans into {}",
        receiver.file().display()
    ));
    apps.add_vars(vec![
        ("COUPON__TELEMETRY__OTLP_ENDPOINT", endpoint),
        ("COUPON__TELEMETRY__SAMPLE_RATIO", "0".to_owned()),
        ("COUPON__LOG__FORMAT", "json".to_owned()),
    ]);
    apps.start_consumers(env, 1, log_dir)?;
    let bind = format!("127.0.0.1:{}", couponrush_testkit::closed_port()?);
    apps.start_api(env, &bind, log_dir)?;
    apps.wait_ready(Duration::from_secs(60)).await?;

    let api = apps.api()?;
    let event = coupon::open_now(
        format!("traces check {}", env.names().run_id),
        10,
        10,
        7,
        time::Duration::hours(1),
    );
    let coupon = api.create_coupon(&event).await?;
    let client = reqwest::Client::new();
    let url = format!("{}/coupons/{coupon}/issue", api.base_url());
    for (user, traceparent) in [
        ("traced", Some(format!("00-{TRACE}-{CALLER_SPAN}-01"))),
        (
            "unsampled",
            Some(format!("00-{UNSAMPLED_TRACE}-{CALLER_SPAN}-00")),
        ),
        ("untraced", None),
    ] {
        let mut request = client.post(&url).header("userId", user);
        if let Some(traceparent) = traceparent {
            request = request.header("traceparent", traceparent);
        }
        let status = request.send().await?.status();
        anyhow::ensure!(status.as_u16() == 202, "{user}: answered {status}, not 202");
    }
    say("3 requests accepted (sampled, unsampled and no traceparent)");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout);
    while !receiver
        .spans()?
        .iter()
        .any(|s| s.trace_id == TRACE && s.name == "coupon.persist")
    {
        apps.check_alive()?;
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "no coupon.persist span of trace {TRACE} within {} s",
            args.timeout
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let api_log = apps.api()?.service().log().to_owned();
    // Stopping flushes what the exporters still hold: the unsampled request has then had
    // every chance to (wrongly) show up.
    apps.stop_all().await;
    let spans = receiver.spans()?;
    verify(&spans)?;
    verify_logs(&api_log)?;
    say(&format!(
        "OK: trace {TRACE} runs issuer-api -> Kafka -> coupon-consumer ({} spans received in all)",
        spans.len()
    ));
    Ok(())
}

/// The trace's shape; see the module documentation.
fn verify(spans: &[ReceivedSpan]) -> anyhow::Result<()> {
    let of = |name: &str, service: &str| {
        spans
            .iter()
            .find(|s| {
                s.trace_id == TRACE && s.name == name && s.service.as_deref() == Some(service)
            })
            .with_context(|| format!("no {name} span from {service} in trace {TRACE}"))
    };
    let http = of("POST /coupons/{coupon_id}/issue", "issuer-api")?;
    anyhow::ensure!(
        http.parent_span_id == CALLER_SPAN,
        "the HTTP span's parent is {}, not the caller's span",
        http.parent_span_id
    );
    anyhow::ensure!(
        http.attributes.get("outcome") == Some(&serde_json::json!("QUEUED")),
        "the HTTP span does not record the decision: {:?}",
        http.attributes.get("outcome")
    );
    let reserve = of("redis.reserve", "issuer-api")?;
    let publish = of("kafka.publish", "issuer-api")?;
    for (child, parent) in [(reserve, http), (publish, http)] {
        anyhow::ensure!(
            child.parent_span_id == parent.span_id,
            "{} is not a child of {}",
            child.name,
            parent.name
        );
    }
    let persist = of("coupon.persist", "coupon-consumer")?;
    anyhow::ensure!(
        persist.parent_span_id == publish.span_id,
        "the consumer's persist span is not a child of the API's publish span"
    );
    anyhow::ensure!(
        persist.attributes.get("outcome") == Some(&serde_json::json!("persisted")),
        "the persist span's outcome is {:?}",
        persist.attributes.get("outcome")
    );
    let batch = spans
        .iter()
        .find(|s| s.name == "consumer.batch" && s.links.contains(&publish.span_id))
        .context("no consumer.batch span links to the publish span")?;
    anyhow::ensure!(batch.service.as_deref() == Some("coupon-consumer"));
    for span in [http, persist] {
        anyhow::ensure!(
            span.service_version.is_some() && span.service_instance.is_some(),
            "{} lacks service.version or service.instance.id",
            span.name
        );
    }
    let traces: HashSet<&str> = spans.iter().map(|s| s.trace_id.as_str()).collect();
    anyhow::ensure!(
        !traces.contains(UNSAMPLED_TRACE),
        "spans of the caller's unsampled trace were exported"
    );
    // At ratio 0 only the sampled request's trace and the batch linked to it are kept.
    let others: Vec<&str> = traces
        .iter()
        .copied()
        .filter(|t| *t != TRACE && *t != batch.trace_id)
        .collect();
    anyhow::ensure!(
        others.is_empty(),
        "traces exported at sample ratio 0 without a sampled parent: {others:?}"
    );
    Ok(())
}

/// The API's JSON log lines written inside the sampled request carry its trace id.
fn verify_logs(api_log: &Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(api_log).with_context(|| format!("read {}", api_log.display()))?;
    let traced = text
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|line| line["trace_id"] == TRACE)
        .context("no JSON log line of issuer-api carries the request's trace_id")?;
    anyhow::ensure!(
        traced["span_id"].as_str().is_some_and(|id| id.len() == 16),
        "the traced log line has no span_id: {traced}"
    );
    Ok(())
}
