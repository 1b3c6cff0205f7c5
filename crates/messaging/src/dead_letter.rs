use std::time::Duration;

use couponrush_config::KafkaSettings;
use rdkafka::message::{BorrowedHeaders, Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

use crate::error::MessagingError;
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
/// offset is committed only once its dead letter is safely on the broker.
#[derive(Clone)]
pub struct DeadLetterPublisher {
    producer: FutureProducer,
    topic: String,
    timeout: Duration,
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
        let producer = acked_producer_config(settings).create()?;
        Ok(Self {
            producer,
            topic: settings.dlq_topic.clone(),
            timeout: settings.publish_timeout(),
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Sends one dead letter: the original key, payload and headers, plus the `dlq-*` headers.
    pub async fn send(&self, letter: &DeadLetter<'_>) -> Result<(), MessagingError> {
        let mut headers = OwnedHeaders::new();
        if let Some(original) = letter.headers {
            for header in original.iter() {
                headers = headers.insert(header);
            }
        }
        let attempts = letter.attempts.to_string();
        for (key, value) in [
            (DLQ_REASON_HEADER, letter.reason),
            (DLQ_ERROR_HEADER, letter.error.as_str()),
            (DLQ_ATTEMPTS_HEADER, attempts.as_str()),
            (DLQ_SOURCE_HEADER, letter.source),
        ] {
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
        if let Some(payload) = letter.payload {
            record = record.payload(payload);
        }
        let send = self.producer.send(record, Timeout::After(self.timeout));
        match tokio::time::timeout(self.timeout + Duration::from_millis(500), send).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((error, _))) => Err(MessagingError::PublishRejected(error)),
            Err(_) => Err(MessagingError::PublishTimeout {
                timeout_ms: self.timeout.as_millis(),
            }),
        }
    }
}
