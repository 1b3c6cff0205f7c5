//! Ctrl-C and SIGTERM: a task stops what it is doing, then still cleans up (stops the binaries
//! it started, deletes its keys and topics, stops the stack services it started).

use std::process::ExitCode;

use tokio::signal::unix::{SignalKind, signal};

/// Resolves on the first SIGINT or SIGTERM; says which, and the exit status a task stopped by
/// it ends with (the shell's 128 + the signal's number). Never resolves when the handlers
/// cannot be installed (the task then runs to its end as before).
async fn interrupted() -> (&'static str, u8) {
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => ("interrupted", 130),
        _ = term.recv() => ("terminated", 143),
    }
}

/// Runs `work` unless SIGINT or SIGTERM comes first (then says which, prefixed by `tag`, and
/// returns `Err` with the exit status to end with): the caller cleans up either way. Dropping
/// `work` kills what it started (`kill_on_drop`) before that clean-up.
pub async fn unless_interrupted<T>(
    tag: &str,
    work: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<Result<T, ExitCode>> {
    // A signal wins over the error its load generator's death would cause.
    tokio::select! {
        biased;
        (signal, code) = interrupted() => {
            eprintln!("[{tag}] {signal}");
            Ok(Err(ExitCode::from(code)))
        }
        outcome = work => outcome.map(Ok),
    }
}
