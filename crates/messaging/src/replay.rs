//! Re-driving dead letters into the issue topic.
//!
//! One pass reads the dead-letter topic from the replay group's committed offsets up to the end
//! it had when the pass began, re-publishes the matching letters with their original key,
//! payload and headers, and commits as it goes: only after the broker acknowledged every
//! re-published letter up to that offset. A pass killed midway resumes where it committed;
//! a letter re-published twice is harmless because the consumer's effect is idempotent.
//!
//! Letters the consumer dead-letters again meanwhile wait for the next pass instead of
//! looping. A partition's pass ends where librdkafka signals its end, or at a letter past the
//! high watermark *written after the pass began*: tansu reports the high watermark as one past
//! the first record of the last batch, so the watermark alone would cut a batch of letters
//! (the consumer sends a batch's letters together) short.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use couponrush_config::KafkaSettings;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedHeaders, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use crate::dead_letter::{DLQ_REASON_HEADER, DLQ_SHA256_HEADER, DLQ_SOURCE_HEADER};
use crate::error::MessagingError;
use crate::settings::{acked_producer_config, replay_consumer_config};

/// Header on a re-published message: `topic/partition@offset` of the dead letter it came from.
pub const REPLAYED_FROM_HEADER: &str = "dlq-replayed-from";

/// Letters re-published before waiting for their acknowledgements and committing.
const COMMIT_EVERY: usize = 500;

/// What to replay.
#[derive(Debug, Clone, Default)]
pub struct ReplayRequest {
    /// Reasons to replay (`dlq-reason` header); all when empty.
    pub reasons: Vec<String>,
    /// Read and count only: publish nothing, commit nothing.
    pub dry_run: bool,
    /// Longest wait for the next letter before the pass fails.
    pub idle_timeout: Duration,
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// The replay group whose offsets this pass used.
    pub group: String,
    /// Letters read in this pass.
    pub read: u64,
    /// Re-published to the issue topic (in a dry run: would be).
    pub replayed: u64,
    /// Read but not matching the reasons asked for.
    pub skipped: u64,
    /// Matching, but truncated letters (payload cut, `dlq-sha256` set): not replayable, since
    /// the original is not in them. Each needs a person (the source offset is in the letter).
    pub truncated: u64,
    /// Letters read, by reason.
    pub by_reason: BTreeMap<String, u64>,
}

/// The consumer group of a replay: one per reason filter, so replaying one reason neither
/// consumes nor hides the letters another filter would replay.
pub fn replay_group(settings: &KafkaSettings, reasons: &[String]) -> String {
    let mut reasons = reasons.to_vec();
    reasons.sort_unstable();
    reasons.dedup();
    let filter = if reasons.is_empty() {
        "all".to_owned()
    } else {
        reasons.join("+")
    };
    format!("{}.dlq-replay.{filter}", settings.consumer_group)
}

/// Replays the dead-letter topic once, to its end as of now.
pub async fn replay_dead_letters(
    settings: &KafkaSettings,
    request: &ReplayRequest,
    mut progress: impl FnMut(u64),
) -> Result<ReplayReport, MessagingError> {
    let group = replay_group(settings, &request.reasons);
    let consumer: StreamConsumer = replay_consumer_config(settings, &group).create()?;
    let began = now_millis();
    let producer: FutureProducer = acked_producer_config(settings).create()?;

    let timeout = request.idle_timeout;
    let ends = tokio::task::block_in_place(|| plan(&consumer, &settings.dlq_topic, timeout))?;
    let mut report = ReplayReport {
        group: group.clone(),
        ..ReplayReport::default()
    };
    let total: u64 = ends
        .values()
        .map(|(start, end)| u64::try_from(end - start).unwrap_or(0))
        .sum();
    if total == 0 {
        return Ok(report);
    }
    let mut assignment = TopicPartitionList::new();
    for (partition, (start, _)) in &ends {
        assignment.add_partition_offset(&settings.dlq_topic, *partition, Offset::Offset(*start))?;
    }
    consumer.assign(&assignment)?;

    // Partitions with letters left to read in this pass, and where their letters end.
    let mut remaining: HashMap<i32, i64> = ends
        .iter()
        .filter(|(_, (start, end))| start < end)
        .map(|(partition, (_, end))| (*partition, *end))
        .collect();
    let mut in_flight = Vec::new();
    let mut to_commit: HashMap<i32, i64> = HashMap::new();
    loop {
        let finished = remaining.is_empty();
        if finished || in_flight.len() >= COMMIT_EVERY {
            settle(
                &consumer,
                &settings.dlq_topic,
                &mut in_flight,
                &mut to_commit,
                request.dry_run,
            )
            .await?;
        }
        if finished {
            return Ok(report);
        }
        let received = tokio::time::timeout(timeout, consumer.recv())
            .await
            .map_err(|_| MessagingError::Unreachable {
                address: settings.bootstrap_servers.clone(),
                timeout_ms: timeout.as_millis(),
                reason: format!("no dead letter arrived from {}", settings.dlq_topic),
            })?;
        let message = match received {
            Ok(message) => message,
            Err(KafkaError::PartitionEOF(partition)) => {
                remaining.remove(&partition);
                continue;
            }
            Err(error) => return Err(error.into()),
        };
        let partition = message.partition();
        let offset = message.offset();
        let Some(&end) = remaining.get(&partition) else {
            continue;
        };
        let written = message.timestamp().to_millis().unwrap_or(i64::MAX);
        if offset >= end && written >= began {
            // Written after the pass began: the next pass's.
            remaining.remove(&partition);
            continue;
        }
        report.read += 1;
        let reason = header(message.headers(), DLQ_REASON_HEADER).unwrap_or_default();
        *report.by_reason.entry(reason.clone()).or_insert(0) += 1;
        let wanted = request.reasons.is_empty() || request.reasons.contains(&reason);
        let truncated = header(message.headers(), DLQ_SHA256_HEADER).is_some();
        if !wanted {
            report.skipped += 1;
        } else if truncated {
            // Re-publishing the first bytes of a message would only dead-letter it again.
            report.truncated += 1;
            tracing::warn!(
                source = header(message.headers(), DLQ_SOURCE_HEADER).unwrap_or_default(),
                "a truncated dead letter cannot be replayed: the original is not in it"
            );
        } else if !request.dry_run {
            let source = format!("{}/{partition}@{offset}", settings.dlq_topic);
            let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&settings.topic)
                .headers(original_headers(message.headers(), &source));
            if let Some(key) = message.key() {
                record = record.key(key);
            }
            if let Some(payload) = message.payload() {
                record = record.payload(payload);
            }
            let delivery = producer
                .send_result(record)
                .map_err(|(error, _)| MessagingError::PublishRejected(error))?;
            in_flight.push(delivery);
        }
        if wanted && !truncated {
            report.replayed += 1;
        }
        to_commit.insert(partition, offset + 1);
        progress(total);
    }
}

fn now_millis() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

/// Per partition, where this pass starts (the consumer's group's committed offset, or the
/// beginning) and ends (the high watermark now).
pub(crate) fn plan(
    consumer: &impl Consumer,
    topic: &str,
    timeout: Duration,
) -> Result<BTreeMap<i32, (i64, i64)>, MessagingError> {
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(MessagingError::MissingTopic {
            topic: topic.to_owned(),
            address: String::new(),
            reason: "no partitions in the broker's metadata".to_owned(),
        });
    }
    let mut wanted = TopicPartitionList::new();
    for partition in &partitions {
        wanted.add_partition(topic, *partition);
    }
    let committed = consumer.committed_offsets(wanted, timeout)?;
    let mut plan = BTreeMap::new();
    for partition in partitions {
        let (low, high) = consumer.fetch_watermarks(topic, partition, timeout)?;
        let start = match committed
            .find_partition(topic, partition)
            .map(|e| e.offset())
        {
            Some(Offset::Offset(n)) => n.max(low),
            _ => low,
        };
        plan.insert(partition, (start, high.max(start)));
    }
    Ok(plan)
}

/// Waits for every re-published letter's acknowledgement, then commits past them.
async fn settle(
    consumer: &StreamConsumer,
    topic: &str,
    in_flight: &mut Vec<rdkafka::producer::DeliveryFuture>,
    to_commit: &mut HashMap<i32, i64>,
    dry_run: bool,
) -> Result<(), MessagingError> {
    for delivery in in_flight.drain(..) {
        match delivery.await {
            Ok(Ok(_)) => {}
            Ok(Err((error, _))) => return Err(MessagingError::PublishRejected(error)),
            Err(_) => {
                return Err(MessagingError::PublishRejected(KafkaError::Canceled));
            }
        }
    }
    if dry_run || to_commit.is_empty() {
        return Ok(());
    }
    let mut offsets = TopicPartitionList::new();
    for (partition, next) in to_commit.drain() {
        offsets.add_partition_offset(topic, partition, Offset::Offset(next))?;
    }
    consumer.commit(&offsets, CommitMode::Sync)?;
    Ok(())
}

fn header(headers: Option<&BorrowedHeaders>, key: &str) -> Option<String> {
    headers?
        .iter()
        .find(|h| h.key == key)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// The headers the message had before it was dead-lettered, plus where it was replayed from.
fn original_headers(headers: Option<&BorrowedHeaders>, source: &str) -> OwnedHeaders {
    let mut owned = OwnedHeaders::new();
    if let Some(headers) = headers {
        for h in headers.iter() {
            if !h.key.starts_with("dlq-") {
                owned = owned.insert(h);
            }
        }
    }
    owned.insert(Header {
        key: REPLAYED_FROM_HEADER,
        value: Some(source),
    })
}
