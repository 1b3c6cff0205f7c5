use std::time::Duration;

use serde::Deserialize;

use crate::secret::Secret;

mod auth;
mod rate_limit;
mod smoke;

pub(crate) use auth::parse_network;
pub use auth::{AuthMode, AuthSettings, JwtAlgorithm};
pub use rate_limit::RateLimitSettings;
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
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    #[serde(deserialize_with = "crate::lenient::text")]
    pub bind: String,
    pub workers: usize,
    /// Open connections the API serves at once, over all workers (actix counts a connection
    /// after handing it to a worker, so a few more may get in); more wait in the listen
    /// backlog. Each costs memory while open: this bounds what a flood of connections takes.
    pub max_connections: usize,
    /// A connection that has not sent a whole request head within this is closed.
    pub client_request_timeout_ms: u64,
    /// An idle keep-alive connection is closed after this.
    pub keep_alive_ms: u64,
}

impl HttpSettings {
    /// `max_connections` shared out over `workers` (actix counts per worker), at least one each.
    pub fn max_connections_per_worker(&self, workers: usize) -> usize {
        self.max_connections.div_ceil(workers.max(1)).max(1)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    pub token: Secret,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlSettings {
    #[serde(deserialize_with = "crate::lenient::text")]
    pub host: String,
    pub port: u16,
    #[serde(deserialize_with = "crate::lenient::text")]
    pub user: String,
    pub password: Secret,
    #[serde(deserialize_with = "crate::lenient::text")]
    pub database: String,
    pub pool_size: usize,
    pub connect_timeout_ms: u64,
    pub lock_wait_timeout_s: u32,
    /// Whether the client may switch to the server's Unix socket when it runs on this host
    /// (mysql_async's `prefer_socket`); `false` keeps every connection on `host:port`.
    pub prefer_socket: bool,
    /// TLS to the server, as MySQL's `--ssl-mode`.
    pub ssl_mode: MysqlSslMode,
    /// PEM file of the CA(s) that signed the server's certificate; empty: the built-in web
    /// roots only (a private CA must be named here).
    #[serde(deserialize_with = "crate::lenient::text")]
    pub ssl_ca: String,
    /// Client certificate (PEM) for a server that requires one (`REQUIRE X509`); with `ssl_key`.
    #[serde(deserialize_with = "crate::lenient::text")]
    pub ssl_cert: String,
    /// The client certificate's RSA private key, PKCS#1 PEM (`BEGIN RSA PRIVATE KEY`): the only
    /// form mysql_async reads.
    #[serde(deserialize_with = "crate::lenient::text")]
    pub ssl_key: String,
}

/// `mysql.ssl_mode`, named as MySQL's `--ssl-mode` values (no `preferred`: a connection that
/// silently falls back to plain text is what the setting exists to rule out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MysqlSslMode {
    /// Plain TCP.
    Disabled,
    /// Encrypted, the server's certificate not checked (protects against a passive listener
    /// only).
    Required,
    /// Encrypted, the certificate signed by a trusted CA; its name is not checked.
    VerifyCa,
    /// Encrypted, signed by a trusted CA and issued for `mysql.host`.
    VerifyIdentity,
}

impl MysqlSettings {
    /// Where the database is, for messages; carries no credentials.
    pub fn address(&self) -> String {
        format!("{}:{}/{}", self.host, self.port, self.database)
    }

    /// Connection URL for the client library. Contains the password: never log it.
    pub fn url(&self) -> Secret {
        let mut url = url::Url::parse("mysql://placeholder").unwrap_or_else(|_| unreachable!());
        // Setting parts of a `mysql://` URL only fails for cannot-be-a-base URLs, which it is not;
        // going through `Url` percent-encodes user, password and database correctly.
        let _ = url.set_host(Some(&self.host));
        let _ = url.set_port(Some(self.port));
        let _ = url.set_username(&self.user);
        if !self.password.is_empty() {
            let _ = url.set_password(Some(self.password.expose()));
        }
        url.set_path(&self.database);
        Secret::new(url.to_string())
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// One server (`redis.url`) or a Redis Cluster (`redis.cluster_nodes`).
    pub mode: RedisMode,
    /// `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS; may hold a password,
    /// hence secret. Standalone mode only.
    pub url: Secret,
    /// Cluster mode only: comma-separated seed node URLs, each as `redis.url` (same scheme and
    /// credentials on every node, no database number); the client learns the rest of the
    /// cluster from any one of them. May hold a password, hence secret.
    pub cluster_nodes: Secret,
    #[serde(deserialize_with = "crate::lenient::text")]
    pub key_prefix: String,
    pub pool_size: usize,
    pub timeout_ms: u64,
    /// PEM file of the CA that signed the server's certificate (`rediss://` only); empty: the
    /// system's trusted roots.
    #[serde(deserialize_with = "crate::lenient::text")]
    pub tls_ca: String,
    /// Client certificate (PEM) for a server with `tls-auth-clients yes`; with `tls_key`.
    #[serde(deserialize_with = "crate::lenient::text")]
    pub tls_cert: String,
    /// The client certificate's private key (PEM).
    #[serde(deserialize_with = "crate::lenient::text")]
    pub tls_key: String,
}

/// `redis.mode`: how the binaries reach Redis. The keys and scripts are the same in both (every
/// key of a coupon carries the hash tag `{<coupon id>}`, so each script runs on one slot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedisMode {
    /// One server at `redis.url`.
    Standalone,
    /// A Redis Cluster found from the seed nodes of `redis.cluster_nodes`.
    Cluster,
}

impl RedisSettings {
    /// The URLs the client is given: `redis.url`, or each seed node of `redis.cluster_nodes`.
    /// They may hold a password: never format them.
    pub fn urls(&self) -> Vec<&str> {
        match self.mode {
            RedisMode::Standalone => vec![self.url.expose()],
            RedisMode::Cluster => self
                .cluster_nodes
                .expose()
                .split(',')
                .map(str::trim)
                .filter(|node| !node.is_empty())
                .collect(),
        }
    }

    /// The setting that holds [`Self::urls`], for messages.
    pub fn urls_key(&self) -> &'static str {
        match self.mode {
            RedisMode::Standalone => "redis.url",
            RedisMode::Cluster => "redis.cluster_nodes",
        }
    }

    /// `host:port` of each URL in use, comma-separated, for messages (no credentials); `None`
    /// when one is not parseable.
    pub fn address(&self) -> Option<String> {
        let urls = self.urls();
        let addresses = urls
            .iter()
            .map(|url| {
                let url = url::Url::parse(url).ok()?;
                let host = url.host_str()?;
                Some(format!("{host}:{}", url.port().unwrap_or(6379)))
            })
            .collect::<Option<Vec<_>>>()?;
        (!addresses.is_empty()).then(|| addresses.join(","))
    }

    pub fn host(&self) -> Option<String> {
        url::Url::parse(self.url.expose())
            .ok()?
            .host_str()
            .map(str::to_owned)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// Whether the URLs ask for TLS (`rediss://`; validation makes every seed node agree).
    pub fn tls(&self) -> bool {
        self.urls()
            .first()
            .is_some_and(|url| url::Url::parse(url).is_ok_and(|url| url.scheme() == "rediss"))
    }
}

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
