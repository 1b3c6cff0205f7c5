//! The `[auth]` section: the mode's own settings whenever a mode is chosen; in `production`,
//! a mode at all where callers are served ([`Needs::auth`]), and trusted proxies for the
//! gateway header.

use super::{Invalid, Needs};
use crate::settings::{AuthMode, AuthSettings, JwtAlgorithm, parse_network};

/// Beyond five minutes of skew a clock is broken, and an expired token lives on.
const MAX_LEEWAY_S: u64 = 300;
/// HS256 secrets shorter than the hash output weaken it (RFC 7518, section 3.2).
const MIN_HS256_SECRET_BYTES: usize = 32;

pub(super) fn auth_problems(auth: &AuthSettings, needs: Needs, production: bool) -> Vec<Invalid> {
    let mut errors = Vec::new();
    let served = needs.auth;
    if production && served && auth.mode == AuthMode::Unset {
        errors.push(Invalid::new(
            "auth.mode",
            "must be chosen in the production profile (\"gateway-header\" or \"jwt\"): \
             without one any client can name any user",
        ));
    }
    if production
        && served
        && auth.mode == AuthMode::GatewayHeader
        && auth.trusted_proxies.is_empty()
    {
        errors.push(Invalid::new(
            "auth.trusted_proxies",
            "must list the gateways' CIDRs in the production profile with auth.mode \
             \"gateway-header\": otherwise any client can set the user header",
        ));
    }
    let count = auth.trusted_proxies.len();
    for (position, entry) in (1..).zip(&auth.trusted_proxies) {
        if parse_network(entry).is_none() {
            errors.push(Invalid::new(
                "auth.trusted_proxies",
                format!("entry {position} of {count} is not a CIDR or an IP address"),
            ));
        }
    }
    if !valid_header_name(&auth.user_header) {
        errors.push(Invalid::new(
            "auth.user_header",
            "must be an HTTP header name (letters, digits, '-', '_')",
        ));
    }
    if !auth.support_token.is_empty() && auth.support_token.expose().len() < 16 {
        errors.push(Invalid::new(
            "auth.support_token",
            "must be at least 16 characters when set",
        ));
    }
    if auth.mode == AuthMode::Jwt {
        errors.extend(jwt_problems(auth));
    }
    errors
}

fn jwt_problems(auth: &AuthSettings) -> Vec<Invalid> {
    let mut errors = Vec::new();
    match auth.jwt_algorithm {
        JwtAlgorithm::HS256 => {
            if auth.jwt_secret.expose().len() < MIN_HS256_SECRET_BYTES {
                errors.push(Invalid::new(
                    "auth.jwt_secret",
                    format!("must be at least {MIN_HS256_SECRET_BYTES} bytes with HS256"),
                ));
            }
            if !auth.jwt_keys_file.trim().is_empty() {
                errors.push(Invalid::new(
                    "auth.jwt_keys_file",
                    "is for RS256/ES256; HS256 verifies with auth.jwt_secret",
                ));
            }
        }
        JwtAlgorithm::RS256 | JwtAlgorithm::ES256 => {
            // Whether the file parses as keys is issuer-api's to check at start-up: the config
            // crate knows no key formats. Its existence is checked here, with the rest.
            let path = auth.jwt_keys_file.trim();
            if path.is_empty() {
                errors.push(Invalid::new(
                    "auth.jwt_keys_file",
                    "must name a PEM public key or JWKS file with RS256/ES256",
                ));
            } else if std::fs::metadata(path)
                .map(|m| !m.is_file())
                .unwrap_or(true)
            {
                errors.push(Invalid::new(
                    "auth.jwt_keys_file",
                    "does not name a readable file",
                ));
            }
            if !auth.jwt_secret.is_empty() {
                errors.push(Invalid::new(
                    "auth.jwt_secret",
                    "is for HS256; RS256/ES256 verify with auth.jwt_keys_file",
                ));
            }
        }
    }
    for (key, value) in [
        ("auth.jwt_issuer", &auth.jwt_issuer),
        ("auth.jwt_audience", &auth.jwt_audience),
        ("auth.jwt_user_claim", &auth.jwt_user_claim),
    ] {
        if value.trim().is_empty() {
            errors.push(Invalid::new(key, "must be set with auth.mode \"jwt\""));
        }
    }
    if auth.jwt_leeway_s > MAX_LEEWAY_S {
        errors.push(Invalid::new(
            "auth.jwt_leeway_s",
            format!("must be at most {MAX_LEEWAY_S} s"),
        ));
    }
    if !(100..=3_600_000).contains(&auth.jwt_reload_interval_ms) {
        errors.push(Invalid::new(
            "auth.jwt_reload_interval_ms",
            "must be between 100 and 3600000 ms",
        ));
    }
    errors
}

/// RFC 9110 token characters a configured header name plausibly uses.
fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

#[cfg(test)]
// figment::Jail fixes the closures' error type to its own (large) error.
#[allow(clippy::result_large_err)]
#[path = "auth_tests.rs"]
mod tests;
