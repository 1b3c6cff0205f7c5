//! Reading batches from the group: one message waited for, then whatever else arrives within
//! `consumer.batch_wait_ms`, up to `consumer.batch_size`.

use std::time::Duration;

use couponrush_messaging::{MessageSigner, SCHEMA_VERSION_HEADER, noise};
use rdkafka::Message;
use rdkafka::message::{BorrowedMessage, Headers};

use crate::batch::Incoming;
use crate::context::GroupConsumer;

/// Waits for one message, then takes whatever else arrives within `wait`, up to `size`.
/// Messages carried over from a retry's hold come first, as a batch of their own.
/// `None` when shutdown was requested while waiting.
pub async fn next_batch<'c>(
    consumer: &'c GroupConsumer,
    size: usize,
    wait: Duration,
    carry: &mut Vec<BorrowedMessage<'c>>,
    shutdown: &mut (impl Future<Output = ()> + Unpin),
) -> Option<Vec<BorrowedMessage<'c>>> {
    if !carry.is_empty() {
        return Some(std::mem::take(carry));
    }
    let first = tokio::select! {
        () = shutdown => return None,
        message = consumer.recv() => message,
    };
    let mut batch = Vec::with_capacity(size);
    match first {
        Ok(message) => batch.push(message),
        Err(error) => {
            noise::consumer_error(&error);
            return Some(batch);
        }
    }
    let deadline = tokio::time::Instant::now() + wait;
    while batch.len() < size {
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Ok(Ok(message)) => batch.push(message),
            Ok(Err(error)) => {
                noise::consumer_error(&error);
                break;
            }
            Err(_elapsed) => break,
        }
    }
    Some(batch)
}

/// What persisting needs of a message: its payload, declared schema version, and whether its
/// signature verifies (checked here, before anything reads the payload).
pub fn incoming<'m>(message: &'m BorrowedMessage<'_>, signer: &MessageSigner) -> Incoming<'m> {
    let schema_version = message.headers().and_then(|headers| {
        headers
            .iter()
            .find(|h| h.key == SCHEMA_VERSION_HEADER)
            .and_then(|h| h.value)
    });
    let signature = signer.verify_message(
        message.headers(),
        message.topic(),
        message.key(),
        message.payload().unwrap_or_default(),
    );
    Incoming {
        payload: message.payload(),
        schema_version,
        signature,
    }
}
