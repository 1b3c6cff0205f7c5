//! `[auth]`: who calls issuer-api.

use std::time::Duration;

use serde::Deserialize;

use crate::secret::Secret;

/// How issuer-api learns who is calling (docs/security.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum AuthMode {
    /// None chosen: the user header is trusted from anyone. Development only.
    #[serde(rename = "", alias = "none")]
    Unset,
    /// An authenticating gateway sets the user header; only `trusted_proxies` may send it.
    #[serde(rename = "gateway-header")]
    GatewayHeader,
    /// A bearer JWT names the user.
    #[serde(rename = "jwt")]
    Jwt,
}

/// The one signature algorithm tokens must use: a token naming another is refused, so a
/// public key can never be used as an HMAC secret (the RS256/HS256 confusion).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum JwtAlgorithm {
    RS256,
    ES256,
    HS256,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    pub mode: AuthMode,
    /// Header naming the user in `gateway-header` mode (and under the admin token).
    #[serde(deserialize_with = "crate::lenient::text")]
    pub user_header: String,
    /// CIDRs (or single addresses) of the gateways allowed to set the user header.
    #[serde(deserialize_with = "crate::lenient::list")]
    pub trusted_proxies: Vec<String>,
    /// Reads any user's status (support staff); cannot issue. Empty: none.
    pub support_token: Secret,
    pub jwt_algorithm: JwtAlgorithm,
    /// RS256/ES256: a PEM public key or a JWKS document; re-read when it changes.
    #[serde(deserialize_with = "crate::lenient::text")]
    pub jwt_keys_file: String,
    /// HS256: the shared secret.
    pub jwt_secret: Secret,
    #[serde(deserialize_with = "crate::lenient::text")]
    pub jwt_issuer: String,
    #[serde(deserialize_with = "crate::lenient::text")]
    pub jwt_audience: String,
    /// Claim holding the user id.
    #[serde(deserialize_with = "crate::lenient::text")]
    pub jwt_user_claim: String,
    /// Clock skew allowed on `exp` and `nbf`.
    pub jwt_leeway_s: u64,
    /// How often `jwt_keys_file` is checked for a change.
    pub jwt_reload_interval_ms: u64,
}

impl AuthSettings {
    /// `trusted_proxies` as networks; entries that do not parse are left out (validation
    /// refuses them first).
    pub fn trusted_proxies(&self) -> Vec<ipnet::IpNet> {
        self.trusted_proxies
            .iter()
            .filter_map(|entry| parse_network(entry))
            .collect()
    }

    pub fn jwt_leeway(&self) -> Duration {
        Duration::from_secs(self.jwt_leeway_s)
    }

    pub fn jwt_reload_interval(&self) -> Duration {
        Duration::from_millis(self.jwt_reload_interval_ms)
    }
}

/// A CIDR, or a single address as its own /32 or /128 network.
pub(crate) fn parse_network(entry: &str) -> Option<ipnet::IpNet> {
    let entry = entry.trim();
    entry.parse::<ipnet::IpNet>().ok().or_else(|| {
        entry
            .parse::<std::net::IpAddr>()
            .ok()
            .map(ipnet::IpNet::from)
    })
}
