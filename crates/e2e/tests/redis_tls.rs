//! Redis over TLS (issue 14, backends), for real: a private redis-server with no plain port,
//! only `--tls-port`, its certificate from a CA the test makes, admitting only an ACL user.
//! The whole event runs through `rediss://` trusting `redis.tls_ca`; a certificate from another
//! CA, or a plain `redis://` to the TLS port, stops start-up naming Redis.

use std::time::Duration;

use couponrush_cache::ReservationStore;
use couponrush_config::{RedisSettings, Secret};
use couponrush_e2e::Running;
use couponrush_testkit::{PrivateServer, TestCa, TestEnv};

const USER: &str = "couponrush";
const PASSWORD: &str = "tls-Password-81c2e4";

/// A TLS-only Redis with a certificate from `ca`, admitting [`USER`] on `env`'s prefix.
async fn tls_redis(env: &TestEnv, ca: &TestCa) -> anyhow::Result<PrivateServer> {
    let keys = format!("~{}*", env.settings.redis.key_prefix);
    let identity = ca.issue("redis", &["127.0.0.1"])?;
    PrivateServer::redis_tls_with_acl_user(&identity, USER, PASSWORD, &[&keys, "+@all"]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_event_runs_over_rediss_with_an_acl_user() -> anyhow::Result<()> {
    let ca = TestCa::new("couponrush-test-redis-ca")?;
    let mut env = TestEnv::new(1).await?;
    let redis = tls_redis(&env, &ca).await?;
    env.settings.redis.url = Secret::new(format!("rediss://{USER}:{PASSWORD}@{}", redis.address()));
    env.settings.redis.tls_ca = ca.ca_pem().to_string_lossy().into_owned();
    let running = Running::start(&env).await?;
    running.two_issued_then_sold_out(&env).await?;
    Ok(())
}

/// What the start-up probe of a store on `settings` says; empty when it got through.
async fn refusal(settings: &RedisSettings) -> anyhow::Result<String> {
    let probe = ReservationStore::new(settings)?
        .probe(Duration::from_secs(3))
        .await;
    Ok(probe.err().map(|e| e.to_string()).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_ca_or_plain_text_to_the_tls_port_is_refused_at_the_probe() -> anyhow::Result<()> {
    let ca = TestCa::new("couponrush-test-redis-ca")?;
    let stranger = TestCa::new("some-other-ca")?;
    let env = TestEnv::new(1).await?;
    let redis = tls_redis(&env, &ca).await?;
    let mut settings = env.settings.redis.clone();
    settings.url = Secret::new(format!("rediss://{USER}:{PASSWORD}@{}", redis.address()));
    settings.tls_ca = stranger.ca_pem().to_string_lossy().into_owned();
    let wrong_ca = refusal(&settings).await?;
    assert!(wrong_ca.contains("UnknownIssuer"), "{wrong_ca}");
    assert!(!wrong_ca.contains(PASSWORD), "{wrong_ca}");

    // Plain text to the TLS port: the server hangs up on what is not a TLS handshake, and
    // the probe says so within its bound instead of hanging.
    settings.url = Secret::new(format!("redis://{USER}:{PASSWORD}@{}", redis.address()));
    settings.tls_ca = String::new();
    let plain = refusal(&settings).await?;
    assert!(plain.contains(&redis.address()), "{plain}");
    assert!(!plain.contains(PASSWORD), "{plain}");

    // The right CA on the same server: the two refusals above were about trust and protocol.
    settings.url = Secret::new(format!("rediss://{USER}:{PASSWORD}@{}", redis.address()));
    settings.tls_ca = ca.ca_pem().to_string_lossy().into_owned();
    assert_eq!(refusal(&settings).await?, "");
    Ok(())
}
