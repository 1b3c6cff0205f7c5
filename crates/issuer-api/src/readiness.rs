//! Readiness as a background watch: each dependency is checked every second, so
//! `/health/ready` answers instantly, turns false within seconds of an outage and true again
//! when the dependency returns. Kafka is ready when the broker answers the issue producer's
//! metadata request AND that producer can publish (its last deliveries went through, no fatal
//! error); a producer that cannot while the broker answers is replaced here, without a restart.
//! Each change of state is logged once (ERROR when lost, INFO when back) by
//! `couponrush_ops::Check`, not once per check.

use std::sync::Arc;
use std::time::Duration;

use couponrush_cache::ReservationStore;
use couponrush_messaging::IssuePublisher;
use couponrush_ops::Check;
use couponrush_ops::readiness::ticker;

use crate::metrics::{ApiMetrics, DependencyLabels, ProducerLabels};

/// The dependencies readiness depends on.
#[derive(Debug)]
pub struct Readiness {
    pub redis: Check,
    pub kafka: Check,
}

impl Readiness {
    pub fn dependencies(&self) -> [&Check; 2] {
        [&self.redis, &self.kafka]
    }

    pub fn is_ready(&self) -> bool {
        self.dependencies().iter().all(|d| d.is_up())
    }

    /// Starts the watch; it stops when the returned handle is aborted or the runtime ends.
    pub fn watch(
        reservations: ReservationStore,
        publisher: IssuePublisher,
        metrics: Arc<ApiMetrics>,
        timeout: Duration,
    ) -> (Arc<Self>, tokio::task::JoinHandle<()>) {
        let readiness = Arc::new(Self {
            redis: Check::new("redis"),
            kafka: Check::new("kafka"),
        });
        let watched = readiness.clone();
        let mut rebuilds = RebuildCount::default();
        let task = tokio::spawn(async move {
            let mut ticker = ticker();
            loop {
                ticker.tick().await;
                let (redis, kafka) =
                    tokio::join!(reservations.probe(timeout), publisher.check(timeout));
                // A producer that cannot publish while the broker answers is replaced now;
                // readiness then follows the new one.
                publisher.maintain(kafka.is_ok());
                rebuilds.record(&publisher, &metrics);
                let kafka = kafka
                    .map_err(|e| e.to_string())
                    .and_then(|()| publisher.can_publish());
                record(&watched.redis, redis.map_err(|e| e.to_string()), &metrics);
                record(&watched.kafka, kafka, &metrics);
            }
        });
        (readiness, task)
    }
}

/// Records a check's result, and in `dependency_up`.
fn record(check: &Check, result: Result<(), String>, metrics: &ApiMetrics) {
    let up = check.record(result);
    metrics
        .dependency_up
        .get_or_create(&DependencyLabels {
            dependency: check.name(),
        })
        .set(i64::from(up));
}

/// Producer replacements already counted in the metric.
#[derive(Debug, Default)]
struct RebuildCount {
    seen: std::collections::HashMap<&'static str, u64>,
}

impl RebuildCount {
    fn record(&mut self, publisher: &IssuePublisher, metrics: &ApiMetrics) {
        for (producer, total) in publisher.rebuilds() {
            let seen = self.seen.entry(producer).or_insert(0);
            if total > *seen {
                metrics
                    .producer_rebuilds
                    .get_or_create(&ProducerLabels { producer })
                    .inc_by(total - *seen);
                *seen = total;
            }
        }
    }
}
