//! Dead-lettering a batch's rejected messages, so a message that can never be issued never
//! holds its partition: all sent at once, those not acknowledged retried until they are.

use couponrush_messaging::{DeadLetter, DeadLetterPublisher, Delivered};
use rdkafka::Message;
use rdkafka::message::BorrowedMessage;

use crate::batch::Rejected;
use crate::retry::{RETRY_BACKOFF, RetryWait};

/// Sends the rejected messages of `batch` to the dead-letter topic and retries those the broker
/// did not acknowledge until it does. A letter the broker refuses for good goes truncated, or
/// not at all (logged), rather than blocking the partition for ever. `false` when shutdown
/// came first (nothing committed).
pub async fn publish(
    publisher: &DeadLetterPublisher,
    batch: &[BorrowedMessage<'_>],
    rejected: &[Rejected],
    retry: &mut impl RetryWait,
) -> bool {
    let found: Vec<(&BorrowedMessage<'_>, &Rejected)> = rejected
        .iter()
        .filter_map(|r| Some((batch.get(r.index)?, r)))
        .collect();
    let sources: Vec<String> = found
        .iter()
        .map(|(m, _)| format!("{}/{}@{}", m.topic(), m.partition(), m.offset()))
        .collect();
    let letters: Vec<DeadLetter<'_>> = found
        .iter()
        .zip(&sources)
        .map(|((message, rejection), source)| DeadLetter {
            key: message.key(),
            payload: message.payload(),
            headers: message.headers(),
            source,
            reason: rejection.reason,
            error: rejection.error.clone(),
            attempts: rejection.attempts,
        })
        .collect();
    let mut pending: Vec<&DeadLetter<'_>> = letters.iter().collect();
    let mut backoff = RETRY_BACKOFF;
    loop {
        let results = publisher.deliver_all(pending.iter().copied()).await;
        let mut failed = Vec::new();
        for (letter, result) in pending.into_iter().zip(results) {
            let (source, reason) = (letter.source, letter.reason);
            match result {
                Ok(Delivered::Whole) => tracing::warn!(source, reason, "message dead-lettered"),
                Ok(Delivered::Truncated) => {
                    tracing::warn!(
                        source,
                        reason,
                        "message dead-lettered truncated (too large)"
                    );
                }
                Ok(Delivered::Refused(error)) => tracing::error!(
                    source,
                    reason,
                    error,
                    "dead letter refused by the broker even truncated; moving on without it"
                ),
                Err(error) => {
                    tracing::error!(%error, source, "dead letter not acknowledged; retrying");
                    failed.push(letter);
                }
            }
        }
        if failed.is_empty() {
            return true;
        }
        if !retry.wait(backoff.next_wait()).await {
            return false;
        }
        pending = failed;
    }
}
