//! The consumer's part of each request's trace. A batch gets a `consumer.batch` span (the
//! MySQL transaction, retries and dead letters run in it) linked to every traced message it
//! holds; each message that arrived with a sampled trace context gets a `coupon.persist` span,
//! a child of the API's publish span, open from the batch's start to its commit, recording
//! what became of that message. An untraced message costs a header lookup.

use couponrush_messaging::trace_parent;
use couponrush_telemetry::propagation;
use rdkafka::Message;
use rdkafka::message::BorrowedMessage;
use tracing::Span;
use tracing::field::Empty;

use crate::batch::BatchResult;

#[derive(Debug)]
pub struct BatchSpans {
    pub batch: Span,
    /// One per message of the batch, in order; `None` for an untraced one.
    messages: Vec<Option<Span>>,
}

impl BatchSpans {
    pub fn open(batch: &[BorrowedMessage<'_>]) -> Self {
        let batch_span = tracing::info_span!(
            "consumer.batch",
            otel.kind = "consumer",
            messaging.system = "kafka",
            messaging.operation = "process",
            messaging.batch.message_count = batch.len(),
        );
        let messages = batch
            .iter()
            .map(|message| {
                let parent = trace_parent(message.headers())?;
                if !propagation::sampled(&parent) {
                    return None;
                }
                propagation::link(&batch_span, &parent);
                let span = tracing::info_span!(
                    parent: None,
                    "coupon.persist",
                    otel.kind = "consumer",
                    messaging.system = "kafka",
                    messaging.destination.name = message.topic(),
                    messaging.kafka.partition = message.partition(),
                    messaging.kafka.offset = message.offset(),
                    outcome = Empty,
                );
                propagation::adopt(&span, parent);
                Some(span)
            })
            .collect();
        Self {
            batch: batch_span,
            messages,
        }
    }

    /// Records each traced message's outcome and ends its span (the batch's commit).
    pub fn finish(self, result: Option<&BatchResult>) {
        let Some(result) = result else {
            // Shutdown came first: nothing committed, the batch is delivered again.
            for span in self.messages.iter().flatten() {
                span.record("outcome", "redelivered");
            }
            return;
        };
        for span in self.messages.iter().flatten() {
            span.record("outcome", "persisted");
        }
        for rejected in &result.rejected {
            if let Some(Some(span)) = self.messages.get(rejected.index) {
                span.record("outcome", rejected.reason);
            }
        }
    }
}
