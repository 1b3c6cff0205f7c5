use std::time::Duration;

use couponrush_config::KafkaSettings;
use couponrush_domain::{IssueRequested, ParticipationRecorded};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

use crate::SCHEMA_VERSION_HEADER;
use crate::error::MessagingError;
use crate::settings::acked_producer_config;

/// Publishes issue requests and waits for the broker's acknowledgement.
///
/// Idempotent producer with `acks=all`: a retried send is never duplicated in the log, and an
/// acknowledged message is on every in-sync replica before the user hears `QUEUED`.
#[derive(Clone)]
pub struct IssuePublisher {
    producer: FutureProducer,
    /// Participation records: nobody waits for them, so they batch longer, on their own
    /// producer, without slowing the acknowledged path.
    background: FutureProducer,
    topic: String,
    timeout: Duration,
}

impl std::fmt::Debug for IssuePublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuePublisher")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl IssuePublisher {
    pub fn new(settings: &KafkaSettings) -> Result<Self, MessagingError> {
        let producer = acked_producer_config(settings)
            .set("linger.ms", settings.linger_ms.to_string())
            .create()?;
        let background = acked_producer_config(settings)
            .set("linger.ms", settings.participation_linger_ms.to_string())
            .create()?;
        Ok(Self {
            producer,
            background,
            topic: settings.topic.clone(),
            timeout: settings.publish_timeout(),
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Queues a participation record without waiting for the broker: the answer to the user
    /// never waits on it. The returned future resolves with the delivery result; spawn it to
    /// count failures, or drop it (the message is still sent).
    pub fn send_participation(
        &self,
        record: &ParticipationRecorded,
    ) -> Result<impl Future<Output = Result<(), MessagingError>> + Send + 'static, MessagingError>
    {
        let payload = record.encode();
        let message = FutureRecord::to(&self.topic)
            .key(record.user_id.as_str())
            .payload(&payload)
            .headers(schema_headers());
        let delivery = self
            .background
            .send_result(message)
            .map_err(|(error, _)| MessagingError::PublishRejected(error))?;
        Ok(async move {
            match delivery.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err((error, _))) => Err(MessagingError::PublishRejected(error)),
                Err(_canceled) => Err(MessagingError::PublishRejected(
                    rdkafka::error::KafkaError::Canceled,
                )),
            }
        })
    }

    /// Whether the broker answers this producer's metadata request for its topic within
    /// `timeout` (readiness). Uses the producer's own connection, the one that matters.
    pub async fn check(&self, timeout: Duration) -> Result<(), MessagingError> {
        let producer = self.producer.clone();
        let topic = self.topic.clone();
        tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(Some(&topic), timeout)
                .map(drop)
        })
        .await
        .map_err(|e| MessagingError::Unreachable {
            address: String::new(),
            timeout_ms: timeout.as_millis(),
            reason: e.to_string(),
        })?
        .map_err(MessagingError::Client)
    }

    /// Waits for queued messages before the process exits.
    pub fn flush(&self, timeout: Duration) {
        for producer in [&self.producer, &self.background] {
            if let Err(error) = producer.flush(Timeout::After(timeout)) {
                tracing::error!(%error, "messages still unacknowledged at shutdown");
            }
        }
    }

    /// Sends `event` keyed by user id and returns once the broker acknowledged it.
    pub async fn publish(&self, event: &IssueRequested) -> Result<(), MessagingError> {
        let payload = event.encode();
        let record = FutureRecord::to(&self.topic)
            .key(event.user_id.as_str())
            .payload(&payload)
            .headers(schema_headers());
        let send = self.producer.send(record, Timeout::After(self.timeout));
        // Belt and braces over message.timeout.ms: the answer to the user is bounded here.
        match tokio::time::timeout(self.timeout + Duration::from_millis(500), send).await {
            Ok(Ok(_delivery)) => Ok(()),
            Ok(Err((error, _message))) => Err(MessagingError::PublishRejected(error)),
            Err(_) => Err(MessagingError::PublishTimeout {
                timeout_ms: self.timeout.as_millis(),
            }),
        }
    }
}

/// Headers of every message we publish: the payload's schema version, readable without
/// decoding the payload.
fn schema_headers() -> OwnedHeaders {
    let version = IssueRequested::SCHEMA_VERSION.to_string();
    OwnedHeaders::new().insert(Header {
        key: SCHEMA_VERSION_HEADER,
        value: Some(version.as_str()),
    })
}
