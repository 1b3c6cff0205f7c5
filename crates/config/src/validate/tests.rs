use std::time::Duration;

use figment::Jail;
use figment::providers::Env;

use super::Needs;
use crate::{ConfigArgs, ConfigError, ENV_PREFIX};

fn load(args: &ConfigArgs) -> Result<crate::Settings, ConfigError> {
    args.load_with(Env::prefixed(ENV_PREFIX).split("__"))
}

#[test]
fn loopback_detection() {
    for host in [
        "localhost",
        "LOCALHOST",
        "127.0.0.1",
        "127.8.9.1",
        "::1",
        "[::1]",
        "a.localhost",
    ] {
        assert!(super::is_loopback(host), "{host}");
    }
    for host in [
        "kafka",
        "10.0.0.1",
        "kafka.internal",
        "localhost.example.com",
    ] {
        assert!(!super::is_loopback(host), "{host}");
    }
}

#[test]
fn defaults_load_in_development() {
    Jail::expect_with(|_| {
        let s = load(&ConfigArgs::default()).map_err(|e| e.to_string())?;
        assert_eq!(s.kafka.topic, "coupon-issue");
        assert_eq!(s.kafka.consumer_group, "coupon-issue-group");
        Ok(())
    });
}

#[test]
fn production_refuses_every_loopback_host_naming_the_setting() {
    Jail::expect_with(|jail| {
        jail.set_env("COUPON__PROFILE", "production");
        jail.set_env("COUPON__ADMIN__TOKEN", "0123456789abcdef0123");
        jail.set_env(
            "COUPON__KAFKA__BOOTSTRAP_SERVERS",
            "kafka-0:9092,localhost:9092",
        );
        let Err(ConfigError::Invalid(errors)) = load(&ConfigArgs::default()) else {
            return Err("production with localhost must be refused".into());
        };
        let keys: Vec<_> = errors.0.iter().map(|e| e.key).collect();
        assert_eq!(keys, ["kafka.bootstrap_servers", "redis.url", "mysql.host"]);
        let text = errors.to_string();
        assert!(text.contains("COUPON__KAFKA__BOOTSTRAP_SERVERS"), "{text}");
        assert!(
            text.contains("entry 2 of 2 is a loopback address"),
            "{text}"
        );
        Ok(())
    });
}

#[test]
fn production_accepts_real_hosts_and_requires_a_token_where_used() {
    Jail::expect_with(|jail| {
        jail.set_env("COUPON__PROFILE", "production");
        jail.set_env("COUPON__KAFKA__BOOTSTRAP_SERVERS", "kafka:9092");
        jail.set_env("COUPON__REDIS__URL", "redis://:pw@redis:6379/0");
        jail.set_env("COUPON__MYSQL__HOST", "mysql");
        // Only a binary serving the admin endpoints needs the token.
        load(&ConfigArgs::default()).map_err(|e| e.to_string())?;
        let admin = Needs {
            admin_token: true,
            ..Needs::default()
        };
        let for_api =
            || ConfigArgs::default().load_with_needs(Env::prefixed(ENV_PREFIX).split("__"), admin);
        let Err(ConfigError::Invalid(errors)) = for_api() else {
            return Err("a production API without admin token must be refused".into());
        };
        assert_eq!(errors.0.len(), 1);
        assert_eq!(errors.0[0].key, "admin.token");
        jail.set_env("COUPON__ADMIN__TOKEN", "0123456789abcdef0123");
        for_api().map_err(|e| e.to_string())?;
        Ok(())
    });
}

#[test]
fn telemetry_settings_are_checked_and_default_to_no_export() {
    Jail::expect_with(|jail| {
        let s = load(&ConfigArgs::default()).map_err(|e| e.to_string())?;
        assert_eq!(s.telemetry.otlp_endpoint(), None);
        jail.set_env("COUPON__TELEMETRY__OTLP_ENDPOINT", "collector:4318");
        jail.set_env("COUPON__TELEMETRY__FILTER", "info,=[");
        jail.set_env("COUPON__TELEMETRY__SAMPLE_RATIO", "1.5");
        jail.set_env("COUPON__TELEMETRY__EXPORT_TIMEOUT_MS", "0");
        let Err(ConfigError::Invalid(errors)) = load(&ConfigArgs::default()) else {
            return Err("a bad telemetry section must be refused".into());
        };
        let keys: Vec<_> = errors.0.iter().map(|e| e.key).collect();
        assert_eq!(
            keys,
            [
                "telemetry.otlp_endpoint",
                "telemetry.filter",
                "telemetry.sample_ratio",
                "telemetry.export_timeout_ms"
            ]
        );
        jail.set_env(
            "COUPON__TELEMETRY__OTLP_ENDPOINT",
            " http://collector:4318 ",
        );
        jail.set_env("COUPON__TELEMETRY__FILTER", "info,h2=off");
        jail.set_env("COUPON__TELEMETRY__SAMPLE_RATIO", "0.01");
        jail.set_env("COUPON__TELEMETRY__EXPORT_TIMEOUT_MS", "2000");
        let s = load(&ConfigArgs::default()).map_err(|e| e.to_string())?;
        assert_eq!(s.telemetry.otlp_endpoint(), Some("http://collector:4318"));
        Ok(())
    });
}

#[test]
fn layers_apply_in_order_file_env_flags() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "c.toml",
            "[kafka]\ntopic = \"from-file\"\nclient_id = \"file\"\n[http]\nworkers = 3\n",
        )?;
        jail.set_env("COUPON__KAFKA__TOPIC", "from-env");
        jail.set_env("COUPON__MYSQL__PASSWORD", "1234");
        let args = ConfigArgs {
            config: Some("c.toml".into()),
            profile: None,
            overrides: vec!["kafka.topic=from-flag".into(), "http.workers=5".into()],
        };
        let s = load(&args).map_err(|e| e.to_string())?;
        assert_eq!(s.kafka.topic, "from-flag");
        assert_eq!(s.kafka.client_id, "file");
        assert_eq!(s.http.workers, 5);
        // A numeric-looking secret stays a string and never prints.
        assert_eq!(s.mysql.password.expose(), "1234");
        assert!(!format!("{s:?}").contains("1234"));
        Ok(())
    });
}

#[test]
fn bad_input_is_reported_clearly() {
    Jail::expect_with(|jail| {
        let missing = ConfigArgs {
            config: Some("nope.toml".into()),
            ..ConfigArgs::default()
        };
        assert!(matches!(load(&missing), Err(ConfigError::MissingFile(_))));
        let bad_flag = ConfigArgs {
            overrides: vec!["novalue".into()],
            ..ConfigArgs::default()
        };
        assert!(matches!(load(&bad_flag), Err(ConfigError::BadOverride(_))));
        jail.set_env("COUPON__KAFKA__BOOTSTRAP_SERVER", "typo:9092");
        let err = load(&ConfigArgs::default()).err().map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("bootstrap_server")),
            "{err:?}"
        );
        jail.clear_env();
        jail.set_env("COUPON__KAFKA__BOOTSTRAP_SERVERS", "no-port");
        jail.set_env("COUPON__REDIS__KEY_PREFIX", "{x}");
        let Err(ConfigError::Invalid(errors)) = load(&ConfigArgs::default()) else {
            return Err("invalid values must be refused".into());
        };
        let keys: Vec<_> = errors.0.iter().map(|e| e.key).collect();
        assert_eq!(keys, ["kafka.bootstrap_servers", "redis.key_prefix"]);
        Ok(())
    });
}

#[test]
fn consumer_poll_interval_and_lock_wait_are_bounded() {
    Jail::expect_with(|jail| {
        jail.set_env("COUPON__KAFKA__SESSION_TIMEOUT_MS", "6000");
        jail.set_env("COUPON__CONSUMER__MAX_POLL_INTERVAL_MS", "5999");
        jail.set_env("COUPON__MYSQL__LOCK_WAIT_TIMEOUT_S", "0");
        let Err(ConfigError::Invalid(errors)) = load(&ConfigArgs::default()) else {
            return Err("a poll interval below the session timeout must be refused".into());
        };
        let keys: Vec<_> = errors.0.iter().map(|e| e.key).collect();
        assert_eq!(
            keys,
            ["mysql.lock_wait_timeout_s", "consumer.max_poll_interval_ms"]
        );
        jail.set_env("COUPON__CONSUMER__MAX_POLL_INTERVAL_MS", "6000");
        jail.set_env("COUPON__MYSQL__LOCK_WAIT_TIMEOUT_S", "1");
        load(&ConfigArgs::default()).map_err(|e| e.to_string())?;
        Ok(())
    });
}

#[test]
fn http_connection_bounds_are_checked_and_shared_over_workers() {
    Jail::expect_with(|jail| {
        let s = load(&ConfigArgs::default()).map_err(|e| e.to_string())?;
        assert_eq!(s.http.max_connections, 4096);
        assert_eq!(s.http.max_connections_per_worker(3), 1366);
        assert_eq!(s.http.max_connections_per_worker(0), 4096);
        jail.set_env("COUPON__HTTP__MAX_CONNECTIONS", "0");
        jail.set_env("COUPON__HTTP__CLIENT_REQUEST_TIMEOUT_MS", "99");
        jail.set_env("COUPON__HTTP__KEEP_ALIVE_MS", "600001");
        let Err(ConfigError::Invalid(errors)) = load(&ConfigArgs::default()) else {
            return Err("no connection limit and out-of-range timeouts must be refused".into());
        };
        let keys: Vec<_> = errors.0.iter().map(|e| e.key).collect();
        assert_eq!(
            keys,
            [
                "http.max_connections",
                "http.client_request_timeout_ms",
                "http.keep_alive_ms"
            ]
        );
        jail.set_env("COUPON__HTTP__MAX_CONNECTIONS", "1");
        jail.set_env("COUPON__HTTP__CLIENT_REQUEST_TIMEOUT_MS", "100");
        jail.set_env("COUPON__HTTP__KEEP_ALIVE_MS", "600000");
        load(&ConfigArgs::default()).map_err(|e| e.to_string())?;
        Ok(())
    });
}

#[test]
fn replica_acks_are_off_by_default_and_bounded() {
    Jail::expect_with(|jail| {
        let s = load(&ConfigArgs::default()).map_err(|e| e.to_string())?;
        assert_eq!(s.redis.replica_acks(), None);
        assert_eq!(s.redis.response_timeout(), Duration::from_millis(1000));
        jail.set_env("COUPON__REDIS__MIN_REPLICA_ACKS", "17");
        jail.set_env("COUPON__REDIS__REPLICA_ACK_TIMEOUT_MS", "0");
        let Err(ConfigError::Invalid(errors)) = load(&ConfigArgs::default()) else {
            return Err("17 replicas and a zero wait must be refused".into());
        };
        let keys: Vec<_> = errors.0.iter().map(|e| e.key).collect();
        assert_eq!(
            keys,
            ["redis.min_replica_acks", "redis.replica_ack_timeout_ms"]
        );
        jail.set_env("COUPON__REDIS__MIN_REPLICA_ACKS", "1");
        jail.set_env("COUPON__REDIS__REPLICA_ACK_TIMEOUT_MS", "250");
        let s = load(&ConfigArgs::default()).map_err(|e| e.to_string())?;
        assert_eq!(
            s.redis.replica_acks(),
            Some((1, Duration::from_millis(250)))
        );
        // A WAIT is one command that takes the whole wait: the client must allow for it.
        assert_eq!(s.redis.response_timeout(), Duration::from_millis(1250));
        Ok(())
    });
}

#[test]
fn smoke_urls_come_as_a_list_or_comma_separated_text() {
    Jail::expect_with(|jail| {
        let s = load(&ConfigArgs::default()).map_err(|e| e.to_string())?;
        assert_eq!(s.smoke.consumer_ops_urls, ["http://127.0.0.1:9090"]);
        assert_eq!(s.smoke.count, 5);
        s.validate_smoke().map_err(|e| e.to_string())?;
        jail.set_env(
            "COUPON__SMOKE__CONSUMER_OPS_URLS",
            "http://consumer-ops.couponrush:9090, http://10.0.0.7:9090",
        );
        let s = load(&ConfigArgs::default()).map_err(|e| e.to_string())?;
        assert_eq!(
            s.smoke.consumer_ops_urls,
            [
                "http://consumer-ops.couponrush:9090",
                "http://10.0.0.7:9090"
            ]
        );
        let urls = s.smoke.consumer_ops_urls().map_err(|e| e.to_string())?;
        assert_eq!(urls[0].host_str(), Some("consumer-ops.couponrush"));
        jail.create_file(
            "c.toml",
            "[smoke]\nconsumer_ops_urls = [\"http://a:9090\", \"http://b:9090\"]\n",
        )?;
        jail.clear_env();
        let file = ConfigArgs {
            config: Some("c.toml".into()),
            ..ConfigArgs::default()
        };
        let s = load(&file).map_err(|e| e.to_string())?;
        assert_eq!(
            s.smoke.consumer_ops_urls,
            ["http://a:9090", "http://b:9090"]
        );
        Ok(())
    });
}

#[test]
fn smoke_settings_are_checked_at_start_up() {
    Jail::expect_with(|jail| {
        jail.set_env("COUPON__SMOKE__API_URL", "issuer-api:8080");
        jail.set_env("COUPON__SMOKE__CONSUMER_OPS_URLS", "");
        jail.set_env("COUPON__SMOKE__COUNT", "0");
        jail.set_env("COUPON__SMOKE__MAX_LAG", "0");
        jail.set_env("COUPON__SMOKE__DEADLINE_MS", "0");
        jail.set_env("COUPON__SMOKE__HTTP_TIMEOUT_MS", "600001");
        jail.set_env("COUPON__SMOKE__COUPON_NAME", " ");
        jail.set_env("COUPON__SMOKE__COUPON_WINDOW_DAYS", "0");
        let Err(ConfigError::Invalid(errors)) = load(&ConfigArgs::default()) else {
            return Err("a bad smoke section must be refused".into());
        };
        let keys: Vec<_> = errors.0.iter().map(|e| e.key).collect();
        assert_eq!(
            keys,
            [
                "smoke.api_url",
                "smoke.consumer_ops_urls",
                "smoke.count",
                "smoke.max_lag",
                "smoke.deadline_ms",
                "smoke.http_timeout_ms",
                "smoke.poll_interval_ms",
                "smoke.coupon_name",
                "smoke.coupon_window_days",
            ]
        );
        let text = errors.to_string();
        assert!(text.contains("COUPON__SMOKE__API_URL"), "{text}");
        assert!(
            text.contains("it is not an http:// or https:// URL"),
            "{text}"
        );
        Ok(())
    });
}

#[test]
fn production_refuses_loopback_smoke_targets_only_for_the_smoke_command() {
    Jail::expect_with(|jail| {
        jail.set_env("COUPON__PROFILE", "production");
        jail.set_env("COUPON__KAFKA__BOOTSTRAP_SERVERS", "kafka:9092");
        jail.set_env("COUPON__REDIS__URL", "redis://redis:6379");
        jail.set_env("COUPON__MYSQL__HOST", "mysql");
        // The API and the consumer never read [smoke]: its local defaults do not stop them.
        let s = load(&ConfigArgs::default()).map_err(|e| e.to_string())?;
        let Err(errors) = s.validate_smoke() else {
            return Err("loopback smoke targets must be refused in production".into());
        };
        let keys: Vec<_> = errors.0.iter().map(|e| e.key).collect();
        assert_eq!(keys, ["smoke.api_url", "smoke.consumer_ops_urls"]);
        jail.set_env("COUPON__SMOKE__API_URL", "https://issuer-api.couponrush");
        jail.set_env(
            "COUPON__SMOKE__CONSUMER_OPS_URLS",
            "http://coupon-consumer-ops.couponrush:9090",
        );
        let s = load(&ConfigArgs::default()).map_err(|e| e.to_string())?;
        s.validate_smoke().map_err(|e| e.to_string())?;
        Ok(())
    });
}

const KEY_A: &str = "0123456789abcdef0123456789abcdef";
const KEY_B: &str = "fedcba9876543210fedcba9876543210";

#[test]
fn production_requires_a_signing_key_where_messages_are_signed_or_verified() {
    Jail::expect_with(|jail| {
        jail.set_env("COUPON__PROFILE", "production");
        jail.set_env("COUPON__KAFKA__BOOTSTRAP_SERVERS", "kafka:9092");
        jail.set_env("COUPON__REDIS__URL", "redis://:pw@redis:6379/0");
        jail.set_env("COUPON__MYSQL__HOST", "mysql");
        let signing = Needs {
            signing_key: true,
            ..Needs::default()
        };
        let for_consumer = || {
            ConfigArgs::default().load_with_needs(Env::prefixed(ENV_PREFIX).split("__"), signing)
        };
        // A job that neither signs nor verifies starts without it.
        load(&ConfigArgs::default()).map_err(|e| e.to_string())?;
        let Err(ConfigError::Invalid(errors)) = for_consumer() else {
            return Err("a production consumer without a signing key must be refused".into());
        };
        let keys: Vec<_> = errors.0.iter().map(|e| e.key).collect();
        assert_eq!(keys, ["message_signing.key"]);
        jail.set_env("COUPON__MESSAGE_SIGNING__KEY", KEY_A);
        let settings = for_consumer().map_err(|e| e.to_string())?;
        assert!(settings.message_signing.enabled());
        Ok(())
    });
}

#[test]
fn signing_keys_are_checked_and_never_echoed() {
    Jail::expect_with(|jail| {
        // Development with no key: signing off, accepted.
        let s = load(&ConfigArgs::default()).map_err(|e| e.to_string())?;
        assert!(!s.message_signing.enabled());
        let short = "short-key-of-31-bytes-xxxxxxxxx";
        assert_eq!(short.len(), 31);
        jail.set_env("COUPON__MESSAGE_SIGNING__KEY", short);
        jail.set_env("COUPON__MESSAGE_SIGNING__KEY_ID", "bad:id");
        jail.set_env("COUPON__MESSAGE_SIGNING__PREVIOUS_KEY_ID", "bad:id");
        jail.set_env("COUPON__MESSAGE_SIGNING__PREVIOUS_KEY", short);
        let Err(ConfigError::Invalid(errors)) = load(&ConfigArgs::default()) else {
            return Err("a short key and bad ids must be refused".into());
        };
        let keys: Vec<_> = errors.0.iter().map(|e| e.key).collect();
        assert_eq!(
            keys,
            [
                "message_signing.key",
                "message_signing.key_id",
                "message_signing.previous_key",
                "message_signing.previous_key_id",
                "message_signing.previous_key_id",
                "message_signing.previous_key",
            ]
        );
        let text = errors.to_string();
        assert!(!text.contains(short), "{text}");
        assert!(text.contains("COUPON__MESSAGE_SIGNING__KEY"), "{text}");

        jail.set_env("COUPON__MESSAGE_SIGNING__KEY", KEY_A);
        jail.set_env("COUPON__MESSAGE_SIGNING__KEY_ID", "k2");
        jail.set_env("COUPON__MESSAGE_SIGNING__PREVIOUS_KEY_ID", "k1");
        jail.set_env("COUPON__MESSAGE_SIGNING__PREVIOUS_KEY", KEY_B);
        let s = load(&ConfigArgs::default()).map_err(|e| e.to_string())?;
        let ids: Vec<_> = s.message_signing.keys().map(|(id, _)| id).collect();
        assert_eq!(ids, ["k2", "k1"]);
        assert!(!format!("{s:?}").contains(KEY_A));

        // A previous key alone (no current one) means signing off with a key set: refused.
        jail.set_env("COUPON__MESSAGE_SIGNING__KEY", "");
        let Err(ConfigError::Invalid(errors)) = load(&ConfigArgs::default()) else {
            return Err("a previous key without a current one must be refused".into());
        };
        assert_eq!(errors.0[0].key, "message_signing.previous_key");
        Ok(())
    });
}

#[test]
fn rate_limits_are_checked_at_start_up_and_default_on() {
    Jail::expect_with(|jail| {
        let s = load(&ConfigArgs::default()).map_err(|e| e.to_string())?;
        assert!(s.rate_limit.defaults().is_some(), "limits default to on");
        assert_eq!(s.rate_limit.client_header(), None);
        jail.set_env("COUPON__RATE_LIMIT__PER_USER", "1000001");
        jail.set_env("COUPON__RATE_LIMIT__WINDOW_MS", "999");
        jail.set_env("COUPON__RATE_LIMIT__CLIENT_HEADER", "X Real IP");
        let Err(ConfigError::Invalid(errors)) = load(&ConfigArgs::default()) else {
            return Err("bad limits must be refused".into());
        };
        let keys: Vec<_> = errors.0.iter().map(|e| e.key).collect();
        assert_eq!(
            keys,
            [
                "rate_limit.per_user",
                "rate_limit.window_ms",
                "rate_limit.client_header",
            ]
        );
        let text = errors.to_string();
        assert!(
            text.contains("COUPON__RATE_LIMIT__WINDOW_MS): must be between 1000 and 3600000 ms"),
            "{text}"
        );
        jail.set_env("COUPON__RATE_LIMIT__PER_USER", "0");
        jail.set_env("COUPON__RATE_LIMIT__WINDOW_MS", "1000");
        jail.set_env("COUPON__RATE_LIMIT__CLIENT_HEADER", "X-Forwarded-For");
        jail.set_env("COUPON__RATE_LIMIT__ENABLED", "false");
        let s = load(&ConfigArgs::default()).map_err(|e| e.to_string())?;
        assert_eq!(s.rate_limit.defaults(), None);
        assert_eq!(s.rate_limit.client_header(), Some("X-Forwarded-For"));
        Ok(())
    });
}

#[test]
fn the_sold_out_gate_is_on_by_default_and_bounded() {
    Jail::expect_with(|jail| {
        let s = load(&ConfigArgs::default()).map_err(|e| e.to_string())?;
        assert_eq!(s.sold_out_gate.lease(), Duration::from_millis(200));
        assert_eq!(s.sold_out_gate.max_participants, 100_000);
        jail.set_env("COUPON__SOLD_OUT_GATE__LEASE_MS", "5001");
        jail.set_env("COUPON__SOLD_OUT_GATE__MAX_PARTICIPANTS", "0");
        let Err(ConfigError::Invalid(errors)) = load(&ConfigArgs::default()) else {
            return Err("a 5001 ms lease and no participants must be refused".into());
        };
        let keys: Vec<_> = errors.0.iter().map(|e| e.key).collect();
        assert_eq!(
            keys,
            ["sold_out_gate.lease_ms", "sold_out_gate.max_participants"]
        );
        jail.set_env("COUPON__SOLD_OUT_GATE__LEASE_MS", "0");
        jail.set_env("COUPON__SOLD_OUT_GATE__MAX_PARTICIPANTS", "1");
        let s = load(&ConfigArgs::default()).map_err(|e| e.to_string())?;
        assert!(s.sold_out_gate.lease().is_zero(), "0 turns the gate off");
        Ok(())
    });
}
