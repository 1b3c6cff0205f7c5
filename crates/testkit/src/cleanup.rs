//! Clean-up from `Drop`, where it has to happen for a test that failed or panicked too.
//!
//! `drop` is synchronous and usually runs on the test's own runtime, which cannot block on a
//! future; so the work runs on a thread of its own with a small runtime of its own, and the
//! dropping thread waits for it, at most [`DEADLINE`]. Nothing here panics: a panic in `drop`
//! during a test's unwinding would abort the whole test binary.

use std::future::Future;
use std::io::Write;
use std::sync::mpsc;
use std::time::Duration;

/// How long a drop may wait for its clean-up: far more than a `DROP DATABASE` or deleting a
/// test's keys takes, little enough not to stall a run when a service hangs.
const DEADLINE: Duration = Duration::from_secs(15);

/// Runs `work` to its end (or [`DEADLINE`]) from a `drop`; a failure is reported on stderr,
/// naming `what`, and otherwise ignored: the test's verdict is already decided, and
/// `scripts/test.sh` sweeps what is left at the start of the next run.
pub(crate) fn run(what: String, work: impl Future<Output = anyhow::Result<()>> + Send + 'static) {
    let (finished, outcome) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("testkit-cleanup".to_owned())
        .spawn(move || {
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|runtime| {
                    runtime.block_on(async {
                        tokio::time::timeout(DEADLINE, work)
                            .await
                            .unwrap_or_else(|_| Err(anyhow::anyhow!("timed out")))
                    })
                });
            // The receiver is gone only when the dropping thread stopped waiting.
            let _ = finished.send(result);
        });
    let failure = match spawned.map(|_| outcome.recv_timeout(DEADLINE + Duration::from_secs(1))) {
        Ok(Ok(Ok(()))) => return,
        Ok(Ok(Err(error))) => format!("{error:#}"),
        Ok(Err(mpsc::RecvTimeoutError::Timeout)) => format!("not done within {DEADLINE:?}"),
        Ok(Err(mpsc::RecvTimeoutError::Disconnected)) => "its thread panicked".to_owned(),
        Err(error) => format!("no thread to run it: {error}"),
    };
    let _ = writeln!(
        std::io::stderr(),
        "testkit: clean-up of {what} failed: {failure}"
    );
}
