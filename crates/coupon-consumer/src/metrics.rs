//! Prometheus metrics of the consumer. The names the alert rules use come from the incident
//! report: `kafka_consumer_lag`, `kafka_consumer_connection_count`,
//! `kafka_consumer_records_consumed_total`.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use rdkafka::statistics::Statistics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    pub topic: String,
    pub partition: i32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RebalanceLabels {
    /// assign, revoke or error.
    pub event: &'static str,
}

#[derive(Debug)]
pub struct ConsumerMetrics {
    registry: Registry,
    pub lag: Family<PartitionLabels, Gauge>,
    pub connection_count: Gauge,
    pub records_consumed: Counter,
    pub issued: Counter,
    pub duplicates: Counter,
    pub dead_letters: Family<ReasonLabels, Counter>,
    pub batch_size: Histogram,
    pub transaction_duration: Histogram,
    pub batch_retries: Counter,
    pub paused_partitions: Gauge,
    pub rebalances: Family<RebalanceLabels, Counter>,
}

impl ConsumerMetrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::default();
        let lag = Family::<PartitionLabels, Gauge>::default();
        registry.register(
            "kafka_consumer_lag",
            "Messages behind the partition's end, per assigned partition (librdkafka statistics)",
            lag.clone(),
        );
        let connection_count = Gauge::default();
        registry.register(
            "kafka_consumer_connection_count",
            "Brokers this consumer is connected to; 0 means it reads nothing",
            connection_count.clone(),
        );
        let records_consumed = Counter::default();
        registry.register(
            "kafka_consumer_records_consumed",
            "Messages consumed and committed",
            records_consumed.clone(),
        );
        let issued = Counter::default();
        registry.register(
            "coupon_consumer_issued",
            "Coupons issued (new coupon_user rows)",
            issued.clone(),
        );
        let duplicates = Counter::default();
        registry.register(
            "coupon_consumer_duplicates",
            "Re-delivered requests that changed nothing",
            duplicates.clone(),
        );
        let dead_letters = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "coupon_consumer_dead_letters",
            "Messages sent to the dead-letter topic, by reason",
            dead_letters.clone(),
        );
        let batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 14));
        registry.register(
            "coupon_consumer_batch_size",
            "Messages per persisted batch",
            batch_size.clone(),
        );
        let transaction_duration = Histogram::new(exponential_buckets(0.000_5, 2.0, 15));
        registry.register(
            "coupon_consumer_transaction_duration_seconds",
            "Time to persist one batch in MySQL, retries included",
            transaction_duration.clone(),
        );
        let batch_retries = Counter::default();
        registry.register(
            "coupon_consumer_batch_retries",
            "Backoffs before another attempt at a batch (persisting or dead-lettering it) after a failure",
            batch_retries.clone(),
        );
        let paused_partitions = Gauge::default();
        registry.register(
            "kafka_consumer_paused_partitions",
            "Partitions paused while a batch is retried; they stay assigned to this consumer",
            paused_partitions.clone(),
        );
        let rebalances = Family::<RebalanceLabels, Counter>::default();
        registry.register(
            "kafka_consumer_rebalances",
            "Group rebalances seen by this consumer, by event",
            rebalances.clone(),
        );
        Arc::new(Self {
            registry,
            lag,
            connection_count,
            records_consumed,
            issued,
            duplicates,
            dead_letters,
            batch_size,
            transaction_duration,
            batch_retries,
            paused_partitions,
            rebalances,
        })
    }

    /// Reads broker connections and per-partition lag from librdkafka's statistics.
    pub fn record_statistics(&self, statistics: &Statistics) {
        let connected = statistics
            .brokers
            .values()
            .filter(|b| b.nodeid >= 0 && b.state == "UP")
            .count();
        self.connection_count
            .set(i64::try_from(connected).unwrap_or(i64::MAX));
        for (topic, stats) in &statistics.topics {
            for (partition, p) in &stats.partitions {
                // -1 is librdkafka's internal partition; a lag of -1 means "not assigned here".
                if *partition < 0 || p.consumer_lag < 0 {
                    continue;
                }
                self.lag
                    .get_or_create(&PartitionLabels {
                        topic: topic.clone(),
                        partition: *partition,
                    })
                    .set(p.consumer_lag);
            }
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(%error, "metrics encoding failed");
        }
        out
    }
}
