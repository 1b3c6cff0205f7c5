use std::time::Duration;

use serde::Deserialize;

use crate::secret::Secret;

mod auth;
mod http;
mod kafka;
mod mysql;
mod outbox;
mod rate_limit;
mod redis;
mod smoke;

pub(crate) use auth::parse_network;
pub use auth::{AuthMode, AuthSettings, JwtAlgorithm};
pub use http::HttpSettings;
pub use kafka::{KafkaSecurityProtocol, KafkaSettings, SaslMechanism};
pub use mysql::{MysqlSettings, MysqlSslMode};
pub use outbox::OutboxSettings;
pub use rate_limit::RateLimitSettings;
pub use redis::{RedisMode, RedisSettings};
pub use smoke::SmokeSettings;

/// Deployment profile. `production` turns on the checks that keep a local default from
/// reaching a real deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    Development,
    Production,
}

/// The whole configuration. Unknown keys are errors, so a misspelt variable is caught at
/// start-up instead of silently falling back to a default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub profile: Profile,
    pub http: HttpSettings,
    pub admin: AdminSettings,
    pub auth: AuthSettings,
    pub mysql: MysqlSettings,
    pub redis: RedisSettings,
    pub kafka: KafkaSettings,
    pub message_signing: MessageSigningSettings,
    pub consumer: ConsumerSettings,
    pub startup: StartupSettings,
    pub log: LogSettings,
    pub telemetry: TelemetrySettings,
    pub smoke: SmokeSettings,
    pub rate_limit: RateLimitSettings,
    pub sold_out_gate: SoldOutGateSettings,
    pub outbox: OutboxSettings,
}

/// issuer-api's sold-out gate (docs/scaling.md, "The sold-out gate"): after Redis said
/// SOLD_OUT for a coupon, the API answers SOLD_OUT itself to whoever holds no reservation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoldOutGateSettings {
    /// How long one SOLD_OUT from Redis is trusted; 0: off, every request asks Redis.
    pub lease_ms: u64,
    /// Largest participant count of a coupon whose participants the API copies to do so.
    pub max_participants: usize,
}

impl SoldOutGateSettings {
    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    pub token: Secret,
}

/// HMAC keys over issue messages, shared by issuer-api (signs with the current key) and
/// coupon-consumer (accepts the current or the previous key). Ids name the key in each
/// message's signature header, so a rotation never needs both sides switched at once.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageSigningSettings {
    #[serde(deserialize_with = "crate::lenient::text")]
    pub key_id: String,
    /// Empty: signing off (development only; the production profile refuses it).
    pub key: Secret,
    #[serde(deserialize_with = "crate::lenient::text")]
    pub previous_key_id: String,
    /// The key being rotated out, still accepted by the consumer; empty when none.
    pub previous_key: Secret,
}

impl MessageSigningSettings {
    /// Signing with `key` under `key_id`, and accepting `previous` (`(id, key)`) during a
    /// rotation: settings built in code rather than read from configuration.
    pub fn new(key_id: &str, key: &str, previous: Option<(&str, &str)>) -> Self {
        let (previous_key_id, previous_key) = previous.unwrap_or_default();
        Self {
            key_id: key_id.to_owned(),
            key: Secret::new(key),
            previous_key_id: previous_key_id.to_owned(),
            previous_key: Secret::new(previous_key),
        }
    }

    /// Whether messages are signed and verified at all.
    pub fn enabled(&self) -> bool {
        !self.key.is_empty()
    }

    /// `(id, key)` of the current key, then of the previous one, for those that are set.
    pub fn keys(&self) -> impl Iterator<Item = (&str, &Secret)> {
        [
            (self.key_id.as_str(), &self.key),
            (self.previous_key_id.as_str(), &self.previous_key),
        ]
        .into_iter()
        .filter(|(_, key)| !key.is_empty())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerSettings {
    #[serde(deserialize_with = "crate::lenient::text")]
    pub ops_bind: String,
    pub batch_size: usize,
    pub batch_wait_ms: u64,
    pub max_attempts: u32,
    pub max_poll_interval_ms: u64,
    pub commit_interval_ms: u64,
}

impl ConsumerSettings {
    pub fn batch_wait(&self) -> Duration {
        Duration::from_millis(self.batch_wait_ms)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartupSettings {
    pub probe_timeout_ms: u64,
}

impl StartupSettings {
    pub fn probe_timeout(&self) -> Duration {
        Duration::from_millis(self.probe_timeout_ms)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Auto,
    Json,
    Text,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    #[serde(deserialize_with = "crate::lenient::text")]
    pub filter: String,
}

/// Trace export (OpenTelemetry over OTLP/HTTP).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    #[serde(deserialize_with = "crate::lenient::text")]
    pub otlp_endpoint: String,
    pub sample_ratio: f64,
    #[serde(deserialize_with = "crate::lenient::text")]
    pub instance: String,
    #[serde(deserialize_with = "crate::lenient::text")]
    pub filter: String,
    pub export_timeout_ms: u64,
}

impl TelemetrySettings {
    /// The configured collector address, if any (the standard OTEL_* variables are read by
    /// the telemetry crate, not here, so that they keep their own meaning).
    pub fn otlp_endpoint(&self) -> Option<&str> {
        Some(self.otlp_endpoint.trim()).filter(|e| !e.is_empty())
    }

    pub fn export_timeout(&self) -> Duration {
        Duration::from_millis(self.export_timeout_ms)
    }
}

/// A path setting: `None` when empty.
pub fn path_setting(value: &str) -> Option<&std::path::Path> {
    let value = value.trim();
    (!value.is_empty()).then(|| std::path::Path::new(value))
}

impl Settings {
    /// The backends this configuration reaches over plain text, each with the setting that
    /// says so: production logs a warning naming them at start-up (not refused: an in-cluster
    /// network may be trusted, see docs/security.md).
    pub fn plaintext_backends(&self) -> Vec<&'static str> {
        let mut plain = Vec::new();
        if self.kafka.security_protocol == KafkaSecurityProtocol::Plaintext {
            plain.push("Kafka (kafka.security_protocol = plaintext)");
        } else if self.kafka.security_protocol == KafkaSecurityProtocol::SaslPlaintext {
            plain.push("Kafka (kafka.security_protocol = sasl_plaintext: credentials, no TLS)");
        }
        if self.mysql.ssl_mode == MysqlSslMode::Disabled {
            plain.push("MySQL (mysql.ssl_mode = disabled)");
        }
        if !self.redis.tls() {
            plain.push(match self.redis.mode {
                RedisMode::Standalone => "Redis (redis.url is redis://, not rediss://)",
                RedisMode::Cluster => "Redis (redis.cluster_nodes are redis://, not rediss://)",
            });
        }
        plain
    }

    /// Whether logs should be JSON: explicit choice, else JSON in production.
    pub fn json_logs(&self) -> bool {
        match self.log.format {
            LogFormat::Json => true,
            LogFormat::Text => false,
            LogFormat::Auto => self.profile == Profile::Production,
        }
    }
}
