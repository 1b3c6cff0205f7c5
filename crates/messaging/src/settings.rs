use couponrush_config::KafkaSettings;
use rdkafka::ClientConfig;

/// Settings every client shares: where the brokers are and who we are.
pub fn client_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.bootstrap_servers)
        .set("client.id", &settings.client_id);
    config
}

/// A producer whose sends are acknowledged by every in-sync replica and never duplicated by a
/// retry (idempotent); librdkafka fails a delivery itself after `kafka.publish_timeout_ms`, so
/// a send never hangs.
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

/// Consumer-group settings: manual offset commits (after MySQL commits), start from the
/// earliest offset when the group has none, and a session timeout from config.
pub fn consumer_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = client_config(settings);
    config
        .set("group.id", &settings.consumer_group)
        .set("enable.auto.commit", "false")
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
