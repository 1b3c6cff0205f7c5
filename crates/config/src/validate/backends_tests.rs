use figment::Jail;
use figment::providers::Env;

use crate::{
    ConfigArgs, ConfigError, ENV_PREFIX, KafkaSecurityProtocol, MysqlSslMode, RedisMode,
    SaslMechanism, Settings,
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

// redis.mode and the cluster seed nodes (`redis_mode.rs`).

const PASSWORD: &str = "redis-Hunter2-secret";

#[test]
fn standalone_is_the_default_and_reads_only_the_url() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        let s = load().map_err(|e| e.to_string())?;
        assert_eq!(s.redis.mode, RedisMode::Standalone);
        assert_eq!(s.redis.urls(), ["redis://127.0.0.1:6379"]);
        assert_eq!(s.redis.address().as_deref(), Some("127.0.0.1:6379"));
        // Seed nodes beside a standalone mode are a mistake, said at start-up.
        jail.set_env("COUPON__REDIS__CLUSTER_NODES", "redis://10.0.0.1:7000");
        let (keys, text) = refused_keys()?;
        assert_eq!(keys, ["redis.cluster_nodes"]);
        assert!(text.contains("redis.mode is standalone"), "{text}");
        Ok(())
    });
}

#[test]
fn cluster_mode_reads_the_seed_nodes() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.set_env("COUPON__REDIS__MODE", "cluster");
        let (keys, text) = refused_keys()?;
        assert_eq!(keys, ["redis.cluster_nodes"]);
        assert!(text.contains("at least one seed node"), "{text}");

        let nodes =
            format!("redis://app:{PASSWORD}@10.0.0.1:7000, redis://app:{PASSWORD}@10.0.0.2:7001");
        jail.set_env("COUPON__REDIS__CLUSTER_NODES", &nodes);
        let s = load().map_err(|e| e.to_string())?;
        assert_eq!(s.redis.mode, RedisMode::Cluster);
        assert_eq!(s.redis.urls().len(), 2);
        assert_eq!(
            s.redis.address().as_deref(),
            Some("10.0.0.1:7000,10.0.0.2:7001")
        );
        assert!(!s.redis.tls());
        assert!(!format!("{s:?}").contains(PASSWORD));
        Ok(())
    });
}

#[test]
fn unusable_seed_nodes_are_refused_by_entry_without_echo() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.set_env("COUPON__REDIS__MODE", "cluster");
        let nodes = [
            format!("redis://app:{PASSWORD}@10.0.0.1:7000"),
            format!("http://app:{PASSWORD}@10.0.0.2:7001"),
            format!("redis://app:{PASSWORD}@10.0.0.3:7002/2"),
            format!("rediss://app:{PASSWORD}@10.0.0.4:7003"),
            "redis://other:pw@10.0.0.5:7004".to_owned(),
        ];
        jail.set_env("COUPON__REDIS__CLUSTER_NODES", nodes.join(","));
        let (keys, text) = refused_keys()?;
        assert_eq!(keys, ["redis.cluster_nodes"; 4], "{text}");
        for expected in [
            "entry 2 of 5 must be redis://",
            "entry 3 of 5 names a database",
            "entry 4 of 5 differs from entry 1",
            "entry 5 of 5 differs from entry 1",
        ] {
            assert!(text.contains(expected), "{expected}: {text}");
        }
        assert!(!text.contains(PASSWORD), "{text}");
        Ok(())
    });
}

#[test]
fn cluster_tls_and_production_rules() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.set_env("COUPON__REDIS__MODE", "cluster");
        jail.set_env("COUPON__REDIS__CLUSTER_NODES", "redis://10.0.0.1:7000");
        // TLS files need rediss:// seed nodes, as they need a rediss:// URL standalone.
        jail.create_file("ca.pem", "not read here")?;
        jail.set_env("COUPON__REDIS__TLS_CA", "ca.pem");
        let (keys, text) = refused_keys()?;
        assert_eq!(keys, ["redis.tls_ca"]);
        assert!(
            text.contains("redis.cluster_nodes is not a rediss://"),
            "{text}"
        );
        jail.set_env("COUPON__REDIS__CLUSTER_NODES", "rediss://10.0.0.1:7000");
        assert!(load().map_err(|e| e.to_string())?.redis.tls());

        // Production: every seed node must be off this machine; the (unused) standalone URL's
        // loopback default does not matter in cluster mode.
        jail.set_env("COUPON__PROFILE", "production");
        jail.set_env("COUPON__KAFKA__BOOTSTRAP_SERVERS", "kafka:9092");
        jail.set_env("COUPON__MYSQL__HOST", "mysql");
        jail.set_env(
            "COUPON__REDIS__CLUSTER_NODES",
            "rediss://10.0.0.1:7000,rediss://localhost:7001",
        );
        let (keys, text) = refused_keys()?;
        assert_eq!(keys, ["redis.cluster_nodes"]);
        assert!(
            text.contains("entry 2 of 2 is a loopback address"),
            "{text}"
        );
        jail.set_env(
            "COUPON__REDIS__CLUSTER_NODES",
            "rediss://10.0.0.1:7000,rediss://redis-1.redis:7001",
        );
        load().map_err(|e| e.to_string())?;
        Ok(())
    });
}

#[test]
fn the_mysql_pool_holds_the_consumers_two_connections() {
    Jail::expect_with(|jail| {
        jail.set_env("COUPON__MYSQL__POOL_SIZE", "1");
        let (keys, message) = refused_keys()?;
        assert_eq!(keys, ["mysql.pool_size"]);
        assert!(message.contains("at least 2"), "{message}");
        jail.set_env("COUPON__MYSQL__POOL_SIZE", "2");
        load().map_err(|e| e.to_string())?;
        Ok(())
    });
}
