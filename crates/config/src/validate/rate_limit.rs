//! The `[rate_limit]` section: the same value ranges as an event's own limits (the domain's
//! rules), and a client header that is a valid header name.

use couponrush_domain::RateLimits;
use couponrush_domain::rate_limit::Section;

use super::Invalid;
use crate::settings::RateLimitSettings;

/// What is wrong with `limits`; checked even when they are off, so turning them on cannot
/// fail at the next start.
pub(super) fn rate_limit_problems(limits: &RateLimitSettings) -> Vec<Invalid> {
    let values = RateLimits {
        per_user: limits.per_user,
        per_client: limits.per_client,
        window_ms: limits.window_ms,
    };
    let mut errors: Vec<Invalid> = values
        .problems(Section::RATE_LIMIT)
        .iter()
        .map(|problem| Invalid::new(problem.key(), problem.problem()))
        .collect();
    if let Some(header) = limits.client_header()
        && !valid_header_name(header)
    {
        errors.push(Invalid::new(
            "rate_limit.client_header",
            "must be an HTTP header name (letters, digits and !#$%&'*+-.^_`|~), e.g. X-Real-IP",
        ));
    }
    errors
}

/// An RFC 9110 token: what an HTTP header name may be.
fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
