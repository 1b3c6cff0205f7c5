//! `[smoke]`: the post-deploy smoke test's targets.

use std::time::Duration;

use serde::Deserialize;

/// The `compensation-batch smoke` command: where the deployment it checks answers, and how
/// much it asks of it. Only that command reads this section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmokeSettings {
    /// Base URL of issuer-api (http or https).
    #[serde(deserialize_with = "crate::lenient::text")]
    pub api_url: String,
    /// Ops port URLs of the consumers; each host is resolved to every address it has and each
    /// address is checked (a headless Service names every consumer pod).
    #[serde(deserialize_with = "crate::lenient::list")]
    pub consumer_ops_urls: Vec<String>,
    /// Issuances made per run.
    pub count: u32,
    /// The consumers' summed `kafka_consumer_lag` must stay below this.
    pub max_lag: u32,
    /// How long the issuances may take to read ISSUED and be in MySQL.
    pub deadline_ms: u64,
    /// Bound on every HTTP call.
    pub http_timeout_ms: u64,
    /// Pause between two looks at the issuances' status.
    pub poll_interval_ms: u64,
    /// Name of the dedicated smoke coupon, found in MySQL or created through the admin API.
    #[serde(deserialize_with = "crate::lenient::text")]
    pub coupon_name: String,
    /// How long the window of a smoke coupon it creates stays open.
    pub coupon_window_days: u32,
}

impl SmokeSettings {
    pub fn api_url(&self) -> Result<url::Url, url::ParseError> {
        url::Url::parse(self.api_url.trim())
    }

    pub fn consumer_ops_urls(&self) -> Result<Vec<url::Url>, url::ParseError> {
        self.consumer_ops_urls
            .iter()
            .map(|u| url::Url::parse(u.trim()))
            .collect()
    }

    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }

    pub fn http_timeout(&self) -> Duration {
        Duration::from_millis(self.http_timeout_ms)
    }

    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }
}
