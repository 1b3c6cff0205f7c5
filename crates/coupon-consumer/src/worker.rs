//! The consumer's loop: read a batch, hand it to the persist step, store its offsets; and the
//! start-up around it (probes, the group, the ops port, the readiness watches).

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use couponrush_config::Settings;
use couponrush_messaging::issue_consumer_config;
use couponrush_ops::OpsPort;
use rdkafka::consumer::Consumer;
use tracing::Instrument;

use crate::batch::{BatchReport, BatchResult, persist};
use crate::confirm::Confirmations;
use crate::context::{GroupConsumer, GroupContext};
use crate::hold::Hold;
use crate::intake::{Batch, Intake};
use crate::message_spans::BatchSpans;
use crate::metrics::ConsumerMetrics;
use crate::ops::OpsState;
use crate::readiness::Health;
use crate::retry::{RETRY_BACKOFF, RetryWait};
use crate::startup::{Dependencies, connect};
use crate::watch::{watch_broker, watch_mysql};
use crate::{dead_letters, offsets};

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
        + RETRY_BACKOFF.max();
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
            Arc::downgrade(&consumer),
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
        close_off_runtime(consumer);
        result
    });
    Ok(RunningConsumer {
        ops_addr,
        stop,
        task,
    })
}

/// Drops the consumer on a thread of its own. rdkafka's drop polls until the group close has
/// completed, with no bound; a broker that never completes it (seen with tansu after a
/// connection cut and restore) would otherwise hang a runtime thread, and with it shutdown.
/// A probe still holding the consumer for a moment is waited for (bounded), so the last owner is
/// this thread, which the process does not wait for when it exits.
fn close_off_runtime(consumer: Arc<GroupConsumer>) {
    let closing = std::thread::Builder::new()
        .name("consumer-close".to_owned())
        .spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Arc::strong_count(&consumer) > 1 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            drop(consumer);
        });
    if let Err(error) = closing {
        tracing::error!(%error, "cannot start the thread that closes the consumer");
    }
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

/// Reads batches until shutdown: each goes through the persist step, then its offsets are
/// stored, and what it issued is confirmed in Redis while the next one is read.
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
    let mut carry = Batch::default();
    let mut confirmations = Confirmations::default();
    let intake = Intake::new(
        consumer,
        &deps.signer,
        settings.consumer.batch_size,
        settings.consumer.batch_wait(),
    );
    while let Some(mut batch) = intake.next_batch(&mut carry, &mut shutdown).await {
        if batch.is_empty() {
            continue;
        }
        health.batch_started();
        // Retries keep the partitions (paused) instead of dropping out of the group; the
        // first attempt reads the next batch ahead.
        let mut hold = Hold::new(&intake, metrics, &mut shutdown, &mut carry);
        let max_attempts = settings.consumer.max_attempts;
        let spans = BatchSpans::open(&batch.messages);
        let persisted = persist_step(deps, &mut batch, max_attempts, &mut hold)
            .instrument(spans.batch.clone())
            .await;
        spans.finish(persisted.as_ref().map(|(result, _)| result));
        let Some((mut result, took)) = persisted else {
            break;
        };
        drop(hold);
        // Only now, with the MySQL transaction committed and every rejected message on the
        // dead-letter topic, may the group move past the batch.
        offsets::store(consumer, &batch.messages);
        health.batch_finished();
        let confirmed = std::mem::take(&mut result.confirmed);
        confirmations.start(&deps.reservations, confirmed).await;
        metrics.record_batch(batch.len(), &result, took);
        total.add(&result.report);
        tracing::debug!(size = batch.len(), report = ?result.report, "batch persisted");
    }
    confirmations.finish().await;
    offsets::commit_and_leave(consumer);
    tracing::info!(?total, "consumer stopped");
    Ok(())
}

/// The persist step: the batch in one MySQL transaction (failures retried while `retry` waits),
/// then its rejected messages on the dead-letter topic. Returns what it did and how long the
/// transaction took, retries included; `None` when shutdown came first (nothing committed, the
/// batch is re-delivered).
async fn persist_step(
    deps: &Dependencies,
    batch: &mut Batch<'_>,
    max_attempts: u32,
    retry: &mut impl RetryWait,
) -> Option<(BatchResult, Duration)> {
    let decoded = std::mem::take(&mut batch.decoded);
    let started = Instant::now();
    let result = persist(&deps.issuances, decoded, max_attempts, retry).await?;
    let took = started.elapsed();
    dead_letters::publish(&deps.dead_letters, &batch.messages, &result.rejected, retry)
        .await
        .then_some((result, took))
}
