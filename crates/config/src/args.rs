use std::path::PathBuf;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use figment::value::Value;

use crate::describe::NamedEnv;
use crate::redact;
use crate::secret_files::SecretFiles;
use crate::{ConfigError, DEFAULTS, ENV_PREFIX, Needs, Settings};

/// Configuration flags shared by every binary; flatten into each binary's clap parser.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigArgs {
    /// TOML config file layered over the built-in defaults.
    #[arg(long, global = true, env = "COUPON_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Deployment profile (development | production); same as `--set profile=...`.
    #[arg(long, global = true, value_name = "PROFILE")]
    pub profile: Option<String>,

    /// Override one setting, e.g. `--set kafka.bootstrap_servers=broker:9092`. Repeatable;
    /// wins over the file and environment.
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

impl ConfigArgs {
    /// Loads and validates the configuration from the process environment.
    pub fn load(&self) -> Result<Settings, ConfigError> {
        self.load_for(Needs::default())
    }

    /// [`Self::load`] for a binary that also `needs` settings only some binaries use.
    pub fn load_for(&self, needs: Needs) -> Result<Settings, ConfigError> {
        self.load_with_needs(Env::prefixed(ENV_PREFIX).split("__"), needs)
    }

    /// Same as [`Self::load`] with an explicit environment provider (tests).
    pub fn load_with(&self, env: Env) -> Result<Settings, ConfigError> {
        self.load_with_needs(env, Needs::default())
    }

    /// Same as [`Self::load_for`] with an explicit environment provider (tests).
    pub fn load_with_needs(&self, env: Env, needs: Needs) -> Result<Settings, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULTS));
        if let Some(path) = &self.config {
            if !path.is_file() {
                return Err(ConfigError::MissingFile(path.clone()));
            }
            figment = figment.merge(SecretFiles(Toml::file(path)));
        }
        // Every layer a person sets may give a secret as `<key>_file` (secret_files.rs).
        figment = figment.merge(SecretFiles(NamedEnv(env)));
        if let Some(profile) = &self.profile {
            figment = figment.merge(("profile", profile.as_str()));
        }
        for (position, raw) in (1..).zip(&self.overrides) {
            let (key, value) = raw
                .split_once('=')
                .filter(|(k, _)| !k.trim().is_empty())
                .ok_or(ConfigError::BadOverride(position))?;
            // Parse like an env var value so `--set http.workers=4` is a number, not a string.
            let value: Value = value.parse().unwrap_or_else(|_| Value::from(value));
            figment = figment.merge(SecretFiles((key.trim(), value)));
        }
        let settings: Settings = figment
            .extract()
            .map_err(|error| redact::load_errors(error, &figment))?;
        settings.validate_for(needs)?;
        Ok(settings)
    }
}
