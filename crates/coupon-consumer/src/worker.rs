use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use couponrush_config::Settings;
use couponrush_messaging::{
    DeadLetter, Delivered, SCHEMA_VERSION_HEADER, issue_consumer_config, noise,
};
use couponrush_ops::OpsPort;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::batch::{BatchReport, Incoming, MAX_BACKOFF, Rejected, RetryWait, confirm, persist};
use crate::context::{GroupConsumer, GroupContext};
use crate::hold::Hold;
use crate::metrics::{ConsumerMetrics, ReasonLabels};
use crate::ops::OpsState;
use crate::readiness::Health;
use crate::startup::{Dependencies, connect};
use crate::watch::{watch_broker, watch_mysql};

/// A started consumer: where its ops port listens and how to stop it.
#[derive(Debug)]
pub struct RunningConsumer {
    pub ops_addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl RunningConsumer {
    /// Finishes the batch in hand, commits, leaves the group and returns its result.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.send(()).ok();
        self.task.await?
    }

    /// Waits until the consumer ends by itself (an error).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await?
    }
}

/// Probes dependencies (refusing to start if one does not answer), opens the ops port, joins
/// the group and consumes in the background.
pub async fn start(settings: Settings) -> anyhow::Result<RunningConsumer> {
    let deps = connect(&settings).await?;
    let metrics = ConsumerMetrics::new();
    // One attempt at a batch (a connection, the MySQL deadline, the dead letters' publish
    // timeout) plus the longest backoff: a batch in progress for longer is stuck.
    let stuck_after = settings.mysql.connect_timeout()
        + deps.db.deadline()
        + Duration::from_millis(settings.kafka.publish_timeout_ms)
        + MAX_BACKOFF;
    let health = Arc::new(Health::new(stuck_after));
    let consumer: Arc<GroupConsumer> = Arc::new(
        issue_consumer_config(&settings.kafka, &settings.consumer)
            .create_with_context(GroupContext::new(metrics.clone(), health.clone()))
            .context("cannot create the Kafka consumer")?,
    );
    consumer
        .subscribe(&[&settings.kafka.topic])
        .context("cannot subscribe to the topic")?;
    let ops = OpsPort::serve(
        &settings.consumer.ops_bind,
        "consumer.ops_bind",
        OpsState {
            metrics: metrics.clone(),
            health: health.clone(),
        },
    )?;
    let ops_addr = ops.addr;
    let watches = [
        watch_mysql(deps.db.clone(), health.clone()),
        // A member at work on a partition commits at least once per batch bound plus a
        // commit interval.
        watch_broker(
            consumer.clone(),
            settings.kafka.topic.clone(),
            health.clone(),
            stuck_after + Duration::from_millis(settings.consumer.commit_interval_ms),
            deps.dead_letters.clone(),
        ),
    ];
    tracing::info!(
        topic = %settings.kafka.topic,
        group = %settings.kafka.consumer_group,
        batch_size = settings.consumer.batch_size,
        %ops_addr,
        "consuming"
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let result = consume(&settings, &deps, &consumer, &metrics, &health, async move {
            stopped.await.ok();
        })
        .await;
        for watch in watches {
            watch.abort();
        }
        ops.stop().await;
        result
    });
    Ok(RunningConsumer {
        ops_addr,
        stop,
        task,
    })
}

/// Runs the consumer until `shutdown` resolves (or it fails).
pub async fn run(settings: Settings, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let mut running = start(settings).await?;
    tokio::select! {
        () = shutdown => {}
        ended = &mut running.task => return ended?,
    }
    running.stop().await
}

async fn consume(
    settings: &Settings,
    deps: &Dependencies,
    consumer: &GroupConsumer,
    metrics: &ConsumerMetrics,
    health: &Health,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let mut shutdown = pin!(shutdown);
    let mut total = BatchReport::default();
    let mut carry = Vec::new();
    // The Redis confirm of one batch runs while the next batch's transaction does: it is best
    // effort (MySQL is the record) and would otherwise sit on the critical path. At most one
    // is in flight, so Redis never falls more than a batch behind.
    let mut confirming: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        let Some(batch) = next_batch(
            consumer,
            settings.consumer.batch_size,
            settings.consumer.batch_wait(),
            &mut carry,
            &mut shutdown,
        )
        .await
        else {
            break;
        };
        if batch.is_empty() {
            continue;
        }
        let payloads: Vec<Incoming<'_>> = batch.iter().map(incoming).collect();
        let started = Instant::now();
        health.batch_started();
        // Retries keep the partitions (paused) instead of dropping out of the group.
        let mut hold = Hold::new(consumer, metrics, &mut shutdown, &mut carry);
        let Some(mut result) =
            persist(deps, &payloads, settings.consumer.max_attempts, &mut hold).await
        else {
            break;
        };
        metrics
            .transaction_duration
            .observe(started.elapsed().as_secs_f64());
        if !dead_letter(deps, &batch, &result.rejected, &mut hold).await {
            break;
        }
        drop(hold);
        // Only now, with the MySQL transaction committed and every rejected message on the
        // dead-letter topic, may the group move past the batch.
        store(consumer, &batch);
        health.batch_finished();
        if let Some(previous) = confirming.take() {
            previous.await.ok();
        }
        let reservations = deps.reservations.clone();
        let confirmed = std::mem::take(&mut result.confirmed);
        confirming = Some(tokio::spawn(async move {
            confirm(&reservations, &confirmed).await;
        }));
        let report = result.report;
        let size = u32::try_from(batch.len()).unwrap_or(u32::MAX);
        metrics.batch_size.observe(f64::from(size));
        metrics.records_consumed.inc_by(u64::from(size));
        metrics.issued.inc_by(report.issued);
        metrics.duplicates.inc_by(report.duplicates);
        for rejection in &result.rejected {
            metrics
                .dead_letters
                .get_or_create(&ReasonLabels {
                    reason: rejection.reason,
                })
                .inc();
        }
        total.issued += report.issued;
        total.duplicates += report.duplicates;
        total.logged += report.logged;
        total.rejected += report.rejected;
        tracing::debug!(size, ?report, "batch persisted");
    }
    if let Some(last) = confirming {
        last.await.ok();
    }
    if let Err(error) = consumer.commit_consumer_state(CommitMode::Sync) {
        // Nothing new since the last commit is the common case at shutdown.
        tracing::debug!(%error, "final commit");
    }
    consumer.unsubscribe();
    tracing::info!(?total, "consumer stopped");
    Ok(())
}

/// Sends the rejected messages of a batch to the dead-letter topic, all at once, and retries
/// those the broker did not acknowledge until it does. A letter the broker refuses for good
/// goes truncated, or not at all (logged), rather than blocking the partition for ever.
/// `false` when shutdown came first (nothing committed).
async fn dead_letter(
    deps: &Dependencies,
    batch: &[BorrowedMessage<'_>],
    rejected: &[Rejected],
    retry: &mut impl RetryWait,
) -> bool {
    let found: Vec<(&BorrowedMessage<'_>, &Rejected)> = rejected
        .iter()
        .filter_map(|r| Some((batch.get(r.index)?, r)))
        .collect();
    let sources: Vec<String> = found
        .iter()
        .map(|(m, _)| format!("{}/{}@{}", m.topic(), m.partition(), m.offset()))
        .collect();
    let letters: Vec<DeadLetter<'_>> = found
        .iter()
        .zip(&sources)
        .map(|((message, rejection), source)| DeadLetter {
            key: message.key(),
            payload: message.payload(),
            headers: message.headers(),
            source,
            reason: rejection.reason,
            error: rejection.error.clone(),
            attempts: rejection.attempts,
        })
        .collect();
    let mut pending: Vec<&DeadLetter<'_>> = letters.iter().collect();
    let mut backoff = Duration::from_millis(100);
    loop {
        let results = deps.dead_letters.deliver_all(pending.iter().copied()).await;
        let mut failed = Vec::new();
        for (letter, result) in pending.into_iter().zip(results) {
            let (source, reason) = (letter.source, letter.reason);
            match result {
                Ok(Delivered::Whole) => tracing::warn!(source, reason, "message dead-lettered"),
                Ok(Delivered::Truncated) => {
                    tracing::warn!(
                        source,
                        reason,
                        "message dead-lettered truncated (too large)"
                    );
                }
                Ok(Delivered::Refused(error)) => tracing::error!(
                    source,
                    reason,
                    error,
                    "dead letter refused by the broker even truncated; moving on without it"
                ),
                Err(error) => {
                    tracing::error!(%error, source, "dead letter not acknowledged; retrying");
                    failed.push(letter);
                }
            }
        }
        if failed.is_empty() {
            return true;
        }
        if !retry.wait(backoff).await {
            return false;
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
        pending = failed;
    }
}

/// Waits for one message, then takes whatever else arrives within `wait`, up to `size`.
/// Messages carried over from a retry's hold come first, as a batch of their own.
/// `None` when shutdown was requested while waiting.
async fn next_batch<'c>(
    consumer: &'c GroupConsumer,
    size: usize,
    wait: Duration,
    carry: &mut Vec<BorrowedMessage<'c>>,
    shutdown: &mut (impl Future<Output = ()> + Unpin),
) -> Option<Vec<BorrowedMessage<'c>>> {
    if !carry.is_empty() {
        return Some(std::mem::take(carry));
    }
    let first = tokio::select! {
        () = shutdown => return None,
        message = consumer.recv() => message,
    };
    let mut batch = Vec::with_capacity(size);
    match first {
        Ok(message) => batch.push(message),
        Err(error) => {
            noise::consumer_error(&error);
            return Some(batch);
        }
    }
    let deadline = tokio::time::Instant::now() + wait;
    while batch.len() < size {
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Ok(Ok(message)) => batch.push(message),
            Ok(Err(error)) => {
                noise::consumer_error(&error);
                break;
            }
            Err(_elapsed) => break,
        }
    }
    Some(batch)
}

fn incoming<'m>(message: &'m BorrowedMessage<'_>) -> Incoming<'m> {
    let schema_version = message.headers().and_then(|headers| {
        headers
            .iter()
            .find(|h| h.key == SCHEMA_VERSION_HEADER)
            .and_then(|h| h.value)
    });
    Incoming {
        payload: message.payload(),
        schema_version,
    }
}

/// Stores, per partition, the offset after the batch's last message. Only stored offsets are
/// ever committed: periodically by librdkafka, before a revocation, and at shutdown.
fn store(consumer: &GroupConsumer, batch: &[BorrowedMessage<'_>]) {
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
            tracing::error!(%error, topic, partition, "cannot build the offsets to store");
            return;
        }
    }
    if let Err(error) = consumer.store_offsets(&offsets) {
        // The partitions moved while the batch was persisted: their new owner re-delivers it,
        // which the idempotent insert makes harmless.
        tracing::warn!(%error, "offsets not stored; the batch may be re-delivered");
    }
}
