//! librdkafka callbacks of the consumer: group membership in the logs and metrics, offsets
//! committed before partitions are revoked, partitions assigned while a batch is retried kept
//! paused, statistics into metrics, and the broker connection and assignment as readiness
//! signals, the connection logged once per change of state.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use couponrush_messaging::noise;
use couponrush_ops::Check;
use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::TopicPartitionList;
use rdkafka::types::RDKafkaErrorCode;

use crate::metrics::{ConsumerMetrics, PartitionLabels, RebalanceLabels};
use crate::readiness::Health;

/// The issue topic's group consumer, with these callbacks.
pub(crate) type GroupConsumer = StreamConsumer<GroupContext>;

#[derive(Debug)]
pub struct GroupContext {
    metrics: Arc<ConsumerMetrics>,
    health: Arc<Health>,
    /// Whether the broker was connected and answering at the last statistics, to log changes.
    kafka: Check,
    /// Set while a batch is being retried: partitions assigned meanwhile start paused too.
    holding: AtomicBool,
}

impl GroupContext {
    pub fn new(metrics: Arc<ConsumerMetrics>, health: Arc<Health>) -> Self {
        Self {
            metrics,
            health,
            kafka: Check::new("kafka"),
            holding: AtomicBool::new(false),
        }
    }

    pub fn set_holding(&self, holding: bool) {
        self.holding.store(holding, Ordering::SeqCst);
    }

    fn count(&self, event: &'static str) {
        self.metrics
            .rebalances
            .get_or_create(&RebalanceLabels { event })
            .inc();
    }
}

impl ClientContext for GroupContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        noise::librdkafka_log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        noise::librdkafka_error(&error, reason);
    }

    fn stats(&self, statistics: Statistics) {
        self.metrics.record_statistics(&statistics);
        let connected = self.metrics.connection_count.get() > 0;
        self.health
            .kafka_connected
            .store(connected, Ordering::Relaxed);
        let state = if self.health.kafka_up() {
            Ok(())
        } else if connected {
            Err("the Kafka broker does not answer: consuming nothing".to_owned())
        } else {
            Err("no connection to any Kafka broker: consuming nothing".to_owned())
        };
        self.kafka.record(state);
    }
}

fn partitions(list: &TopicPartitionList) -> Vec<String> {
    list.elements()
        .iter()
        .map(|e| format!("{}/{}", e.topic(), e.partition()))
        .collect()
}

fn labels(list: &TopicPartitionList) -> Vec<PartitionLabels> {
    list.elements()
        .iter()
        .map(|e| PartitionLabels {
            topic: e.topic().to_owned(),
            partition: e.partition(),
        })
        .collect()
}

impl ConsumerContext for GroupContext {
    /// Before partitions move, commit what this consumer finished with them (the stored
    /// offsets: only batches whose MySQL transaction committed), synchronously, so the next
    /// owner starts right after it instead of at the last periodic commit.
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(list) = rebalance else {
            return;
        };
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => {
                tracing::info!(partitions = ?partitions(list), "offsets committed before revocation");
            }
            // Everything finished was already committed.
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(error) => {
                // Harmless (re-delivery is idempotent), and the lost broker or group behind it
                // is logged once at ERROR by the connection and readiness checks.
                tracing::warn!(%error, partitions = ?partitions(list),
                    "offset commit before revocation failed; the next owner re-delivers (harmless)");
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                self.count("assign");
                self.health.set_assigned(Some(list.count()));
                self.metrics.set_assigned(labels(list));
                tracing::info!(partitions = ?partitions(list), "partitions assigned");
                if self.holding.load(Ordering::SeqCst) {
                    // A batch is being retried: read nothing new until it is through.
                    match consumer.pause(list) {
                        Ok(()) => {
                            self.metrics
                                .paused_partitions
                                .inc_by(i64::try_from(list.count()).unwrap_or(i64::MAX));
                        }
                        Err(error) => {
                            tracing::error!(%error, "cannot pause newly assigned partitions");
                        }
                    }
                }
            }
            Rebalance::Revoke(list) => {
                self.count("revoke");
                self.health.set_assigned(None);
                self.metrics.set_assigned([]);
                tracing::info!(partitions = ?partitions(list), "partitions revoked");
                if self.holding.load(Ordering::SeqCst) {
                    self.metrics
                        .paused_partitions
                        .dec_by(i64::try_from(list.count()).unwrap_or(0));
                }
            }
            Rebalance::Error(error) => {
                self.count("error");
                tracing::error!(%error, "rebalance failed");
            }
        }
    }
}
