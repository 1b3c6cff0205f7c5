//! The API refuses to start, loudly, when a dependency is missing or the config repeats the
//! incident (production pointed at localhost).

use std::path::Path;
use std::time::{Duration, Instant};

use couponrush_testkit::{Refusal, TestEnv, closed_port};

const BINARY: &str = env!("CARGO_BIN_EXE_issuer-api");

#[tokio::test(flavor = "multi_thread")]
async fn refuses_to_start_without_each_dependency() -> anyhow::Result<()> {
    let env = TestEnv::new(1).await?;
    // A refused connection is an answer: each refusal comes at once, far within the bound that
    // is kept for silence.
    let mut base = env.env_vars();
    base.retain(|(key, _)| *key != "COUPON__STARTUP__PROBE_TIMEOUT_MS");
    base.push(("COUPON__STARTUP__PROBE_TIMEOUT_MS", "5000".to_owned()));
    for dependency in ["Kafka", "Redis", "MySQL"] {
        let started = Instant::now();
        Refusal::unreachable(dependency)?.assert_refused(Path::new(BINARY), &[], &base)?;
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(2),
            "{dependency} refused after {took:?}"
        );
    }
    Ok(())
}

#[test]
fn refuses_production_with_loopback_hosts() -> anyhow::Result<()> {
    Refusal::production_with_loopback().assert_refused(Path::new(BINARY), &[], &[])
}

/// Text logs written to a file or a pipe carry no ANSI colour codes, even without `NO_COLOR`.
#[test]
fn text_logs_off_a_terminal_are_not_coloured() -> anyhow::Result<()> {
    let mut command = std::process::Command::new(BINARY);
    for (key, _) in std::env::vars() {
        if key.starts_with(couponrush_config::ENV_PREFIX) || key == "NO_COLOR" {
            command.env_remove(key);
        }
    }
    let output = command
        .env("COUPON__LOG__FORMAT", "text")
        .env(
            "COUPON__KAFKA__BOOTSTRAP_SERVERS",
            format!("127.0.0.1:{}", closed_port()?),
        )
        .stdin(std::process::Stdio::null())
        .output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("INFO"), "no log line to check: {stderr}");
    assert!(!stderr.contains('\u{1b}'), "colour codes in: {stderr:?}");
    Ok(())
}
