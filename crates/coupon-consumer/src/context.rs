//! librdkafka callbacks of the consumer: group membership in the logs, statistics into
//! metrics, and the broker connection as a readiness signal that is logged once per change.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::TopicPartitionList;

use crate::metrics::ConsumerMetrics;

#[derive(Debug)]
pub struct GroupContext {
    metrics: Arc<ConsumerMetrics>,
    connected: Arc<AtomicBool>,
}

impl GroupContext {
    pub fn new(metrics: Arc<ConsumerMetrics>, connected: Arc<AtomicBool>) -> Self {
        Self { metrics, connected }
    }
}

impl ClientContext for GroupContext {
    fn stats(&self, statistics: Statistics) {
        self.metrics.record_statistics(&statistics);
        let up = self.metrics.connection_count.get() > 0;
        if self.connected.swap(up, Ordering::Relaxed) != up {
            if up {
                tracing::info!("connected to the Kafka broker again");
            } else {
                tracing::error!("no connection to any Kafka broker: consuming nothing");
            }
        }
    }
}

fn partitions(list: &TopicPartitionList) -> Vec<String> {
    list.elements()
        .iter()
        .map(|e| format!("{}/{}", e.topic(), e.partition()))
        .collect()
}

impl ConsumerContext for GroupContext {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                tracing::info!(partitions = ?partitions(list), "partitions assigned");
            }
            Rebalance::Revoke(list) => {
                tracing::info!(partitions = ?partitions(list), "partitions revoked");
            }
            Rebalance::Error(error) => tracing::error!(%error, "rebalance failed"),
        }
    }
}
