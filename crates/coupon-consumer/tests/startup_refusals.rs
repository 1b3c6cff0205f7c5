//! The consumer refuses to start, loudly, when a dependency is missing or the config repeats the
//! incident (production pointed at localhost).

use std::path::Path;

use couponrush_testkit::{Refusal, TestEnv};

const BINARY: &str = env!("CARGO_BIN_EXE_coupon-consumer");

#[tokio::test(flavor = "multi_thread")]
async fn refuses_to_start_without_each_dependency() -> anyhow::Result<()> {
    let env = TestEnv::new(1).await?;
    let base = env.env_vars();
    for dependency in ["Kafka", "Redis", "MySQL"] {
        Refusal::unreachable(dependency)?.assert_refused(Path::new(BINARY), &[], &base)?;
    }
    env.cleanup().await
}

#[test]
fn refuses_production_with_loopback_hosts() -> anyhow::Result<()> {
    Refusal::production_with_loopback().assert_refused(Path::new(BINARY), &[], &[])
}
