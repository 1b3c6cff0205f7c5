//! What one run does: `[smoke]` with the command line's flags over it, checked as config is.

use anyhow::Context;
use couponrush_config::{Secret, Settings};
use url::Url;

use super::SmokeArgs;

#[derive(Debug)]
pub struct Plan {
    /// This run's id: its users are `smoke-<run>-<i>`.
    pub run: String,
    pub api: Url,
    pub consumers: Vec<Url>,
    pub count: u32,
    pub max_lag: u32,
    pub deadline: std::time::Duration,
    pub poll_interval: std::time::Duration,
    pub http_timeout: std::time::Duration,
    pub coupon_name: String,
    pub coupon_window_days: u32,
    pub admin_token: Secret,
}

impl Plan {
    pub fn new(args: &SmokeArgs, settings: &Settings) -> anyhow::Result<Self> {
        let mut merged = settings.clone();
        let smoke = &mut merged.smoke;
        if let Some(url) = &args.api_url {
            smoke.api_url.clone_from(url);
        }
        if !args.consumer_ops_urls.is_empty() {
            smoke.consumer_ops_urls.clone_from(&args.consumer_ops_urls);
        }
        smoke.count = args.count.unwrap_or(smoke.count);
        smoke.max_lag = args.max_lag.unwrap_or(smoke.max_lag);
        smoke.deadline_ms = args.deadline_ms.unwrap_or(smoke.deadline_ms);
        merged
            .validate_smoke()
            .context("smoke settings, with the command line's flags applied")?;
        let smoke = merged.smoke;
        // A UUIDv7: unique per run, and runs sort by time. 32 characters, so every user id
        // `smoke-<run>-<i>` stays within the 64 a user id may have.
        let run = uuid::Uuid::now_v7().simple().to_string();
        Ok(Self {
            run,
            api: smoke.api_url()?,
            consumers: smoke.consumer_ops_urls()?,
            count: smoke.count,
            max_lag: smoke.max_lag,
            deadline: smoke.deadline(),
            poll_interval: smoke.poll_interval(),
            http_timeout: smoke.http_timeout(),
            coupon_name: smoke.coupon_name.trim().to_owned(),
            coupon_window_days: smoke.coupon_window_days,
            admin_token: settings.admin.token.clone(),
        })
    }

    /// The users this run issues to.
    pub fn users(&self) -> Vec<String> {
        (1..=self.count)
            .map(|i| format!("smoke-{}-{i}", self.run))
            .collect()
    }
}
