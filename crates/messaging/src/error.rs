use rdkafka::error::KafkaError;

/// Failures talking to the broker.
#[derive(Debug, thiserror::Error)]
pub enum MessagingError {
    #[error("Kafka broker at {address} did not answer within {timeout_ms} ms: {reason}")]
    Unreachable {
        address: String,
        timeout_ms: u128,
        reason: String,
    },
    #[error("Kafka broker at {address} refused: {reason}")]
    Refused { address: String, reason: String },
    #[error("topic {topic:?} is not available on the Kafka broker at {address}: {reason}")]
    MissingTopic {
        topic: String,
        address: String,
        reason: String,
    },
    #[error("the broker rejected the message: {0}")]
    PublishRejected(KafkaError),
    #[error("Kafka client error: {0}")]
    Client(#[from] KafkaError),
}
