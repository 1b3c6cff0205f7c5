//! A test's own topic on the broker, and raw access to it: producing what a buggy or foreign
//! producer would, and reading back what the services wrote (dead letters).

use std::time::Duration;

use anyhow::Context;

use crate::{TestEnv, eventually};

impl TestEnv {
    /// Moves this test onto the broker at `address` and creates its topic there.
    pub async fn use_broker(&mut self, address: String, partitions: i32) -> anyhow::Result<()> {
        self.settings.kafka.bootstrap_servers = address;
        self.create_topic(partitions).await
    }

    /// Creates this test's topic (again, after a memory broker restarted) and waits until the
    /// broker serves its metadata.
    pub async fn create_topic(&self, partitions: i32) -> anyhow::Result<()> {
        let visible = self.ensure_topic(partitions).await?;
        anyhow::ensure!(
            usize::try_from(partitions) == Ok(visible),
            "topic {} has {visible} partitions, not {partitions}",
            self.settings.kafka.topic
        );
        Ok(())
    }

    /// Creates this test's topic unless it exists, and waits until the broker serves it;
    /// returns its partition count. A broker that came back empty may already have
    /// auto-created it (with its default partition count) for a client that kept asking.
    pub async fn ensure_topic(&self, partitions: i32) -> anyhow::Result<usize> {
        let kafka = &self.settings.kafka;
        couponrush_messaging::ensure_topic(kafka, &kafka.dlq_topic, 1, Duration::from_secs(10))
            .await
            .context("dead-letter topic")?;
        couponrush_messaging::ensure_topic(
            kafka,
            &kafka.topic,
            partitions,
            Duration::from_secs(10),
        )
        .await
        .with_context(|| {
            format!(
                "Kafka at {} (is scripts/stack.sh up?)",
                kafka.bootstrap_servers
            )
        })?;
        eventually(
            Duration::from_secs(10),
            "the new topic to be visible",
            async || {
                couponrush_messaging::probe_topic(kafka, &kafka.topic, Duration::from_secs(2))
                    .await
                    .ok()
            },
        )
        .await
    }
}

/// A message read back from a topic (dead letters, in tests).
#[derive(Debug, Clone)]
pub struct ReadMessage {
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: std::collections::HashMap<String, String>,
}

impl TestEnv {
    /// Produces raw bytes onto this test's topic (as a buggy or foreign producer would) and
    /// waits for the acknowledgement.
    pub async fn produce_raw(&self, key: &str, payload: &[u8]) -> anyhow::Result<()> {
        self.produce_many(&[(key.to_owned(), payload.to_vec())])
            .await
    }

    /// Produces one message with headers, of any size the broker takes (the producer's own
    /// `message.max.bytes` is raised to fit it), and waits for the acknowledgement.
    pub async fn produce_with_headers(
        &self,
        key: &str,
        payload: &[u8],
        headers: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        use rdkafka::message::{Header, OwnedHeaders};
        use rdkafka::producer::{FutureProducer, FutureRecord};
        let room = payload.len() + 64 * 1024;
        let producer: FutureProducer = couponrush_messaging::client_config(&self.settings.kafka)
            .set("message.max.bytes", room.to_string())
            .create()?;
        let headers = headers
            .iter()
            .fold(OwnedHeaders::new(), |all, (key, value)| {
                all.insert(Header {
                    key,
                    value: Some(*value),
                })
            });
        producer
            .send(
                FutureRecord::to(&self.settings.kafka.topic)
                    .key(key)
                    .payload(payload)
                    .headers(headers),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| anyhow::anyhow!("produce: {e}"))?;
        Ok(())
    }

    /// Produces many keyed messages with one producer and waits for every acknowledgement.
    pub async fn produce_many(&self, messages: &[(String, Vec<u8>)]) -> anyhow::Result<()> {
        use rdkafka::producer::{FutureProducer, FutureRecord};
        let producer: FutureProducer = couponrush_messaging::client_config(&self.settings.kafka)
            .set("linger.ms", "5")
            .create()?;
        let sends = messages.iter().map(|(key, payload)| {
            producer.send(
                FutureRecord::to(&self.settings.kafka.topic)
                    .key(key.as_str())
                    .payload(payload.as_slice()),
                Duration::from_secs(10),
            )
        });
        for result in futures::future::join_all(sends).await {
            result.map_err(|(e, _)| anyhow::anyhow!("produce: {e}"))?;
        }
        Ok(())
    }

    /// Reads `count` messages from the start of `topic`, within `deadline`.
    pub async fn read_topic(
        &self,
        topic: &str,
        count: usize,
        deadline: Duration,
    ) -> anyhow::Result<Vec<ReadMessage>> {
        use rdkafka::Message;
        use rdkafka::consumer::{Consumer, StreamConsumer};
        use rdkafka::message::Headers;
        let group = format!("reader-{}-{}", self.id, uuid::Uuid::now_v7().simple());
        let consumer: StreamConsumer =
            couponrush_messaging::consumer_config(&self.settings.kafka, &group).create()?;
        consumer.subscribe(&[topic])?;
        let mut read = Vec::new();
        let work = async {
            while read.len() < count {
                let message = consumer.recv().await?;
                let headers = message
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                let value =
                                    h.value.map(String::from_utf8_lossy).unwrap_or_default();
                                (h.key.to_owned(), value.into_owned())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                read.push(ReadMessage {
                    key: message.key().map(<[u8]>::to_vec),
                    payload: message.payload().map(<[u8]>::to_vec),
                    headers,
                });
            }
            Ok::<_, anyhow::Error>(())
        };
        tokio::time::timeout(deadline, work).await.map_err(|_| {
            anyhow::anyhow!("read {} of {count} messages from {topic}", read.len())
        })??;
        Ok(read)
    }
}
