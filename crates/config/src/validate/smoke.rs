//! The `[smoke]` section. Its shape is checked for every binary (a bad value fails start-up
//! like any other); its targets' hosts only when the smoke command runs
//! ([`Settings::validate_smoke`]): every other binary never reads them, and a production
//! API must not refuse to start over a smoke default it never uses.

use super::{Invalid, ValidationErrors, is_loopback};
use crate::settings::{Profile, Settings, SmokeSettings};

/// The coupon table's `name` column holds this many characters.
const MAX_COUPON_NAME_LEN: usize = 100;
/// Users per run: each is one real issuance against the smoke coupon.
const MAX_COUNT: u32 = 1000;
/// Longest window of a created smoke coupon; its end must stay a valid MySQL DATETIME.
const MAX_WINDOW_DAYS: u32 = 36_500;

impl Settings {
    /// [`Self::validate`]'s checks of `[smoke]`, and in `production` the refusal of loopback
    /// targets: what `compensation-batch smoke` checks once its flags are applied.
    pub fn validate_smoke(&self) -> Result<(), ValidationErrors> {
        let errors = smoke_problems(&self.smoke, self.profile == Profile::Production);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(errors))
        }
    }
}

/// What is wrong with `smoke`; with `refuse_loopback`, a target on this machine too.
pub(super) fn smoke_problems(smoke: &SmokeSettings, refuse_loopback: bool) -> Vec<Invalid> {
    let mut errors = Vec::new();
    errors.extend(url_problem(
        "smoke.api_url",
        "it",
        &smoke.api_url,
        refuse_loopback,
    ));
    if smoke.consumer_ops_urls.is_empty() {
        errors.push(Invalid::new(
            "smoke.consumer_ops_urls",
            "must name at least one consumer ops URL",
        ));
    }
    let urls = smoke.consumer_ops_urls.len();
    for (position, raw) in (1..).zip(&smoke.consumer_ops_urls) {
        let what = format!("entry {position} of {urls}");
        errors.extend(url_problem(
            "smoke.consumer_ops_urls",
            &what,
            raw,
            refuse_loopback,
        ));
    }
    if !(1..=MAX_COUNT).contains(&smoke.count) {
        errors.push(Invalid::new(
            "smoke.count",
            format!("must be between 1 and {MAX_COUNT}"),
        ));
    }
    if smoke.max_lag == 0 {
        errors.push(Invalid::new(
            "smoke.max_lag",
            "must be at least 1 (the lag must stay below it)",
        ));
    }
    for (key, value) in [
        ("smoke.deadline_ms", smoke.deadline_ms),
        ("smoke.http_timeout_ms", smoke.http_timeout_ms),
    ] {
        if value == 0 || value > 600_000 {
            errors.push(Invalid::new(key, "must be between 1 and 600000 ms"));
        }
    }
    if smoke.poll_interval_ms == 0 || smoke.poll_interval_ms > smoke.deadline_ms {
        errors.push(Invalid::new(
            "smoke.poll_interval_ms",
            "must be between 1 ms and smoke.deadline_ms",
        ));
    }
    let name = smoke.coupon_name.trim();
    if name.is_empty() || smoke.coupon_name.chars().count() > MAX_COUPON_NAME_LEN {
        errors.push(Invalid::new(
            "smoke.coupon_name",
            format!("must be 1 to {MAX_COUPON_NAME_LEN} characters and not blank"),
        ));
    }
    if !(1..=MAX_WINDOW_DAYS).contains(&smoke.coupon_window_days) {
        errors.push(Invalid::new(
            "smoke.coupon_window_days",
            format!("must be between 1 and {MAX_WINDOW_DAYS}"),
        ));
    }
    errors
}

/// What is wrong with the URL `raw` of `key` (called `what` in the problem, which never
/// repeats the value), if anything.
fn url_problem(key: &'static str, what: &str, raw: &str, refuse_loopback: bool) -> Option<Invalid> {
    let url = url::Url::parse(raw.trim())
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https"));
    let problem = match url.as_ref().map(url::Url::host_str) {
        None => format!("{what} is not an http:// or https:// URL"),
        Some(None) => format!("{what} names no host"),
        Some(Some(host)) if refuse_loopback && is_loopback(host) => {
            format!("{what} is a loopback address, refused in the production profile")
        }
        Some(Some(_)) => return None,
    };
    Some(Invalid::new(key, problem))
}
