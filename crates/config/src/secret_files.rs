//! Any secret setting may be given as a file instead: `<key>_file` in any layer (a config file,
//! `COUPON__MYSQL__PASSWORD_FILE=/run/secrets/mysql-password`, `--set mysql.password_file=…`)
//! names a file whose content becomes `<key>` in that same layer, trailing newline trimmed.
//! That is how Kubernetes and Docker hand out secrets (mounted files), and it keeps them out of
//! the process environment, which crash reporters and `/proc/<pid>/environ` readers see.
//!
//! Done here, once, as a wrapper around every layer's provider: the file is read when the layer
//! is loaded, and a problem names the key and what is wrong with the file (missing, not
//! readable, not text), never the path or the content.

use std::io::ErrorKind;

use figment::value::{Dict, Map, Value};
use figment::{Error, Metadata, Profile, Provider};

/// Every [`crate::Secret`] setting, as `section.key`: the keys `<key>_file` may stand for.
/// `secret_keys_are_all_secret` (tests below) proves each is one.
pub(crate) const SECRET_KEYS: &[&str] = &[
    "admin.token",
    "auth.support_token",
    "auth.jwt_secret",
    "mysql.password",
    "redis.url",
    "redis.cluster_nodes",
    "kafka.sasl_password",
    "kafka.ssl_key_password",
    "message_signing.key",
    "message_signing.previous_key",
];

/// Suffix of a key that names the file holding a secret.
const FILE_SUFFIX: &str = "_file";

/// A layer whose `<secret>_file` keys are replaced by the secrets they name.
pub(crate) struct SecretFiles<P>(pub(crate) P);

impl<P: Provider> Provider for SecretFiles<P> {
    fn metadata(&self) -> Metadata {
        self.0.metadata()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, Error> {
        let mut data = self.0.data()?;
        for dict in data.values_mut() {
            resolve(dict).map_err(Error::from)?;
        }
        Ok(data)
    }
}

/// Replaces each `section.<secret>_file` of `dict` by `section.<secret>`.
fn resolve(dict: &mut Dict) -> Result<(), String> {
    for (section, value) in dict.iter_mut() {
        let Value::Dict(_, keys) = value else {
            continue;
        };
        let named: Vec<String> = keys
            .keys()
            .filter(|key| {
                key.strip_suffix(FILE_SUFFIX)
                    .is_some_and(|stem| SECRET_KEYS.contains(&format!("{section}.{stem}").as_str()))
            })
            .cloned()
            .collect();
        for file_key in named {
            let stem = file_key.trim_end_matches(FILE_SUFFIX).to_owned();
            let setting = format!("{section}.{stem}");
            // An empty value is no value: `COUPON__MYSQL__PASSWORD=` beside a `_FILE` (a
            // development default left exported) does not make the two ambiguous.
            let set_too = keys
                .get(&stem)
                .is_some_and(|v| !matches!(v, Value::String(_, text) if text.is_empty()));
            if set_too {
                return Err(format!(
                    "{setting} and {setting}{FILE_SUFFIX} are both set in one layer: set one"
                ));
            }
            let path = match keys.remove(&file_key) {
                Some(Value::String(_, path)) => path,
                _ => {
                    return Err(format!("{setting}{FILE_SUFFIX} must be a path (text)"));
                }
            };
            let secret = read_secret(&path)
                .map_err(|problem| format!("{setting}{FILE_SUFFIX}: {problem}"))?;
            keys.insert(stem, Value::from(secret));
        }
    }
    Ok(())
}

/// The file's text without its trailing newline (what `echo` and editors add); why not, in
/// words that name neither the path nor the content.
fn read_secret(path: &str) -> Result<String, String> {
    let bytes = std::fs::read(path.trim()).map_err(|error| match error.kind() {
        ErrorKind::NotFound => "the file does not exist".to_owned(),
        ErrorKind::PermissionDenied => "the file may not be read by this process".to_owned(),
        ErrorKind::IsADirectory => "names a directory, not a file".to_owned(),
        kind => format!("the file cannot be read ({kind})"),
    })?;
    let text = String::from_utf8(bytes).map_err(|_| "the file is not UTF-8 text".to_owned())?;
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail closures return figment::Error
mod tests {
    use figment::Jail;
    use figment::providers::Env;

    use super::SECRET_KEYS;
    use crate::{ConfigArgs, ConfigError, ENV_PREFIX, Settings};

    /// Long enough for every secret's own checks (a signing key needs 32 bytes).
    const CONTENT: &str = "file-Secret-0123456789abcdef0123456789";

    fn load(args: &ConfigArgs) -> Result<Settings, ConfigError> {
        args.load_with(Env::prefixed(ENV_PREFIX).split("__"))
    }

    fn env_var(key: &str) -> String {
        format!("{ENV_PREFIX}{}_FILE", key.replace('.', "__").to_uppercase())
    }

    #[test]
    fn a_secret_comes_from_a_file_in_the_environment_file_or_flag_layer() {
        Jail::expect_with(|jail| {
            // The shell's own COUPON__* (scripts/stack.sh exports some) must not meet the
            // test's `_file` keys.
            jail.clear_env();
            jail.create_file("mysql-password", &format!("{CONTENT}\n"))?;
            jail.set_env("COUPON__MYSQL__PASSWORD_FILE", "mysql-password");
            let s = load(&ConfigArgs::default()).map_err(|e| e.to_string())?;
            assert_eq!(s.mysql.password.expose(), CONTENT, "newline trimmed");
            jail.clear_env();

            jail.create_file("sasl", &format!("{CONTENT}-sasl\r\n"))?;
            jail.create_file(
                "c.toml",
                "[kafka]\nsasl_password_file = \"sasl\"\n[admin]\ntoken_file = \"mysql-password\"\n",
            )?;
            let args = ConfigArgs {
                config: Some("c.toml".into()),
                overrides: vec!["redis.url_file=redis-url".into()],
                ..ConfigArgs::default()
            };
            jail.create_file("redis-url", "redis://:pw@127.0.0.1:6379\n")?;
            let s = load(&args).map_err(|e| e.to_string())?;
            assert_eq!(s.kafka.sasl_password.expose(), format!("{CONTENT}-sasl"));
            assert_eq!(s.admin.token.expose(), CONTENT);
            assert_eq!(s.redis.url.expose(), "redis://:pw@127.0.0.1:6379");
            Ok(())
        });
    }

    /// Each listed key is loaded from a file and never shows in `Debug`: it is a `Secret`.
    #[test]
    fn secret_keys_are_all_secret() {
        for key in SECRET_KEYS {
            Jail::expect_with(|jail| {
                // The shell's own COUPON__* (scripts/stack.sh exports some) must not meet the
                // test's `_file` keys.
                jail.clear_env();
                let content = if *key == "redis.url" {
                    format!("redis://:{CONTENT}@127.0.0.1:6379")
                } else if *key == "redis.cluster_nodes" {
                    // Seed nodes are only accepted in cluster mode.
                    jail.set_env("COUPON__REDIS__MODE", "cluster");
                    format!("redis://:{CONTENT}@127.0.0.1:7000,redis://:{CONTENT}@127.0.0.1:7001")
                } else {
                    CONTENT.to_owned()
                };
                jail.create_file("secret", &content)?;
                jail.set_env(env_var(key), "secret");
                if *key == "message_signing.previous_key" {
                    // A previous key is only accepted beside a current one.
                    jail.set_env("COUPON__MESSAGE_SIGNING__KEY", "k".repeat(32));
                    jail.set_env("COUPON__MESSAGE_SIGNING__PREVIOUS_KEY_ID", "k0");
                }
                let s = load(&ConfigArgs::default()).map_err(|e| format!("{key}: {e}"))?;
                let shown = format!("{s:?}");
                assert!(shown.contains("[redacted]"), "{key}");
                assert!(!shown.contains(CONTENT), "{key} is not a Secret");
                Ok(())
            });
        }
    }

    #[test]
    fn file_problems_name_the_key_never_the_path_or_content() {
        Jail::expect_with(|jail| {
            // The shell's own COUPON__* (scripts/stack.sh exports some) must not meet the
            // test's `_file` keys.
            jail.clear_env();
            let missing = "/no/such/dir/s3cr3t-path";
            jail.set_env("COUPON__MYSQL__PASSWORD_FILE", missing);
            let text = load(&ConfigArgs::default())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                text.contains("mysql.password_file: the file does not exist"),
                "{text}"
            );
            assert!(!text.contains(missing), "{text}");

            jail.create_file("pw", CONTENT)?;
            jail.set_env("COUPON__MYSQL__PASSWORD_FILE", "pw");
            jail.set_env("COUPON__MYSQL__PASSWORD", "also-set");
            let text = load(&ConfigArgs::default())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                text.contains("mysql.password and mysql.password_file are both set"),
                "{text}"
            );
            assert!(
                !text.contains(CONTENT) && !text.contains("also-set"),
                "{text}"
            );

            // A non-secret key has no `_file` form: an unknown key, as any misspelling.
            jail.clear_env();
            jail.set_env("COUPON__MYSQL__HOST_FILE", "pw");
            let text = load(&ConfigArgs::default())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(text.contains("COUPON__MYSQL__HOST_FILE"), "{text}");
            assert!(!text.contains(CONTENT), "{text}");
            Ok(())
        });
    }
}
