//! The `[message_signing]` section: key ids and key lengths whenever a key is set; in
//! `production`, a current key where messages are signed or verified ([`Needs`]).

use super::{Invalid, Needs};
use crate::settings::MessageSigningSettings;

/// HMAC-SHA256 keys shorter than its output (32 bytes) weaken it (RFC 2104, section 3).
pub const MIN_KEY_BYTES: usize = 32;
/// Ids travel in every message's signature header: short and plain.
const MAX_KEY_ID_LEN: usize = 64;

fn valid_key_id(id: &str) -> bool {
    (1..=MAX_KEY_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// What is wrong with `signing`; `production` with `needs.signing_key` requires a current key.
/// Problems name the key, never its value.
pub(super) fn signing_problems(
    signing: &MessageSigningSettings,
    needs: Needs,
    production: bool,
) -> Vec<Invalid> {
    let mut errors = Vec::new();
    if production && needs.signing_key && !signing.enabled() {
        errors.push(Invalid::new(
            "message_signing.key",
            "must be set in the production profile: unsigned issue messages must be refused",
        ));
    }
    if signing.key.is_empty() && !signing.previous_key.is_empty() {
        errors.push(Invalid::new(
            "message_signing.previous_key",
            "is set without a current message_signing.key",
        ));
    }
    let keys = [
        (
            "message_signing.key_id",
            "message_signing.key",
            &signing.key_id,
            &signing.key,
        ),
        (
            "message_signing.previous_key_id",
            "message_signing.previous_key",
            &signing.previous_key_id,
            &signing.previous_key,
        ),
    ];
    for (id_key, key_key, id, key) in keys {
        if key.is_empty() {
            continue;
        }
        if key.expose().len() < MIN_KEY_BYTES {
            errors.push(Invalid::new(
                key_key,
                format!("must be at least {MIN_KEY_BYTES} bytes"),
            ));
        }
        if !valid_key_id(id) {
            errors.push(Invalid::new(
                id_key,
                format!("must be 1-{MAX_KEY_ID_LEN} characters of [A-Za-z0-9._-]"),
            ));
        }
    }
    if !signing.previous_key.is_empty() {
        if signing.previous_key_id == signing.key_id {
            errors.push(Invalid::new(
                "message_signing.previous_key_id",
                "must differ from message_signing.key_id",
            ));
        }
        if signing.previous_key == signing.key {
            errors.push(Invalid::new(
                "message_signing.previous_key",
                "must differ from message_signing.key",
            ));
        }
    }
    errors
}
