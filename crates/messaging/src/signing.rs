//! HMAC-SHA256 over issue messages, so the consumer issues only what issuer-api accepted: a
//! client that can write to the topic but does not hold the key cannot have coupons issued.
//!
//! The MAC covers, in this order and each prefixed by its length (so no two different inputs
//! feed the same bytes): a scheme label, the topic, the message key (absent and empty differ),
//! and the exact payload bytes. The topic binds a message to the issue topic it was published
//! to (a message signed for another environment's topic does not verify here); the key binds
//! its partitioning (a copy re-keyed onto another partition to race the original does not
//! verify). Other headers are not covered: the schema version is checked against the payload's
//! own version, and the trace context is advisory. `replay-dlq` re-publishes key, payload and
//! headers unchanged to the same topic, so a replayed message still verifies.
//!
//! Header: `couponrush-sig: <key id>:<hex MAC>`. The id says which key to check with, so the
//! consumer can accept the current and the previous key during a rotation.

use couponrush_config::MessageSigningSettings;
use hmac::{Hmac, Mac};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use sha2::Sha256;

/// Header carrying `<key id>:<hex HMAC-SHA256>`.
pub const SIGNATURE_HEADER: &str = "couponrush-sig";

/// Versioned label, first in the MAC input: a future scheme cannot be confused with this one.
const SCHEME: &[u8] = b"couponrush-issue-hmac-sha256-v1";

type HmacSha256 = Hmac<Sha256>;

/// Why a message's signature is refused; each is a dead-letter reason of its own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureRejection {
    #[error("no {SIGNATURE_HEADER} header")]
    Unsigned,
    #[error("signed with key id {0:?}, which this consumer does not hold")]
    UnknownKeyId(String),
    #[error("the {SIGNATURE_HEADER} header does not verify: {0}")]
    BadSignature(&'static str),
}

impl SignatureRejection {
    /// The dead-letter reason (and metric label).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unsigned => "UNSIGNED",
            Self::UnknownKeyId(_) => "UNKNOWN_KEY_ID",
            Self::BadSignature(_) => "BAD_SIGNATURE",
        }
    }
}

/// One key and its id. Debug prints the id only.
#[derive(Clone)]
struct Key {
    id: String,
    secret: Vec<u8>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Key {
    fn mac(&self) -> HmacSha256 {
        // HMAC takes a key of any length; `new_from_slice` never fails for it.
        <HmacSha256 as Mac>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"))
    }
}

/// Signs with the current key and verifies with the current or the previous one.
/// `None`-like when signing is off (no key configured: development only).
#[derive(Debug, Clone, Default)]
pub struct MessageSigner {
    /// Current key first, then the previous one; empty when signing is off.
    keys: Vec<Key>,
}

impl MessageSigner {
    pub fn new(settings: &MessageSigningSettings) -> Self {
        Self {
            keys: settings
                .keys()
                .map(|(id, secret)| Key {
                    id: id.to_owned(),
                    secret: secret.expose().as_bytes().to_vec(),
                })
                .collect(),
        }
    }

    /// Whether a key is configured: messages are signed, and unsigned ones refused.
    pub fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The `couponrush-sig` header value for a message, with the current key; `None` when
    /// signing is off.
    pub fn signature(&self, topic: &str, key: Option<&[u8]>, payload: &[u8]) -> Option<String> {
        let current = self.keys.first()?;
        let mut mac = current.mac();
        feed(&mut mac, topic, key, payload);
        Some(format!(
            "{}:{}",
            current.id,
            hex(&mac.finalize().into_bytes())
        ))
    }

    /// `headers` plus the signature header (unchanged when signing is off).
    pub fn sign(
        &self,
        headers: OwnedHeaders,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
    ) -> OwnedHeaders {
        match self.signature(topic, key, payload) {
            Some(signature) => headers.insert(Header {
                key: SIGNATURE_HEADER,
                value: Some(signature.as_str()),
            }),
            None => headers,
        }
    }

    /// Checks a message's signature header value (`None`: no header). With signing off,
    /// everything passes (development only; production refuses to start without a key).
    /// The MAC is compared in constant time.
    pub fn verify(
        &self,
        header: Option<&[u8]>,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
    ) -> Result<(), SignatureRejection> {
        if !self.enabled() {
            return Ok(());
        }
        let header = header.ok_or(SignatureRejection::Unsigned)?;
        let header = std::str::from_utf8(header)
            .map_err(|_| SignatureRejection::BadSignature("header is not UTF-8"))?;
        let (id, mac_hex) = header
            .split_once(':')
            .ok_or(SignatureRejection::BadSignature(
                "header is not <key id>:<hex>",
            ))?;
        let signer = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| SignatureRejection::UnknownKeyId(printable(id)))?;
        let expected = unhex(mac_hex).ok_or(SignatureRejection::BadSignature("MAC is not hex"))?;
        let mut mac = signer.mac();
        feed(&mut mac, topic, key, payload);
        mac.verify_slice(&expected)
            .map_err(|_| SignatureRejection::BadSignature("MAC mismatch"))
    }

    /// [`Self::verify`] reading the signature header from `headers`.
    pub fn verify_message<H: Headers>(
        &self,
        headers: Option<&H>,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
    ) -> Result<(), SignatureRejection> {
        let header = headers.and_then(|headers| {
            headers
                .iter()
                .find(|h| h.key == SIGNATURE_HEADER)
                .and_then(|h| h.value)
        });
        self.verify(header, topic, key, payload)
    }
}

/// The MAC input: every part length-prefixed, the key's presence marked.
fn feed(mac: &mut HmacSha256, topic: &str, key: Option<&[u8]>, payload: &[u8]) {
    let mut part = |bytes: &[u8]| {
        mac.update(&u64::try_from(bytes.len()).unwrap_or(u64::MAX).to_be_bytes());
        mac.update(bytes);
    };
    part(SCHEME);
    part(topic.as_bytes());
    match key {
        Some(key) => {
            part(b"k");
            part(key);
        }
        None => part(b"-"),
    }
    part(payload);
}

/// A key id from a message, safe to log: anything odd is escaped, length bounded.
fn printable(id: &str) -> String {
    id.chars().take(64).flat_map(char::escape_default).collect()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests;
