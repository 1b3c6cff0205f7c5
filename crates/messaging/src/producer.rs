//! A producer that notices when it can no longer publish and replaces itself.
//!
//! An idempotent librdkafka producer can end up unable to publish for good while the broker
//! answers: fenced (`ProducerFenced`, `UNKNOWN_PRODUCER_ID`) after a stalled or restarted
//! broker, or stuck timing out every message. Restarting the process fixes it; so does building
//! a new producer, which is what [`ManagedProducer::maintain`] does without a restart. Every
//! delivery result is recorded, so [`ManagedProducer::can_publish`] answers "did the last
//! deliveries go through", not merely "does the broker answer metadata".

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::message::ToBytes;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;

use crate::error::MessagingError;
use crate::noise;
use crate::probe::{off_runtime, partitions_of};

/// How long deliveries may keep failing, with no success, before a producer whose broker
/// answers is replaced: a burst failing together in one hiccup does not rebuild it, a streak
/// while the broker is reachable is the producer's.
const REBUILD_AFTER_STREAK: Duration = Duration::from_secs(2);
/// Failed broker checks in a row (one a second) that make an outage: the producer is replaced
/// when the broker answers again. One slow answer under load is not an outage.
const LOST_CHECKS: u32 = 2;
/// At most one rebuild per this interval: a broker that is really gone is not fixed by
/// rebuilding in a loop.
const MIN_REBUILD_INTERVAL: Duration = Duration::from_secs(5);

/// Why a delivery did not go through, and whether the message may still be in the log.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryFailure {
    /// The message certainly is not in the topic: refused when queued, or refused by the
    /// broker with an error that means "not written". Undoing what it stood for is safe.
    #[error("not published: {0}")]
    NotSent(KafkaError),
    /// The message may have been written (sent, no acknowledgement: timed out in flight,
    /// purged while in flight, producer replaced). Undoing it could contradict the log; it
    /// must be resolved by publishing it again (consumers are idempotent) or by reading.
    #[error("publish unconfirmed: {0}")]
    Uncertain(KafkaError),
}

impl DeliveryFailure {
    /// Classifies a delivery report's error. librdkafka's per-message persistence status is
    /// not reachable from safe Rust, so only the broker's and the queue's definite refusals
    /// count as "not sent"; a timeout never does (the message may have been in flight).
    pub fn from_report(error: KafkaError) -> Self {
        let definite = matches!(
            error.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::MessageSizeTooLarge
                    | RDKafkaErrorCode::InvalidMessageSize
                    | RDKafkaErrorCode::InvalidRecord
                    | RDKafkaErrorCode::InvalidTopic
                    | RDKafkaErrorCode::UnknownTopic
                    | RDKafkaErrorCode::UnknownPartition
                    | RDKafkaErrorCode::TopicAuthorizationFailed
                    | RDKafkaErrorCode::ClusterAuthorizationFailed
            )
        );
        if definite {
            Self::NotSent(error)
        } else {
            Self::Uncertain(error)
        }
    }

    pub fn error(&self) -> &KafkaError {
        match self {
            Self::NotSent(error) | Self::Uncertain(error) => error,
        }
    }

    pub fn into_error(self) -> KafkaError {
        match self {
            Self::NotSent(error) | Self::Uncertain(error) => error,
        }
    }
}

/// What the producer's deliveries and librdkafka's callbacks say about it.
#[derive(Debug, Default)]
struct Health {
    failures_in_a_row: AtomicU64,
    streak_started: Mutex<Option<Instant>>,
    last_error: Mutex<Option<String>>,
    /// Brokers with a connection UP at the last statistics (-1 before the first).
    brokers_up: AtomicI64,
    /// librdkafka raised a fatal error: this instance can never publish again.
    fatal: AtomicBool,
}

impl Health {
    fn fresh() -> Self {
        Self {
            brokers_up: AtomicI64::new(-1),
            ..Self::default()
        }
    }

    fn succeeded(&self) {
        // Every delivery passes here: the lock is taken only to end a streak.
        if self.failures_in_a_row.swap(0, Ordering::Relaxed) > 0
            && let Ok(mut started) = self.streak_started.lock()
        {
            *started = None;
        }
    }

    fn failed(&self, error: &str) {
        if self.failures_in_a_row.fetch_add(1, Ordering::Relaxed) == 0
            && let Ok(mut started) = self.streak_started.lock()
        {
            *started = Some(Instant::now());
        }
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(error.to_owned());
        }
    }

    /// Failures in a row and how long ago the first of them came; `None` after a success.
    fn streak(&self) -> Option<(u64, Duration)> {
        // The common case, checked on every accepted request, takes no lock.
        let failures = self.failures_in_a_row.load(Ordering::Relaxed);
        if failures == 0 {
            return None;
        }
        let started = self.streak_started.lock().ok().and_then(|s| *s)?;
        Some((failures, started.elapsed()))
    }

    fn last_error(&self) -> String {
        self.last_error
            .lock()
            .ok()
            .and_then(|e| e.clone())
            .unwrap_or_default()
    }
}

/// librdkafka callbacks of a managed producer: health from statistics and errors; logs as
/// [`noise`] says (connection repeats at debug: readiness logs the change once).
pub struct ProducerContext {
    name: &'static str,
    health: Arc<Health>,
}

impl ClientContext for ProducerContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        noise::librdkafka_log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::Fatal | RDKafkaErrorCode::Fenced)
        ) && !self.health.fatal.swap(true, Ordering::Relaxed)
        {
            tracing::error!(producer = self.name, %error, reason, "producer failed fatally; it will be replaced");
            return;
        }
        noise::librdkafka_error(&error, reason);
    }

    fn stats(&self, statistics: Statistics) {
        let up = connected_brokers(&statistics);
        self.health
            .brokers_up
            .store(i64::try_from(up).unwrap_or(i64::MAX), Ordering::Relaxed);
    }
}

/// Brokers a client has a connection UP to, from its statistics (bootstrap pseudo-brokers,
/// whose node id is negative, do not count).
pub fn connected_brokers(statistics: &Statistics) -> usize {
    statistics
        .brokers
        .values()
        .filter(|b| b.nodeid >= 0 && b.state == "UP")
        .count()
}

type Inner = FutureProducer<ProducerContext>;

/// One producer instance and the health of that instance.
struct Generation {
    producer: Inner,
    health: Arc<Health>,
}

/// A producer with its health, replaced by [`Self::maintain`] when it can no longer publish.
/// Cheap to clone; clones share the current producer.
#[derive(Clone)]
pub struct ManagedProducer {
    name: &'static str,
    /// Shared, not copied: clones of the producer travel with every participation record.
    config: Arc<ClientConfig>,
    current: Arc<RwLock<Arc<Generation>>>,
    /// When the producer was last replaced; `None` before the first time.
    last_rebuild: Arc<Mutex<Option<Instant>>>,
    rebuilds: Arc<AtomicU64>,
    /// Whether the last [`Self::check`] found the topic.
    topic_present: Arc<AtomicBool>,
    /// Broker checks failed in a row (see [`Self::maintain`]).
    lost_checks: Arc<AtomicU32>,
}

impl std::fmt::Debug for ManagedProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagedProducer")
            .field("name", &self.name)
            .field("rebuilds", &self.rebuilds.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl ManagedProducer {
    /// `name` labels logs and metrics (`issue`, `participation`, `dead-letter`).
    pub fn new(name: &'static str, mut config: ClientConfig) -> Result<Self, MessagingError> {
        // Statistics feed "is a broker connected" into readiness.
        config.set("statistics.interval.ms", "1000");
        let generation = Self::build(name, &config)?;
        Ok(Self {
            name,
            config: Arc::new(config),
            current: Arc::new(RwLock::new(Arc::new(generation))),
            last_rebuild: Arc::new(Mutex::new(None)),
            rebuilds: Arc::new(AtomicU64::new(0)),
            topic_present: Arc::new(AtomicBool::new(true)),
            lost_checks: Arc::new(AtomicU32::new(0)),
        })
    }

    fn build(name: &'static str, config: &ClientConfig) -> Result<Generation, MessagingError> {
        let health = Arc::new(Health::fresh());
        let producer = config.create_with_context(ProducerContext {
            name,
            health: health.clone(),
        })?;
        Ok(Generation { producer, health })
    }

    fn generation(&self) -> Option<Arc<Generation>> {
        self.current.read().ok().map(|g| g.clone())
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// How many times the producer was replaced since start.
    pub fn rebuilds(&self) -> u64 {
        self.rebuilds.load(Ordering::Relaxed)
    }

    /// Queues `record` and waits for its delivery report. librdkafka's `message.timeout.ms`
    /// bounds the wait; `guard` is only a safety net above it, and hitting it counts as
    /// uncertain (the message may still be delivered), never as "not sent".
    pub async fn deliver<K, P>(
        &self,
        record: FutureRecord<'_, K, P>,
        guard: Duration,
    ) -> Result<(), DeliveryFailure>
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        let Some(generation) = self.generation() else {
            return Err(DeliveryFailure::NotSent(KafkaError::Canceled));
        };
        let delivery = match generation.producer.send_result(record) {
            Ok(delivery) => delivery,
            Err((error, _record)) => {
                // Refused before it was queued: certainly not in the topic.
                generation.health.failed(&error.to_string());
                return Err(DeliveryFailure::NotSent(error));
            }
        };
        let result = match tokio::time::timeout(guard, delivery).await {
            Ok(Ok(Ok(_))) => Ok(()),
            Ok(Ok(Err((error, _message)))) => Err(DeliveryFailure::from_report(error)),
            // The producer instance was dropped (replaced) with the message in it.
            Ok(Err(_canceled)) => Err(DeliveryFailure::Uncertain(KafkaError::Canceled)),
            Err(_elapsed) => Err(DeliveryFailure::Uncertain(KafkaError::MessageProduction(
                RDKafkaErrorCode::MessageTimedOut,
            ))),
        };
        match &result {
            Ok(()) => generation.health.succeeded(),
            Err(failure) => generation.health.failed(&failure.error().to_string()),
        }
        result
    }

    /// `Ok` when the last delivery went through (or none failed since the producer was
    /// built), no fatal error was raised and a broker is connected; else why not.
    pub fn can_publish(&self) -> Result<(), String> {
        let Some(generation) = self.generation() else {
            return Err("producer unavailable".to_owned());
        };
        let health = &generation.health;
        if !self.topic_present.load(Ordering::Relaxed) {
            return Err(format!(
                "the broker answers without the {} producer's topic",
                self.name
            ));
        }
        if health.fatal.load(Ordering::Relaxed) {
            return Err(format!("{} producer failed fatally", self.name));
        }
        if let Some((failures, _)) = health.streak() {
            return Err(format!(
                "the last {failures} deliveries of the {} producer failed: {}",
                self.name,
                health.last_error()
            ));
        }
        if health.brokers_up.load(Ordering::Relaxed) == 0 {
            return Err(format!(
                "the {} producer has no connection to any broker",
                self.name
            ));
        }
        Ok(())
    }

    /// Replaces the producer when it can no longer publish, or may not be able to, while the
    /// broker answers (`broker_answers`: a metadata request just succeeded):
    /// - after a fatal error (fenced, `UNKNOWN_PRODUCER_ID`): at once;
    /// - after deliveries kept failing for [`REBUILD_AFTER_STREAK`] with no success;
    /// - when the broker answers again after an outage of [`LOST_CHECKS`] checks or more: a
    ///   stalled or restarted broker may have forgotten or fenced this producer's id, and
    ///   finding out by failing users' publishes first costs seconds.
    ///
    /// Returns whether it rebuilt. Messages still in the old instance fail as
    /// [`DeliveryFailure::Uncertain`] and are the callers' to resolve.
    pub fn maintain(&self, broker_answers: bool) -> Result<bool, MessagingError> {
        let Some(generation) = self.generation() else {
            return Ok(false);
        };
        let fatal = generation.health.fatal.load(Ordering::Relaxed)
            || generation.producer.client().fatal_error().is_some();
        if !broker_answers {
            self.lost_checks.fetch_add(1, Ordering::Relaxed);
        }
        let reason = if fatal {
            "it failed fatally"
        } else if !broker_answers {
            return Ok(false);
        } else if self.lost_checks.load(Ordering::Relaxed) >= LOST_CHECKS {
            "the broker is back after an outage"
        } else if generation
            .health
            .streak()
            .is_some_and(|(_, age)| age >= REBUILD_AFTER_STREAK)
        {
            "its deliveries kept failing"
        } else {
            self.lost_checks.store(0, Ordering::Relaxed);
            return Ok(false);
        };
        {
            let Ok(mut last) = self.last_rebuild.lock() else {
                return Ok(false);
            };
            if last.is_some_and(|at| at.elapsed() < MIN_REBUILD_INTERVAL) && !fatal {
                return Ok(false);
            }
            *last = Some(Instant::now());
        }
        let replacement = Arc::new(Self::build(self.name, &self.config)?);
        let old = match self.current.write() {
            Ok(mut current) => std::mem::replace(&mut *current, replacement),
            Err(_) => return Ok(false),
        };
        self.lost_checks.store(0, Ordering::Relaxed);
        self.rebuilds.fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            producer = self.name,
            reason,
            last_error = %old.health.last_error(),
            "replaced the producer with a new one"
        );
        // Dropping a producer purges and flushes for up to 500 ms: not on an async worker.
        tokio::task::spawn_blocking(move || drop(old));
        Ok(true)
    }

    /// Metadata of `topic` through this producer's own connection (readiness): the broker
    /// answers and has the topic with partitions. A broker that answers without the topic
    /// (restarted empty) makes [`Self::can_publish`] false until the topic is back, so nothing
    /// is accepted into a topic no consumer reads.
    pub async fn check(&self, topic: &str, timeout: Duration) -> Result<(), MessagingError> {
        let Some(generation) = self.generation() else {
            return Err(MessagingError::Client(KafkaError::Canceled));
        };
        let name = topic.to_owned();
        let found = off_runtime(timeout, move || {
            let metadata = generation
                .producer
                .client()
                .fetch_metadata(Some(&name), timeout)?;
            Ok(partitions_of(&metadata, &name).is_ok())
        })
        .await?;
        if self.topic_present.swap(found, Ordering::Relaxed) != found && found {
            tracing::info!(producer = self.name, topic, "topic is back");
        }
        if found {
            Ok(())
        } else {
            Err(MessagingError::MissingTopic {
                topic: topic.to_owned(),
                address: self
                    .config
                    .get("bootstrap.servers")
                    .unwrap_or_default()
                    .to_owned(),
                reason: "the broker answers without it".to_owned(),
            })
        }
    }

    /// Waits for queued messages (before the process exits).
    pub fn flush(&self, timeout: Duration) {
        if let Some(generation) = self.generation()
            && let Err(error) = generation.producer.flush(Timeout::After(timeout))
        {
            tracing::error!(producer = self.name, %error, "messages still unacknowledged at shutdown");
        }
    }
}
