//! librdkafka reports a lost broker again at every reconnect attempt, per broker, through its
//! log, its error callback and the consumer's poll (120+ ERROR lines in seconds). Whoever owns
//! the connection state logs its change once at ERROR (the consumer's readiness, for one);
//! the repeats go to debug, so an ERROR in the logs stays worth reading. Every client context
//! (the consumer's, `ManagedProducer`'s) logs through here.

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

/// librdkafka's error callback: connection repeats at debug, the rest at ERROR.
pub fn librdkafka_error(error: &KafkaError, reason: &str) {
    if is_connection_repeat(error) {
        tracing::debug!(%error, reason, "librdkafka (connection state is logged on change)");
    } else {
        tracing::error!(%error, reason, "librdkafka");
    }
}

/// Whether `error` only repeats that the broker cannot be reached.
pub fn is_connection_repeat(error: &KafkaError) -> bool {
    let code = match error {
        KafkaError::Global(code) | KafkaError::MessageConsumption(code) => *code,
        _ => return false,
    };
    matches!(
        code,
        RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::AllBrokersDown
            | RDKafkaErrorCode::Resolve
    )
}

/// Logs an error of the consumer's poll: connection repeats at debug, the rest at ERROR.
pub fn consumer_error(error: &KafkaError) {
    if is_connection_repeat(error) {
        tracing::debug!(%error, "Kafka consumer error (connection state is logged on change)");
    } else {
        tracing::error!(%error, "Kafka consumer error");
    }
}

/// librdkafka's own log lines, at their level, except its connection failures ("FAIL"), which
/// go to debug.
pub fn librdkafka_log(level: RDKafkaLogLevel, facility: &str, message: &str) {
    if facility == "FAIL" {
        tracing::debug!(target: "librdkafka", "librdkafka: {facility} {message}");
        return;
    }
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => {
            tracing::error!(target: "librdkafka", "librdkafka: {facility} {message}");
        }
        RDKafkaLogLevel::Warning => {
            tracing::warn!(target: "librdkafka", "librdkafka: {facility} {message}");
        }
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(target: "librdkafka", "librdkafka: {facility} {message}");
        }
        RDKafkaLogLevel::Debug => {
            tracing::debug!(target: "librdkafka", "librdkafka: {facility} {message}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_connection_repeats_are_quieted() {
        assert!(is_connection_repeat(&KafkaError::Global(
            RDKafkaErrorCode::AllBrokersDown
        )));
        assert!(is_connection_repeat(&KafkaError::MessageConsumption(
            RDKafkaErrorCode::BrokerTransportFailure
        )));
        assert!(!is_connection_repeat(&KafkaError::MessageConsumption(
            RDKafkaErrorCode::UnknownTopicOrPartition
        )));
        assert!(!is_connection_repeat(&KafkaError::Global(
            RDKafkaErrorCode::Fatal
        )));
    }
}
