//! Retrying a batch: the backoff between attempts, and how a batch waits it out.

use std::time::Duration;

use couponrush_ops::Backoff;

/// The backoff of a batch's attempts, at persisting it and at dead-lettering its rejected
/// messages alike.
pub const RETRY_BACKOFF: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));

/// How a batch waits out a backoff before its next attempt.
pub trait RetryWait {
    /// Waits `backoff`; `false` when shutdown came first.
    async fn wait(&mut self, backoff: Duration) -> bool;

    /// Runs one attempt, `work`; the waiter may use the time it spends waiting on MySQL.
    async fn meanwhile<T>(&mut self, work: impl Future<Output = T>) -> T {
        work.await
    }
}
