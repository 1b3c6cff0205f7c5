//! librdkafka callbacks of the consumer: make group membership visible in the logs.

use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::topic_partition_list::TopicPartitionList;

/// Logs every assignment and revocation. Errors and librdkafka's own log lines keep the
/// default handling, which reports them through `tracing` at their level.
#[derive(Debug, Default, Clone, Copy)]
pub struct GroupContext;

impl ClientContext for GroupContext {}

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
