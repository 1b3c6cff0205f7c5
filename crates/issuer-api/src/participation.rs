//! The participation log's way out of the API: every answered attempt reaches
//! `event_participation_log` (through the topic and the consumer), also when the broker was
//! away when it was answered. Records wait in memory and are retried until the broker takes
//! them; the consumer ignores a record delivered twice (unique request id).
//!
//! Runs on the main runtime so that it outlives the HTTP workers at shutdown and
//! [`ParticipationOutbox::drain`] can deliver what is left. Memory is bounded: past
//! [`MAX_PENDING`] records a new one is dropped, counted and logged, never silently.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use couponrush_domain::ParticipationRecorded;
use couponrush_messaging::IssuePublisher;
use couponrush_ops::Backoff;
use tokio::sync::mpsc;

use crate::metrics::ApiMetrics;

/// Records held at most (≈ 200 bytes each: ~40 MB), minutes of a sold-out flood.
pub const MAX_PENDING: usize = 200_000;
/// Between attempts at one record.
const BACKOFF: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));

/// Queues participation records for delivery. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ParticipationOutbox {
    records: mpsc::UnboundedSender<ParticipationRecorded>,
    pending: Arc<AtomicUsize>,
    metrics: Arc<ApiMetrics>,
    /// Whether the last drop was logged, so a flood of drops is one ERROR line per episode.
    dropping: Arc<AtomicBool>,
}

impl ParticipationOutbox {
    /// Starts the delivery task on the current (main) runtime.
    pub fn start(publisher: IssuePublisher, metrics: Arc<ApiMetrics>) -> Self {
        let (records, mut rx) = mpsc::unbounded_channel::<ParticipationRecorded>();
        let pending = Arc::new(AtomicUsize::new(0));
        let task_pending = pending.clone();
        let task_metrics = metrics.clone();
        tokio::spawn(async move {
            while let Some(record) = rx.recv().await {
                tokio::spawn(deliver(
                    publisher.clone(),
                    record,
                    task_pending.clone(),
                    task_metrics.clone(),
                ));
            }
        });
        Self {
            records,
            pending,
            metrics,
            dropping: Arc::new(AtomicBool::new(false)),
        }
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
        if self.records.send(record).is_err() {
            // The delivery task ended: only at shutdown.
            self.pending.fetch_sub(1, Ordering::Relaxed);
            self.metrics.participation_pending.dec();
            self.metrics.participation_dropped.inc();
        }
    }

    /// Waits up to `deadline` for every queued record to be delivered.
    pub async fn drain(&self, deadline: Duration) {
        let until = tokio::time::Instant::now() + deadline;
        while self.pending.load(Ordering::Relaxed) > 0 && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let left = self.pending.load(Ordering::Relaxed);
        if left > 0 {
            tracing::error!(
                left,
                "participation records not delivered at shutdown: missing from the log"
            );
        }
    }
}

/// Delivers one record, retrying with backoff until the broker takes it.
async fn deliver(
    publisher: IssuePublisher,
    record: ParticipationRecorded,
    pending: Arc<AtomicUsize>,
    metrics: Arc<ApiMetrics>,
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
