//! `cargo xtask check openapi`: `crates/issuer-api/src/openapi.json` against the running API,
//! with schemathesis. The API runs with this check's own database, topic and Redis key prefix
//! (never the tests' or the demo's), one coupon is created first so that the operations also
//! meet real data (the document's links feed its id to the stateful phase), and everything is
//! removed at the end. Exit status 0 iff schemathesis found no failure and the API never
//! panicked.
//!
//! Default checks leave out `positive_data_acceptance` (OpenAPI 3.0 cannot express
//! "issue_ends_at strictly after issue_starts_at": the document says it in words and lists 422,
//! so a schema-valid coupon with equal or reversed times rightly gets 422) and
//! `unsupported_method` (it also demands an `Allow` header on 405 answers).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::apps::Apps;
use crate::binaries::workspace_root;
use crate::check::live::LiveCheck;
use crate::coupon;
use crate::run_env::RunEnv;
use crate::tools;

/// The schemathesis major version whose command line this check speaks.
const SCHEMATHESIS_MAJOR: &str = "4.";

/// Settings of the check (each also read from its `OPENAPI_*` variable).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// schemathesis --max-examples (test cases per operation and phase).
    #[arg(long, env = "OPENAPI_MAX_EXAMPLES", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_examples: u32,
    /// schemathesis --seed, to replay a run.
    #[arg(long, env = "OPENAPI_SEED")]
    pub seed: Option<u64>,
    /// Comma-separated schemathesis checks.
    #[arg(
        long,
        env = "OPENAPI_CHECKS",
        default_value = "not_a_server_error,status_code_conformance,content_type_conformance,\
                         response_schema_conformance,response_headers_conformance,\
                         negative_data_rejection,missing_required_header,ignored_auth"
    )]
    pub checks: String,
    /// schemathesis --workers.
    #[arg(long, env = "OPENAPI_WORKERS", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub workers: u32,
    /// Seconds for the API to become ready.
    #[arg(long, env = "OPENAPI_READY_TIMEOUT", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub ready_timeout: u64,
    /// Logs and the JUnit report (replaced each run), stack state
    /// [default: <repo>/.stack/openapi].
    #[arg(long, env = "OPENAPI_DIR")]
    pub dir: Option<PathBuf>,
    /// Leave the stack services this run started running.
    #[arg(long, env = "OPENAPI_KEEP_STACK")]
    pub keep_stack: bool,
}

fn say(message: &str) {
    eprintln!("[check-openapi] {message}");
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        !args.checks.is_empty()
            && args
                .checks
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_' || c == ','),
        "OPENAPI_CHECKS must be a comma-separated list of check names, got {:?}",
        args.checks
    );
    let schema_file = workspace_root().join("crates/issuer-api/src/openapi.json");
    let schema = read_json(&schema_file)?;
    anyhow::ensure!(
        schema["openapi"] == "3.0.3",
        "{} is not an OpenAPI 3.0.3 document",
        schema_file.display()
    );
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| workspace_root().join(".stack/openapi"));
    let schemathesis = tools::require("schemathesis").await?;
    let version = schemathesis_version(&schemathesis).await?;
    say(&format!("{version} ({})", schemathesis.display()));

    let live = LiveCheck {
        task: "openapi",
        dir: &dir,
        binaries: &["issuer-api"],
        partitions: 1,
        rust_log: None,
        keep_stack: args.keep_stack,
    };
    let outcome = live
        .run(async |env, apps, log_dir| {
            check(&args, env, apps, &schemathesis, &schema, log_dir).await
        })
        .await;
    match outcome? {
        Ok(()) => {
            say(&format!(
                "OK: issuer-api conforms to {} ({version})",
                schema_file.display()
            ));
            Ok(ExitCode::SUCCESS)
        }
        Err(code) => Ok(code),
    }
}

/// The check from a clean slate to schemathesis's answer.
async fn check(
    args: &Args,
    env: &RunEnv,
    apps: &mut Apps,
    schemathesis: &Path,
    schema: &serde_json::Value,
    log_dir: &Path,
) -> anyhow::Result<()> {
    let bind = format!("127.0.0.1:{}", couponrush_testkit::closed_port()?);
    apps.start_api(env, &bind, log_dir)?;
    apps.wait_ready(Duration::from_secs(args.ready_timeout))
        .await?;
    let api = apps.api()?;
    let event = coupon::open_now(
        format!("openapi check {}", env.names().run_id),
        1000,
        1000,
        7,
        time::Duration::hours(1),
    );
    let id = api.create_coupon(&event).await?;
    say(&format!(
        "coupon {id} created (1000 coupons, {})",
        coupon::window(&event)
    ));

    let mut command = tokio::process::Command::new(schemathesis);
    command
        .current_dir(log_dir)
        .arg("run")
        .args(["--url", api.base_url()])
        .args(["-H", &format!("Authorization: Bearer {}", api.token())])
        .args(["--checks", &args.checks])
        .args(["--max-examples", &args.max_examples.to_string()])
        .args(["--workers", &args.workers.to_string()])
        .args(["--request-timeout", "10", "--generation-database", "none"])
        .args(["--no-color", "--report", "junit", "--report-dir"])
        .arg(log_dir)
        .kill_on_drop(true);
    if let Some(seed) = args.seed {
        command.args(["--seed", &seed.to_string()]);
    }
    let location = match served_document(api.base_url(), log_dir).await {
        Some(served) => {
            if &served != schema {
                say(
                    "warning: the served document differs from openapi.json (a stale binary?); checking the served one",
                );
            }
            format!("{}/openapi.json", api.base_url())
        }
        None => {
            say(
                "the API does not serve GET /openapi.json: using the file, that operation excluded",
            );
            command.args(["--exclude-path", "/openapi.json"]);
            workspace_root()
                .join("crates/issuer-api/src/openapi.json")
                .display()
                .to_string()
        }
    };
    say(&format!(
        "schemathesis {location} -> {}; checks {}; up to {} examples per operation",
        api.base_url(),
        args.checks,
        args.max_examples
    ));
    let status = command
        .arg(&location)
        .status()
        .await
        .context("run schemathesis")?;

    let api_log = std::fs::read_to_string(api.service().log()).unwrap_or_default();
    let panics: Vec<&str> = api_log
        .lines()
        .filter(|line| line.contains("panicked"))
        .take(3)
        .collect();
    anyhow::ensure!(
        panics.is_empty(),
        "issuer-api panicked during the run (see {}):\n{}",
        api.service().log().display(),
        panics.join("\n")
    );
    anyhow::ensure!(
        status.success(),
        "schemathesis reported failures ({status}); JUnit report in {}",
        log_dir.display()
    );
    Ok(())
}

/// `GET /openapi.json` when the API serves a document (saved as `served-openapi.json`).
async fn served_document(base_url: &str, log_dir: &Path) -> Option<serde_json::Value> {
    let response = reqwest::Client::new()
        .get(format!("{base_url}/openapi.json"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?
        .error_for_status()
        .ok()?;
    let served: serde_json::Value = response.json().await.ok()?;
    served.get("openapi")?;
    std::fs::write(log_dir.join("served-openapi.json"), served.to_string()).ok()?;
    Some(served)
}

/// `schemathesis --version`'s version, which must be 4.x.
async fn schemathesis_version(path: &Path) -> anyhow::Result<String> {
    let output = tokio::process::Command::new(path)
        .arg("--version")
        .output()
        .await
        .with_context(|| format!("run {} --version", path.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let version = text
        .split_whitespace()
        .last()
        .unwrap_or_default()
        .to_owned();
    anyhow::ensure!(
        output.status.success() && version.starts_with(SCHEMATHESIS_MAJOR),
        "{} is not schemathesis 4.x (it says {:?}); pip install 'schemathesis>=4.1,<5'",
        path.display(),
        text.trim()
    );
    Ok(format!("schemathesis {version}"))
}

fn read_json(path: &Path) -> anyhow::Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}
