//! Who is calling (`auth.mode`, docs/security.md): a user named by a trusted gateway's header
//! or by a bearer JWT, or an operator holding the admin or support token.
//!
//! The admin token may issue for the user its request names in the user header (the smoke
//! test does, in every mode) and read any status; the support token reads any status and
//! issues nothing; a user reads only their own status.

mod jwt;
mod key_reload;

use std::sync::Arc;

use actix_web::HttpRequest;
use actix_web::http::header::{self, HeaderName};
use couponrush_config::{AuthMode, AuthSettings, Secret};
use couponrush_domain::{IdError, UserId};

pub use jwt::{KeyError, TokenError};

use crate::admin_auth::constant_time_eq;
use crate::error::ApiError;
use crate::metrics::ApiMetrics;
use crate::trusted_proxies::TrustedProxies;
use jwt::JwtVerifier;

/// Labels of `auth_rejections_total` besides the token reasons.
const UNTRUSTED_PEER: &str = "untrusted_peer";
const NOT_YOUR_REQUEST: &str = "not_your_request";
const USER_MISMATCH: &str = "user_mismatch";
const READ_ONLY: &str = "support_read_only";

/// Every `reason` of `auth_rejections_total`, created at start so each series exists at 0.
pub const REJECTION_REASONS: [&str; TokenError::ALL.len() + 4] = {
    let mut all = [""; TokenError::ALL.len() + 4];
    let mut i = 0;
    while i < TokenError::ALL.len() {
        all[i] = TokenError::ALL[i].label();
        i += 1;
    }
    all[i] = UNTRUSTED_PEER;
    all[i + 1] = NOT_YOUR_REQUEST;
    all[i + 2] = USER_MISMATCH;
    all[i + 3] = READ_ONLY;
    all
};

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    User(UserId),
    Admin,
    Support,
}

/// An issue request's user, and whether an operator (the admin token) made it for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuing {
    pub user: UserId,
    /// The smoke and load tests act for their synthetic users this way: abuse limits are for
    /// the public, not for the operator's own checks.
    pub by_operator: bool,
}

enum Mode {
    /// `gateway-header` (or none chosen, in development): the header names the user.
    Header,
    Jwt(Arc<JwtVerifier>),
}

/// Built once at start-up from `[auth]` and `admin.token`; shared by every worker.
pub struct Authenticator {
    mode: Mode,
    user_header: HeaderName,
    /// Empty: any peer may send the user header (development, or no mode chosen).
    trusted: TrustedProxies,
    admin_token: Secret,
    support_token: Secret,
    metrics: Arc<ApiMetrics>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("user_header", &self.user_header)
            .field("trusted", &self.trusted)
            .finish_non_exhaustive()
    }
}

/// Why the authenticator could not be built: start-up refuses.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error("auth.user_header is not an HTTP header name")]
    UserHeader,
    #[error(transparent)]
    Keys(#[from] KeyError),
}

impl Authenticator {
    /// Reads the JWT keys now (a keys file that does not parse refuses start-up) and, in jwt
    /// mode with a keys file, starts watching it for changes.
    pub fn start(
        settings: &AuthSettings,
        admin_token: &Secret,
        metrics: Arc<ApiMetrics>,
    ) -> Result<(Self, Option<tokio::task::JoinHandle<()>>), AuthSetupError> {
        let user_header = HeaderName::try_from(settings.user_header.trim())
            .map_err(|_| AuthSetupError::UserHeader)?;
        let (mode, watch) = match settings.mode {
            AuthMode::Unset | AuthMode::GatewayHeader => (Mode::Header, None),
            AuthMode::Jwt => {
                // Read once: the verifier's first keys and the reload watch's starting point.
                let keys_file = settings.jwt_keys_file.trim();
                let content = match keys_file {
                    "" => None,
                    path => Some(std::fs::read(path).map_err(KeyError::Read)?),
                };
                let verifier = Arc::new(JwtVerifier::new(settings, content.as_deref())?);
                let watch = content.map(|loaded| {
                    key_reload::watch(
                        verifier.clone(),
                        keys_file.into(),
                        loaded,
                        settings.jwt_reload_interval(),
                        metrics.clone(),
                    )
                });
                (Mode::Jwt(verifier), watch)
            }
        };
        if settings.mode == AuthMode::Unset {
            tracing::warn!(
                header = %user_header,
                "auth.mode is not set: the user header is trusted from any client (development only)"
            );
        }
        let authenticator = Self {
            mode,
            user_header,
            trusted: TrustedProxies::new(settings.trusted_proxies()),
            admin_token: admin_token.clone(),
            support_token: settings.support_token.clone(),
            metrics,
        };
        Ok((authenticator, watch))
    }

    /// Who sent `request`, and the user its header names. A malformed or repeated header is
    /// 400 whoever calls: an operator's request is held to the same shape as a user's.
    fn identify(&self, request: &HttpRequest) -> Result<(Caller, Option<UserId>), ApiError> {
        let named = self.header_user(request)?;
        let bearer = bearer(request);
        if let Some(token) = bearer {
            // Operators first: their tokens are not JWTs and work in every mode.
            for (secret, caller) in [
                (&self.admin_token, Caller::Admin),
                (&self.support_token, Caller::Support),
            ] {
                if !secret.is_empty()
                    && constant_time_eq(token.as_bytes(), secret.expose().as_bytes())
                {
                    return Ok((caller, named));
                }
            }
        }
        let user = match &self.mode {
            Mode::Header => {
                if !self.trusted.admit(request) {
                    return Err(self.reject(UNTRUSTED_PEER, ApiError::UntrustedPeer));
                }
                named
                    .clone()
                    .ok_or_else(|| ApiError::MissingUserId(self.user_header.to_string()))?
            }
            Mode::Jwt(verifier) => {
                let user = bearer
                    .ok_or(TokenError::Missing)
                    .and_then(|token| verifier.verify(token))
                    .map_err(|error| {
                        self.reject(error.label(), ApiError::Unauthenticated(error))
                    })?;
                // A header naming someone else is a confused client: refuse rather than issue
                // to a user it did not mean.
                if named.as_ref().is_some_and(|named| *named != user) {
                    return Err(self.reject(USER_MISMATCH, ApiError::UserMismatch));
                }
                user
            }
        };
        Ok((Caller::User(user), named))
    }

    /// Whom a request to issue is for: the caller, or the user the admin names.
    pub fn issuing(&self, request: &HttpRequest) -> Result<Issuing, ApiError> {
        match self.identify(request)? {
            (Caller::User(user), _) => Ok(Issuing {
                user,
                by_operator: false,
            }),
            (Caller::Admin, named) => Ok(Issuing {
                user: named.ok_or_else(|| ApiError::MissingUserId(self.user_header.to_string()))?,
                by_operator: true,
            }),
            (Caller::Support, _) => Err(self.reject(READ_ONLY, ApiError::SupportReadOnly)),
        }
    }

    /// Whether the caller may read `user`'s status.
    pub fn may_read(&self, request: &HttpRequest, user: &UserId) -> Result<(), ApiError> {
        match self.identify(request)?.0 {
            Caller::Admin | Caller::Support => Ok(()),
            Caller::User(caller) if caller == *user => Ok(()),
            Caller::User(_) => Err(self.reject(NOT_YOUR_REQUEST, ApiError::NotYourRequest)),
        }
    }

    fn reject(&self, reason: &'static str, error: ApiError) -> ApiError {
        self.metrics.auth_rejected(reason);
        tracing::info!(reason, "caller refused");
        error
    }

    /// The user the header names, if it is there once and valid.
    fn header_user(&self, request: &HttpRequest) -> Result<Option<UserId>, ApiError> {
        let mut values = request.headers().get_all(&self.user_header);
        let Some(raw) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(ApiError::AmbiguousUserId(self.user_header.to_string()));
        }
        let raw = raw
            .to_str()
            .map_err(|_| ApiError::InvalidUserId(IdError::UserIdCharset))?;
        UserId::parse(raw)
            .map(Some)
            .map_err(ApiError::InvalidUserId)
    }
}

/// The bearer token of `Authorization: Bearer <token>`, if any.
pub fn bearer(request: &HttpRequest) -> Option<&str> {
    request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}
