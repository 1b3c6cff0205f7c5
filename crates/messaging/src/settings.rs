use couponrush_config::{ConsumerSettings, KafkaSettings, path_setting};
use rdkafka::ClientConfig;

/// Settings every client shares: where the brokers are, who we are, and how we prove it
/// (TLS, SASL). Every client of every binary, test and tool is built from this one.
pub fn client_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.bootstrap_servers)
        .set("client.id", &settings.client_id)
        // Topics are created by `ensure_topic` with their partition count, never as a side
        // effect of a metadata request (an empty broker restart once recreated the issue
        // topic with the broker's default partition count).
        .set("allow.auto.create.topics", "false");
    security(&mut config, settings);
    config
}

/// `security.protocol` and what it needs. Only keys that are set are passed on: librdkafka
/// refuses an `ssl.*` key in a build without TLS, and an empty `ssl.ca.location` would replace
/// the system's roots with none. The broker's host name is always checked against its
/// certificate (librdkafka's default `ssl.endpoint.identification.algorithm=https`, kept).
fn security(config: &mut ClientConfig, settings: &KafkaSettings) {
    let protocol = settings.security_protocol;
    config.set("security.protocol", protocol.as_str());
    if protocol.uses_sasl() {
        if let Some(mechanism) = settings.sasl_mechanism.as_str() {
            config.set("sasl.mechanism", mechanism);
        }
        config
            .set("sasl.username", &settings.sasl_username)
            .set("sasl.password", settings.sasl_password.expose());
    }
    if protocol.uses_tls() {
        let files = [
            ("ssl.ca.location", &settings.ssl_ca_location),
            (
                "ssl.certificate.location",
                &settings.ssl_certificate_location,
            ),
            ("ssl.key.location", &settings.ssl_key_location),
        ];
        for (key, value) in files {
            if let Some(path) = path_setting(value) {
                config.set(key, path.to_string_lossy());
            }
        }
        if !settings.ssl_key_password.is_empty() {
            config.set("ssl.key.password", settings.ssl_key_password.expose());
        }
    }
}

/// A producer whose sends are acknowledged by every in-sync replica and never duplicated by a
/// retry (idempotent); librdkafka fails a delivery itself after `kafka.publish_timeout_ms`, so
/// a send never hangs. Callers wait a little longer than that for the delivery report, so
/// the report, not a caller's timer, decides what happened.
pub fn acked_producer_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = client_config(settings);
    config
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set(
            "message.timeout.ms",
            settings.publish_timeout_ms.to_string(),
        );
    config
}

/// A group consumer that commits only when its reader says so: the in-flight scan (reads the
/// issue group's committed offsets, commits nothing) and test readers. `group`: its consumer
/// group.
pub fn consumer_config(settings: &KafkaSettings, group: &str) -> ClientConfig {
    let mut config = group_config(settings, group);
    config.set("enable.auto.commit", "false");
    config
}

/// The dead-letter replay's consumer: commits explicitly, once the re-publishes of what it read
/// are acknowledged, and is told when it reached a partition's end (a pass stops there).
pub fn replay_consumer_config(settings: &KafkaSettings, group: &str) -> ClientConfig {
    let mut config = consumer_config(settings, group);
    config.set("enable.partition.eof", "true");
    config
}

/// The issue consumer (`coupon-consumer`), member of `kafka.consumer_group`. librdkafka commits
/// in the background, every `consumer.commit_interval_ms`, only what the worker stored: the
/// offsets of batches whose MySQL transaction committed (the rebalance callback and shutdown
/// commit the rest). Statistics every second feed lag, connection count and readiness.
pub fn issue_consumer_config(kafka: &KafkaSettings, consumer: &ConsumerSettings) -> ClientConfig {
    let mut config = group_config(kafka, &kafka.consumer_group);
    config
        .set("enable.auto.commit", "true")
        .set(
            "auto.commit.interval.ms",
            consumer.commit_interval_ms.to_string(),
        )
        .set(
            "max.poll.interval.ms",
            consumer.max_poll_interval_ms.to_string(),
        )
        .set("statistics.interval.ms", "1000");
    config
}

/// What every group consumer shares, whatever it commits: no offset stored unless the reader
/// stores it (so nothing it has not finished is ever committed), the earliest offset when the
/// group has none, and the session timeout from config. Each consumer above adds its own
/// commit policy; no key is set twice.
fn group_config(settings: &KafkaSettings, group: &str) -> ClientConfig {
    let mut config = client_config(settings);
    config
        .set("group.id", group)
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set(
            "session.timeout.ms",
            settings.session_timeout_ms.to_string(),
        )
        .set(
            "heartbeat.interval.ms",
            (settings.session_timeout_ms / 3).max(1).to_string(),
        );
    config
}
