//! The consumer refuses to start, loudly, when a dependency is missing or the config repeats the
//! incident (production pointed at localhost).

use std::path::Path;
use std::time::Duration;

use couponrush_testkit::{Refusal, TestEnv, run_binary};

const BINARY: &str = env!("CARGO_BIN_EXE_coupon-consumer");

#[tokio::test(flavor = "multi_thread")]
async fn refuses_to_start_without_each_dependency() -> anyhow::Result<()> {
    let env = TestEnv::new(1).await?;
    couponrush_testkit::assert_each_dependency_refused_promptly(Path::new(BINARY), &env)
}

#[test]
fn refuses_production_with_loopback_hosts() -> anyhow::Result<()> {
    Refusal::production_with_loopback().assert_refused(Path::new(BINARY), &[], &[])
}

/// Production settings whose every dependency is a host that does not exist.
fn production_env(signing_key: Option<&str>) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("COUPON__PROFILE", "production".to_owned()),
        (
            "COUPON__KAFKA__BOOTSTRAP_SERVERS",
            "kafka.invalid:9092".to_owned(),
        ),
        (
            "COUPON__REDIS__URL",
            "redis://redis.invalid:6379".to_owned(),
        ),
        ("COUPON__MYSQL__HOST", "mysql.invalid".to_owned()),
        ("COUPON__STARTUP__PROBE_TIMEOUT_MS", "1000".to_owned()),
    ];
    env.extend(signing_key.map(|key| ("COUPON__MESSAGE_SIGNING__KEY", key.to_owned())));
    env
}

/// The consumer never reads `admin.token`: production without one gets past configuration
/// (and stops at the first dependency, which does not exist here).
#[test]
fn production_does_not_ask_the_consumer_for_an_admin_token() -> anyhow::Result<()> {
    let env = production_env(Some("0123456789abcdef0123456789abcdef"));
    let output = run_binary(Path::new(BINARY), &[], &env, Duration::from_secs(30))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(!stderr.contains("admin.token"), "{stderr}");
    assert!(stderr.contains("start-up check failed"), "{stderr}");
    Ok(())
}

/// A production consumer must refuse unsigned messages, so it refuses to start without the
/// key to verify them, before connecting to anything.
#[test]
fn production_refuses_a_consumer_without_a_signing_key() -> anyhow::Result<()> {
    let output = run_binary(
        Path::new(BINARY),
        &[],
        &production_env(None),
        Duration::from_secs(30),
    )?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("message_signing.key (COUPON__MESSAGE_SIGNING__KEY)"),
        "{stderr}"
    );
    assert!(!stderr.contains("start-up check failed"), "{stderr}");
    Ok(())
}
