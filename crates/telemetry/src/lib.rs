//! What every binary shares to be seen: logs (JSON lines in production, readable text
//! otherwise) and OpenTelemetry traces exported over OTLP when a collector is configured, with
//! W3C trace context carried across HTTP and Kafka (`propagation`).

mod logs;
pub mod propagation;
mod traces;

use couponrush_config::Settings;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

pub use traces::{TelemetryError, tracer_provider_builder};

/// The process's telemetry. Keep it until the process ends, then call [`Self::shutdown`]:
/// spans still queued for export are sent (bounded by `telemetry.export_timeout_ms`).
#[derive(Debug)]
#[must_use = "dropping it early loses the spans still queued for export"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans leave the process.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Sends the spans still queued and stops the exporter.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(error) = provider.shutdown()
        {
            tracing::warn!(%error, "trace export did not finish cleanly");
        }
    }
}

/// Installs the global subscriber: logs, and trace export when `telemetry.otlp_endpoint` (or
/// the standard `OTEL_EXPORTER_OTLP_ENDPOINT`) names a collector. `RUST_LOG` wins over
/// `log.filter`. Safe to call more than once (tests): later calls keep the first subscriber.
pub fn init(settings: &Settings, service: &'static str) -> Result<Telemetry, TelemetryError> {
    let provider = traces::from_settings(settings, service)?;
    Ok(install(settings, service, provider))
}

/// [`init`] with a tracer provider built by the caller (a test's in-memory exporter); `None`
/// installs logs only.
pub fn install(
    settings: &Settings,
    service: &'static str,
    provider: Option<SdkTracerProvider>,
) -> Telemetry {
    let traces = provider
        .as_ref()
        .map(|provider| traces::layer(settings, provider, service));
    let (logs, logs_ready) = logs::layer(settings, provider.is_some());
    let installed = tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init();
    if installed.is_err() {
        // Another subscriber is in place (a test process): this provider exports nothing.
        return Telemetry { provider: None };
    }
    logs_ready.ready();
    if provider.is_some() {
        propagation::install_global();
    }
    tracing::info!(
        service,
        profile = ?settings.profile,
        traces = if provider.is_some() { "exported" } else { "off" },
        "telemetry initialised"
    );
    warn_plaintext_backends(settings, service);
    Telemetry { provider }
}

/// In production, one warning per backend reached without TLS, naming it and the setting:
/// not refused (a deployment's own network may be trusted, and the deploy overlays run
/// in-cluster), but never silent. Every binary passes here once, right after logging starts.
fn warn_plaintext_backends(settings: &Settings, service: &'static str) {
    if settings.profile != couponrush_config::Profile::Production {
        return;
    }
    for backend in settings.plaintext_backends() {
        tracing::warn!(
            service,
            backend,
            "backend connection is not encrypted (docs/security.md, Backends: TLS and SASL)"
        );
    }
}

/// Ends a binary: on error, logs it and prints the whole cause chain on one screen (no
/// backtrace noise), then exits non-zero so orchestrators see the failure.
pub fn exit_code(service: &'static str, result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(service, error = format!("{error:#}"), "exiting on error");
            let mut message = format!("{service}: error: {error}");
            for cause in error.chain().skip(1) {
                message.push_str(&format!("\n  caused by: {cause}"));
            }
            #[allow(clippy::print_stderr)]
            {
                eprintln!("{message}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}
