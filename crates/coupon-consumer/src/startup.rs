use anyhow::Context;
use couponrush_cache::ReservationStore;
use couponrush_config::Settings;
use couponrush_messaging::{DeadLetterPublisher, probe_topic};
use couponrush_storage::{Database, IssuanceStore};

/// Clients of the consumer's dependencies, each proven to answer.
#[derive(Debug, Clone)]
pub struct Dependencies {
    pub db: Database,
    pub issuances: IssuanceStore,
    pub reservations: ReservationStore,
    pub dead_letters: DeadLetterPublisher,
}

/// Probes Kafka, MySQL and Redis within `startup.probe_timeout_ms` and refuses to start,
/// naming the dependency and address, if one does not answer. The incident's consumer pointed
/// at a broker that did not exist and said nothing for 45 minutes.
pub async fn connect(settings: &Settings) -> anyhow::Result<Dependencies> {
    let timeout = settings.startup.probe_timeout();
    let partitions = probe_topic(&settings.kafka, &settings.kafka.topic, timeout)
        .await
        .context("start-up check failed for Kafka")?;
    probe_topic(&settings.kafka, &settings.kafka.dlq_topic, timeout)
        .await
        .context("start-up check failed for Kafka (dead-letter topic)")?;
    let dead_letters = DeadLetterPublisher::new(&settings.kafka)?;
    let db = Database::new(&settings.mysql)?;
    db.probe(timeout)
        .await
        .context("start-up check failed for MySQL")?;
    let reservations = ReservationStore::new(&settings.redis)?;
    reservations
        .probe(timeout)
        .await
        .context("start-up check failed for Redis")?;
    tracing::info!(
        kafka = %settings.kafka.bootstrap_servers,
        topic = %settings.kafka.topic,
        partitions,
        group = %settings.kafka.consumer_group,
        mysql = db.address(),
        redis = reservations.address(),
        "dependencies answered"
    );
    Ok(Dependencies {
        issuances: IssuanceStore::new(db.clone()),
        db,
        reservations,
        dead_letters,
    })
}
