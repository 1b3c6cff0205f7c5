//! The API refuses to start, loudly, when a dependency is missing or the config repeats the
//! incident (production pointed at localhost).

use std::path::Path;

use couponrush_testkit::{Refusal, TestEnv, closed_port};

const BINARY: &str = env!("CARGO_BIN_EXE_issuer-api");

#[tokio::test(flavor = "multi_thread")]
async fn refuses_to_start_without_each_dependency() -> anyhow::Result<()> {
    let env = TestEnv::new(1).await?;
    couponrush_testkit::assert_each_dependency_refused_promptly(Path::new(BINARY), &env)
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
