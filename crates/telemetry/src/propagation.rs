//! W3C trace context (`traceparent`, `tracestate`) in and out of carriers: HTTP headers (by
//! tracing-actix-web, through the global propagator set here) and Kafka message headers (the
//! messaging crate's carrier). A request's trace thus runs from the API's HTTP span, through
//! the publish, to the consumer's persist of that message.

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The header W3C trace context travels in; its presence is the cheap test for "traced".
pub const TRACEPARENT: &str = "traceparent";

/// Makes W3C trace context the process's propagator (tracing-actix-web reads the global one).
pub(crate) fn install_global() {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
}

/// Writes `span`'s context into `carrier`; nothing when the span is not traced (no
/// OpenTelemetry layer, or tracing off), so an untraced message carries no header.
pub fn inject(span: &tracing::Span, carrier: &mut dyn Injector) {
    let context = span.context();
    if context.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&context, carrier);
    }
}

/// Makes `span` a child of `of` in the trace, not in `tracing`'s tree: work that outlives a
/// request (a background retry) stays in the request's trace without holding its span open.
pub fn continue_trace(span: &tracing::Span, of: &tracing::Span) {
    // Refused only when tracing is off or `span` already started: nothing to continue then.
    let _ = span.set_parent(of.context());
}

/// Whether the trace `context` belongs to is being recorded (sampled by whoever started it).
pub fn sampled(context: &Context) -> bool {
    context.span().span_context().is_sampled()
}

/// Makes `span` a child of the remote `parent` (a message's publisher). Call before the span
/// is entered.
pub fn adopt(span: &tracing::Span, parent: Context) {
    let _ = span.set_parent(parent);
}

/// Links `span` to the span `to` names: work done for several traces at once (a batch).
pub fn link(span: &tracing::Span, to: &Context) {
    span.add_link(to.span().span_context().clone());
}

/// The remote context `carrier` holds, if it holds a valid one.
pub fn extract(carrier: &dyn Extractor) -> Option<Context> {
    carrier.get(TRACEPARENT)?;
    let context = TraceContextPropagator::new().extract(carrier);
    context.span().span_context().is_valid().then_some(context)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use opentelemetry::trace::TraceContextExt;

    use super::{TRACEPARENT, extract};

    #[test]
    fn a_valid_traceparent_is_read_and_a_broken_one_ignored() {
        let mut carrier = HashMap::new();
        assert!(extract(&carrier).is_none());
        carrier.insert(
            TRACEPARENT.to_owned(),
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned(),
        );
        let context = extract(&carrier).map(|c| c.span().span_context().clone());
        let context = context.filter(|c| c.is_remote() && c.is_sampled());
        assert_eq!(
            context.map(|c| c.trace_id().to_string()).as_deref(),
            Some("0af7651916cd43dd8448eb211c80319c")
        );
        carrier.insert(TRACEPARENT.to_owned(), "00-not-a-trace-01".to_owned());
        assert!(extract(&carrier).is_none());
    }
}
