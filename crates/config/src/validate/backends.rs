//! TLS and SASL to Kafka, MySQL and Redis: settings that only make sense together, and the
//! files they name, which must be readable now rather than at the first reconnect hours later.
//! Problems name the key and what is wrong with the file, never the path or its content.

use std::io::ErrorKind;

use super::Invalid;
use crate::settings::{
    KafkaSettings, MysqlSettings, MysqlSslMode, RedisSettings, SaslMechanism, path_setting,
};

pub(super) fn backend_problems(
    kafka: &KafkaSettings,
    mysql: &MysqlSettings,
    redis: &RedisSettings,
) -> Vec<Invalid> {
    let mut errors = kafka_problems(kafka);
    errors.extend(mysql_problems(mysql));
    errors.extend(redis_problems(redis));
    errors
}

fn kafka_problems(kafka: &KafkaSettings) -> Vec<Invalid> {
    let mut errors = Vec::new();
    let protocol = kafka.security_protocol;
    if protocol.uses_sasl() {
        if kafka.sasl_mechanism == SaslMechanism::None {
            errors.push(Invalid::new(
                "kafka.sasl_mechanism",
                "must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 with a sasl_* security_protocol",
            ));
        }
        if kafka.sasl_username.trim().is_empty() {
            errors.push(Invalid::new(
                "kafka.sasl_username",
                "must be set with a sasl_* security_protocol",
            ));
        }
        if kafka.sasl_password.is_empty() {
            errors.push(Invalid::new(
                "kafka.sasl_password",
                "must be set with a sasl_* security_protocol",
            ));
        }
    } else if kafka.sasl_mechanism != SaslMechanism::None {
        errors.push(Invalid::new(
            "kafka.sasl_mechanism",
            "is set but kafka.security_protocol uses no SASL (sasl_plaintext or sasl_ssl)",
        ));
    }
    let files = [
        ("kafka.ssl_ca_location", &kafka.ssl_ca_location),
        (
            "kafka.ssl_certificate_location",
            &kafka.ssl_certificate_location,
        ),
        ("kafka.ssl_key_location", &kafka.ssl_key_location),
    ];
    for (key, value) in files {
        if !protocol.uses_tls() && path_setting(value).is_some() {
            errors.push(Invalid::new(
                key,
                "is set but kafka.security_protocol uses no TLS (ssl or sasl_ssl)",
            ));
        }
        errors.extend(unreadable(key, value));
    }
    errors.extend(pair(
        (
            "kafka.ssl_certificate_location",
            &kafka.ssl_certificate_location,
        ),
        ("kafka.ssl_key_location", &kafka.ssl_key_location),
    ));
    errors
}

fn mysql_problems(mysql: &MysqlSettings) -> Vec<Invalid> {
    let mut errors = Vec::new();
    let files = [
        ("mysql.ssl_ca", &mysql.ssl_ca),
        ("mysql.ssl_cert", &mysql.ssl_cert),
        ("mysql.ssl_key", &mysql.ssl_key),
    ];
    for (key, value) in files {
        if mysql.ssl_mode == MysqlSslMode::Disabled && path_setting(value).is_some() {
            errors.push(Invalid::new(key, "is set but mysql.ssl_mode is disabled"));
        }
        errors.extend(unreadable(key, value));
    }
    errors.extend(pair(
        ("mysql.ssl_cert", &mysql.ssl_cert),
        ("mysql.ssl_key", &mysql.ssl_key),
    ));
    if let Some(key) = path_setting(&mysql.ssl_key)
        && let Ok(text) = std::fs::read_to_string(key)
        && !text.contains("-----BEGIN RSA PRIVATE KEY-----")
    {
        errors.push(Invalid::new(
            "mysql.ssl_key",
            "must be an RSA key in PKCS#1 PEM (BEGIN RSA PRIVATE KEY), the only form the \
             MySQL client reads; convert with `openssl rsa -traditional`",
        ));
    }
    errors
}

fn redis_problems(redis: &RedisSettings) -> Vec<Invalid> {
    let mut errors = Vec::new();
    let files = [
        ("redis.tls_ca", &redis.tls_ca),
        ("redis.tls_cert", &redis.tls_cert),
        ("redis.tls_key", &redis.tls_key),
    ];
    for (key, value) in files {
        if !redis.tls() && path_setting(value).is_some() {
            errors.push(Invalid::new(
                key,
                format!(
                    "is set but {} is not a rediss:// (TLS) URL",
                    redis.urls_key()
                ),
            ));
        }
        errors.extend(unreadable(key, value));
    }
    errors.extend(pair(
        ("redis.tls_cert", &redis.tls_cert),
        ("redis.tls_key", &redis.tls_key),
    ));
    errors
}

/// A certificate and its key: both or neither.
fn pair(cert: (&'static str, &str), key: (&'static str, &str)) -> Option<Invalid> {
    match (path_setting(cert.1), path_setting(key.1)) {
        (Some(_), None) => Some(Invalid::new(key.0, format!("must be set with {}", cert.0))),
        (None, Some(_)) => Some(Invalid::new(cert.0, format!("must be set with {}", key.0))),
        _ => None,
    }
}

/// Why the file `value` names cannot be read by this process, if it names one.
pub(crate) fn unreadable(key: &'static str, value: &str) -> Option<Invalid> {
    let path = path_setting(value)?;
    let problem = match std::fs::File::open(path) {
        Ok(file) => match file.metadata() {
            Ok(meta) if meta.is_file() => return None,
            Ok(_) => "names something that is not a regular file".to_owned(),
            Err(error) => format!(
                "names a file whose metadata cannot be read ({})",
                error.kind()
            ),
        },
        Err(error) if error.kind() == ErrorKind::NotFound => {
            "names a file that does not exist".to_owned()
        }
        Err(error) if error.kind() == ErrorKind::PermissionDenied => {
            "names a file this process may not read (permission denied)".to_owned()
        }
        Err(error) => format!("names a file that cannot be opened ({})", error.kind()),
    };
    Some(Invalid::new(key, problem))
}

#[cfg(test)]
// figment::Jail fixes the closures' error type to its own (large) error.
#[allow(clippy::result_large_err)]
#[path = "backends_tests.rs"]
mod tests;
