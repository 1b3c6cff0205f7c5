use std::time::Duration;

use serde::Deserialize;

use crate::secret::Secret;

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
    /// `redis://[:password@]host:port[/db]`; may hold a password, hence secret.
    pub url: Secret,
    #[serde(deserialize_with = "crate::lenient::text")]
    pub key_prefix: String,
    pub pool_size: usize,
    pub timeout_ms: u64,
}

impl RedisSettings {
    /// `host:port` of the URL, for messages; `None` when the URL is not parseable.
    pub fn address(&self) -> Option<String> {
        let url = url::Url::parse(self.url.expose()).ok()?;
        let host = url.host_str()?;
        Some(format!("{host}:{}", url.port().unwrap_or(6379)))
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

/// The `compensation-batch smoke` command: where the deployment it checks answers, and how
/// much it asks of it. Only that command reads this section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmokeSettings {
    /// Base URL of issuer-api (http or https).
    #[serde(deserialize_with = "crate::lenient::text")]
    pub api_url: String,
    /// Ops port URLs of the consumers; each host is resolved to every address it has and each
    /// address is checked (a headless Service names every consumer pod).
    #[serde(deserialize_with = "crate::lenient::list")]
    pub consumer_ops_urls: Vec<String>,
    /// Issuances made per run.
    pub count: u32,
    /// The consumers' summed `kafka_consumer_lag` must stay below this.
    pub max_lag: u32,
    /// How long the issuances may take to read ISSUED and be in MySQL.
    pub deadline_ms: u64,
    /// Bound on every HTTP call.
    pub http_timeout_ms: u64,
    /// Pause between two looks at the issuances' status.
    pub poll_interval_ms: u64,
    /// Name of the dedicated smoke coupon, found in MySQL or created through the admin API.
    #[serde(deserialize_with = "crate::lenient::text")]
    pub coupon_name: String,
    /// How long the window of a smoke coupon it creates stays open.
    pub coupon_window_days: u32,
}

impl SmokeSettings {
    pub fn api_url(&self) -> Result<url::Url, url::ParseError> {
        url::Url::parse(self.api_url.trim())
    }

    pub fn consumer_ops_urls(&self) -> Result<Vec<url::Url>, url::ParseError> {
        self.consumer_ops_urls
            .iter()
            .map(|u| url::Url::parse(u.trim()))
            .collect()
    }

    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }

    pub fn http_timeout(&self) -> Duration {
        Duration::from_millis(self.http_timeout_ms)
    }

    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }
}

/// Abuse limits of `POST /coupons/{id}/issue`, shared by every API instance through Redis.
/// These are the defaults; an event overrides them key by key (its `rate_limit` field).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    /// `false`: no request is limited, whatever an event says (the kill switch).
    pub enabled: bool,
    /// Requests one user id may make per window for one event; 0: unlimited.
    pub per_user: u32,
    /// Requests one client may make per window for one event; 0: unlimited.
    pub per_client: u32,
    pub window_ms: u32,
    /// Header naming the client, set by the gateway (its first comma-separated entry, an IP
    /// address); empty: the peer address of the connection.
    #[serde(deserialize_with = "crate::lenient::text")]
    pub client_header: String,
}

impl RateLimitSettings {
    /// The default limits, or `None` when limits are off.
    pub fn defaults(&self) -> Option<couponrush_domain::RateLimits> {
        self.enabled.then_some(couponrush_domain::RateLimits {
            per_user: self.per_user,
            per_client: self.per_client,
            window_ms: self.window_ms,
        })
    }

    /// The configured client header, if any.
    pub fn client_header(&self) -> Option<&str> {
        Some(self.client_header.trim()).filter(|h| !h.is_empty())
    }
}

impl Settings {
    /// Whether logs should be JSON: explicit choice, else JSON in production.
    pub fn json_logs(&self) -> bool {
        match self.log.format {
            LogFormat::Json => true,
            LogFormat::Text => false,
            LogFormat::Auto => self.profile == Profile::Production,
        }
    }
}
