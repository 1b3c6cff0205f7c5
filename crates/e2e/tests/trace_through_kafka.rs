//! One request, one trace: the API continues the caller's `traceparent`, its Redis reservation
//! and publish are spans of that trace, and the consumer's persist of the message is a child
//! of the publish span (a remote parent, carried in the Kafka headers); the consumer's batch
//! span links to it. Spans are read from an in-memory exporter behind the real subscriber.

use std::time::Duration;

use couponrush_e2e::Running;
use couponrush_testkit::{TestEnv, eventually};
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn named<'s>(spans: &'s [SpanData], name: &str, trace: TraceId) -> Option<&'s SpanData> {
    spans
        .iter()
        .find(|s| s.name == name && s.span_context.trace_id() == trace)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumers_persist_continues_the_api_requests_trace() -> anyhow::Result<()> {
    let env = TestEnv::new(1).await?;
    let exporter = InMemorySpanExporter::default();
    let provider = couponrush_telemetry::tracer_provider_builder(&env.settings, "e2e")
        .with_simple_exporter(exporter.clone())
        .build();
    let telemetry = couponrush_telemetry::install(&env.settings, "e2e", Some(provider));
    anyhow::ensure!(
        telemetry.exporting(),
        "the test's subscriber was not installed"
    );

    let running = Running::start(&env).await?;
    let coupon = running.create_coupon(5).await?;
    let response = running
        .client
        .post(format!("{}/coupons/{coupon}/issue", running.base))
        .header("userId", "traced-user")
        .header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 202);

    let trace = TraceId::from_hex(CALLER_TRACE)?;
    let spans = eventually(Duration::from_secs(30), "the persist span", async || {
        let spans = exporter.get_finished_spans().ok()?;
        named(&spans, "coupon.persist", trace)
            .is_some()
            .then_some(spans)
    })
    .await?;
    let find = |name: &str| {
        named(&spans, name, trace).ok_or_else(|| anyhow::anyhow!("no {name} span in the trace"))
    };

    let http = find("POST /coupons/{coupon_id}/issue")?;
    assert_eq!(http.parent_span_id, SpanId::from_hex(CALLER_SPAN)?);
    assert!(http.parent_span_is_remote, "the caller's span is remote");
    let user = http
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == "user.id")
        .map(|kv| kv.value.to_string());
    assert_eq!(
        user.as_deref(),
        Some("traced-user"),
        "the decision is on the HTTP span"
    );
    let reserve = find("redis.reserve")?;
    assert_eq!(reserve.parent_span_id, http.span_context.span_id());
    let publish = find("kafka.publish")?;
    assert_eq!(publish.parent_span_id, http.span_context.span_id());

    let persist = find("coupon.persist")?;
    assert_eq!(persist.parent_span_id, publish.span_context.span_id());
    assert!(
        persist.parent_span_is_remote,
        "the publish span came through Kafka"
    );
    let outcome = persist
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == "outcome")
        .map(|kv| kv.value.to_string());
    assert_eq!(outcome.as_deref(), Some("persisted"));

    // The batch is a trace of its own, linked to every message it held.
    let batch = spans
        .iter()
        .find(|s| {
            s.name == "consumer.batch"
                && s.links
                    .iter()
                    .any(|l| l.span_context.span_id() == publish.span_context.span_id())
        })
        .ok_or_else(|| anyhow::anyhow!("no batch span links to the publish span"))?;
    assert_ne!(batch.span_context.trace_id(), trace);

    running.stop().await?;
    telemetry.shutdown();
    Ok(())
}
