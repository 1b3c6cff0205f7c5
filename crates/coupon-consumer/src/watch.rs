//! The probes behind readiness, once a second each: MySQL answers `SELECT 1`; the broker
//! answers a metadata request (and, while this member holds no partition, the group's
//! committed offsets and the partitions' ends, to tell whether others consume them).
//! Readiness as a whole, and MySQL, are each logged once per change of state.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use couponrush_messaging::DeadLetterPublisher;
use couponrush_ops::ReadinessLog;
use couponrush_ops::readiness::ticker;
use couponrush_storage::Database;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};

use crate::context::GroupConsumer;
use crate::readiness::{BROKER_ANSWER, Health};

/// Checks MySQL every second; logs once per change of state.
pub fn watch_mysql(db: Database, health: Arc<Health>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = ticker();
        loop {
            ticker.tick().await;
            let result = db.probe(Duration::from_secs(1)).await;
            health.mysql.record(result.map_err(|e| e.to_string()));
        }
    })
}

/// Asks the broker for the topic's metadata every second, on a blocking thread (librdkafka's
/// call blocks), one request at a time; then logs readiness if it changed. `progress_window`:
/// how long a partition with a backlog may go without a commit before it counts as stalled.
/// The dead-letter producer is replaced here when it can no longer publish while the broker
/// answers.
pub fn watch_broker(
    // Weak: the watcher must never be what keeps the consumer alive (see `close_off_runtime`).
    consumer: Weak<GroupConsumer>,
    topic: String,
    health: Arc<Health>,
    progress_window: Duration,
    dead_letters: DeadLetterPublisher,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = ticker();
        let mut log = ReadinessLog::default();
        let mut progress = Progress::default();
        loop {
            ticker.tick().await;
            let Some(consumer) = consumer.upgrade() else {
                return;
            };
            let topic = topic.clone();
            let idle = health.assigned() == Some(0);
            let answer = tokio::task::spawn_blocking(move || probe(&consumer, &topic, idle)).await;
            dead_letters.maintain(matches!(answer, Ok(Ok(_))));
            match answer {
                Ok(Ok((partitions, offsets))) => {
                    health.broker_answered.store(true, Ordering::Relaxed);
                    let stalled = offsets.map(|o| progress.stalled(&o, progress_window));
                    health.set_topic(partitions, stalled);
                }
                Ok(Err(error)) => {
                    if health.broker_answered.swap(false, Ordering::Relaxed) {
                        tracing::debug!(%error, "the broker did not answer its probe");
                    }
                }
                Err(error) => tracing::error!(%error, "the broker probe failed to run"),
            }
            let (ready, body) = health.verdict();
            log.record(ready, &body["checks"]);
        }
    })
}

/// Per partition: the group's committed offset and the partition's end.
type Offsets = Vec<(i32, Option<i64>, i64)>;

/// The topic's partition count and, for an idle member, every partition's offsets.
fn probe(
    consumer: &GroupConsumer,
    topic: &str,
    idle: bool,
) -> Result<(usize, Option<Offsets>), KafkaError> {
    let metadata = consumer.fetch_metadata(Some(topic), BROKER_ANSWER)?;
    let ids: Vec<i32> = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default();
    if !idle {
        return Ok((ids.len(), None));
    }
    let mut wanted = TopicPartitionList::new();
    for &id in &ids {
        wanted.add_partition(topic, id);
    }
    let committed = consumer.committed_offsets(wanted, BROKER_ANSWER)?;
    let mut offsets = Vec::with_capacity(ids.len());
    for &id in &ids {
        let (_, end) = consumer.fetch_watermarks(topic, id, BROKER_ANSWER)?;
        let at = committed
            .find_partition(topic, id)
            .and_then(|e| match e.offset() {
                Offset::Offset(at) => Some(at),
                _ => None,
            });
        offsets.push((id, at, end));
    }
    Ok((ids.len(), Some(offsets)))
}

/// When each partition's committed offset last moved.
#[derive(Debug, Default)]
struct Progress {
    seen: HashMap<i32, (Option<i64>, Instant)>,
}

impl Progress {
    /// Partitions with a backlog whose committed offset has not moved within `window`.
    fn stalled(&mut self, offsets: &Offsets, window: Duration) -> usize {
        let now = Instant::now();
        offsets
            .iter()
            .filter(|&&(id, committed, end)| {
                let moved = match self.seen.get(&id) {
                    Some(&(before, at)) if before == committed => at,
                    _ => now,
                };
                self.seen.insert(id, (committed, moved));
                let backlog = end > committed.unwrap_or(0);
                // First sight counts as a move: the window starts now.
                backlog && now.duration_since(moved) > window
            })
            .count()
    }
}
