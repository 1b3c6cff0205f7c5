//! Start-up: build the clients of the consumer's dependencies and prove each answers.

use couponrush_cache::ReservationStore;
use couponrush_config::Settings;
use couponrush_messaging::{DeadLetterPublisher, MessageSigner};
use couponrush_ops::StartupProbes;
use couponrush_storage::{Database, IssuanceStore};

/// Clients of the consumer's dependencies, each proven to answer.
#[derive(Debug, Clone)]
pub struct Dependencies {
    pub db: Database,
    pub issuances: IssuanceStore,
    pub reservations: ReservationStore,
    pub dead_letters: DeadLetterPublisher,
    /// Verifies each message's signature before anything else reads it.
    pub signer: MessageSigner,
}

/// Probes Kafka (the issue and dead-letter topics), MySQL and Redis, and refuses to start,
/// naming the dependency and address, if one does not answer. The incident's consumer pointed
/// at a broker that did not exist and said nothing for 45 minutes.
pub async fn connect(settings: &Settings) -> anyhow::Result<Dependencies> {
    let probes = StartupProbes::new(&settings.startup);
    let partitions = probes.kafka(&settings.kafka, &settings.kafka.topic).await?;
    probes.dead_letter_topic(&settings.kafka).await?;
    let dead_letters = DeadLetterPublisher::new(&settings.kafka)?;
    let db = Database::new(&settings.mysql)?;
    probes.mysql(&db).await?;
    let reservations = ReservationStore::new(&settings.redis)?;
    probes.redis(&reservations).await?;
    let signer = MessageSigner::new(&settings.message_signing);
    if !signer.enabled() {
        // Only the development profile gets here (production refuses to start without a key).
        tracing::warn!("message_signing.key is empty: unsigned issue messages are issued");
    }
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
        issuances: IssuanceStore::new(db.clone()).with_outbox(settings.outbox.enabled),
        db,
        reservations,
        dead_letters,
        signer,
    })
}
