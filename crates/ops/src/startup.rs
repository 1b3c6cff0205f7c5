//! Start-up probes: every binary proves each dependency it uses answers, within
//! `startup.probe_timeout_ms`, before it serves or consumes anything, and refuses to start
//! otherwise. The error reads `start-up check failed for <dependency>`, caused by the client's
//! own error, which names the address (`Redis at 127.0.0.1:6379 is unreachable: …`); the
//! start-up refusal tests look for both.

use std::fmt;
use std::time::Duration;

use couponrush_cache::ReservationStore;
use couponrush_config::{KafkaSettings, StartupSettings};
use couponrush_messaging::probe_topic;
use couponrush_storage::Database;

/// A dependency a binary probes at start-up, as its refusal names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependency {
    Redis,
    MySql,
    /// The broker, serving the topic probed.
    Kafka,
    /// The broker, serving the dead-letter topic (a consumer that cannot dead-letter would
    /// hold a poison message's partition for ever).
    DeadLetterTopic,
}

impl fmt::Display for Dependency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Redis => "Redis",
            Self::MySql => "MySQL",
            Self::Kafka => "Kafka",
            Self::DeadLetterTopic => "Kafka (dead-letter topic)",
        })
    }
}

/// A dependency refused or did not answer at start-up; the cause names its address.
#[derive(Debug, thiserror::Error)]
#[error("start-up check failed for {dependency}")]
pub struct StartupError {
    pub dependency: Dependency,
    #[source]
    cause: Box<dyn std::error::Error + Send + Sync>,
}

impl StartupError {
    fn new(dependency: Dependency, cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            dependency,
            cause: Box::new(cause),
        }
    }
}

/// Runs the start-up probes of one binary, each within `startup.probe_timeout_ms`.
#[derive(Debug, Clone, Copy)]
pub struct StartupProbes {
    timeout: Duration,
}

impl StartupProbes {
    pub fn new(settings: &StartupSettings) -> Self {
        Self {
            timeout: settings.probe_timeout(),
        }
    }

    /// The bound of each probe (`startup.probe_timeout_ms`).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    // The probes below await the client directly rather than through `check`: each level of
    // nested future deepens the type of the binary's main future, which rustc must lay out.

    /// Redis answers `PING`.
    pub async fn redis(&self, store: &ReservationStore) -> Result<(), StartupError> {
        let answer = store.probe(self.timeout).await;
        answer.map_err(|cause| StartupError::new(Dependency::Redis, cause))
    }

    /// MySQL answers `SELECT 1`.
    pub async fn mysql(&self, db: &Database) -> Result<(), StartupError> {
        let answer = db.probe(self.timeout).await;
        answer.map_err(|cause| StartupError::new(Dependency::MySql, cause))
    }

    /// The broker serves `topic`; returns its partition count.
    pub async fn kafka(&self, kafka: &KafkaSettings, topic: &str) -> Result<usize, StartupError> {
        let answer = probe_topic(kafka, topic, self.timeout).await;
        answer.map_err(|cause| StartupError::new(Dependency::Kafka, cause))
    }

    /// The broker serves `kafka.dlq_topic`; returns its partition count.
    pub async fn dead_letter_topic(&self, kafka: &KafkaSettings) -> Result<usize, StartupError> {
        let answer = probe_topic(kafka, &kafka.dlq_topic, self.timeout).await;
        answer.map_err(|cause| StartupError::new(Dependency::DeadLetterTopic, cause))
    }

    /// Any other first contact with `dependency` (e.g. creating the database before migrating
    /// it), refused the same way. The probe is bounded by its own client settings.
    pub async fn check<T, E>(
        &self,
        dependency: Dependency,
        probe: impl Future<Output = Result<T, E>>,
    ) -> Result<T, StartupError>
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        probe
            .await
            .map_err(|cause| StartupError::new(dependency, cause))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("MySQL at 127.0.0.1:1 is unreachable: connection refused")]
    struct Refused;

    /// The refusal tests (`crates/*/tests/startup_refusals.rs`, `testkit::Refusal`) look for
    /// this text and the address in the cause chain.
    #[tokio::test]
    async fn a_failed_probe_names_the_dependency_then_the_address() {
        let probes = StartupProbes {
            timeout: Duration::from_secs(1),
        };
        let error = probes
            .check(Dependency::MySql, async { Err::<(), _>(Refused) })
            .await
            .err()
            .map(|e| {
                let cause = std::error::Error::source(&e).map(ToString::to_string);
                (e.to_string(), cause)
            });
        assert_eq!(
            error,
            Some((
                "start-up check failed for MySQL".to_owned(),
                Some("MySQL at 127.0.0.1:1 is unreachable: connection refused".to_owned())
            ))
        );
        assert_eq!(
            Dependency::DeadLetterTopic.to_string(),
            "Kafka (dead-letter topic)"
        );
    }
}
