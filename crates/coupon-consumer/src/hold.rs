//! Waiting out a retry without losing the partitions. The assignment is paused, so nothing
//! new is read, while the consumer keeps polling: librdkafka takes the partitions of a member
//! that stops polling for `max.poll.interval.ms`, and polling is also what serves rebalances
//! and statistics (lag, connection count, readiness) during an outage.

use std::time::Duration;

use couponrush_messaging::noise;
use rdkafka::consumer::Consumer;
use rdkafka::message::BorrowedMessage;

use crate::context::GroupConsumer;
use crate::metrics::ConsumerMetrics;
use crate::retry::RetryWait;

/// Holds the consumer's partitions while one batch is retried; resumes them when dropped.
pub struct Hold<'c, 'w, S> {
    consumer: &'c GroupConsumer,
    metrics: &'w ConsumerMetrics,
    shutdown: &'w mut S,
    /// Messages of partitions assigned during the hold that arrived before they could be
    /// paused; the next batch starts with them, so none is skipped.
    carry: &'w mut Vec<BorrowedMessage<'c>>,
    paused: bool,
}

impl<'c, 'w, S: Future<Output = ()> + Unpin> Hold<'c, 'w, S> {
    /// Pauses nothing yet: a batch that succeeds at once never touches the assignment.
    pub fn new(
        consumer: &'c GroupConsumer,
        metrics: &'w ConsumerMetrics,
        shutdown: &'w mut S,
        carry: &'w mut Vec<BorrowedMessage<'c>>,
    ) -> Self {
        Self {
            consumer,
            metrics,
            shutdown,
            carry,
            paused: false,
        }
    }

    fn pause(&mut self) {
        self.paused = true;
        // Set first: a partition assigned from here on is paused by the rebalance callback.
        self.consumer.context().set_holding(true);
        let assigned = match self.consumer.assignment() {
            Ok(assigned) => assigned,
            Err(error) => {
                tracing::error!(%error, "cannot read the assignment to pause it");
                return;
            }
        };
        match self.consumer.pause(&assigned) {
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
                polled = self.consumer.recv() => match polled {
                    Ok(message) => self.carry.push(message),
                    Err(error) => noise::consumer_error(&error),
                },
            }
        }
    }
}

impl<S> Drop for Hold<'_, '_, S> {
    fn drop(&mut self) {
        if !self.paused {
            return;
        }
        self.consumer.context().set_holding(false);
        let resumed = self
            .consumer
            .assignment()
            .and_then(|assigned| self.consumer.resume(&assigned));
        match resumed {
            Ok(()) => tracing::info!("partitions resumed"),
            Err(error) => tracing::error!(%error, "cannot resume the paused partitions"),
        }
        self.metrics.paused_partitions.set(0);
    }
}
