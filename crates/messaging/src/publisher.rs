use std::time::Duration;

use couponrush_config::{KafkaSettings, MessageSigningSettings};
use couponrush_domain::{IssueRequested, ParticipationRecorded};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::types::RDKafkaErrorCode;

use crate::error::MessagingError;
use crate::producer::{DeliveryFailure, ManagedProducer};
use crate::settings::acked_producer_config;
use crate::signing::MessageSigner;
use crate::trace_context::with_current_trace;

/// Header carrying the payload's schema version, readable without decoding the payload.
pub const SCHEMA_VERSION_HEADER: &str = "schema-version";

/// How long past `message.timeout.ms` a caller waits for the delivery report before calling
/// the outcome uncertain: librdkafka scans for timed-out messages about once a second.
const REPORT_GRACE: Duration = Duration::from_secs(2);

/// Publishes issue requests and waits for the broker's acknowledgement.
///
/// Idempotent producer with `acks=all`: a retried send is never duplicated in the log, and an
/// acknowledged message is on every in-sync replica before the user hears `QUEUED`. Both
/// producers are [`ManagedProducer`]s: one that can no longer publish is replaced.
#[derive(Clone)]
pub struct IssuePublisher {
    producer: ManagedProducer,
    /// Participation records: nobody waits for them, so they batch longer, on their own
    /// producer, without slowing the acknowledged path.
    background: ManagedProducer,
    topic: std::sync::Arc<str>,
    guard: Duration,
    /// Signs every message with the current key (`message_signing`), so the consumer can tell
    /// it from one written by anyone else who can reach the topic.
    signer: MessageSigner,
}

impl std::fmt::Debug for IssuePublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuePublisher")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl IssuePublisher {
    pub fn new(
        settings: &KafkaSettings,
        signing: &MessageSigningSettings,
    ) -> Result<Self, MessagingError> {
        let mut issue = acked_producer_config(settings);
        issue.set("linger.ms", settings.linger_ms.to_string());
        let mut background = acked_producer_config(settings);
        background.set("linger.ms", settings.participation_linger_ms.to_string());
        Ok(Self {
            producer: ManagedProducer::new("issue", issue)?,
            background: ManagedProducer::new("participation", background)?,
            topic: settings.topic.as_str().into(),
            guard: settings.publish_timeout() + REPORT_GRACE,
            signer: MessageSigner::new(signing),
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The longest [`Self::publish`] waits: `kafka.publish_timeout_ms` plus the report grace.
    pub fn longest_wait(&self) -> Duration {
        self.guard
    }

    /// Sends `event` keyed by user id and returns once the broker acknowledged it, or with
    /// the delivery report's verdict: [`DeliveryFailure::NotSent`] only when the message is
    /// certainly not in the topic.
    /// The current span's trace context goes along in the headers (see `trace_context`).
    pub async fn publish(&self, event: &IssueRequested) -> Result<(), DeliveryFailure> {
        let payload = event.encode();
        let key = event.user_id.as_str();
        let headers = self.signed_headers(with_current_trace(schema_headers()), key, &payload);
        let record = FutureRecord::to(&self.topic)
            .key(key)
            .payload(&payload)
            .headers(headers);
        self.producer.deliver(record, self.guard).await
    }

    /// Sends a participation record and waits for its delivery; nobody answers a user on it,
    /// so callers spawn it and retry on failure (the record's request id makes a duplicate
    /// harmless).
    pub async fn send_participation(
        &self,
        record: &ParticipationRecorded,
    ) -> Result<(), DeliveryFailure> {
        // While the issue producer knows it cannot publish (the topic gone in an empty broker
        // restart, failures without a success), the record waits: tansu acknowledges writes to
        // a topic its metadata no longer lists, and such a record would be lost to the log.
        if self.producer.can_publish().is_err() {
            return Err(DeliveryFailure::NotSent(KafkaError::MessageProduction(
                RDKafkaErrorCode::UnknownTopicOrPartition,
            )));
        }
        let payload = record.encode();
        let key = record.user_id.as_str();
        let message = FutureRecord::to(&self.topic)
            .key(key)
            .payload(&payload)
            .headers(self.signed_headers(schema_headers(), key, &payload));
        self.background.deliver(message, self.guard).await
    }

    /// `headers` plus the message's signature (key and payload exactly as sent).
    fn signed_headers(&self, headers: OwnedHeaders, key: &str, payload: &[u8]) -> OwnedHeaders {
        self.signer
            .sign(headers, &self.topic, Some(key.as_bytes()), payload)
    }

    /// Whether issue requests can be published now: the last deliveries went through, no
    /// fatal error, a broker connected. `Err` says why not.
    pub fn can_publish(&self) -> Result<(), String> {
        self.producer.can_publish()
    }

    /// Whether the broker answers this producer's metadata request for its topic within
    /// `timeout` (readiness). Uses the producer's own connection, the one that matters.
    pub async fn check(&self, timeout: Duration) -> Result<(), MessagingError> {
        self.producer.check(&self.topic, timeout).await
    }

    /// Replaces either producer if it can no longer publish (see [`ManagedProducer::maintain`]).
    pub fn maintain(&self, broker_answers: bool) {
        for producer in [&self.producer, &self.background] {
            if let Err(error) = producer.maintain(broker_answers) {
                tracing::error!(producer = producer.name(), %error, "cannot build a replacement producer");
            }
        }
    }

    /// Producer replacements since start, per producer name.
    pub fn rebuilds(&self) -> [(&'static str, u64); 2] {
        [&self.producer, &self.background].map(|p| (p.name(), p.rebuilds()))
    }

    /// Waits for queued messages before the process exits.
    pub fn flush(&self, timeout: Duration) {
        self.producer.flush(timeout);
        self.background.flush(timeout);
    }
}

/// Headers of every message we publish: the payload's schema version, readable without
/// decoding the payload. Public so that whatever else writes issue requests (the benchmark's
/// preloader) sends exactly what issuer-api sends.
pub fn schema_headers() -> OwnedHeaders {
    let version = IssueRequested::SCHEMA_VERSION.to_string();
    OwnedHeaders::new().insert(Header {
        key: SCHEMA_VERSION_HEADER,
        value: Some(version.as_str()),
    })
}
