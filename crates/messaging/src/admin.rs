use std::time::Duration;

use couponrush_config::KafkaSettings;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::error::MessagingError;
use crate::settings::client_config;

/// Creates `topic` with `partitions` unless it exists already.
pub async fn ensure_topic(
    settings: &KafkaSettings,
    topic: &str,
    partitions: i32,
    timeout: Duration,
) -> Result<(), MessagingError> {
    let admin: AdminClient<DefaultClientContext> = client_config(settings).create()?;
    let options = AdminOptions::new().operation_timeout(Some(timeout));
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &options,
        )
        .await?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(MessagingError::MissingTopic {
                    topic: name,
                    address: settings.bootstrap_servers.clone(),
                    reason: format!("create failed: {code}"),
                });
            }
        }
    }
    Ok(())
}

/// Deletes `topics`; a topic that does not exist counts as deleted. Used to clean up after
/// runs that create topics of their own (benchmarks): the broker may keep them otherwise.
pub async fn delete_topics(
    settings: &KafkaSettings,
    topics: &[&str],
    timeout: Duration,
) -> Result<(), MessagingError> {
    if topics.is_empty() {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = client_config(settings).create()?;
    let options = AdminOptions::new().operation_timeout(Some(timeout));
    for result in admin.delete_topics(topics, &options).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
            Err((name, code)) => {
                return Err(MessagingError::Refused {
                    address: settings.bootstrap_servers.clone(),
                    reason: format!("deleting topic {name}: {code}"),
                });
            }
        }
    }
    Ok(())
}
