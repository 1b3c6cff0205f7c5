//! The consumer's offsets: stored per batch once it is settled, committed by librdkafka in the
//! background (see `couponrush_messaging::issue_consumer_config`), before a revocation (the
//! rebalance callback) and at shutdown (here).

use std::collections::HashMap;

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::context::GroupConsumer;

/// Stores, per partition, the offset after the batch's last message. Only stored offsets are
/// ever committed.
pub fn store(consumer: &GroupConsumer, batch: &[BorrowedMessage<'_>]) {
    let mut next: HashMap<(&str, i32), i64> = HashMap::new();
    for message in batch {
        let entry = next
            .entry((message.topic(), message.partition()))
            .or_insert(0);
        *entry = (*entry).max(message.offset() + 1);
    }
    let mut offsets = TopicPartitionList::new();
    for ((topic, partition), offset) in next {
        if let Err(error) = offsets.add_partition_offset(topic, partition, Offset::Offset(offset)) {
            tracing::error!(%error, topic, partition, "cannot build the offsets to store");
            return;
        }
    }
    if let Err(error) = consumer.store_offsets(&offsets) {
        // The partitions moved while the batch was persisted: their new owner re-delivers it,
        // which the idempotent insert makes harmless.
        tracing::warn!(%error, "offsets not stored; the batch may be re-delivered");
    }
}

/// At shutdown: commits what was stored since the last commit, then leaves the group.
pub fn commit_and_leave(consumer: &GroupConsumer) {
    if let Err(error) = consumer.commit_consumer_state(CommitMode::Sync) {
        // Nothing new since the last commit is the common case at shutdown.
        tracing::debug!(%error, "final commit");
    }
    consumer.unsubscribe();
}
