//! `[rate_limit]`: the issue endpoint's abuse limits.

use serde::Deserialize;

/// Abuse limits of `POST /coupons/{id}/issue`, shared by every API instance through Redis.
/// These are the defaults; an event overrides them key by key (its `rate_limit` field).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    /// `false`: no request is limited, whatever an event says (the kill switch).
    pub enabled: bool,
    /// Requests one user id may make per window for one event; 0: unlimited.
    pub per_user: u32,
    /// Requests one client may make per window for one event; 0: unlimited.
    pub per_client: u32,
    pub window_ms: u32,
    /// Header naming the client, set by the gateway (its first comma-separated entry, an IP
    /// address); empty: the peer address of the connection.
    #[serde(deserialize_with = "crate::lenient::text")]
    pub client_header: String,
}

impl RateLimitSettings {
    /// The default limits, or `None` when limits are off.
    pub fn defaults(&self) -> Option<couponrush_domain::RateLimits> {
        self.enabled.then_some(couponrush_domain::RateLimits {
            per_user: self.per_user,
            per_client: self.per_client,
            window_ms: self.window_ms,
        })
    }

    /// The configured client header, if any.
    pub fn client_header(&self) -> Option<&str> {
        Some(self.client_header.trim()).filter(|h| !h.is_empty())
    }
}
