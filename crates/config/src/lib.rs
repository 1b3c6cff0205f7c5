//! Configuration shared by every couponrush binary.
//!
//! Layering, last wins: built-in development defaults ([`DEFAULTS`]), an optional TOML file,
//! `COUPON__SECTION__KEY` environment variables, then `--set section.key=value` flags.
//! [`Settings::validate`] runs before anything connects: the incident began with a consumer
//! pointed at a hard-coded `localhost:9092`, so a production profile that names a loopback host
//! refuses to start, naming the setting at fault.

mod args;
mod describe;
mod lenient;
mod redact;
mod secret;
mod secret_files;
mod settings;
mod validate;

pub use args::ConfigArgs;
pub use redact::LoadErrors;
pub use secret::Secret;
pub use settings::{
    AdminSettings, AuthMode, AuthSettings, ConsumerSettings, HttpSettings, JwtAlgorithm,
    KafkaSecurityProtocol, KafkaSettings, LogFormat, LogSettings, MessageSigningSettings,
    MysqlSettings, MysqlSslMode, OutboxSettings, Profile, RateLimitSettings, RedisMode,
    RedisSettings, SaslMechanism, Settings, SmokeSettings, SoldOutGateSettings, StartupSettings,
    TelemetrySettings, path_setting,
};
pub use validate::{Invalid, MIN_KEY_BYTES, Needs, ValidationErrors};

/// The built-in defaults, also the reference for every key.
pub const DEFAULTS: &str = include_str!("defaults.toml");

/// Prefix of environment variables; sections and keys are separated by `__`.
pub const ENV_PREFIX: &str = "COUPON__";

/// Why configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    MissingFile(std::path::PathBuf),
    /// The flag's position among the `--set` flags (from 1): its text is not repeated, since
    /// a flag without `=` may be a secret typed in the wrong place.
    #[error("--set flag {0} is not section.key=value")]
    BadOverride(usize),
    #[error(transparent)]
    Load(#[from] LoadErrors),
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
}
