//! Configuration errors name the setting and where it came from, never its value.
//!
//! A secret pasted into the wrong key (a password into `mysql.port`, a token into
//! `kafka.bootstrap_servers`) would otherwise be echoed into start-up logs, which are shipped
//! and kept far longer than the secret is. figment's errors quote the value they could not read
//! (`invalid type: found string "…"`); here each one keeps its key and source and loses the
//! value. The validation messages (validate.rs) are written without values in the first place.

use std::fmt;

use figment::Figment;
use figment::error::{Actual, Kind};
use figment::value::Value;

/// What stands where a value would have been.
const HIDDEN: &str = "<value not shown>";

/// Why the configuration could not be read: one line per problem, values left out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct LoadErrors(pub Vec<String>);

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::validate::bulleted(f, "configuration is not readable:", &self.0)
    }
}

/// `error` (every error of its chain), each with its value taken out. `figment` is what was
/// being read, to find the raw value a free-form message might repeat.
pub(crate) fn load_errors(error: figment::Error, figment: &Figment) -> LoadErrors {
    LoadErrors(
        error
            .into_iter()
            .map(|mut error| {
                let raw = figment.find_value(&error.path.join(".")).ok();
                error.kind = without_value(error.kind, raw.as_ref());
                error.to_string()
            })
            .collect(),
    )
}

/// `kind` saying what was wrong (the type found, what was expected), not what the value was.
fn without_value(kind: Kind, raw: Option<&Value>) -> Kind {
    match kind {
        Kind::Message(message) => Kind::Message(scrub(message, raw)),
        Kind::InvalidType(actual, expected) => Kind::InvalidType(shape(&actual), expected),
        Kind::InvalidValue(actual, expected) => Kind::InvalidValue(shape(&actual), expected),
        Kind::UnknownVariant(_, expected) => Kind::UnknownVariant(HIDDEN.to_owned(), expected),
        Kind::ISizeOutOfRange(_) | Kind::USizeOutOfRange(_) => {
            Kind::Message("integer out of range".to_owned())
        }
        Kind::Unsupported(actual) => Kind::Unsupported(shape(&actual)),
        Kind::UnsupportedKey(actual, expected) => Kind::UnsupportedKey(shape(&actual), expected),
        // Keys and lengths, not values.
        other @ (Kind::InvalidLength(..)
        | Kind::UnknownField(..)
        | Kind::MissingField(_)
        | Kind::DuplicateField(_)) => other,
    }
}

/// What kind of value was found, without the value.
fn shape(actual: &Actual) -> Actual {
    let shape = match actual {
        Actual::Bool(_) => "a boolean",
        Actual::Unsigned(_) | Actual::Signed(_) => "an integer",
        Actual::Float(_) => "a float",
        Actual::Char(_) => "a character",
        Actual::Str(_) => "a string",
        Actual::Bytes(_) => "bytes",
        Actual::Other(_) => "a value",
        // The rest carry no value; figment's own words for them.
        other => return Actual::Other(other.to_string()),
    };
    Actual::Other(format!("{shape} ({HIDDEN})"))
}

/// A deserializer's own message, with the raw value taken out wherever it repeats it. A value
/// too short to replace safely (it could match inside other words) withholds the message.
fn scrub(message: String, raw: Option<&Value>) -> String {
    let Some(raw) = raw.and_then(as_text) else {
        return message;
    };
    if raw.is_empty() || !message.contains(&raw) {
        message
    } else if raw.chars().count() >= 3 {
        message.replace(&raw, HIDDEN)
    } else {
        format!("invalid value ({HIDDEN})")
    }
}

/// A scalar value as text, as a message would quote it.
fn as_text(value: &Value) -> Option<String> {
    match value {
        Value::String(_, text) => Some(text.clone()),
        Value::Char(_, c) => Some(c.to_string()),
        Value::Bool(_, b) => Some(b.to_string()),
        Value::Num(_, n) => n.to_u128().map(|n| n.to_string()).or_else(|| {
            n.to_i128()
                .map(|n| n.to_string())
                .or_else(|| n.to_f64().map(|n| n.to_string()))
        }),
        Value::Empty(..) | Value::Dict(..) | Value::Array(..) => None,
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail closures return figment::Error
mod tests {
    use figment::Jail;
    use figment::providers::Env;

    use crate::{ConfigArgs, ConfigError, ENV_PREFIX};

    /// Looks like a secret pasted into the wrong place; must never appear in an error.
    const SECRET: &str = "s3cr3t-Hunter2-pasted";

    fn error_text(args: &ConfigArgs) -> String {
        match args.load_with(Env::prefixed(ENV_PREFIX).split("__")) {
            Ok(_) => String::from("(loaded)"),
            Err(error) => error.to_string(),
        }
    }

    /// Each way a value reaches an error: figment's type, value and variant errors, a
    /// deserializer's own message, every validation message, and a malformed `--set`.
    #[test]
    fn no_config_error_shows_the_value() {
        let lists = format!("http://ok:9090,{SECRET}");
        let filter = format!("{SECRET}=[[");
        let cases: [(&str, &str, &str); 8] = [
            // (variable, value, what the error must still name)
            ("COUPON__MYSQL__PORT", SECRET, "COUPON__MYSQL__PORT"),
            ("COUPON__PROFILE", SECRET, "COUPON__PROFILE"),
            (
                "COUPON__KAFKA__BOOTSTRAP_SERVERS",
                SECRET,
                "kafka.bootstrap_servers",
            ),
            ("COUPON__LOG__FILTER", &filter, "log.filter"),
            (
                "COUPON__TELEMETRY__OTLP_ENDPOINT",
                SECRET,
                "telemetry.otlp_endpoint",
            ),
            ("COUPON__SMOKE__API_URL", SECRET, "smoke.api_url"),
            ("COUPON__SMOKE__CONSUMER_OPS_URLS", &lists, "entry 2 of 2"),
            ("COUPON__HTTP__WORKERS", "-1", "COUPON__HTTP__WORKERS"),
        ];
        for (var, value, names) in cases {
            Jail::expect_with(|jail| {
                jail.set_env(var, value);
                let text = error_text(&ConfigArgs::default());
                assert!(text.contains(names), "{var}: {text}");
                if value.len() > 2 {
                    assert!(!text.contains(value), "{var} shown: {text}");
                }
                assert!(!text.contains(SECRET), "{var} shown: {text}");
                Ok(())
            });
        }
    }

    #[test]
    fn production_loopback_errors_name_the_entry_not_the_host() {
        Jail::expect_with(|jail| {
            jail.set_env("COUPON__PROFILE", "production");
            jail.set_env("COUPON__ADMIN__TOKEN", "0123456789abcdef0123");
            jail.set_env("COUPON__MYSQL__HOST", "localhost");
            jail.set_env("COUPON__REDIS__URL", "redis://:pw-Hunter2@127.0.0.1:6379");
            jail.set_env("COUPON__KAFKA__BOOTSTRAP_SERVERS", "kafka:9092");
            let text = error_text(&ConfigArgs::default());
            assert!(
                text.contains("mysql.host (COUPON__MYSQL__HOST): it is a loopback"),
                "{text}"
            );
            assert!(
                text.contains("redis.url (COUPON__REDIS__URL): its host is a loopback"),
                "{text}"
            );
            for shown in ["localhost", "127.0.0.1", "pw-Hunter2"] {
                assert!(!text.contains(shown), "{shown}: {text}");
            }
            Ok(())
        });
    }

    #[test]
    fn a_malformed_set_flag_is_named_by_position_only() {
        Jail::expect_with(|_| {
            let args = ConfigArgs {
                overrides: vec!["http.workers=2".into(), SECRET.into()],
                ..ConfigArgs::default()
            };
            let error = args.load_with(Env::prefixed(ENV_PREFIX).split("__")).err();
            assert!(
                matches!(error, Some(ConfigError::BadOverride(2))),
                "{error:?}"
            );
            let text = error.map(|e| e.to_string()).unwrap_or_default();
            assert_eq!(text, "--set flag 2 is not section.key=value");
            Ok(())
        });
    }

    #[test]
    fn a_typed_set_flag_error_hides_the_value_too() {
        Jail::expect_with(|_| {
            let args = ConfigArgs {
                overrides: vec![format!("mysql.port={SECRET}")],
                ..ConfigArgs::default()
            };
            let text = error_text(&args);
            assert!(text.contains("mysql.port"), "{text}");
            assert!(text.contains("a string (<value not shown>)"), "{text}");
            assert!(!text.contains(SECRET), "{text}");
            Ok(())
        });
    }
}
