//! Abuse limits of the issue endpoint: how many requests one user, and one client (an IP
//! address), may make per window for one event. Configured defaults, overridden per event.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

/// Most requests a limit may allow per window; 0 means "no limit" for that subject.
pub const MAX_PER_WINDOW: u32 = 1_000_000;
/// Shortest window: `Retry-After` counts whole seconds.
pub const MIN_WINDOW_MS: u32 = 1_000;
/// Longest window: a key per user lives this long at most in Redis.
pub const MAX_WINDOW_MS: u32 = 3_600_000;

/// The limits in force for one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimits {
    /// Requests one user id may make per window; 0: unlimited.
    pub per_user: u32,
    /// Requests one client (IP address, or /64 for IPv6) may make per window; 0: unlimited.
    pub per_client: u32,
    pub window_ms: u32,
}

/// An event's own limits, key by key over the configured defaults (`[rate_limit]`). The admin
/// sets it on `POST /admin/coupons`; absent keys keep the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitOverride {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_user: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_client: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_ms: Option<u32>,
}

/// An override from a JSON object only: serde's derived struct also takes an array of its
/// fields in order (`[3, null, null]`), which the API neither documents nor wants.
pub(crate) fn object_only<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<RateLimitOverride, D::Error> {
    let object = serde_json::Map::deserialize(deserializer)?;
    RateLimitOverride::deserialize(serde_json::Value::Object(object)).map_err(D::Error::custom)
}

/// Why a limit value is refused (an admin's field or a configuration key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateLimitError {
    PerWindow { key: &'static str },
    Window { key: &'static str },
}

impl RateLimitError {
    /// The key at fault, e.g. `rate_limit.window_ms`.
    pub fn key(&self) -> &'static str {
        match self {
            Self::PerWindow { key } | Self::Window { key } => key,
        }
    }

    /// What is wrong with it (never its value: the config layer shows no value).
    pub fn problem(&self) -> String {
        match self {
            Self::PerWindow { .. } => {
                format!("must be between 0 (no limit) and {MAX_PER_WINDOW} requests per window")
            }
            Self::Window { .. } => {
                format!("must be between {MIN_WINDOW_MS} and {MAX_WINDOW_MS} ms")
            }
        }
    }
}

impl RateLimits {
    /// Checks each value; `section` prefixes the keys named in the errors.
    pub fn problems(&self, section: Section) -> Vec<RateLimitError> {
        let mut problems = Vec::new();
        for (key, value) in [
            (section.per_user, self.per_user),
            (section.per_client, self.per_client),
        ] {
            if value > MAX_PER_WINDOW {
                problems.push(RateLimitError::PerWindow { key });
            }
        }
        if !(MIN_WINDOW_MS..=MAX_WINDOW_MS).contains(&self.window_ms) {
            problems.push(RateLimitError::Window {
                key: section.window_ms,
            });
        }
        problems
    }
}

impl std::fmt::Display for RateLimitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.key(), self.problem())
    }
}

impl std::error::Error for RateLimitError {}

/// The key names under which limits are set, for error messages.
#[derive(Debug, Clone, Copy)]
pub struct Section {
    pub per_user: &'static str,
    pub per_client: &'static str,
    pub window_ms: &'static str,
}

impl Section {
    /// The admin's `rate_limit` field of a coupon event (and the `[rate_limit]` config section).
    pub const RATE_LIMIT: Self = Self {
        per_user: "rate_limit.per_user",
        per_client: "rate_limit.per_client",
        window_ms: "rate_limit.window_ms",
    };
}

impl RateLimitOverride {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The limits in force: this event's values where set, else `defaults`.
    pub fn over(&self, defaults: RateLimits) -> RateLimits {
        RateLimits {
            per_user: self.per_user.unwrap_or(defaults.per_user),
            per_client: self.per_client.unwrap_or(defaults.per_client),
            window_ms: self.window_ms.unwrap_or(defaults.window_ms),
        }
    }

    /// The first value out of range, if any (checked against valid stand-ins for the keys
    /// the event leaves to the defaults).
    pub fn validate(&self) -> Result<(), RateLimitError> {
        let stand_in = RateLimits {
            per_user: 0,
            per_client: 0,
            window_ms: MIN_WINDOW_MS,
        };
        match self
            .over(stand_in)
            .problems(Section::RATE_LIMIT)
            .into_iter()
            .next()
        {
            Some(problem) => Err(problem),
            None => Ok(()),
        }
    }
}

/// Which limit refused a request: the `reason` label of the rate-limit metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitedBy {
    User,
    Client,
}

impl LimitedBy {
    pub const ALL: [Self; 2] = [Self::User, Self::Client];

    pub fn label(&self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Client => "client",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: RateLimits = RateLimits {
        per_user: 10,
        per_client: 200,
        window_ms: 10_000,
    };

    #[test]
    fn an_event_overrides_key_by_key() {
        let event = RateLimitOverride {
            per_client: Some(0),
            ..RateLimitOverride::default()
        };
        assert_eq!(
            event.over(DEFAULTS),
            RateLimits {
                per_client: 0,
                ..DEFAULTS
            }
        );
        assert_eq!(RateLimitOverride::default().over(DEFAULTS), DEFAULTS);
    }

    #[test]
    fn out_of_range_values_name_their_key() {
        let cases = [
            (
                RateLimitOverride {
                    window_ms: Some(999),
                    ..Default::default()
                },
                "rate_limit.window_ms must be between 1000 and 3600000 ms",
            ),
            (
                RateLimitOverride {
                    per_client: Some(MAX_PER_WINDOW + 1),
                    ..Default::default()
                },
                "rate_limit.per_client must be between 0 (no limit) and 1000000 requests per window",
            ),
        ];
        for (event, message) in cases {
            assert_eq!(
                event.validate().map_err(|e| e.to_string()),
                Err(message.into())
            );
        }
        assert_eq!(RateLimitOverride::default().validate(), Ok(()));
    }

    #[test]
    fn unknown_keys_and_arrays_are_refused() {
        assert!(serde_json::from_str::<RateLimitOverride>(r#"{"per_ip":5}"#).is_err());
        let spec = |rate_limit: &str| {
            serde_json::from_str::<crate::CouponSpec>(&format!(
                r#"{{"name":"x","discount_amount":1,"total_quantity":1,
                "issue_starts_at":"2025-12-26T14:00:00+09:00",
                "issue_ends_at":"2025-12-26T15:00:00+09:00","expiry_days":1,
                "rate_limit":{rate_limit}}}"#
            ))
        };
        assert!(spec("[null, null]").is_err());
        assert!(spec("null").is_err());
        let own = spec(r#"{"per_user":3,"window_ms":null}"#).map(|s| s.rate_limit);
        assert_eq!(
            own.ok(),
            Some(RateLimitOverride {
                per_user: Some(3),
                ..RateLimitOverride::default()
            })
        );
    }
}
