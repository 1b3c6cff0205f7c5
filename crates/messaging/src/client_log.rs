//! librdkafka's own log lines and error callbacks, kept to what a person should read.
//!
//! While a broker is away librdkafka reports every failed reconnect (`Connection refused`,
//! `Disconnected`, `all brokers down`), over a hundred ERROR lines in seconds per process:
//! noise that teaches people to ignore errors. The state change itself is logged once by
//! whoever watches readiness; here each repeated line is logged at WARN at most once per
//! [`QUIET_PERIOD`] per facility, with how many were left out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

/// One line per facility per this period for repeated connection noise.
pub const QUIET_PERIOD: Duration = Duration::from_secs(30);

/// Rate limit of repeated librdkafka log lines, per facility.
#[derive(Debug, Default)]
pub struct LogLimiter {
    seen: Mutex<HashMap<String, (Instant, u64)>>,
}

/// Whether a librdkafka line is about the connection to a broker going or staying away.
fn is_connection_noise(fac: &str, message: &str) -> bool {
    const MARKERS: [&str; 8] = [
        "Connection refused",
        "Disconnected",
        "connection reset",
        "Connect to",
        "brokers are down",
        "timed out",
        "Transport failure",
        "Receive failed",
    ];
    matches!(fac, "FAIL" | "ERROR" | "BROKERFAIL" | "REQTMOUT")
        || MARKERS.iter().any(|m| message.contains(m))
}

impl LogLimiter {
    /// `Some(left out since the last line)` when a line of `key` may be logged now.
    fn admit(&self, key: &str) -> Option<u64> {
        let Ok(mut seen) = self.seen.lock() else {
            return Some(0);
        };
        let now = Instant::now();
        match seen.get_mut(key) {
            Some((last, suppressed)) if now.duration_since(*last) < QUIET_PERIOD => {
                *suppressed += 1;
                None
            }
            Some((last, suppressed)) => {
                *last = now;
                Some(std::mem::take(suppressed))
            }
            None => {
                seen.insert(key.to_owned(), (now, 0));
                Some(0)
            }
        }
    }

    /// A librdkafka log line: connection noise at WARN, rate-limited; everything else at the
    /// level librdkafka gave it.
    pub fn log(&self, client: &str, level: RDKafkaLogLevel, fac: &str, message: &str) {
        let severe = matches!(
            level,
            RDKafkaLogLevel::Emerg
                | RDKafkaLogLevel::Alert
                | RDKafkaLogLevel::Critical
                | RDKafkaLogLevel::Error
                | RDKafkaLogLevel::Warning
        );
        if severe && is_connection_noise(fac, message) {
            if let Some(suppressed) = self.admit(fac) {
                tracing::warn!(target: "librdkafka", client, fac, suppressed, "{message}");
            }
            return;
        }
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", client, fac, "{message}")
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(target: "librdkafka", client, fac, "{message}")
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", client, fac, "{message}");
            }
            RDKafkaLogLevel::Debug => {
                tracing::debug!(target: "librdkafka", client, fac, "{message}")
            }
        }
    }

    /// librdkafka's error callback: transport failures and "all brokers down" repeat for as
    /// long as a broker is away, so they are rate-limited WARNs; other errors stay ERROR.
    pub fn error(&self, client: &str, error: &KafkaError, reason: &str) {
        let code = error.rdkafka_error_code();
        let repeated = matches!(
            code,
            Some(
                RDKafkaErrorCode::BrokerTransportFailure
                    | RDKafkaErrorCode::AllBrokersDown
                    | RDKafkaErrorCode::MessageTimedOut
                    | RDKafkaErrorCode::OperationTimedOut
                    | RDKafkaErrorCode::RequestTimedOut
            )
        );
        if !repeated {
            tracing::error!(target: "librdkafka", client, %error, reason, "Kafka client error");
            return;
        }
        if let Some(suppressed) = self.admit(&format!("error:{code:?}")) {
            tracing::warn!(target: "librdkafka", client, %error, reason, suppressed, "Kafka client error (repeats are rate-limited)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_lines_are_admitted_once_per_period() {
        let limiter = LogLimiter::default();
        assert_eq!(limiter.admit("FAIL"), Some(0));
        for _ in 0..100 {
            assert_eq!(limiter.admit("FAIL"), None);
        }
        // Another facility has its own budget.
        assert_eq!(limiter.admit("BROKERFAIL"), Some(0));
    }

    #[test]
    fn connection_noise_is_recognised() {
        assert!(is_connection_noise(
            "FAIL",
            "127.0.0.1:9092/bootstrap: Connect to ipv4#127.0.0.1:9092 failed: Connection refused"
        ));
        assert!(!is_connection_noise(
            "CONFWARN",
            "Configuration property X is deprecated"
        ));
    }
}
