//! Readiness as a background watch: each dependency is checked every second, so
//! `/health/ready` answers instantly, turns false within seconds of an outage and true again
//! when the dependency returns. Each change of state is logged once (ERROR when lost, INFO when
//! back), not once per check.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use couponrush_cache::ReservationStore;
use couponrush_messaging::IssuePublisher;

use crate::metrics::{ApiMetrics, DependencyLabels};

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
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(INTERVAL);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let (redis, kafka) =
                    tokio::join!(reservations.probe(timeout), publisher.check(timeout));
                watched
                    .redis
                    .record(redis.map_err(|e| e.to_string()), &metrics);
                watched
                    .kafka
                    .record(kafka.map_err(|e| e.to_string()), &metrics);
            }
        });
        (readiness, task)
    }
}
