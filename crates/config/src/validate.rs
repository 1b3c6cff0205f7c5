use std::fmt;
use std::net::IpAddr;

use crate::settings::{Profile, RedisMode, Settings};

mod auth;
mod backends;
mod rate_limit;
mod redis_mode;
mod signing;
mod smoke;

pub use signing::MIN_KEY_BYTES;

/// One setting that cannot be used, with the key and environment variable that set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Dotted key, e.g. `kafka.bootstrap_servers`.
    pub key: &'static str,
    pub problem: String,
}

impl Invalid {
    fn new(key: &'static str, problem: impl Into<String>) -> Self {
        Self {
            key,
            problem: problem.into(),
        }
    }

    /// The environment variable that sets this key.
    pub fn env_var(&self) -> String {
        format!(
            "{}{}",
            crate::ENV_PREFIX,
            self.key.replace('.', "__").to_uppercase()
        )
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.key, self.env_var(), self.problem)
    }
}

/// Settings only some binaries use: each binary asks for what it needs, so none refuses to
/// start over a setting it never reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Needs {
    /// `admin.token`: the issuer-api's admin endpoints.
    pub admin_token: bool,
    /// `message_signing.key`: issuer-api signs issue messages, coupon-consumer verifies them.
    pub signing_key: bool,
    /// `auth.*`: issuer-api serves callers and must know who they are.
    pub auth: bool,
}

/// Every problem found, reported together so one start-up attempt shows them all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors(pub Vec<Invalid>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        bulleted(f, "invalid configuration:", &self.0)
    }
}

/// `heading`, then one `  - item` line per item: how every configuration error lists its
/// problems, so a person reads all of them from one start-up attempt.
pub(crate) fn bulleted<T: fmt::Display>(
    f: &mut fmt::Formatter<'_>,
    heading: &str,
    items: &[T],
) -> fmt::Result {
    f.write_str(heading)?;
    for item in items {
        write!(f, "\n  - {item}")?;
    }
    Ok(())
}

/// Whether `host` names this machine. Such a host works on a laptop and silently points a
/// container or pod at itself: the incident's `localhost:9092`.
pub(crate) fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let lower = host.to_ascii_lowercase();
    if lower == "localhost" || lower.ends_with(".localhost") {
        return true;
    }
    host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Splits `host:port` (IPv6 in brackets). Port 0 passes: it means "any free port" to a
/// listener; callers that connect reject it.
fn split_host_port(entry: &str) -> Option<(&str, u16)> {
    let (host, port) = entry.rsplit_once(':')?;
    let port = port.parse::<u16>().ok()?;
    (!host.is_empty()).then_some((host, port))
}

fn valid_topic(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl Settings {
    /// Checks every setting every binary shares; in `production`, also refuses loopback hosts.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        self.validate_for(Needs::default())
    }

    /// [`Self::validate`], plus what one binary `needs` (in `production`, a missing admin
    /// token where the admin endpoints are served), reported with the rest.
    pub fn validate_for(&self, needs: Needs) -> Result<(), ValidationErrors> {
        let mut errors = Vec::new();
        let production = self.profile == Profile::Production;
        // Problems name the entry, not its text: no config error shows a value (redact.rs).
        let mut refuse_loopback = |key: &'static str, what: &str, host: &str| {
            if production && is_loopback(host) {
                errors.push(Invalid::new(
                    key,
                    format!("{what} is a loopback address, refused in the production profile"),
                ));
            }
        };

        // Kafka
        let brokers: Vec<&str> = self.kafka.brokers().collect();
        let mut kafka_errors = Vec::new();
        if brokers.is_empty() {
            kafka_errors.push(Invalid::new(
                "kafka.bootstrap_servers",
                "must list at least one host:port",
            ));
        }
        for (position, entry) in (1..).zip(&brokers) {
            let what = format!("entry {position} of {}", brokers.len());
            match split_host_port(entry).filter(|(_, port)| *port != 0) {
                Some((host, _)) => refuse_loopback("kafka.bootstrap_servers", &what, host),
                None => kafka_errors.push(Invalid::new(
                    "kafka.bootstrap_servers",
                    format!("{what} is not host:port"),
                )),
            }
        }
        // Redis
        match self.redis.mode {
            RedisMode::Standalone => match self.redis.host() {
                Some(host) => refuse_loopback("redis.url", "its host", &host),
                None => kafka_errors.push(Invalid::new(
                    "redis.url",
                    "must be redis://[user:password@]host:port[/db] or rediss://...",
                )),
            },
            // Unparseable entries are reported by `redis_mode_problems`.
            RedisMode::Cluster => {
                let hosts = redis_mode::cluster_hosts(&self.redis);
                for (position, host) in (1..).zip(&hosts) {
                    if let Some(host) = host {
                        let what = format!("entry {position} of {}", hosts.len());
                        refuse_loopback("redis.cluster_nodes", &what, host);
                    }
                }
            }
        }
        // MySQL
        refuse_loopback("mysql.host", "it", &self.mysql.host);
        errors.extend(kafka_errors);

        for (key, topic) in [
            ("kafka.topic", &self.kafka.topic),
            ("kafka.dlq_topic", &self.kafka.dlq_topic),
        ] {
            if !valid_topic(topic) {
                errors.push(Invalid::new(
                    key,
                    "must be 1-249 characters of [A-Za-z0-9._-]",
                ));
            }
        }
        if self.kafka.dlq_topic == self.kafka.topic {
            errors.push(Invalid::new(
                "kafka.dlq_topic",
                "must differ from kafka.topic",
            ));
        }
        for (key, value) in [
            ("kafka.linger_ms", self.kafka.linger_ms),
            (
                "kafka.participation_linger_ms",
                self.kafka.participation_linger_ms,
            ),
        ] {
            if value > 1000 {
                errors.push(Invalid::new(key, "must be at most 1000 ms"));
            }
        }
        if self.kafka.linger_ms >= self.kafka.publish_timeout_ms {
            errors.push(Invalid::new(
                "kafka.linger_ms",
                "must be below kafka.publish_timeout_ms",
            ));
        }
        if !(1..=3600).contains(&self.mysql.lock_wait_timeout_s) {
            errors.push(Invalid::new(
                "mysql.lock_wait_timeout_s",
                "must be between 1 and 3600 s",
            ));
        }
        if self.consumer.max_poll_interval_ms < self.kafka.session_timeout_ms
            || self.consumer.max_poll_interval_ms > 86_400_000
        {
            errors.push(Invalid::new(
                "consumer.max_poll_interval_ms",
                "must be between kafka.session_timeout_ms and 86400000 ms",
            ));
        }
        if !(1..=3_600_000).contains(&self.consumer.commit_interval_ms) {
            errors.push(Invalid::new(
                "consumer.commit_interval_ms",
                "must be between 1 and 3600000 ms",
            ));
        }
        if self.consumer.max_attempts == 0 {
            errors.push(Invalid::new("consumer.max_attempts", "must be at least 1"));
        }
        if self.kafka.consumer_group.trim().is_empty() {
            errors.push(Invalid::new("kafka.consumer_group", "must not be empty"));
        }
        if self.kafka.client_id.trim().is_empty() {
            errors.push(Invalid::new("kafka.client_id", "must not be empty"));
        }
        if let Some(endpoint) = self.telemetry.otlp_endpoint() {
            let scheme = url::Url::parse(endpoint).map(|url| url.scheme().to_owned());
            if !matches!(scheme.as_deref(), Ok("http" | "https")) {
                errors.push(Invalid::new(
                    "telemetry.otlp_endpoint",
                    "is not an http:// or https:// address",
                ));
            }
        }
        for (key, directives) in [
            ("log.filter", &self.log.filter),
            ("telemetry.filter", &self.telemetry.filter),
        ] {
            // The parser's own message quotes the directive: left out, as every value is.
            if tracing_subscriber::EnvFilter::try_new(directives).is_err() {
                errors.push(Invalid::new(
                    key,
                    "is not a tracing filter (comma-separated directives such as \
                     `info,coupon_consumer=debug`)",
                ));
            }
        }
        if !(0.0..=1.0).contains(&self.telemetry.sample_ratio) {
            errors.push(Invalid::new(
                "telemetry.sample_ratio",
                "must be between 0.0 and 1.0",
            ));
        }
        if !(1..=60_000).contains(&self.telemetry.export_timeout_ms) {
            errors.push(Invalid::new(
                "telemetry.export_timeout_ms",
                "must be between 1 and 60000 ms",
            ));
        }
        errors.extend(redis_mode::redis_mode_problems(&self.redis));
        if self.redis.key_prefix.contains(['{', '}']) {
            // Braces would break the per-coupon Redis Cluster hash tag.
            errors.push(Invalid::new(
                "redis.key_prefix",
                "must not contain '{' or '}'",
            ));
        }
        if self.mysql.host.trim().is_empty() {
            errors.push(Invalid::new("mysql.host", "must not be empty"));
        }
        if self.mysql.database.is_empty()
            || !self
                .mysql
                .database
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            errors.push(Invalid::new(
                "mysql.database",
                "must be a plain name of [A-Za-z0-9_]",
            ));
        }
        for (key, bind) in [
            ("http.bind", &self.http.bind),
            ("consumer.ops_bind", &self.consumer.ops_bind),
        ] {
            if split_host_port(bind).is_none() {
                errors.push(Invalid::new(key, "must be host:port"));
            }
        }
        // The consumer writes each batch on two connections at once (the participation log's
        // transaction beside the issuance's).
        if self.mysql.pool_size < 2 {
            errors.push(Invalid::new("mysql.pool_size", "must be at least 2"));
        }
        for (key, value) in [
            ("redis.pool_size", self.redis.pool_size),
            ("http.max_connections", self.http.max_connections),
        ] {
            if value == 0 {
                errors.push(Invalid::new(key, "must be at least 1"));
            }
        }
        for (key, value) in [
            (
                "http.client_request_timeout_ms",
                self.http.client_request_timeout_ms,
            ),
            ("http.keep_alive_ms", self.http.keep_alive_ms),
        ] {
            if !(100..=600_000).contains(&value) {
                errors.push(Invalid::new(key, "must be 100 to 600000 ms"));
            }
        }
        if self.redis.min_replica_acks > 16 {
            errors.push(Invalid::new(
                "redis.min_replica_acks",
                "must be at most 16 (0: no replica acknowledgement)",
            ));
        }
        if !(1..=10_000).contains(&self.redis.replica_ack_timeout_ms) {
            errors.push(Invalid::new(
                "redis.replica_ack_timeout_ms",
                "must be between 1 and 10000 ms",
            ));
        }
        if self.sold_out_gate.lease_ms > 5_000 {
            errors.push(Invalid::new(
                "sold_out_gate.lease_ms",
                "must be at most 5000 ms (0: off)",
            ));
        }
        if !(1..=10_000_000).contains(&self.sold_out_gate.max_participants) {
            errors.push(Invalid::new(
                "sold_out_gate.max_participants",
                "must be between 1 and 10000000",
            ));
        }
        if !(1..=10_000).contains(&self.consumer.batch_size) {
            errors.push(Invalid::new(
                "consumer.batch_size",
                "must be between 1 and 10000",
            ));
        }
        if self.consumer.batch_wait_ms > 10_000 {
            errors.push(Invalid::new(
                "consumer.batch_wait_ms",
                "must be at most 10000 ms",
            ));
        }
        for (key, value) in [
            ("mysql.connect_timeout_ms", self.mysql.connect_timeout_ms),
            ("redis.timeout_ms", self.redis.timeout_ms),
            ("kafka.publish_timeout_ms", self.kafka.publish_timeout_ms),
            ("kafka.session_timeout_ms", self.kafka.session_timeout_ms),
            ("startup.probe_timeout_ms", self.startup.probe_timeout_ms),
        ] {
            if value == 0 || value > 600_000 {
                errors.push(Invalid::new(key, "must be between 1 and 600000 ms"));
            }
        }
        errors.extend(backends::backend_problems(
            &self.kafka,
            &self.mysql,
            &self.redis,
        ));
        errors.extend(signing::signing_problems(
            &self.message_signing,
            needs,
            production,
        ));
        errors.extend(auth::auth_problems(&self.auth, needs, production));
        errors.extend(rate_limit::rate_limit_problems(&self.rate_limit));
        // Shape only: the targets' hosts are the smoke command's to check (`validate_smoke`).
        errors.extend(smoke::smoke_problems(&self.smoke, false));
        if needs.admin_token && production && self.admin.token.expose().len() < 16 {
            errors.push(Invalid::new(
                "admin.token",
                "must be set to at least 16 characters in the production profile",
            ));
        }

        if errors.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(errors))
        }
    }
}

#[cfg(test)]
// figment::Jail fixes the closures' error type to its own (large) error.
#[allow(clippy::result_large_err)]
mod tests;
