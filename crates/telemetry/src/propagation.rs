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

/// `make()`'s span, unless the current trace is known not to be recorded (traced, unsampled):
/// then none. A span costs on every poll of what it instruments; at a 1 % sample ratio most
/// requests would pay that for spans nobody keeps. Without tracing the span is made (logs).
pub fn unless_unsampled(make: impl FnOnce() -> tracing::Span) -> tracing::Span {
    let current = tracing::Span::current().context();
    let trace = current.span();
    let context = trace.span_context();
    if context.is_valid() && !context.is_sampled() {
        return tracing::Span::none();
    }
    make()
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

    use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_subscriber::layer::SubscriberExt;

    use super::{TRACEPARENT, adopt, extract, unless_unsampled};

    /// Whether a child span is made under a request whose caller sent `flags`.
    fn child_made(flags: &str) -> bool {
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let carrier = HashMap::from([(
                TRACEPARENT.to_owned(),
                format!("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-{flags}"),
            )]);
            let request = tracing::info_span!("request");
            if let Some(parent) = extract(&carrier) {
                adopt(&request, parent);
            }
            let _entered = request.enter();
            !unless_unsampled(|| tracing::info_span!("child")).is_none()
        })
    }

    #[test]
    fn spans_are_skipped_only_in_a_trace_nobody_records() {
        assert!(child_made("01"), "a sampled trace gets its spans");
        assert!(!child_made("00"), "an unsampled trace pays for none");
        // Logs only, no OpenTelemetry layer: the span is made, for the logs' context.
        let logs_only = tracing_subscriber::registry()
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink));
        let made = tracing::subscriber::with_default(logs_only, || {
            !unless_unsampled(|| tracing::info_span!("child")).is_none()
        });
        assert!(made);
    }

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
