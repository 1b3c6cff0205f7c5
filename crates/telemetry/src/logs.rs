//! Log lines: JSON in production (one object per line, for a log collector), readable text at
//! a terminal. With traces on, each JSON line carries the `trace_id` and `span_id` of the span
//! it was written in, so a log search leads to the trace and back.

use std::fmt;
use std::io::IsTerminal;
use std::sync::{Arc, OnceLock};

use couponrush_config::Settings;
use opentelemetry::trace::TraceContextExt;
use tracing::dispatcher::WeakDispatch;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Json, JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Layer};

/// What the log layer needs once installed.
pub struct Ready {
    dispatch: Option<Arc<OnceLock<WeakDispatch>>>,
}

impl Ready {
    /// Call once the subscriber is the global default: the trace ids are read through it.
    pub fn ready(self) {
        if let Some(cell) = self.dispatch {
            tracing::dispatcher::get_default(|dispatch| {
                // The cell is new and set only here: a second set cannot happen.
                let _ = cell.set(dispatch.downgrade());
            });
        }
    }
}

/// `RUST_LOG` wins over `log.filter`; with `trace_ids`, JSON lines carry the span's ids.
pub fn layer<S>(settings: &Settings, trace_ids: bool) -> (Box<dyn Layer<S> + Send + Sync>, Ready)
where
    S: Subscriber + for<'span> LookupSpan<'span> + Send + Sync,
{
    let filter = filter(settings);
    let base = tracing_subscriber::fmt::layer()
        .with_ansi(colour())
        .with_writer(std::io::stderr);
    if !settings.json_logs() {
        return (base.with_filter(filter).boxed(), Ready { dispatch: None });
    }
    let json = base.json().flatten_event(true).with_current_span(true);
    if !trace_ids {
        return (json.with_filter(filter).boxed(), Ready { dispatch: None });
    }
    let cell = Arc::new(OnceLock::new());
    let format = WithTraceIds {
        inner: tracing_subscriber::fmt::format()
            .json()
            .flatten_event(true)
            .with_current_span(true),
        dispatch: cell.clone(),
    };
    (
        json.event_format(format).with_filter(filter).boxed(),
        Ready {
            dispatch: Some(cell),
        },
    )
}

/// The JSON format with `"trace_id"` and `"span_id"` first on each line written inside a span
/// that has a valid OpenTelemetry context.
struct WithTraceIds {
    inner: Format<Json>,
    /// The subscriber, to ask the OpenTelemetry layer for a span's context. Weak: the
    /// subscriber owns this format.
    dispatch: Arc<OnceLock<WeakDispatch>>,
}

impl WithTraceIds {
    fn ids<S>(&self, ctx: &FmtContext<'_, S, JsonFields>) -> Option<(String, String)>
    where
        S: Subscriber + for<'span> LookupSpan<'span>,
    {
        // The subscriber's current span, not the log filter's: logs at warn still name the
        // trace of the (info) span they were written in.
        let current = ctx.current_span();
        let id = current.id()?;
        let dispatch = self.dispatch.get()?.upgrade()?;
        let context = tracing_opentelemetry::get_otel_context(id, &dispatch)?;
        let otel = context.span();
        let span_context = otel.span_context();
        span_context.is_valid().then(|| {
            (
                span_context.trace_id().to_string(),
                span_context.span_id().to_string(),
            )
        })
    }
}

impl<S> FormatEvent<S, JsonFields> for WithTraceIds
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let Some((trace_id, span_id)) = self.ids(ctx) else {
            return self.inner.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        match line.strip_prefix('{') {
            // Both ids are lowercase hex: nothing to escape.
            Some(rest) => write!(
                writer,
                "{{\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\",{rest}"
            ),
            None => writer.write_str(&line),
        }
    }
}

/// `RUST_LOG`, else `log.filter`, else `info`.
fn filter(settings: &Settings) -> EnvFilter {
    std::env::var("RUST_LOG")
        .ok()
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .or_else(|| EnvFilter::try_new(&settings.log.filter).ok())
        .unwrap_or_else(|| EnvFilter::new("info"))
}

/// Colour only for a person at a terminal: escape codes in a file or a log collector are noise.
/// `NO_COLOR` (<https://no-color.org>) turns it off at a terminal too.
fn colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
