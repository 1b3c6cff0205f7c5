//! Readiness state, kept by each binary's background watch so `/health/ready` answers at once,
//! and logged once per change of state: an outage is one ERROR line with its reason when it
//! starts and one INFO line when it ends, not a line per check every second.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde_json::{Value, json};

/// How often readiness watches check their dependencies.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Ticks every [`CHECK_INTERVAL`]; a check slower than that delays the next one rather than
/// letting missed ticks fire back to back.
pub fn ticker() -> tokio::time::Interval {
    let mut ticker = tokio::time::interval(CHECK_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker
}

/// `UP` or `DOWN`, as the readiness bodies say it.
pub fn status(up: bool) -> &'static str {
    if up { "UP" } else { "DOWN" }
}

/// One dependency readiness depends on: whether it answered its last check, and why not.
#[derive(Debug)]
pub struct Check {
    name: &'static str,
    up: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl Check {
    /// Up until a check says otherwise: start-up probed every dependency before serving.
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            up: AtomicBool::new(true),
            last_error: Mutex::new(None),
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Records the latest check; logs only when it changes the state (ERROR with the reason
    /// when lost, INFO when back). Returns whether the dependency is up.
    pub fn record(&self, result: Result<(), String>) -> bool {
        let up = result.is_ok();
        let was_up = self.up.swap(up, Ordering::Relaxed);
        match (&result, was_up) {
            (Err(error), true) => {
                tracing::error!(dependency = self.name, %error, "dependency lost: not ready");
            }
            (Ok(()), false) => tracing::info!(dependency = self.name, "dependency back: ready"),
            _ => {}
        }
        // A plain value that a panicking writer cannot leave half-updated.
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = result.err();
        up
    }

    /// `{"status": "UP"}`, or `{"status": "DOWN", "error": <the last reason>}`.
    pub fn report(&self) -> Value {
        match self.last_error() {
            None if self.is_up() => json!({ "status": status(true) }),
            error => json!({ "status": status(false), "error": error }),
        }
    }
}

/// Readiness as a whole, logged once per change: INFO `ready`, ERROR `not ready` with the
/// checks when it stops being ready. Before it was ever ready it says `not ready yet` at INFO:
/// starting up (joining a consumer group) is not an incident.
#[derive(Debug, Default)]
pub struct ReadinessLog {
    was_ready: Option<bool>,
}

impl ReadinessLog {
    /// Records the latest verdict; `checks` says why, and is logged with a change.
    pub fn record(&mut self, ready: bool, checks: &Value) {
        match (self.was_ready.replace(ready), ready) {
            (Some(before), now) if before == now => {}
            (_, true) => tracing::info!(%checks, "ready"),
            (None, false) => tracing::info!(%checks, "not ready yet"),
            (Some(_), false) => tracing::error!(%checks, "not ready"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_reports_its_last_state_and_reason() {
        let check = Check::new("redis");
        assert_eq!(check.report(), json!({ "status": "UP" }));
        assert!(!check.record(Err("refused".to_owned())));
        assert!(!check.record(Err("timed out".to_owned())));
        assert_eq!(
            check.report(),
            json!({ "status": "DOWN", "error": "timed out" })
        );
        assert!(check.record(Ok(())));
        assert!(check.is_up());
        assert_eq!(check.last_error(), None);
    }
}
