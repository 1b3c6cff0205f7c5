//! The tracer provider: OTLP/HTTP export, the service's resource, a parent-based ratio sampler;
//! and the `tracing` layer that turns spans into OpenTelemetry spans.

use couponrush_config::Settings;
use opentelemetry::KeyValue;
use opentelemetry::trace::{Link, SpanKind, TraceContextExt, TraceId, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{
    Sampler, SamplingDecision, SamplingResult, SdkTracerProvider, ShouldSample,
    TracerProviderBuilder,
};
use tracing::Subscriber;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Layer};

/// The standard variables (OpenTelemetry's exporter specification), used when
/// `telemetry.otlp_endpoint` is empty.
const STANDARD_ENDPOINTS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

/// The exporter's own crates: their events stay out of the spans.
const EXPORT_INTERNALS: [&str; 7] = [
    "opentelemetry=off",
    "opentelemetry_sdk=off",
    "opentelemetry_otlp=off",
    "reqwest=off",
    "hyper=off",
    "hyper_util=off",
    "h2=off",
];

/// OTLP/HTTP's path for traces, appended to a base address.
const TRACES_PATH: &str = "/v1/traces";

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot build the OTLP trace exporter for {endpoint}")]
    Exporter {
        endpoint: String,
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
}

/// The provider for `settings`, or `None` when no collector is configured: then no exporter
/// thread runs and `tracing` spans stay local (logs only).
pub fn from_settings(
    settings: &Settings,
    service: &'static str,
) -> Result<Option<SdkTracerProvider>, TelemetryError> {
    let configured = settings.telemetry.otlp_endpoint();
    let standard = STANDARD_ENDPOINTS
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()));
    let Some(shown) = configured.map(str::to_owned).or(standard) else {
        return Ok(None);
    };
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_timeout(settings.telemetry.export_timeout());
    // Ours is a base address like the standard OTEL_EXPORTER_OTLP_ENDPOINT; the standard
    // variables the exporter reads itself, with their own rules (the TRACES one is used as is).
    if let Some(base) = configured {
        exporter = exporter.with_endpoint(traces_url(base));
    }
    let exporter = exporter
        .build()
        .map_err(|source| TelemetryError::Exporter {
            endpoint: shown,
            source,
        })?;
    Ok(Some(
        tracer_provider_builder(settings, service)
            .with_batch_exporter(exporter)
            .build(),
    ))
}

/// A provider builder with this service's resource and the configured sampler, and no
/// exporter: [`from_settings`] adds OTLP, a test adds an in-memory one.
pub fn tracer_provider_builder(
    settings: &Settings,
    service: &'static str,
) -> TracerProviderBuilder {
    let instance = Some(settings.telemetry.instance.trim().to_owned())
        .filter(|i| !i.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let resource = Resource::builder()
        .with_service_name(service)
        .with_attributes([
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            KeyValue::new("service.instance.id", instance),
        ])
        .build();
    // Parent-based: the caller's decision (a sampled `traceparent`, or the API's decision for
    // the consumer) is kept, so a trace is never cut in half; the ratio decides only for new
    // traces.
    let sampler = KeepLinked(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
        settings.telemetry.sample_ratio,
    ))));
    SdkTracerProvider::builder()
        .with_resource(resource)
        .with_sampler(sampler)
}

/// The `tracing` layer that records spans into `provider`. The exporter's own HTTP client and
/// the SDK log through `tracing` too: their events are kept out of the spans, or every export
/// would trace itself.
pub fn layer<S>(
    settings: &Settings,
    provider: &SdkTracerProvider,
    service: &'static str,
) -> impl Layer<S> + use<S>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    // `telemetry.filter`, not the logs' filter: production logs at warn still trace requests.
    let directives = std::iter::once(settings.telemetry.filter.as_str())
        .chain(EXPORT_INTERNALS)
        .collect::<Vec<_>>()
        .join(",");
    let own = EnvFilter::new(directives);
    // What the layer does on every span by default and is not needed here, each a cost on
    // every request (measured by `cargo xtask bench api`'s traced phase): thread names and
    // code locations as attributes (span names say where), busy/idle time on every poll, and
    // making the span's context the thread's current one on every enter (nothing here reads
    // OpenTelemetry's current context: propagation reads the span's own).
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(service))
        .with_threads(false)
        .with_location(false)
        .with_tracked_inactivity(false)
        .with_context_activation(false)
        .with_filter(own)
}

/// Also keeps a new trace that links to a kept one: the consumer's batch span, linked to the
/// messages it holds, is recorded whenever one of those requests is (else the links of a
/// sampled request would point at a batch nobody kept).
#[derive(Debug, Clone)]
struct KeepLinked(Sampler);

impl ShouldSample for KeepLinked {
    fn should_sample(
        &self,
        parent_context: Option<&opentelemetry::Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        let result =
            self.0
                .should_sample(parent_context, trace_id, name, span_kind, attributes, links);
        let has_parent = parent_context.is_some_and(|c| c.span().span_context().is_valid());
        if result.decision == SamplingDecision::Drop
            && !has_parent
            && links.iter().any(|link| link.span_context.is_sampled())
        {
            return SamplingResult {
                decision: SamplingDecision::RecordAndSample,
                attributes: Vec::new(),
                trace_state: result.trace_state,
            };
        }
        result
    }
}

fn traces_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with(TRACES_PATH) {
        base.to_owned()
    } else {
        format!("{base}{TRACES_PATH}")
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{
        Link, SpanContext, SpanId, SpanKind, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    use opentelemetry_sdk::trace::{Sampler, SamplingDecision, ShouldSample};

    use super::{KeepLinked, traces_url};

    fn remote(sampled: bool) -> SpanContext {
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        SpanContext::new(
            TraceId::from(7),
            SpanId::from(9),
            flags,
            true,
            TraceState::default(),
        )
    }

    fn decide(parent: Option<SpanContext>, links: &[Link]) -> SamplingDecision {
        // Ratio 0: nothing new is kept on its own.
        let sampler = KeepLinked(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            0.0,
        ))));
        let parent = parent.map(|p| opentelemetry::Context::new().with_remote_span_context(p));
        sampler
            .should_sample(
                parent.as_ref(),
                TraceId::from(11),
                "consumer.batch",
                &SpanKind::Consumer,
                &[],
                links,
            )
            .decision
    }

    #[test]
    fn a_root_linked_to_a_kept_trace_is_kept_and_a_parents_choice_stands() {
        let kept = Link::with_context(remote(true));
        let dropped = Link::with_context(remote(false));
        assert_eq!(decide(None, &[]), SamplingDecision::Drop);
        assert_eq!(
            decide(None, std::slice::from_ref(&dropped)),
            SamplingDecision::Drop
        );
        assert_eq!(
            decide(None, &[dropped.clone(), kept.clone()]),
            SamplingDecision::RecordAndSample
        );
        // A parent decided already: links do not overrule it, either way.
        assert_eq!(decide(Some(remote(false)), &[kept]), SamplingDecision::Drop);
        assert_eq!(
            decide(Some(remote(true)), &[dropped]),
            SamplingDecision::RecordAndSample
        );
    }

    #[test]
    fn a_base_address_gets_the_traces_path_once() {
        assert_eq!(
            traces_url("http://collector:4318"),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://collector:4318/"),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://collector:4318/v1/traces"),
            "http://collector:4318/v1/traces"
        );
    }
}
