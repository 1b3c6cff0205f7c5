//! W3C trace context in Kafka message headers, so the consumer's work on a message continues
//! the trace of the request that published it. Dead letters and replays copy every original
//! header, this one included: a replayed request stays in its trace.

use couponrush_telemetry::propagation;
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector};
use rdkafka::message::{BorrowedHeaders, Header, Headers, OwnedHeaders};

/// `headers` plus the current span's trace context, when the span is traced.
pub fn with_current_trace(headers: OwnedHeaders) -> OwnedHeaders {
    let mut carrier = Outgoing(Some(headers));
    propagation::inject(&tracing::Span::current(), &mut carrier);
    carrier.0.unwrap_or_default()
}

/// The trace context a consumed message carries, if any.
pub fn trace_parent(headers: Option<&BorrowedHeaders>) -> Option<Context> {
    propagation::extract(&Incoming(headers?))
}

struct Outgoing(Option<OwnedHeaders>);

impl Injector for Outgoing {
    fn set(&mut self, key: &str, value: String) {
        // `insert` takes the headers by value; the Option lets it move out and back.
        if let Some(headers) = self.0.take() {
            self.0 = Some(headers.insert(Header {
                key,
                value: Some(value.as_bytes()),
            }));
        }
    }
}

struct Incoming<'h>(&'h BorrowedHeaders);

impl Extractor for Incoming<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|header| header.key.eq_ignore_ascii_case(key))
            .and_then(|header| std::str::from_utf8(header.value?).ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|header| header.key).collect()
    }
}
