//! Reading batches from the group: one message waited for, then whatever else arrives within
//! `consumer.batch_wait_ms`, up to `consumer.batch_size`. Each message is checked and decoded
//! as it is taken, so the messages read ahead during a transaction (`Hold::meanwhile`) arrive
//! at the next batch ready to persist.

use std::time::Duration;

use couponrush_domain::{EventDecodeError, IssueRequested, TopicMessage};
use couponrush_messaging::{MessageSigner, SCHEMA_VERSION_HEADER, noise};
use rdkafka::Message;
use rdkafka::error::KafkaResult;
use rdkafka::message::{BorrowedMessage, Headers};

use crate::context::GroupConsumer;

/// Why a message can never be issued: its dead-letter reason and error.
pub type Unreadable = (&'static str, String);

/// What a message carries, decoded when it was taken.
pub type Decoded = Result<TopicMessage, Unreadable>;

/// Messages in the order they were read, each with what it decoded to.
#[derive(Default)]
pub struct Batch<'c> {
    pub messages: Vec<BorrowedMessage<'c>>,
    pub decoded: Vec<Decoded>,
}

impl Batch<'_> {
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }
}

/// How the consumer takes messages from the group.
pub struct Intake<'c> {
    consumer: &'c GroupConsumer,
    signer: &'c MessageSigner,
    /// `consumer.batch_size`: a batch, or the messages read ahead of one, hold at most this.
    size: usize,
    wait: Duration,
    /// The schema version this build reads, as the `schema-version` header spells it.
    readable: String,
}

impl<'c> Intake<'c> {
    pub fn new(
        consumer: &'c GroupConsumer,
        signer: &'c MessageSigner,
        size: usize,
        wait: Duration,
    ) -> Self {
        Self {
            consumer,
            signer,
            size,
            wait,
            readable: IssueRequested::SCHEMA_VERSION.to_string(),
        }
    }

    pub fn consumer(&self) -> &'c GroupConsumer {
        self.consumer
    }

    /// Whether `carry` may take another message read ahead of its batch.
    pub fn has_room(&self, carry: &Batch<'_>) -> bool {
        carry.len() < self.size
    }

    /// The next batch: the messages carried over (read ahead, or during a retry's hold) first,
    /// topped up with whatever arrives within the batch wait, up to the batch size. With
    /// nothing carried, one message is waited for first. `None` when shutdown was requested
    /// while waiting.
    pub async fn next_batch(
        &self,
        carry: &mut Batch<'c>,
        shutdown: &mut (impl Future<Output = ()> + Unpin),
    ) -> Option<Batch<'c>> {
        let mut batch = std::mem::take(carry);
        if batch.is_empty() {
            let first = tokio::select! {
                () = shutdown => return None,
                polled = self.consumer.recv() => polled,
            };
            if !self.take(&mut batch, first) {
                return Some(batch);
            }
        }
        let deadline = tokio::time::Instant::now() + self.wait;
        while batch.len() < self.size {
            match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Ok(polled) => {
                    if !self.take(&mut batch, polled) {
                        break;
                    }
                }
                Err(_elapsed) => break,
            }
        }
        Some(batch)
    }

    /// Appends a polled message to `batch`, checked and decoded. A consumer error is logged
    /// and answered `false`.
    pub fn take(&self, batch: &mut Batch<'c>, polled: KafkaResult<BorrowedMessage<'c>>) -> bool {
        match polled {
            Ok(message) => {
                batch.decoded.push(self.decode(&message));
                batch.messages.push(message);
                true
            }
            Err(error) => {
                noise::consumer_error(&error);
                false
            }
        }
    }

    /// Decodes a message that issuer-api signed and whose declared schema (header, then
    /// payload) this build reads. The signature comes first: nothing of a message from anyone
    /// else is read.
    fn decode(&self, message: &BorrowedMessage<'_>) -> Decoded {
        let payload = message.payload();
        self.signer
            .verify_message(
                message.headers(),
                message.topic(),
                message.key(),
                payload.unwrap_or_default(),
            )
            .map_err(|rejection| (rejection.reason(), rejection.to_string()))?;
        let declared = message.headers().and_then(|headers| {
            headers
                .iter()
                .find(|h| h.key == SCHEMA_VERSION_HEADER)
                .and_then(|h| h.value)
        });
        if let Some(declared) = declared.filter(|v| *v != self.readable.as_bytes()) {
            let error = format!(
                "schema-version header {:?}; this build reads version {}",
                String::from_utf8_lossy(declared),
                IssueRequested::SCHEMA_VERSION
            );
            return Err(("unsupported-schema", error));
        }
        let payload = payload.ok_or(("undecodable", "message without payload".to_owned()))?;
        TopicMessage::decode(payload).map_err(|error| {
            let reason = match error {
                EventDecodeError::UnsupportedVersion(_) => "unsupported-schema",
                _ => "undecodable",
            };
            (reason, error.to_string())
        })
    }
}
