use std::collections::HashMap;
use std::pin::pin;
use std::time::Duration;

use anyhow::Context;
use couponrush_config::Settings;
use couponrush_messaging::consumer_config;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};

use couponrush_messaging::DeadLetter;

use crate::batch::{BatchReport, Incoming, Rejected, persist};
use crate::context::GroupContext;
use crate::startup::connect;

type GroupConsumer = StreamConsumer<GroupContext>;

/// Runs the consumer until `shutdown` resolves: probes dependencies (refusing to start if one
/// does not answer), joins the group and persists messages in batches.
pub async fn run(settings: Settings, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let deps = connect(&settings).await?;
    let consumer: GroupConsumer = consumer_config(&settings.kafka)
        .create_with_context(GroupContext)
        .context("cannot create the Kafka consumer")?;
    consumer
        .subscribe(&[&settings.kafka.topic])
        .context("cannot subscribe to the topic")?;
    tracing::info!(
        topic = %settings.kafka.topic,
        group = %settings.kafka.consumer_group,
        batch_size = settings.consumer.batch_size,
        "consuming"
    );

    let mut shutdown = pin!(shutdown);
    let mut total = BatchReport::default();
    loop {
        let Some(batch) = next_batch(
            &consumer,
            settings.consumer.batch_size,
            settings.consumer.batch_wait(),
            &mut shutdown,
        )
        .await
        else {
            break;
        };
        if batch.is_empty() {
            continue;
        }
        let incoming: Vec<Incoming<'_>> = batch
            .iter()
            .map(|m| Incoming {
                location: format!("{}/{}@{}", m.topic(), m.partition(), m.offset()),
                payload: m.payload(),
            })
            .collect();
        let Some(result) = persist(
            &deps,
            &incoming,
            settings.consumer.max_attempts,
            &mut shutdown,
        )
        .await
        else {
            break;
        };
        if !dead_letter(&deps, &batch, &incoming, &result.rejected, &mut shutdown).await {
            break;
        }
        // Only now, with the MySQL transaction committed and every rejected message on the
        // dead-letter topic, may the group move past the batch.
        commit(&consumer, &batch);
        let report = result.report;
        total.issued += report.issued;
        total.duplicates += report.duplicates;
        total.logged += report.logged;
        total.rejected += report.rejected;
        tracing::debug!(size = batch.len(), ?report, "batch persisted");
    }
    if let Err(error) = consumer.commit_consumer_state(CommitMode::Sync) {
        // Nothing new since the last commit is the common case at shutdown.
        tracing::debug!(%error, "final commit");
    }
    consumer.unsubscribe();
    tracing::info!(?total, "consumer stopped");
    Ok(())
}

/// Sends the rejected messages of a batch to the dead-letter topic, retrying until the broker
/// acknowledges each. `false` when shutdown came first (nothing committed).
async fn dead_letter(
    deps: &crate::startup::Dependencies,
    batch: &[BorrowedMessage<'_>],
    incoming: &[Incoming<'_>],
    rejected: &[Rejected],
    shutdown: &mut (impl Future<Output = ()> + Unpin),
) -> bool {
    for rejection in rejected {
        let (Some(message), Some(seen)) =
            (batch.get(rejection.index), incoming.get(rejection.index))
        else {
            continue;
        };
        let letter = DeadLetter {
            key: message.key(),
            payload: message.payload(),
            headers: message.headers(),
            source: &seen.location,
            reason: rejection.reason,
            error: rejection.error.clone(),
            attempts: rejection.attempts,
        };
        let mut backoff = Duration::from_millis(100);
        while let Err(error) = deps.dead_letters.send(&letter).await {
            tracing::error!(%error, source = seen.location, "dead letter not acknowledged; retrying");
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = &mut *shutdown => return false,
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        tracing::warn!(
            source = seen.location,
            reason = rejection.reason,
            topic = deps.dead_letters.topic(),
            "message dead-lettered"
        );
    }
    true
}

/// Waits for one message, then takes whatever else arrives within `wait`, up to `size`.
/// `None` when shutdown was requested while waiting.
async fn next_batch<'c>(
    consumer: &'c GroupConsumer,
    size: usize,
    wait: Duration,
    shutdown: &mut (impl Future<Output = ()> + Unpin),
) -> Option<Vec<BorrowedMessage<'c>>> {
    let first = tokio::select! {
        () = shutdown => return None,
        message = consumer.recv() => message,
    };
    let mut batch = Vec::with_capacity(size);
    match first {
        Ok(message) => batch.push(message),
        Err(error) => {
            tracing::error!(%error, "Kafka consumer error");
            return Some(batch);
        }
    }
    let deadline = tokio::time::Instant::now() + wait;
    while batch.len() < size {
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Ok(Ok(message)) => batch.push(message),
            Ok(Err(error)) => {
                tracing::error!(%error, "Kafka consumer error");
                break;
            }
            Err(_elapsed) => break,
        }
    }
    Some(batch)
}

/// Commits, per partition, the offset after the batch's last message.
fn commit(consumer: &GroupConsumer, batch: &[BorrowedMessage<'_>]) {
    let mut next: HashMap<(&str, i32), i64> = HashMap::new();
    for message in batch {
        let entry = next
            .entry((message.topic(), message.partition()))
            .or_insert(0);
        *entry = (*entry).max(message.offset() + 1);
    }
    let mut offsets = TopicPartitionList::new();
    for ((topic, partition), offset) in next {
        if let Err(error) = offsets.add_partition_offset(topic, partition, Offset::Offset(offset)) {
            tracing::error!(%error, topic, partition, "cannot build the offset commit");
            return;
        }
    }
    if let Err(error) = consumer.commit(&offsets, CommitMode::Async) {
        tracing::error!(%error, "offset commit failed; the batch may be re-delivered");
    }
}
