//! Waiting out a retry without losing the partitions. The assignment is paused, so nothing
//! new is read, while the consumer keeps polling: librdkafka takes the partitions of a member
//! that stops polling for `max.poll.interval.ms`, and polling is also what serves rebalances
//! and statistics (lag, connection count, readiness) during an outage.
//!
//! A batch's first attempt, with nothing paused, is also when the next batch is read: while the
//! transaction waits on MySQL the consumer takes and decodes the messages that follow, so that
//! work overlaps MySQL's instead of taking turns with it.

use std::pin::pin;
use std::time::Duration;

use rdkafka::consumer::Consumer;

use crate::intake::{Batch, Intake};
use crate::metrics::ConsumerMetrics;
use crate::retry::RetryWait;

/// Holds the consumer's partitions while one batch is retried; resumes them when dropped.
pub struct Hold<'c, 'w, S> {
    intake: &'w Intake<'c>,
    metrics: &'w ConsumerMetrics,
    shutdown: &'w mut S,
    /// Messages read ahead during the first attempt, and those of partitions assigned during
    /// the hold that arrived before they could be paused; the next batch starts with them, so
    /// none is skipped and their order holds.
    carry: &'w mut Batch<'c>,
    paused: bool,
}

impl<'c, 'w, S: Future<Output = ()> + Unpin> Hold<'c, 'w, S> {
    /// Pauses nothing yet: a batch that succeeds at once never touches the assignment.
    pub fn new(
        intake: &'w Intake<'c>,
        metrics: &'w ConsumerMetrics,
        shutdown: &'w mut S,
        carry: &'w mut Batch<'c>,
    ) -> Self {
        Self {
            intake,
            metrics,
            shutdown,
            carry,
            paused: false,
        }
    }

    fn pause(&mut self) {
        self.paused = true;
        // Set first: a partition assigned from here on is paused by the rebalance callback.
        let consumer = self.intake.consumer();
        consumer.context().set_holding(true);
        let assigned = match consumer.assignment() {
            Ok(assigned) => assigned,
            Err(error) => {
                tracing::error!(%error, "cannot read the assignment to pause it");
                return;
            }
        };
        match consumer.pause(&assigned) {
            Ok(()) => {
                let count = assigned.count();
                self.metrics
                    .paused_partitions
                    .set(i64::try_from(count).unwrap_or(i64::MAX));
                tracing::warn!(
                    partitions = count,
                    "partitions paused while the batch is retried"
                );
            }
            Err(error) => tracing::error!(%error, "cannot pause the assigned partitions"),
        }
    }
}

impl<S: Future<Output = ()> + Unpin> RetryWait for Hold<'_, '_, S> {
    async fn wait(&mut self, backoff: Duration) -> bool {
        if !self.paused {
            self.pause();
        }
        self.metrics.batch_retries.inc();
        let deadline = tokio::time::Instant::now() + backoff;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => return true,
                () = &mut *self.shutdown => return false,
                polled = self.intake.consumer().recv() => {
                    self.intake.take(self.carry, polled);
                }
            }
        }
    }

    /// Reads ahead while `work` runs, unless the partitions are paused (a retry: nothing new
    /// is read then) or the next batch is already full. A receive cut short when `work` ends
    /// loses nothing: rdkafka's `recv` is cancel-safe.
    async fn meanwhile<T>(&mut self, work: impl Future<Output = T>) -> T {
        let mut work = pin!(work);
        if self.paused {
            return work.await;
        }
        loop {
            tokio::select! {
                // The attempt first: its end is never kept waiting by a full queue of messages.
                biased;
                done = &mut work => return done,
                polled = self.intake.consumer().recv(), if self.intake.has_room(self.carry) => {
                    self.intake.take(self.carry, polled);
                }
            }
        }
    }
}

impl<S> Drop for Hold<'_, '_, S> {
    fn drop(&mut self) {
        if !self.paused {
            return;
        }
        let consumer = self.intake.consumer();
        consumer.context().set_holding(false);
        let resumed = consumer
            .assignment()
            .and_then(|assigned| consumer.resume(&assigned));
        match resumed {
            Ok(()) => tracing::info!("partitions resumed"),
            Err(error) => tracing::error!(%error, "cannot resume the paused partitions"),
        }
        self.metrics.paused_partitions.set(0);
    }
}
