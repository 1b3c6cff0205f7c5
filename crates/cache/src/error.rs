/// Failures talking to Redis.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("Redis at {address} did not answer within {timeout_ms} ms")]
    Timeout { address: String, timeout_ms: u128 },
    #[error("Redis at {address} is unreachable: {reason}")]
    Unavailable { address: String, reason: String },
    #[error("Redis command failed: {0}")]
    Command(#[from] redis::RedisError),
    #[error("unexpected reply from Redis: {0}")]
    Corrupt(String),
    /// An accepted reservation that fewer replicas than asked acknowledged in time. It was
    /// made: the caller must give it back.
    #[error(
        "Redis at {address}: {acked} of {wanted} replicas acknowledged the reservation in time"
    )]
    NotReplicated {
        address: String,
        acked: u32,
        wanted: u32,
    },
}
