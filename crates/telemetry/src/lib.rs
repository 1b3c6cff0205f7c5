//! Logging set-up shared by every binary: JSON lines in production, readable text otherwise.

use couponrush_config::Settings;
use tracing_subscriber::EnvFilter;

/// Installs the global tracing subscriber. `RUST_LOG` wins over `log.filter`.
/// Safe to call more than once (tests): later calls keep the first subscriber.
pub fn init(settings: &Settings, service: &'static str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.log.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = if settings.json_logs() {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
    } else {
        builder.try_init()
    };
    if installed.is_ok() {
        tracing::info!(service, profile = ?settings.profile, "telemetry initialised");
    }
}
