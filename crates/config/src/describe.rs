//! Errors that name the variable to fix. figment's `Env` reports a bad `COUPON__HTTP__WORKERS`
//! as `for key "HTTP.WORKERS" in COUPON__ environment variable(s)`, a name nobody can set;
//! this provider reports it as `for key "COUPON__HTTP__WORKERS" in the environment`.

use figment::providers::Env;
use figment::value::{Dict, Map};
use figment::{Metadata, Profile, Provider};

use crate::ENV_PREFIX;

/// An `Env` provider of `COUPON__SECTION__KEY` variables whose errors name the variable.
pub(crate) struct NamedEnv(pub(crate) Env);

impl Provider for NamedEnv {
    fn metadata(&self) -> Metadata {
        Metadata::named("the environment").interpolater(|_: &Profile, keys: &[&str]| {
            let keys: Vec<String> = keys.iter().map(|k| k.to_ascii_uppercase()).collect();
            format!("{ENV_PREFIX}{}", keys.join("__"))
        })
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        self.0.data()
    }
}

#[cfg(test)]
// figment::Jail fixes the closures' error type to its own (large) error.
#[allow(clippy::result_large_err)]
mod tests {
    use figment::Jail;
    use figment::providers::Env;

    use crate::{ConfigArgs, ENV_PREFIX};

    fn error(var: &str, value: &str) -> String {
        let mut message = String::new();
        Jail::expect_with(|jail| {
            jail.set_env(var, value);
            message = ConfigArgs::default()
                .load_with(Env::prefixed(ENV_PREFIX).split("__"))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            Ok(())
        });
        message
    }

    #[test]
    fn errors_name_the_environment_variable() {
        let bad_value = error("COUPON__HTTP__WORKERS", "abc");
        assert!(
            bad_value.contains("for key \"COUPON__HTTP__WORKERS\" in the environment"),
            "{bad_value}"
        );
        let unknown = error("COUPON__HTTP__WORKRS", "3");
        assert!(
            unknown.contains("for key \"COUPON__HTTP__WORKRS\" in the environment"),
            "{unknown}"
        );
        assert!(unknown.contains("`workers`"), "{unknown}");
    }
}
