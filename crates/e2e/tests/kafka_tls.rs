//! Kafka over TLS (issue 14, backends), for real: a private tansu reached only through a
//! TLS-terminating proxy with a certificate from a CA the test makes (tansu 0.6 has no working
//! TLS listener of its own: docs/security.md). The broker advertises the proxy, so every
//! connection the clients make, not only the bootstrap one, is TLS; `kafka.ssl_ca_location`
//! names the test's CA and the broker's name is checked against the certificate.

use couponrush_config::{KafkaSecurityProtocol, KafkaSettings};
use couponrush_e2e::Running;
use couponrush_testkit::{TestCa, TestEnv, tansu_behind_tls};

/// `kafka` pointed at `address` over TLS, trusting the CA file `ca`.
fn over_tls(kafka: &mut KafkaSettings, address: String, ca: &std::path::Path) {
    kafka.bootstrap_servers = address;
    kafka.security_protocol = KafkaSecurityProtocol::Ssl;
    kafka.ssl_ca_location = ca.to_string_lossy().into_owned();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_event_runs_over_kafka_tls_checked_against_a_private_ca() -> anyhow::Result<()> {
    let ca = TestCa::new("couponrush-test-kafka-ca")?;
    let (proxy, _broker) = tansu_behind_tls(&ca.issue("broker", &["127.0.0.1"])?).await?;
    let mut env = TestEnv::new(1).await?;
    over_tls(&mut env.settings.kafka, proxy.address(), &ca.ca_pem());
    // Topic administration, the API's producer, the consumer group: all through TLS.
    env.use_broker(proxy.address(), 1).await?;
    let running = Running::start(&env).await?;
    running.two_issued_then_sold_out(&env).await?;

    // The same port refuses a client that does not speak TLS: nothing reached the broker in
    // plain text.
    let mut plain = env.settings.kafka.clone();
    plain.security_protocol = KafkaSecurityProtocol::Plaintext;
    let probe =
        couponrush_messaging::probe_topic(&plain, &plain.topic, std::time::Duration::from_secs(2))
            .await;
    assert!(
        probe.is_err(),
        "a plaintext client got metadata through TLS"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_certificate_from_another_ca_stops_start_up_saying_why() -> anyhow::Result<()> {
    let ca = TestCa::new("couponrush-test-kafka-ca")?;
    let stranger = TestCa::new("some-other-ca")?;
    let (proxy, _broker) = tansu_behind_tls(&ca.issue("broker", &["127.0.0.1"])?).await?;
    let mut env = TestEnv::new(1).await?;
    over_tls(&mut env.settings.kafka, proxy.address(), &stranger.ca_pem());
    env.settings.startup.probe_timeout_ms = 3000;
    let refused = match Running::api_only(&env).await {
        Ok(_) => anyhow::bail!("the API started against a broker whose CA it does not trust"),
        Err(error) => format!("{error:#}"),
    };
    assert!(
        refused.contains("start-up check failed for Kafka"),
        "{refused}"
    );
    // Loudly: the handshake's own reason, not a bare timeout that reads like a silent broker.
    assert!(refused.contains("certificate verify failed"), "{refused}");
    Ok(())
}
