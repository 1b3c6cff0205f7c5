use figment::Jail;
use figment::providers::Env;

use super::super::Needs;
use crate::{ConfigArgs, ConfigError, ENV_PREFIX};

fn load(args: &ConfigArgs) -> Result<crate::Settings, ConfigError> {
    args.load_with(Env::prefixed(ENV_PREFIX).split("__"))
}

#[test]
fn production_requires_an_auth_mode_where_callers_are_served() {
    Jail::expect_with(|jail| {
        jail.set_env("COUPON__PROFILE", "production");
        jail.set_env("COUPON__KAFKA__BOOTSTRAP_SERVERS", "kafka:9092");
        jail.set_env("COUPON__REDIS__URL", "redis://:pw@redis:6379/0");
        jail.set_env("COUPON__MYSQL__HOST", "mysql");
        let api = Needs {
            auth: true,
            ..Needs::default()
        };
        let for_api =
            || ConfigArgs::default().load_with_needs(Env::prefixed(ENV_PREFIX).split("__"), api);
        // A job that serves no caller starts without a mode.
        load(&ConfigArgs::default()).map_err(|e| e.to_string())?;
        let keys_refused = || -> Result<Vec<&'static str>, String> {
            match for_api() {
                Err(ConfigError::Invalid(errors)) => Ok(errors.0.iter().map(|e| e.key).collect()),
                Err(other) => Err(other.to_string()),
                Ok(_) => Ok(Vec::new()),
            }
        };
        assert_eq!(keys_refused()?, ["auth.mode"]);
        // The gateway header alone would let any client name any user.
        jail.set_env("COUPON__AUTH__MODE", "gateway-header");
        assert_eq!(keys_refused()?, ["auth.trusted_proxies"]);
        jail.set_env(
            "COUPON__AUTH__TRUSTED_PROXIES",
            "10.0.0.0/8,fd00::/8,192.168.1.7",
        );
        assert_eq!(keys_refused()?, Vec::<&str>::new());
        let settings = for_api().map_err(|e| e.to_string())?;
        assert_eq!(settings.auth.trusted_proxies().len(), 3);
        Ok(())
    });
}

#[test]
fn auth_settings_are_checked_and_never_echoed() {
    Jail::expect_with(|jail| {
        let secret = "short-hs256-secret";
        jail.set_env("COUPON__AUTH__MODE", "jwt");
        jail.set_env("COUPON__AUTH__JWT_ALGORITHM", "HS256");
        jail.set_env("COUPON__AUTH__JWT_SECRET", secret);
        jail.set_env("COUPON__AUTH__JWT_LEEWAY_S", "301");
        jail.set_env("COUPON__AUTH__TRUSTED_PROXIES", "10.0.0.0/8,not-a-network");
        jail.set_env("COUPON__AUTH__SUPPORT_TOKEN", "tiny");
        let Err(ConfigError::Invalid(errors)) = load(&ConfigArgs::default()) else {
            return Err("bad auth settings must be refused".into());
        };
        let keys: Vec<_> = errors.0.iter().map(|e| e.key).collect();
        assert_eq!(
            keys,
            [
                "auth.trusted_proxies",
                "auth.support_token",
                "auth.jwt_secret",
                "auth.jwt_issuer",
                "auth.jwt_audience",
                "auth.jwt_leeway_s",
            ]
        );
        let text = errors.to_string();
        for value in [secret, "not-a-network", "tiny"] {
            assert!(!text.contains(value), "{value} echoed in {text}");
        }
        assert!(text.contains("entry 2 of 2"), "{text}");

        // RS256 wants a keys file that exists, and no HMAC secret.
        jail.set_env("COUPON__AUTH__JWT_ALGORITHM", "RS256");
        jail.set_env("COUPON__AUTH__JWT_KEYS_FILE", "/nonexistent/jwks.json");
        jail.set_env("COUPON__AUTH__JWT_LEEWAY_S", "30");
        jail.set_env("COUPON__AUTH__JWT_ISSUER", "https://id.example");
        jail.set_env("COUPON__AUTH__JWT_AUDIENCE", "couponrush");
        jail.set_env("COUPON__AUTH__TRUSTED_PROXIES", "");
        jail.set_env("COUPON__AUTH__SUPPORT_TOKEN", "");
        let Err(ConfigError::Invalid(errors)) = load(&ConfigArgs::default()) else {
            return Err("a missing keys file must be refused".into());
        };
        let keys: Vec<_> = errors.0.iter().map(|e| e.key).collect();
        assert_eq!(keys, ["auth.jwt_keys_file", "auth.jwt_secret"]);
        jail.create_file("jwks.json", "{\"keys\": []}")?;
        jail.set_env("COUPON__AUTH__JWT_KEYS_FILE", "jwks.json");
        jail.set_env("COUPON__AUTH__JWT_SECRET", "");
        load(&ConfigArgs::default()).map_err(|e| e.to_string())?;

        jail.set_env("COUPON__AUTH__MODE", "basic");
        let Err(error) = load(&ConfigArgs::default()) else {
            return Err("an unknown mode must be refused".into());
        };
        assert!(error.to_string().contains("COUPON__AUTH__MODE"), "{error}");
        Ok(())
    });
}
