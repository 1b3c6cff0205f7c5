//! Bearer JWT verification (`auth.mode = "jwt"`): one configured algorithm, keys from a PEM
//! file, a JWKS file or an HS256 secret, `exp`/`nbf`/`iss`/`aud` checked with bounded skew, the
//! user id taken from one claim.

use std::sync::{Arc, RwLock};

use couponrush_config::{AuthSettings, JwtAlgorithm};
use couponrush_domain::UserId;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

/// Why a token was refused. The reason goes back to the client (RFC 6750 `error_description`)
/// and into the `auth_rejections_total` metric; it never quotes the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no bearer token")]
    Missing,
    #[error("the token is not a JWT")]
    Malformed,
    #[error("the token's algorithm is not the one accepted")]
    Algorithm,
    #[error("the token names no key this service knows")]
    UnknownKey,
    #[error("the token's signature does not verify")]
    Signature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token's issuer is not the one accepted")]
    Issuer,
    #[error("the token's audience is not this service")]
    Audience,
    #[error("the token lacks a required claim")]
    MissingClaim,
    #[error("the token's user claim is not a valid user id")]
    BadUserId,
}

impl TokenError {
    /// Label of the `auth_rejections_total` metric.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Missing => "missing_token",
            Self::Malformed => "malformed",
            Self::Algorithm => "algorithm",
            Self::UnknownKey => "unknown_key",
            Self::Signature => "signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::Issuer => "issuer",
            Self::Audience => "audience",
            Self::MissingClaim => "missing_claim",
            Self::BadUserId => "bad_user_id",
        }
    }

    pub const ALL: [Self; 11] = [
        Self::Missing,
        Self::Malformed,
        Self::Algorithm,
        Self::UnknownKey,
        Self::Signature,
        Self::Expired,
        Self::NotYetValid,
        Self::Issuer,
        Self::Audience,
        Self::MissingClaim,
        Self::BadUserId,
    ];
}

/// Why the verification keys could not be read: start-up refuses, a reload keeps the old keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("auth.jwt_keys_file cannot be read: {0}")]
    Read(std::io::Error),
    #[error("auth.jwt_keys_file is neither a PEM public key nor a JWKS document for {alg:?}")]
    Parse { alg: Algorithm },
    #[error("auth.jwt_keys_file holds no {alg:?} key")]
    NoKey { alg: Algorithm },
}

/// The keys tokens may be signed with: one, or a JWKS set looked up by `kid`.
#[derive(Clone)]
pub struct KeySet {
    keys: Vec<(Option<String>, DecodingKey)>,
}

impl KeySet {
    /// Parses a PEM public key or a JWKS document (told apart by its first character).
    pub fn parse(alg: Algorithm, content: &[u8]) -> Result<Self, KeyError> {
        let text = content.trim_ascii_start();
        let keys = if text.starts_with(b"{") {
            let set: JwkSet = serde_json::from_slice(text).map_err(|_| KeyError::Parse { alg })?;
            set.keys
                .iter()
                // A key of another kind (an encryption key, another family) is not ours to use;
                // a JWKS commonly lists several.
                .filter_map(|jwk| {
                    let key = DecodingKey::from_jwk(jwk).ok()?;
                    (key.family() == alg.family()).then(|| (jwk.common.key_id.clone(), key))
                })
                .collect()
        } else {
            let key = match alg {
                Algorithm::RS256 => DecodingKey::from_rsa_pem(text),
                Algorithm::ES256 => DecodingKey::from_ec_pem(text),
                _ => return Err(KeyError::Parse { alg }),
            }
            .map_err(|_| KeyError::Parse { alg })?;
            vec![(None, key)]
        };
        if keys.is_empty() {
            return Err(KeyError::NoKey { alg });
        }
        Ok(Self { keys })
    }

    fn secret(secret: &[u8]) -> Result<Self, KeyError> {
        let key = DecodingKey::from_secret(secret).map_err(|_| KeyError::Parse {
            alg: Algorithm::HS256,
        })?;
        Ok(Self {
            keys: vec![(None, key)],
        })
    }

    /// The key a token names by `kid`; without a `kid`, the only key there is.
    fn find(&self, kid: Option<&str>) -> Option<&DecodingKey> {
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|(id, _)| id.as_deref() == Some(kid))
                // A single PEM key has no id: a token naming one still uses it.
                .or_else(|| {
                    (self.keys.len() == 1 && self.keys[0].0.is_none()).then(|| &self.keys[0])
                })
                .map(|(_, key)| key),
            None => (self.keys.len() == 1).then(|| &self.keys[0].1),
        }
    }

    pub fn count(&self) -> usize {
        self.keys.len()
    }
}

/// Verifies bearer tokens. The key set sits behind a lock so a reload (`key_reload.rs`) swaps
/// it under running requests; readers clone an `Arc` and verify without holding the lock.
pub struct JwtVerifier {
    alg: Algorithm,
    keys: RwLock<Arc<KeySet>>,
    validation: Validation,
    user_claim: String,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("alg", &self.alg)
            .field("user_claim", &self.user_claim)
            .finish_non_exhaustive()
    }
}

pub fn algorithm(configured: JwtAlgorithm) -> Algorithm {
    match configured {
        JwtAlgorithm::RS256 => Algorithm::RS256,
        JwtAlgorithm::ES256 => Algorithm::ES256,
        JwtAlgorithm::HS256 => Algorithm::HS256,
    }
}

impl JwtVerifier {
    /// Verifies with `keys_file` (RS256/ES256: the keys file's content, read by the caller,
    /// which also hands it to the reload watch) or the HS256 secret. Keys that do not parse
    /// refuse start-up.
    pub fn new(settings: &AuthSettings, keys_file: Option<&[u8]>) -> Result<Self, KeyError> {
        let alg = algorithm(settings.jwt_algorithm);
        let keys = match (settings.jwt_algorithm, keys_file) {
            (JwtAlgorithm::HS256, _) => KeySet::secret(settings.jwt_secret.expose().as_bytes())?,
            (_, Some(content)) => KeySet::parse(alg, content)?,
            (_, None) => return Err(KeyError::NoKey { alg }),
        };
        let mut validation = Validation::new(alg);
        validation.leeway = settings.jwt_leeway_s;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.set_audience(&[settings.jwt_audience.trim()]);
        validation.set_issuer(&[settings.jwt_issuer.trim()]);
        // A token without an expiry would be valid forever; without iss/aud, for anyone.
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        Ok(Self {
            alg,
            keys: RwLock::new(Arc::new(keys)),
            validation,
            user_claim: settings.jwt_user_claim.trim().to_owned(),
        })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// Replaces the key set (a reloaded keys file).
    pub fn replace_keys(&self, keys: KeySet) {
        let mut current = self
            .keys
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *current = Arc::new(keys);
    }

    fn keys(&self) -> Arc<KeySet> {
        self.keys
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The user a valid token names.
    pub fn verify(&self, token: &str) -> Result<UserId, TokenError> {
        // The header is read unverified only to pick the key; `decode` checks the algorithm
        // against the one configured before any signature work, so `alg: none` or an HMAC
        // token signed with a public key never gets that far.
        let header = jsonwebtoken::decode_header(token).map_err(|error| match error.kind() {
            ErrorKind::InvalidAlgorithmName | ErrorKind::UnsupportedAlgorithm => {
                TokenError::Algorithm
            }
            _ => TokenError::Malformed,
        })?;
        if header.alg != self.alg {
            return Err(TokenError::Algorithm);
        }
        let keys = self.keys();
        let key = keys
            .find(header.kid.as_deref())
            .ok_or(TokenError::UnknownKey)?;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, key, &self.validation)
            .map_err(|error| token_error(error.kind()))?;
        let user = data
            .claims
            .get(&self.user_claim)
            .ok_or(TokenError::MissingClaim)?
            .as_str()
            .ok_or(TokenError::BadUserId)?;
        UserId::parse(user).map_err(|_| TokenError::BadUserId)
    }
}

fn token_error(kind: &ErrorKind) -> TokenError {
    match kind {
        ErrorKind::InvalidSignature => TokenError::Signature,
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidIssuer => TokenError::Issuer,
        ErrorKind::InvalidAudience => TokenError::Audience,
        ErrorKind::MissingRequiredClaim(_) => TokenError::MissingClaim,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::UnsupportedAlgorithm => TokenError::Algorithm,
        // A key of the wrong kind for the token (a JWKS entry of another family) cannot verify.
        ErrorKind::InvalidEcdsaKey | ErrorKind::InvalidRsaKey(_) | ErrorKind::InvalidKeyFormat => {
            TokenError::Signature
        }
        _ => TokenError::Malformed,
    }
}
