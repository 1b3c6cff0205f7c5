use couponrush_config::KafkaSettings;
use rdkafka::ClientConfig;

/// Settings every client shares: where the brokers are and who we are.
pub fn client_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.bootstrap_servers)
        .set("client.id", &settings.client_id)
        // Topics are created by `ensure_topic` with their partition count, never as a side
        // effect of a metadata request (an empty broker restart once recreated the issue
        // topic with the broker's default partition count).
        .set("allow.auto.create.topics", "false");
    config
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

/// What every group consumer of the project shares: nothing committed or stored unless the
/// reader does it itself, the earliest offset when the group has none, and the session timeout
/// from config. The issue consumer (`coupon-consumer`'s worker) turns on background commits of
/// the offsets it stored once MySQL committed; the in-flight scan commits nothing, and the
/// dead-letter replay commits explicitly after its re-publishes are acknowledged.
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
