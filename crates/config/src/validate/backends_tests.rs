use figment::Jail;
use figment::providers::Env;

use crate::{
    ConfigArgs, ConfigError, ENV_PREFIX, KafkaSecurityProtocol, MysqlSslMode, SaslMechanism,
    Settings,
};

const SECRET: &str = "sasl-Hunter2-secret";

fn load() -> Result<Settings, ConfigError> {
    ConfigArgs::default().load_with(Env::prefixed(ENV_PREFIX).split("__"))
}

fn refused_keys() -> Result<(Vec<&'static str>, String), String> {
    match load() {
        Err(ConfigError::Invalid(errors)) => {
            Ok((errors.0.iter().map(|e| e.key).collect(), errors.to_string()))
        }
        Err(other) => Err(other.to_string()),
        Ok(_) => Err("loaded".to_owned()),
    }
}

#[test]
fn a_sasl_protocol_needs_mechanism_user_and_password() {
    Jail::expect_with(|jail| {
        jail.set_env("COUPON__KAFKA__SECURITY_PROTOCOL", "sasl_ssl");
        let (keys, _) = refused_keys()?;
        assert_eq!(
            keys,
            [
                "kafka.sasl_mechanism",
                "kafka.sasl_username",
                "kafka.sasl_password"
            ]
        );
        jail.set_env("COUPON__KAFKA__SASL_MECHANISM", "SCRAM-SHA-512");
        jail.set_env("COUPON__KAFKA__SASL_USERNAME", "couponrush-api");
        jail.set_env("COUPON__KAFKA__SASL_PASSWORD", SECRET);
        let s = load().map_err(|e| e.to_string())?;
        assert_eq!(s.kafka.security_protocol, KafkaSecurityProtocol::SaslSsl);
        assert_eq!(s.kafka.sasl_mechanism, SaslMechanism::ScramSha512);
        assert!(!format!("{s:?}").contains(SECRET));

        // A mechanism without a SASL protocol is a mistake, not a no-op.
        jail.set_env("COUPON__KAFKA__SECURITY_PROTOCOL", "ssl");
        let (keys, _) = refused_keys()?;
        assert_eq!(keys, ["kafka.sasl_mechanism"]);
        Ok(())
    });
}

#[test]
fn unknown_protocols_and_modes_are_refused_without_echo() {
    Jail::expect_with(|jail| {
        jail.set_env("COUPON__KAFKA__SECURITY_PROTOCOL", SECRET);
        let text = load().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(text.contains("COUPON__KAFKA__SECURITY_PROTOCOL"), "{text}");
        assert!(!text.contains(SECRET), "{text}");
        jail.clear_env();
        // MySQL's `preferred` falls back to plain text in silence: not offered.
        jail.set_env("COUPON__MYSQL__SSL_MODE", "preferred");
        let text = load().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(text.contains("COUPON__MYSQL__SSL_MODE"), "{text}");
        assert!(!text.contains("preferred"), "{text}");
        Ok(())
    });
}

#[test]
fn named_files_must_exist_and_come_in_pairs_and_are_never_echoed() {
    Jail::expect_with(|jail| {
        let missing = "/no/such/s3cr3t-dir/ca.pem";
        jail.create_file("ca.pem", "-----BEGIN CERTIFICATE-----\n")?;
        jail.create_file("client.key", "-----BEGIN PRIVATE KEY-----\n")?;
        jail.set_env("COUPON__KAFKA__SECURITY_PROTOCOL", "ssl");
        jail.set_env("COUPON__KAFKA__SSL_CA_LOCATION", missing);
        jail.set_env("COUPON__KAFKA__SSL_KEY_LOCATION", "client.key");
        jail.set_env("COUPON__MYSQL__SSL_MODE", "verify_identity");
        jail.set_env("COUPON__MYSQL__SSL_CA", ".");
        jail.set_env("COUPON__MYSQL__SSL_CERT", "ca.pem");
        jail.set_env("COUPON__MYSQL__SSL_KEY", "client.key");
        jail.set_env("COUPON__REDIS__TLS_CA", "ca.pem");
        let (keys, text) = refused_keys()?;
        assert_eq!(
            keys,
            [
                "kafka.ssl_ca_location",
                "kafka.ssl_certificate_location",
                "mysql.ssl_ca",
                "mysql.ssl_key",
                "redis.tls_ca",
            ],
            "{text}"
        );
        assert!(text.contains("names a file that does not exist"), "{text}");
        assert!(text.contains("not a regular file"), "{text}");
        assert!(text.contains("PKCS#1"), "{text}");
        assert!(text.contains("is not a rediss:// (TLS) URL"), "{text}");
        assert!(
            !text.contains("s3cr3t-dir") && !text.contains("client.key"),
            "{text}"
        );

        jail.clear_env();
        jail.create_file("rsa.key", "-----BEGIN RSA PRIVATE KEY-----\n")?;
        jail.set_env("COUPON__MYSQL__SSL_MODE", "verify_ca");
        jail.set_env("COUPON__MYSQL__SSL_CA", "ca.pem");
        jail.set_env("COUPON__MYSQL__SSL_CERT", "ca.pem");
        jail.set_env("COUPON__MYSQL__SSL_KEY", "rsa.key");
        jail.set_env("COUPON__REDIS__URL", "rediss://redis:6380");
        jail.set_env("COUPON__REDIS__TLS_CA", "ca.pem");
        let s = load().map_err(|e| e.to_string())?;
        assert_eq!(s.mysql.ssl_mode, MysqlSslMode::VerifyCa);
        assert!(s.redis.tls());
        assert_eq!(
            s.plaintext_backends(),
            ["Kafka (kafka.security_protocol = plaintext)"]
        );
        Ok(())
    });
}
