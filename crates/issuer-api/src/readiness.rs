//! Readiness as a background watch: each dependency is checked every second, so
//! `/health/ready` answers instantly, turns false within seconds of an outage and true again
//! when the dependency returns. Kafka is ready when the broker answers the issue producer's
//! metadata request AND that producer can publish (its last deliveries went through, no fatal
//! error); a producer that cannot while the broker answers is replaced here, without a restart.
//! Each change of state is logged once (ERROR when lost, INFO when
//! back), not once per check.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use couponrush_cache::ReservationStore;
use couponrush_messaging::IssuePublisher;

use crate::metrics::{ApiMetrics, DependencyLabels, ProducerLabels};

const INTERVAL: Duration = Duration::from_secs(1);

/// Last known state of one dependency.
#[derive(Debug)]
pub struct Dependency {
    pub name: &'static str,
    up: AtomicBool,
    last_error: std::sync::Mutex<Option<String>>,
}

impl Dependency {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            // Start-up probed every dependency before serving.
            up: AtomicBool::new(true),
            last_error: std::sync::Mutex::new(None),
        }
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    fn record(&self, result: Result<(), String>, metrics: &ApiMetrics) {
        let up = result.is_ok();
        let was_up = self.up.swap(up, Ordering::Relaxed);
        metrics
            .dependency_up
            .get_or_create(&DependencyLabels {
                dependency: self.name,
            })
            .set(i64::from(up));
        match (&result, was_up) {
            (Err(error), true) => {
                tracing::error!(dependency = self.name, %error, "dependency lost: not ready");
            }
            (Ok(()), false) => tracing::info!(dependency = self.name, "dependency back: ready"),
            _ => {}
        }
        if let Ok(mut last) = self.last_error.lock() {
            *last = result.err();
        }
    }
}

/// The dependencies readiness depends on.
#[derive(Debug)]
pub struct Readiness {
    pub redis: Dependency,
    pub kafka: Dependency,
}

impl Readiness {
    pub fn dependencies(&self) -> [&Dependency; 2] {
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
            redis: Dependency::new("redis"),
            kafka: Dependency::new("kafka"),
        });
        let watched = readiness.clone();
        let mut rebuilds = RebuildCount::default();
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(INTERVAL);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
                watched
                    .redis
                    .record(redis.map_err(|e| e.to_string()), &metrics);
                watched.kafka.record(kafka, &metrics);
            }
        });
        (readiness, task)
    }
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
