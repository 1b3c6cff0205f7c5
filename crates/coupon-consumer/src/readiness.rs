//! What `/health/ready` answers. Ready means the consumer can make progress:
//! - **kafka**: a broker connection is up (librdkafka statistics) *and* the broker answered a
//!   metadata request within [`BROKER_ANSWER`] at the last probe. librdkafka keeps a connection
//!   to a hung broker "UP" for `socket.timeout.ms` (60 s), so the statistics alone would say
//!   ready for a minute after the broker stopped answering.
//! - **mysql**: `SELECT 1` answered at the last check (every second).
//! - **assignment**: this member holds partitions, or the group has nothing for it: it holds
//!   none (more members than partitions) and every partition is either fully consumed or its
//!   committed offset moved recently, so other members are at work on it. Joining,
//!   rebalancing, or holding nothing while a partition with a backlog makes no progress (its
//!   holder hung, or a departed member the group still counts) is not ready. Counted from
//!   offsets rather than from the group's member list, which not every broker describes.
//! - **batch**: no batch has been in progress longer than one attempt can take plus one backoff
//!   (from config): a longer one is stuck, whatever the other checks say.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use couponrush_ops::Check;
use couponrush_ops::readiness::status;
use serde_json::{Value, json};

/// How long the broker probe waits for an answer.
pub const BROKER_ANSWER: Duration = Duration::from_secs(2);

/// The signals readiness is made of; shared by the callbacks, the probes and the worker.
#[derive(Debug)]
pub struct Health {
    /// A broker connection is up in librdkafka's statistics.
    pub kafka_connected: AtomicBool,
    /// The broker answered the last probe.
    pub broker_answered: AtomicBool,
    /// MySQL answered the last `SELECT 1`; a change is logged once.
    pub mysql: Check,
    group: Mutex<Group>,
    batch_started: Mutex<Option<Instant>>,
    stuck_after: Duration,
}

#[derive(Debug, Default, Clone, Copy)]
struct Group {
    /// Partitions assigned at the last rebalance; `None` before the first one and between a
    /// revocation and the next assignment.
    assigned: Option<usize>,
    /// Partitions of the topic, as the broker last said.
    partitions: Option<usize>,
    /// While this member holds none: partitions with a backlog whose committed offset did not
    /// move recently (`None`: not counted yet).
    stalled: Option<usize>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data are plain values that a panicking writer cannot leave half-updated.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Health {
    /// `stuck_after`: how long a batch may be in progress before it counts as stuck.
    pub fn new(stuck_after: Duration) -> Self {
        Self {
            kafka_connected: AtomicBool::new(true),
            broker_answered: AtomicBool::new(true),
            mysql: Check::new("mysql"),
            group: Mutex::new(Group::default()),
            batch_started: Mutex::new(None),
            stuck_after,
        }
    }

    /// A rebalance assigned `partitions` (`None`: they were revoked, a rebalance is on).
    pub fn set_assigned(&self, partitions: Option<usize>) {
        lock(&self.group).assigned = partitions;
    }

    pub fn assigned(&self) -> Option<usize> {
        lock(&self.group).assigned
    }

    /// What the broker says of the topic and, while this member is idle, of its partitions.
    pub fn set_topic(&self, partitions: usize, stalled: Option<usize>) {
        let mut group = lock(&self.group);
        group.partitions = Some(partitions);
        group.stalled = stalled;
    }

    pub fn batch_started(&self) {
        *lock(&self.batch_started) = Some(Instant::now());
    }

    pub fn batch_finished(&self) {
        *lock(&self.batch_started) = None;
    }

    pub fn kafka_up(&self) -> bool {
        self.kafka_connected.load(Ordering::Relaxed) && self.broker_answered.load(Ordering::Relaxed)
    }

    /// Ready or not, and the JSON body that says why.
    pub fn verdict(&self) -> (bool, Value) {
        let kafka = self.kafka_up();
        let mysql = self.mysql.is_up();
        let (assignment, assignment_body) = self.assignment();
        let in_progress = lock(&self.batch_started).map(|started| started.elapsed());
        let stuck = in_progress.is_some_and(|d| d > self.stuck_after);
        let up = kafka && mysql && assignment && !stuck;
        let body = json!({
            "status": status(up),
            "checks": {
                "kafka": {
                    "status": status(kafka),
                    "connected": self.kafka_connected.load(Ordering::Relaxed),
                    "answering": self.broker_answered.load(Ordering::Relaxed),
                },
                "mysql": { "status": status(mysql) },
                "assignment": assignment_body,
                "batch": {
                    "status": status(!stuck),
                    "in_progress_ms": in_progress.map(|d| d.as_millis()),
                    "stuck_after_ms": self.stuck_after.as_millis(),
                },
            },
        });
        (up, body)
    }

    fn assignment(&self) -> (bool, Value) {
        let group = *lock(&self.group);
        let (up, reason) = match (group.assigned, group.stalled) {
            (None, _) => (false, "not in the group yet: joining or rebalancing"),
            (Some(0), Some(0)) => (
                true,
                "nothing for this member: other members keep every partition consumed",
            ),
            (Some(0), Some(_)) => (
                false,
                "no partitions assigned while partitions with a backlog make no progress",
            ),
            (Some(0), None) => (
                false,
                "no partitions assigned; the group's progress unknown",
            ),
            (Some(_), _) => (true, "consuming its partitions"),
        };
        let body = json!({
            "status": status(up),
            "partitions": group.assigned,
            "topic_partitions": group.partitions,
            "stalled_partitions": group.stalled,
            "reason": reason,
        });
        (up, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(health: &Health) -> bool {
        health.verdict().0
    }

    #[test]
    fn needs_an_assignment_or_a_group_with_nothing_for_it() {
        let health = Health::new(Duration::from_secs(10));
        assert!(!ready(&health), "not ready before joining");
        health.set_assigned(Some(2));
        assert!(ready(&health));
        health.set_assigned(None);
        assert!(!ready(&health), "rebalancing");
        health.set_assigned(Some(0));
        assert!(!ready(&health), "idle, the group's progress not known yet");
        health.set_topic(3, Some(1));
        assert!(!ready(&health), "idle while a backlog is not consumed");
        health.set_topic(3, Some(0));
        assert!(ready(&health), "idle, every partition consumed by others");
    }

    #[test]
    fn a_broker_that_stops_answering_or_a_stuck_batch_is_not_ready() {
        let health = Health::new(Duration::ZERO);
        health.set_assigned(Some(1));
        assert!(ready(&health));
        health.broker_answered.store(false, Ordering::Relaxed);
        let (up, body) = health.verdict();
        assert!(!up);
        assert_eq!(body["checks"]["kafka"]["answering"], false);
        health.broker_answered.store(true, Ordering::Relaxed);
        health.batch_started();
        std::thread::sleep(Duration::from_millis(2));
        let (up, body) = health.verdict();
        assert!(!up);
        assert_eq!(body["checks"]["batch"]["status"], "DOWN");
        health.batch_finished();
        assert!(ready(&health));
    }
}
