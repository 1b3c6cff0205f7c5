use std::time::Duration;

use serde::Deserialize;

use crate::secret::Secret;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSettings {
    /// Comma-separated `host:port` list.
    #[serde(deserialize_with = "crate::lenient::text")]
    pub bootstrap_servers: String,
    #[serde(deserialize_with = "crate::lenient::text")]
    pub topic: String,
    #[serde(deserialize_with = "crate::lenient::text")]
    pub dlq_topic: String,
    #[serde(deserialize_with = "crate::lenient::text")]
    pub consumer_group: String,
    #[serde(deserialize_with = "crate::lenient::text")]
    pub client_id: String,
    pub publish_timeout_ms: u64,
    pub linger_ms: u64,
    pub participation_linger_ms: u64,
    pub session_timeout_ms: u64,
    /// librdkafka's `security.protocol`.
    pub security_protocol: KafkaSecurityProtocol,
    /// `sasl.mechanism`; `none` unless the protocol is `sasl_*`.
    pub sasl_mechanism: SaslMechanism,
    #[serde(deserialize_with = "crate::lenient::text")]
    pub sasl_username: String,
    pub sasl_password: Secret,
    /// `ssl.ca.location`: PEM file of the CA(s) that signed the brokers' certificates; empty:
    /// the system's trusted roots.
    #[serde(deserialize_with = "crate::lenient::text")]
    pub ssl_ca_location: String,
    /// `ssl.certificate.location`: client certificate (PEM) for brokers that require one.
    #[serde(deserialize_with = "crate::lenient::text")]
    pub ssl_certificate_location: String,
    /// `ssl.key.location`: the client certificate's private key (PEM).
    #[serde(deserialize_with = "crate::lenient::text")]
    pub ssl_key_location: String,
    /// `ssl.key.password`: passphrase of an encrypted `ssl_key_location`; empty: none.
    pub ssl_key_password: Secret,
}

/// `kafka.security_protocol`: librdkafka's `security.protocol` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KafkaSecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl KafkaSecurityProtocol {
    /// The value of librdkafka's `security.protocol`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plaintext => "plaintext",
            Self::Ssl => "ssl",
            Self::SaslPlaintext => "sasl_plaintext",
            Self::SaslSsl => "sasl_ssl",
        }
    }

    pub fn uses_tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }

    pub fn uses_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }
}

/// `kafka.sasl_mechanism`, spelt as Kafka spells it. GSSAPI (Kerberos) and OAUTHBEARER are
/// left out: they need libsasl2 or a token provider this build does not carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SaslMechanism {
    #[serde(rename = "none", alias = "")]
    None,
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    /// The value of librdkafka's `sasl.mechanism`; `None` for [`Self::None`].
    pub fn as_str(self) -> Option<&'static str> {
        match self {
            Self::None => None,
            Self::Plain => Some("PLAIN"),
            Self::ScramSha256 => Some("SCRAM-SHA-256"),
            Self::ScramSha512 => Some("SCRAM-SHA-512"),
        }
    }
}

impl KafkaSettings {
    /// The individual `host:port` entries of `bootstrap_servers`.
    pub fn brokers(&self) -> impl Iterator<Item = &str> {
        self.bootstrap_servers
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }

    pub fn publish_timeout(&self) -> Duration {
        Duration::from_millis(self.publish_timeout_ms)
    }
}
