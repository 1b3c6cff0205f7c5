//! Bulk traffic on a topic, for benchmarks and load tests: issue requests preloaded as fast as
//! the broker takes them (each acknowledged), and a topic counted by reading it back.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::Context;
use couponrush_config::KafkaSettings;
use couponrush_domain::IssueRequested;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

/// Issue requests encoded and a producer connected, ready to be sent: building the payloads
/// and the first metadata round trip stay out of the time [`Preload::send`] measures.
pub struct Preload {
    producer: FutureProducer,
    topic: String,
    /// Key (user id) and payload of each message, in order.
    messages: Vec<(String, Vec<u8>)>,
}

impl std::fmt::Debug for Preload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Preload")
            .field("topic", &self.topic)
            .field("messages", &self.messages.len())
            .finish_non_exhaustive()
    }
}

/// What a preload sent.
#[derive(Debug, Clone, Copy)]
pub struct Preloaded {
    pub messages: usize,
    pub bytes: usize,
    /// From the first send to the last acknowledgement.
    pub elapsed: Duration,
}

impl Preload {
    /// Encodes `events` exactly as issuer-api publishes them (the domain's encoding, keyed by
    /// user id, the schema-version header) and connects a producer batching as much as the
    /// broker accepts: every message is still acknowledged (`acks=all`), but nothing waits on
    /// one message before sending the next.
    pub async fn prepare(
        kafka: &KafkaSettings,
        topic: &str,
        events: &[IssueRequested],
    ) -> anyhow::Result<Self> {
        let messages = events
            .iter()
            .map(|event| (event.user_id.as_str().to_owned(), event.encode()))
            .collect();
        let producer: FutureProducer = couponrush_messaging::client_config(kafka)
            .set("acks", "all")
            .set("enable.idempotence", "false")
            .set("linger.ms", "20")
            .set("batch.num.messages", "100000")
            .set("batch.size", (4 * 1024 * 1024).to_string())
            .set("message.max.bytes", (8 * 1024 * 1024).to_string())
            .set("queue.buffering.max.messages", "2000000")
            .set("queue.buffering.max.kbytes", "2097151")
            .set("compression.type", "none")
            .create()
            .context("create the preload producer")?;
        let (client, name) = (producer.clone(), topic.to_owned());
        tokio::task::spawn_blocking(move || {
            client
                .client()
                .fetch_metadata(Some(&name), Duration::from_secs(10))
        })
        .await?
        .with_context(|| format!("metadata of {topic}"))?;
        Ok(Self {
            producer,
            topic: topic.to_owned(),
            messages,
        })
    }

    /// Sends every message and waits for every acknowledgement; fails if any was refused.
    pub async fn send(self) -> anyhow::Result<Preloaded> {
        let started = Instant::now();
        let mut deliveries = Vec::with_capacity(self.messages.len());
        for (key, payload) in &self.messages {
            let mut record = FutureRecord::to(&self.topic)
                .key(key.as_str())
                .payload(payload.as_slice())
                .headers(couponrush_messaging::schema_headers());
            loop {
                match self.producer.send_result(record) {
                    Ok(delivery) => break deliveries.push(delivery),
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((error, _)) => anyhow::bail!("queue a message for {}: {error}", self.topic),
                }
            }
        }
        for delivery in futures::future::join_all(deliveries).await {
            delivery
                .context("the producer went away")?
                .map_err(|(error, _)| anyhow::anyhow!("produce to {}: {error}", self.topic))?;
        }
        Ok(Preloaded {
            messages: self.messages.len(),
            bytes: self.messages.iter().map(|(k, p)| k.len() + p.len()).sum(),
            elapsed: started.elapsed(),
        })
    }
}

/// What a topic holds, read back from its start to its end.
#[derive(Debug, Clone, Default)]
pub struct TopicCount {
    pub messages: u64,
    pub distinct_keys: usize,
    /// Places where an offset did not follow the previous one of its partition.
    pub offset_gaps: u64,
    pub per_partition: HashMap<i32, u64>,
    /// The sum of the partitions' high watermarks (ListOffsets), for comparison only: tansu
    /// answers ListOffsets(latest) with the last record batch's base offset + 1, not the log
    /// end, so it undercounts a topic written in big batches. Only reading back is proof.
    pub high_watermarks: i64,
}

/// Reads every partition of `topic` from its start to its end (`within` bounds the whole read)
/// and counts messages, distinct keys and offset gaps. Joins no group and commits nothing.
pub async fn count_topic(
    kafka: &KafkaSettings,
    topic: &str,
    within: Duration,
) -> anyhow::Result<TopicCount> {
    let (kafka, topic) = (kafka.clone(), topic.to_owned());
    tokio::task::spawn_blocking(move || count_blocking(&kafka, &topic, within)).await?
}

fn count_blocking(
    kafka: &KafkaSettings,
    topic: &str,
    within: Duration,
) -> anyhow::Result<TopicCount> {
    let step = Duration::from_secs(10).min(within);
    let consumer: BaseConsumer = couponrush_messaging::client_config(kafka)
        .set(
            "group.id",
            format!("couponrush-count-{}", uuid::Uuid::now_v7().simple()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), step)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .filter(|p: &Vec<i32>| !p.is_empty())
        .with_context(|| format!("topic {topic} is not on the broker"))?;
    let mut count = TopicCount::default();
    let mut assignment = TopicPartitionList::new();
    for &partition in &partitions {
        count.high_watermarks += consumer.fetch_watermarks(topic, partition, step)?.1;
        assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let mut pending: HashSet<i32> = partitions.iter().copied().collect();
    let mut last: HashMap<i32, i64> = HashMap::new();
    let mut keys: HashSet<Vec<u8>> = HashSet::new();
    let started = Instant::now();
    while !pending.is_empty() {
        anyhow::ensure!(
            started.elapsed() < within,
            "reading {topic} back: {} partition(s) not read to their end within {within:?}",
            pending.len()
        );
        match consumer.poll(Duration::from_millis(500)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                pending.remove(&partition);
            }
            Some(Err(error)) => anyhow::bail!("reading {topic} back: {error}"),
            Some(Ok(message)) => {
                let partition = message.partition();
                if last
                    .insert(partition, message.offset())
                    .map_or(0, |o| o + 1)
                    != message.offset()
                {
                    count.offset_gaps += 1;
                }
                count.messages += 1;
                *count.per_partition.entry(partition).or_default() += 1;
                if let Some(key) = message.key() {
                    keys.insert(key.to_vec());
                }
            }
        }
    }
    count.distinct_keys = keys.len();
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{TestEnv, issue_request};
    use couponrush_domain::CouponId;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_preload_is_read_back_whole_and_its_topic_deleted() -> anyhow::Result<()> {
        let env = TestEnv::new(3).await?;
        let kafka = &env.settings.kafka;
        let coupon = CouponId::new(1)?;
        let events = (0..500)
            .map(|n| issue_request(coupon, &format!("user-{n}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let sent = Preload::prepare(kafka, &kafka.topic, &events)
            .await?
            .send()
            .await?;
        assert_eq!(sent.messages, 500);
        let count = count_topic(kafka, &kafka.topic, Duration::from_secs(30)).await?;
        assert_eq!(
            (count.messages, count.distinct_keys, count.offset_gaps),
            (500, 500, 0)
        );
        assert_eq!(count.per_partition.values().sum::<u64>(), 500);

        couponrush_messaging::delete_topics(kafka, &[&kafka.topic], Duration::from_secs(10))
            .await?;
        let gone =
            couponrush_messaging::probe_topic(kafka, &kafka.topic, Duration::from_secs(5)).await;
        assert!(gone.is_err(), "{gone:?}");
        Ok(())
    }
}
