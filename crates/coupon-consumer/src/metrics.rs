//! Prometheus metrics of the consumer. The names the alert rules use come from the incident
//! report (its section 9.3): `kafka_consumer_lag`, `kafka_consumer_connection_count`,
//! `kafka_consumer_records_consumed_total`, `kafka_consumer_connection_creation_total`,
//! `kafka_consumer_connection_close_total`. The business SLI the incident had no number for is
//! `coupon_time_to_issuance_seconds`. Every name, its unit and labels: docs/observability.md.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use rdkafka::statistics::Statistics;
use time::OffsetDateTime;

use crate::batch::BatchResult;

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

/// Upper bounds of `coupon_time_to_issuance_seconds`, in seconds. Dense around the objective
/// (99 % within 5 s, deploy/prometheus/slo.yaml) so its bucket is exact rather than
/// interpolated; up to a minute, beyond which a backlog is an outage and the alerts on lag
/// and on the SLO's burn have long fired.
pub const TIME_TO_ISSUANCE_BUCKETS: [f64; 14] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 60.0,
];

/// Seconds from acceptance to commit, never negative. `requested_at` is the API host's clock
/// and `committed_at` the consumer host's: a consumer whose clock runs behind the API's would
/// otherwise observe negative durations, which a histogram cannot place (they would fall below
/// every bucket yet lower the sum). Clamped at 0, such a coupon counts as issued at once, the
/// truth to within the skew; NTP keeps the skew to milliseconds, far below the objective.
pub fn time_to_issuance(requested_at: OffsetDateTime, committed_at: OffsetDateTime) -> f64 {
    (committed_at - requested_at).as_seconds_f64().max(0.0)
}

#[derive(Debug)]
pub struct ConsumerMetrics {
    registry: Registry,
    pub lag: Family<PartitionLabels, Gauge>,
    /// The partitions assigned to this member: the only ones whose lag it exports.
    assigned: Mutex<HashSet<PartitionLabels>>,
    pub connection_count: Gauge,
    pub connection_creations: Counter,
    pub connection_closes: Counter,
    /// librdkafka's cumulative (connects, disconnects) over every broker handle, as last seen.
    connections_seen: Mutex<(u64, u64)>,
    pub records_consumed: Counter,
    pub issued: Counter,
    pub duplicates: Counter,
    pub dead_letters: Family<ReasonLabels, Counter>,
    pub batch_size: Histogram,
    pub transaction_duration: Histogram,
    pub time_to_issuance: Histogram,
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
        let connection_creations = Counter::default();
        registry.register(
            "kafka_consumer_connection_creation",
            "Connections opened to brokers, bootstrap ones included (a consumer that keeps \
             reconnecting shows here first)",
            connection_creations.clone(),
        );
        let connection_closes = Counter::default();
        registry.register(
            "kafka_consumer_connection_close",
            "Connections to brokers that closed, whoever closed them",
            connection_closes.clone(),
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
        let time_to_issuance = Histogram::new(TIME_TO_ISSUANCE_BUCKETS);
        registry.register(
            "coupon_time_to_issuance_seconds",
            "Per issued coupon, from the API's acceptance of the request (requested_at) to the \
             commit of the batch that issued it",
            time_to_issuance.clone(),
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
            assigned: Mutex::default(),
            connection_count,
            connection_creations,
            connection_closes,
            connections_seen: Mutex::default(),
            records_consumed,
            issued,
            duplicates,
            dead_letters,
            batch_size,
            transaction_duration,
            time_to_issuance,
            batch_retries,
            paused_partitions,
            rebalances,
        })
    }

    /// Partitions assigned to this member by a rebalance (the whole assignment: the group
    /// uses an eager protocol); the lag of any other partition is removed at once.
    pub fn set_assigned(&self, partitions: impl IntoIterator<Item = PartitionLabels>) {
        let now: HashSet<PartitionLabels> = partitions.into_iter().collect();
        let mut assigned = self.assigned.lock().unwrap_or_else(PoisonError::into_inner);
        for gone in assigned.difference(&now) {
            self.lag.remove(gone);
        }
        *assigned = now;
    }

    /// Reads broker connections and per-partition lag from librdkafka's statistics.
    ///
    /// Lag is true or absent, never stale: messages after the offset this member stored
    /// (persisted in MySQL; known right after its first batch), else after the group's
    /// committed offset; when librdkafka knows neither (-1), or the partition is not assigned
    /// here, the series is removed.
    pub fn record_statistics(&self, statistics: &Statistics) {
        let connected = couponrush_messaging::connected_brokers(statistics);
        self.connection_count
            .set(i64::try_from(connected).unwrap_or(i64::MAX));
        self.record_connections(statistics);
        let assigned = self.assigned.lock().unwrap_or_else(PoisonError::into_inner);
        for labels in assigned.iter() {
            let lag = statistics
                .topics
                .get(&labels.topic)
                .and_then(|t| t.partitions.get(&labels.partition))
                .and_then(|p| {
                    [p.consumer_lag_stored, p.consumer_lag]
                        .into_iter()
                        .find(|lag| *lag >= 0)
                });
            match lag {
                Some(lag) => {
                    self.lag.get_or_create(labels).set(lag);
                }
                None => {
                    self.lag.remove(labels);
                }
            }
        }
    }

    /// Turns librdkafka's cumulative connect/disconnect counts into the two counters. A count
    /// that went down (librdkafka dropped a broker handle) adds nothing and becomes the new base.
    fn record_connections(&self, statistics: &Statistics) {
        let sum = |count: fn(&rdkafka::statistics::Broker) -> Option<i64>| -> u64 {
            statistics
                .brokers
                .values()
                .filter_map(count)
                .map(|n| u64::try_from(n).unwrap_or(0))
                .sum()
        };
        let now = (sum(|b| b.connects), sum(|b| b.disconnects));
        let mut seen = self
            .connections_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.connection_creations
            .inc_by(now.0.saturating_sub(seen.0));
        self.connection_closes.inc_by(now.1.saturating_sub(seen.1));
        *seen = now;
    }

    /// What one settled batch did: its size, how long its MySQL transaction took (retries
    /// included), what it issued and how long after acceptance (only coupons newly issued by a
    /// committed transaction: not duplicates, not dead letters), and what it dead-lettered, by
    /// reason. Called once the batch settled, so after its commit.
    pub fn record_batch(&self, size: usize, result: &BatchResult, transaction: Duration) {
        self.transaction_duration.observe(transaction.as_secs_f64());
        let size = u32::try_from(size).unwrap_or(u32::MAX);
        self.batch_size.observe(f64::from(size));
        self.records_consumed.inc_by(u64::from(size));
        self.issued.inc_by(result.report.issued);
        self.duplicates.inc_by(result.report.duplicates);
        if let Some(committed_at) = result.committed_at {
            for &requested_at in &result.issued_requested_at {
                self.time_to_issuance
                    .observe(time_to_issuance(requested_at, committed_at));
            }
        }
        for rejection in &result.rejected {
            self.dead_letters
                .get_or_create(&ReasonLabels {
                    reason: rejection.reason,
                })
                .inc();
        }
    }

    pub fn encode(&self) -> String {
        couponrush_ops::health::encode(&self.registry)
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::statistics::{Partition, Topic};

    use super::*;

    fn labels(partition: i32) -> PartitionLabels {
        PartitionLabels {
            topic: "t".into(),
            partition,
        }
    }

    /// Statistics of topic `t` with `(partition, consumer_lag_stored, consumer_lag)`.
    fn statistics(partitions: &[(i32, i64, i64)]) -> Statistics {
        let mut topic = Topic::default();
        for &(partition, stored, committed) in partitions {
            let stats = Partition {
                partition,
                consumer_lag_stored: stored,
                consumer_lag: committed,
                ..Partition::default()
            };
            topic.partitions.insert(partition, stats);
        }
        let mut statistics = Statistics::default();
        statistics.topics.insert("t".into(), topic);
        statistics
    }

    fn exported(metrics: &ConsumerMetrics) -> Vec<String> {
        let mut lines: Vec<String> = metrics
            .encode()
            .lines()
            .filter(|l| l.starts_with("kafka_consumer_lag{"))
            .map(str::to_owned)
            .collect();
        lines.sort();
        lines
    }

    /// Statistics with one broker handle per `(connects, disconnects)`.
    fn brokers(counts: &[(i64, i64)]) -> Statistics {
        let mut statistics = Statistics::default();
        for (i, &(connects, disconnects)) in counts.iter().enumerate() {
            let broker = rdkafka::statistics::Broker {
                connects: Some(connects),
                disconnects: Some(disconnects),
                ..Default::default()
            };
            statistics.brokers.insert(format!("b{i}"), broker);
        }
        statistics
    }

    /// `(sum, count, cumulative count at le="0.05")` of the time-to-issuance histogram.
    fn time_to_issuance_samples(metrics: &ConsumerMetrics) -> (f64, f64, f64) {
        let text = metrics.encode();
        let sample = |series: &str| {
            text.lines()
                .find(|l| l.starts_with(series))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(f64::NAN)
        };
        (
            sample("coupon_time_to_issuance_seconds_sum "),
            sample("coupon_time_to_issuance_seconds_count "),
            sample("coupon_time_to_issuance_seconds_bucket{le=\"0.05\"}"),
        )
    }

    #[test]
    fn time_to_issuance_counts_issued_coupons_of_committed_batches_only() {
        let metrics = ConsumerMetrics::new();
        let committed_at = OffsetDateTime::now_utc();
        let seconds = |s: f64| time::Duration::seconds_f64(s);
        let issued = BatchResult {
            report: crate::batch::BatchReport {
                issued: 2,
                duplicates: 5,
                ..Default::default()
            },
            // 3 s in the queue; and one stamped by an API whose clock runs 2 s ahead.
            issued_requested_at: vec![committed_at - seconds(3.0), committed_at + seconds(2.0)],
            committed_at: Some(committed_at),
            ..Default::default()
        };
        metrics.record_batch(7, &issued, Duration::from_millis(5));
        // Clamped: the skewed one counts as 0 s, in the lowest bucket, and lowers no sum.
        assert_eq!(time_to_issuance_samples(&metrics), (3.0, 2.0, 1.0));

        // Nothing committed (retries exhausted, all dead-lettered): nothing observed.
        let failed = BatchResult {
            issued_requested_at: vec![committed_at],
            ..Default::default()
        };
        metrics.record_batch(1, &failed, Duration::from_millis(5));
        assert_eq!(time_to_issuance_samples(&metrics), (3.0, 2.0, 1.0));
    }

    #[test]
    fn the_objective_is_a_bucket_bound() {
        // The SLO's recording rules read le="5": it must be exact, not interpolated.
        assert!(TIME_TO_ISSUANCE_BUCKETS.contains(&5.0));
        assert!(TIME_TO_ISSUANCE_BUCKETS.is_sorted());
    }

    #[test]
    fn connection_counters_follow_librdkafka_and_never_go_back() {
        let metrics = ConsumerMetrics::new();
        let sample = |series: &str| {
            metrics
                .encode()
                .lines()
                .find(|l| l.starts_with(series))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<u64>().ok())
        };
        metrics.record_statistics(&brokers(&[(1, 0), (1, 0)]));
        metrics.record_statistics(&brokers(&[(3, 2), (1, 0)]));
        assert_eq!(sample("kafka_consumer_connection_creation_total"), Some(4));
        assert_eq!(sample("kafka_consumer_connection_close_total"), Some(2));
        // A broker handle dropped: the sums fall, the counters stay, and count on from there.
        metrics.record_statistics(&brokers(&[(3, 2)]));
        metrics.record_statistics(&brokers(&[(5, 3)]));
        assert_eq!(sample("kafka_consumer_connection_creation_total"), Some(6));
        assert_eq!(sample("kafka_consumer_connection_close_total"), Some(3));
    }

    #[test]
    fn lag_is_true_or_absent_never_stale() {
        let metrics = ConsumerMetrics::new();
        metrics.set_assigned([labels(0), labels(1)]);
        // Right after consumption only the stored offset is known; -1 is librdkafka's "unknown"
        // and the internal partition -1 is never exported.
        metrics.record_statistics(&statistics(&[(0, 3, -1), (1, -1, 7), (-1, 5, 5)]));
        assert_eq!(
            exported(&metrics),
            [
                "kafka_consumer_lag{topic=\"t\",partition=\"0\"} 3",
                "kafka_consumer_lag{topic=\"t\",partition=\"1\"} 7",
            ]
        );

        // Unknown again: removed, not kept at 7.
        metrics.record_statistics(&statistics(&[(0, 0, 0), (1, -1, -1)]));
        assert_eq!(
            exported(&metrics),
            ["kafka_consumer_lag{topic=\"t\",partition=\"0\"} 0"]
        );

        // Revoked: gone at once, and not brought back by statistics that still list it.
        metrics.set_assigned([labels(1)]);
        assert!(exported(&metrics).is_empty());
        metrics.record_statistics(&statistics(&[(0, 4, 4), (1, 2, 2)]));
        assert_eq!(
            exported(&metrics),
            ["kafka_consumer_lag{topic=\"t\",partition=\"1\"} 2"]
        );
    }
}
