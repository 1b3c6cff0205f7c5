use std::pin::pin;

use anyhow::Context;
use couponrush_config::Settings;
use couponrush_messaging::consumer_config;
use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};

use crate::context::GroupContext;
use crate::persist::{Handled, handle};
use crate::startup::connect;

/// Runs the consumer until `shutdown` resolves: probes dependencies (refusing to start if one
/// does not answer), joins the group and persists messages one by one.
pub async fn run(settings: Settings, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let deps = connect(&settings).await?;
    let consumer: StreamConsumer<GroupContext> = consumer_config(&settings.kafka)
        .create_with_context(GroupContext)
        .context("cannot create the Kafka consumer")?;
    consumer
        .subscribe(&[&settings.kafka.topic])
        .context("cannot subscribe to the topic")?;
    tracing::info!(topic = %settings.kafka.topic, group = %settings.kafka.consumer_group, "consuming");

    let mut shutdown = pin!(shutdown);
    let (mut issued, mut duplicates, mut rejected) = (0u64, 0u64, 0u64);
    loop {
        let message = tokio::select! {
            () = &mut shutdown => break,
            message = consumer.recv() => message,
        };
        let message = match message {
            Ok(message) => message,
            Err(error) => {
                tracing::error!(%error, "Kafka consumer error");
                continue;
            }
        };
        let location = format!(
            "{}/{}@{}",
            message.topic(),
            message.partition(),
            message.offset()
        );
        let Some(handled) = handle(&deps, message.payload(), &location, &mut shutdown).await else {
            break;
        };
        match handled {
            Handled::Issued => issued += 1,
            Handled::Duplicate => duplicates += 1,
            Handled::Rejected => rejected += 1,
        }
        // Only now, with the MySQL transaction committed, may the group move past it.
        if let Err(error) = consumer.commit_message(&message, CommitMode::Async) {
            tracing::error!(%error, location, "offset commit failed; the message may be re-delivered");
        }
    }
    if let Err(error) = consumer.commit_consumer_state(CommitMode::Sync) {
        // Nothing stored since the last commit is the common case at shutdown.
        tracing::debug!(%error, "final commit");
    }
    consumer.unsubscribe();
    tracing::info!(issued, duplicates, rejected, "consumer stopped");
    Ok(())
}
