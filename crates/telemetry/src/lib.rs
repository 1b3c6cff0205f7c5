//! Logging set-up shared by every binary: JSON lines in production, readable text otherwise.

use std::io::IsTerminal;

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
        .with_ansi(colour())
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

/// Colour only for a person at a terminal: escape codes in a file or a log collector are noise.
/// `NO_COLOR` (<https://no-color.org>) turns it off at a terminal too.
fn colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
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
