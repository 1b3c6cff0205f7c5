//! The participation log's way out of the API: every answered attempt reaches
//! `event_participation_log` (through the topic and the consumer), also when the broker was
//! away when it was answered. Records wait in memory and are retried until the broker takes
//! them; the consumer ignores a record delivered twice (unique request id).
//!
//! Runs on the main runtime so that it outlives the HTTP workers at shutdown and
//! [`ParticipationOutbox::drain`] can deliver what is left. Memory is bounded: past
//! [`MAX_PENDING`] records a new one is dropped, counted and logged, never silently.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use couponrush_domain::ParticipationRecorded;
use couponrush_messaging::IssuePublisher;
use couponrush_ops::Backoff;
use tokio::sync::Notify;

use crate::metrics::ApiMetrics;

/// Records held at most (≈ 200 bytes each: ~40 MB), minutes of a sold-out flood.
pub const MAX_PENDING: usize = 200_000;
/// Between attempts at one record.
const BACKOFF: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
/// How long the list fills after its first record before it is taken for delivery: about the
/// producer's own linger (`kafka.participation_linger_ms`), nothing a reader of the log would
/// notice.
const COLLECT_EVERY: Duration = Duration::from_millis(5);

/// Queues participation records for delivery. Cheap to clone.
///
/// A handler only pushes its record onto a shared list; the first record on an empty list
/// wakes a task on the main runtime, which lets the list fill for [`COLLECT_EVERY`], takes it
/// whole and delivers it in one task. In a sold-out flood that is one wake-up and one task per
/// few hundred records instead of a channel hop, a wake-up of another thread and a spawned task
/// per record (docs/benchmarks.md); with no traffic it is no wake-up at all.
#[derive(Debug, Clone)]
pub struct ParticipationOutbox {
    queued: Arc<Mutex<Vec<ParticipationRecorded>>>,
    /// Notified by the record that finds the list empty, and at close.
    wake: Arc<Notify>,
    pending: Arc<AtomicUsize>,
    metrics: Arc<ApiMetrics>,
    /// Whether the last drop was logged, so a flood of drops is one ERROR line per episode.
    dropping: Arc<AtomicBool>,
    /// Set once drained at shutdown: the collecting task ends, new records are dropped.
    closed: Arc<AtomicBool>,
}

impl ParticipationOutbox {
    /// Starts the collecting task on the current (main) runtime.
    pub fn start(publisher: IssuePublisher, metrics: Arc<ApiMetrics>) -> Self {
        let outbox = Self {
            queued: Arc::new(Mutex::new(Vec::new())),
            wake: Arc::new(Notify::new()),
            pending: Arc::new(AtomicUsize::new(0)),
            metrics,
            dropping: Arc::new(AtomicBool::new(false)),
            closed: Arc::new(AtomicBool::new(false)),
        };
        let collector = outbox.clone();
        tokio::spawn(async move {
            loop {
                // A wake-up whose records an earlier round already took finds an empty list:
                // harmless.
                collector.wake.notified().await;
                tokio::time::sleep(COLLECT_EVERY).await;
                let records = collector.take();
                if !records.is_empty() {
                    tokio::spawn(deliver_all(
                        publisher.clone(),
                        records,
                        collector.pending.clone(),
                        collector.metrics.clone(),
                    ));
                }
                if collector.closed.load(Ordering::Relaxed) {
                    return;
                }
            }
        });
        outbox
    }

    fn take(&self) -> Vec<ParticipationRecorded> {
        self.queued
            .lock()
            .map(|mut queued| std::mem::take(&mut *queued))
            .unwrap_or_default()
    }

    /// Queues `record`; never waits.
    pub fn record(&self, record: ParticipationRecorded) {
        if self.pending.fetch_add(1, Ordering::Relaxed) >= MAX_PENDING {
            self.pending.fetch_sub(1, Ordering::Relaxed);
            self.metrics.participation_dropped.inc();
            if !self.dropping.swap(true, Ordering::Relaxed) {
                tracing::error!(
                    max = MAX_PENDING,
                    "participation records are being dropped: the broker has not taken them for too long"
                );
            }
            return;
        }
        self.dropping.store(false, Ordering::Relaxed);
        self.metrics.participation_pending.inc();
        let queued = !self.closed.load(Ordering::Relaxed)
            && self
                .queued
                .lock()
                .map(|mut queued| {
                    queued.push(record);
                    // Under the lock: the collector takes the list under it too, so exactly
                    // the record that finds it empty wakes the collector.
                    if queued.len() == 1 {
                        self.wake.notify_one();
                    }
                })
                .is_ok();
        if !queued {
            // Drained and closed: only after shutdown.
            self.pending.fetch_sub(1, Ordering::Relaxed);
            self.metrics.participation_pending.dec();
            self.metrics.participation_dropped.inc();
        }
    }

    /// Waits up to `deadline` for every queued record to be delivered, then stops collecting.
    pub async fn drain(&self, deadline: Duration) {
        let until = tokio::time::Instant::now() + deadline;
        while self.pending.load(Ordering::Relaxed) > 0 && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.closed.store(true, Ordering::Relaxed);
        self.wake.notify_one();
        let left = self.pending.load(Ordering::Relaxed);
        if left > 0 {
            tracing::error!(
                left,
                "participation records not delivered at shutdown: missing from the log"
            );
        }
    }
}

/// Delivers one collected list, every record retried until the broker takes it, in one task.
async fn deliver_all(
    publisher: IssuePublisher,
    records: Vec<ParticipationRecorded>,
    pending: Arc<AtomicUsize>,
    metrics: Arc<ApiMetrics>,
) {
    futures::future::join_all(
        records
            .into_iter()
            .map(|record| deliver(&publisher, record, &pending, &metrics)),
    )
    .await;
}

/// Delivers one record, retrying with backoff until the broker takes it.
async fn deliver(
    publisher: &IssuePublisher,
    record: ParticipationRecorded,
    pending: &AtomicUsize,
    metrics: &ApiMetrics,
) {
    let mut backoff = BACKOFF;
    while let Err(error) = publisher.send_participation(&record).await {
        metrics.participation_failures.inc();
        let wait = backoff.next_wait();
        tracing::debug!(%error, request.id = %record.request_id, retry_in_ms = wait.as_millis(),
            "participation record not delivered; retrying");
        tokio::time::sleep(wait).await;
    }
    pending.fetch_sub(1, Ordering::Relaxed);
    metrics.participation_pending.dec();
}
