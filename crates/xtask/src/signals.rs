//! Ctrl-C and SIGTERM: a task stops what it is doing, then still cleans up (stops the binaries
//! it started, deletes its keys and topics, stops the stack services it started).

use tokio::signal::unix::{SignalKind, signal};

/// Exit status of a task stopped by a signal (the shell's 128 + SIGINT).
pub const INTERRUPTED: u8 = 130;

/// Resolves on the first SIGINT or SIGTERM; says which. Never resolves when the handlers
/// cannot be installed (the task then runs to its end as before).
async fn interrupted() -> &'static str {
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "interrupted",
        _ = term.recv() => "terminated",
    }
}

/// Runs `work` unless SIGINT or SIGTERM comes first (then says which, prefixed by `tag`, and
/// returns `None`): the caller cleans up either way.
pub async fn unless_interrupted<T>(
    tag: &str,
    work: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<Option<T>> {
    tokio::select! {
        outcome = work => outcome.map(Some),
        signal = interrupted() => {
            eprintln!("[{tag}] {signal}");
            Ok(None)
        }
    }
}
