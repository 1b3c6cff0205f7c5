use std::time::Duration;

use couponrush_config::KafkaSettings;
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedHeaders, Header, Headers, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::types::RDKafkaErrorCode;
use sha2::{Digest, Sha256};

use crate::error::MessagingError;
use crate::producer::ManagedProducer;
use crate::settings::acked_producer_config;

/// Header: why the message was dead-lettered (`undecodable`, `unknown-coupon`, `out-of-stock`,
/// `retries-exhausted`).
pub const DLQ_REASON_HEADER: &str = "dlq-reason";
/// Header: the error text.
pub const DLQ_ERROR_HEADER: &str = "dlq-error";
/// Header: how many times persisting was attempted.
pub const DLQ_ATTEMPTS_HEADER: &str = "dlq-attempts";
/// Header: `topic/partition@offset` of the original message.
pub const DLQ_SOURCE_HEADER: &str = "dlq-source";
/// Header of a truncated letter: the original payload's size in bytes.
pub const DLQ_ORIGINAL_SIZE_HEADER: &str = "dlq-original-size";
/// Header of a truncated letter: the SHA-256 of the original payload, in hex.
pub const DLQ_SHA256_HEADER: &str = "dlq-sha256";
/// How much of the payload a truncated letter keeps.
pub const TRUNCATED_PAYLOAD_BYTES: usize = 1024;

/// How a dead letter reached the topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// As it was.
    Whole,
    /// The broker refused it for good (too large, invalid record): its first bytes, size and
    /// hash went instead.
    Truncated,
    /// Even the truncated letter was refused for good (the original headers are the
    /// problem): nothing went; the error says why. Retrying could never succeed.
    Refused(String),
}

/// A message that cannot be issued, with why.
pub struct DeadLetter<'a> {
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
    pub headers: Option<&'a BorrowedHeaders>,
    pub source: &'a str,
    pub reason: &'static str,
    pub error: String,
    pub attempts: u32,
}

impl std::fmt::Debug for DeadLetter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetter")
            .field("source", &self.source)
            .field("reason", &self.reason)
            .field("error", &self.error)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// Sends dead letters to `kafka.dlq_topic`, waiting for the acknowledgement: the original
/// offset is committed only once its dead letter is safely on the broker. The producer is a
/// [`ManagedProducer`]: one that can no longer publish is replaced by [`Self::maintain`].
#[derive(Clone)]
pub struct DeadLetterPublisher {
    producer: ManagedProducer,
    topic: String,
    /// Bound on waiting for a delivery report, above librdkafka's `message.timeout.ms`.
    guard: Duration,
}

impl std::fmt::Debug for DeadLetterPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetterPublisher")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl DeadLetterPublisher {
    pub fn new(settings: &KafkaSettings) -> Result<Self, MessagingError> {
        Ok(Self {
            producer: ManagedProducer::new("dead-letter", acked_producer_config(settings))?,
            topic: settings.dlq_topic.clone(),
            guard: settings.publish_timeout() + Duration::from_secs(2),
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Replaces the producer if it can no longer publish (see [`ManagedProducer::maintain`]);
    /// call it after each broker check.
    pub fn maintain(&self, broker_answers: bool) {
        if let Err(error) = self.producer.maintain(broker_answers) {
            tracing::error!(%error, "cannot build a replacement dead-letter producer");
        }
    }

    /// Sends every letter at once (all queued, then every acknowledgement awaited): one result
    /// per letter, in order. Only errors a retry may cure are errors; see [`Delivered`].
    pub async fn deliver_all<'l, 'd: 'l>(
        &self,
        letters: impl IntoIterator<Item = &'l DeadLetter<'d>>,
    ) -> Vec<Result<Delivered, MessagingError>> {
        futures::future::join_all(letters.into_iter().map(|letter| self.deliver(letter))).await
    }

    /// Sends one letter, falling back to a truncated one if the broker refuses it for good.
    pub async fn deliver(&self, letter: &DeadLetter<'_>) -> Result<Delivered, MessagingError> {
        match self.send(letter).await {
            Ok(()) => return Ok(Delivered::Whole),
            Err(error) if is_refused_for_good(&error) => {
                tracing::warn!(%error, source = letter.source, "dead letter refused; sending it truncated");
            }
            Err(error) => return Err(error),
        }
        let payload = letter.payload.unwrap_or_default();
        let size = payload.len().to_string();
        let hash: String = Sha256::digest(payload)
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        let head = payload.get(..TRUNCATED_PAYLOAD_BYTES).unwrap_or(payload);
        let extra = [
            (DLQ_ORIGINAL_SIZE_HEADER, size.as_str()),
            (DLQ_SHA256_HEADER, hash.as_str()),
        ];
        match self.send_as(letter, Some(head), &extra).await {
            Ok(()) => Ok(Delivered::Truncated),
            Err(error) if is_refused_for_good(&error) => Ok(Delivered::Refused(error.to_string())),
            Err(error) => Err(error),
        }
    }

    /// Sends one dead letter: the original key, payload and headers, plus the `dlq-*` headers.
    pub async fn send(&self, letter: &DeadLetter<'_>) -> Result<(), MessagingError> {
        self.send_as(letter, letter.payload, &[]).await
    }

    async fn send_as(
        &self,
        letter: &DeadLetter<'_>,
        payload: Option<&[u8]>,
        extra: &[(&str, &str)],
    ) -> Result<(), MessagingError> {
        let mut headers = OwnedHeaders::new();
        if let Some(original) = letter.headers {
            for header in original.iter() {
                headers = headers.insert(header);
            }
        }
        let attempts = letter.attempts.to_string();
        let dlq = [
            (DLQ_REASON_HEADER, letter.reason),
            (DLQ_ERROR_HEADER, letter.error.as_str()),
            (DLQ_ATTEMPTS_HEADER, attempts.as_str()),
            (DLQ_SOURCE_HEADER, letter.source),
        ];
        for &(key, value) in dlq.iter().chain(extra) {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&self.topic).headers(headers);
        if let Some(key) = letter.key {
            record = record.key(key);
        }
        if let Some(payload) = payload {
            record = record.payload(payload);
        }
        // A letter sent twice (unconfirmed, then retried) is harmless: replaying it again
        // changes nothing the consumer has not already done.
        self.producer
            .deliver(record, self.guard)
            .await
            .map_err(|failure| MessagingError::PublishRejected(failure.into_error()))
    }
}

/// Whether the broker (or librdkafka, before sending) refuses this message whatever happens:
/// retrying it would block its partition for ever.
fn is_refused_for_good(error: &MessagingError) -> bool {
    let MessagingError::PublishRejected(KafkaError::MessageProduction(code)) = error else {
        return false;
    };
    matches!(
        code,
        RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::MessageBatchTooLarge
            | RDKafkaErrorCode::InvalidRecord
            | RDKafkaErrorCode::InvalidMessage
            | RDKafkaErrorCode::InvalidMessageSize
    )
}
