use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use couponrush_cache::CacheError;
use couponrush_domain::{CouponSpecError, IdError, LimitedBy, RequestId};
use couponrush_storage::StorageError;
use serde::Serialize;

use crate::auth::TokenError;

/// Every error answer of the API: JSON with a stable machine-readable `code` and a message.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidCouponId(IdError),
    /// The user header's name (`auth.user_header`).
    #[error("header {0} is required")]
    MissingUserId(String),
    #[error("userId is invalid: {0}")]
    InvalidUserId(IdError),
    #[error("header {0} must be given once")]
    AmbiguousUserId(String),
    #[error("a valid bearer token is required: {0}")]
    Unauthenticated(TokenError),
    #[error("the user header is accepted only through the authenticating gateway")]
    UntrustedPeer,
    #[error("a user may read only their own requests")]
    NotYourRequest,
    #[error("the user header names another user than the bearer token")]
    UserMismatch,
    #[error("the support token reads statuses; it cannot issue")]
    SupportReadOnly,
    #[error("this endpoint takes no request body")]
    UnexpectedBody,
    #[error("coupon {0} does not exist")]
    CouponNotFound(String),
    #[error("request body is invalid: {0}")]
    InvalidBody(String),
    #[error("coupon is invalid: {0}")]
    InvalidCoupon(#[from] CouponSpecError),
    #[error("a valid admin bearer token is required")]
    Unauthorized,
    #[error("admin endpoints are disabled: no admin.token is configured")]
    AdminDisabled,
    #[error("no such route")]
    RouteNotFound,
    #[error("method not allowed on this route; allowed: {allow}")]
    MethodNotAllowed { allow: &'static str },
    #[error(
        "coupon {0} exists but its state is not loaded in Redis (lost in a Redis restart?); \
         nothing was reserved, retry later"
    )]
    CouponNotLoaded(String),
    #[error(
        "coupon {0} is not loaded in Redis, and the requests still in flight for it could not \
         be counted (the broker did not answer); loading it now could sell their coupons \
         twice, so nothing was loaded: retry when the broker answers"
    )]
    InFlightUnknown(String),
    #[error("{what} is unavailable, retry later")]
    Unavailable {
        what: &'static str,
        retry_after_secs: u32,
    },
    #[error("no stock is free, but some is held by requests still being confirmed; retry later")]
    StockHeld { retry_after_secs: u32 },
    /// Over the event's abuse limit for this user or client: nothing was reserved.
    #[error(
        "too many requests from this {}; retry after {retry_after_secs} s",
        by.label()
    )]
    RateLimited {
        by: LimitedBy,
        retry_after_secs: u32,
    },
    /// The outcome is not known yet; it resolves one way, visible at `status_url`.
    #[error("{message}")]
    Unconfirmed {
        request_id: RequestId,
        status_url: String,
        message: &'static str,
        retry_after_secs: u32,
    },
}

/// A coupon comes back only when an operator reloads it, a count of requests in flight only
/// when the broker answers: a slower retry than a blip.
const NOT_LOADED_RETRY_AFTER_SECS: u32 = 5;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody<'a> {
    code: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<RequestId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_url: Option<&'a str>,
}

impl ApiError {
    /// Stable identifier clients can switch on; never change an existing one.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidCouponId(_) => "INVALID_COUPON_ID",
            Self::MissingUserId(_) => "MISSING_USER_ID",
            Self::InvalidUserId(_) | Self::AmbiguousUserId(_) => "INVALID_USER_ID",
            Self::Unauthenticated(_) => "UNAUTHENTICATED",
            Self::UntrustedPeer => "UNTRUSTED_PEER",
            Self::NotYourRequest => "NOT_YOUR_REQUEST",
            Self::UserMismatch => "USER_MISMATCH",
            Self::SupportReadOnly => "SUPPORT_READ_ONLY",
            Self::UnexpectedBody => "UNEXPECTED_BODY",
            Self::CouponNotFound(_) => "COUPON_NOT_FOUND",
            Self::InvalidBody(_) => "INVALID_BODY",
            Self::InvalidCoupon(_) => "INVALID_COUPON",
            Self::Unauthorized => "UNAUTHORIZED",
            Self::AdminDisabled => "ADMIN_DISABLED",
            Self::RouteNotFound => "NOT_FOUND",
            Self::MethodNotAllowed { .. } => "METHOD_NOT_ALLOWED",
            Self::CouponNotLoaded(_) => "COUPON_NOT_LOADED",
            Self::InFlightUnknown(_) => "IN_FLIGHT_UNKNOWN",
            Self::Unavailable { .. } => "UNAVAILABLE",
            Self::StockHeld { .. } => "STOCK_HELD",
            Self::Unconfirmed { .. } => "UNCONFIRMED",
            Self::RateLimited { .. } => "RATE_LIMITED",
        }
    }
}

/// Seconds a client should wait before retrying after a transient failure.
pub const RETRY_AFTER_SECS: u32 = 1;

impl ApiError {
    /// `what` cannot serve the request now: 503 with a retry hint.
    pub fn unavailable(what: &'static str) -> Self {
        Self::Unavailable {
            what,
            retry_after_secs: RETRY_AFTER_SECS,
        }
    }
}

/// A failed Redis read or load: 503, the cause logged. Not for the reserve call, whose failure
/// may hide a reservation made (`routes::issue` decides what its user is told).
impl From<CacheError> for ApiError {
    fn from(error: CacheError) -> Self {
        tracing::error!(%error, "request failed on Redis");
        Self::unavailable("Redis")
    }
}

/// A failed MySQL call: 503, the cause logged.
impl From<StorageError> for ApiError {
    fn from(error: StorageError) -> Self {
        tracing::error!(%error, "request failed on MySQL");
        Self::unavailable("MySQL")
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::InvalidCouponId(_)
            | Self::MissingUserId(_)
            | Self::InvalidUserId(_)
            | Self::AmbiguousUserId(_)
            | Self::UnexpectedBody
            | Self::InvalidBody(_) => StatusCode::BAD_REQUEST,
            Self::InvalidCoupon(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::CouponNotFound(_) | Self::RouteNotFound => StatusCode::NOT_FOUND,
            Self::Unauthorized | Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::AdminDisabled
            | Self::UntrustedPeer
            | Self::NotYourRequest
            | Self::UserMismatch
            | Self::SupportReadOnly => StatusCode::FORBIDDEN,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable { .. }
            | Self::StockHeld { .. }
            | Self::Unconfirmed { .. }
            | Self::CouponNotLoaded(_)
            | Self::InFlightUnknown(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        match self {
            Self::Unavailable {
                retry_after_secs, ..
            }
            | Self::StockHeld { retry_after_secs }
            | Self::Unconfirmed {
                retry_after_secs, ..
            }
            | Self::RateLimited {
                retry_after_secs, ..
            } => {
                response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            Self::CouponNotLoaded(_) | Self::InFlightUnknown(_) => {
                response.insert_header((header::RETRY_AFTER, NOT_LOADED_RETRY_AFTER_SECS));
            }
            Self::MethodNotAllowed { allow } => {
                response.insert_header((header::ALLOW, *allow));
            }
            Self::Unauthorized | Self::Unauthenticated(TokenError::Missing) => {
                response
                    .insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
            }
            // RFC 6750 section 3: a token was presented and refused.
            Self::Unauthenticated(reason) => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    format!("Bearer error=\"invalid_token\", error_description=\"{reason}\""),
                ));
            }
            _ => {}
        }
        let (request_id, status_url) = match self {
            Self::Unconfirmed {
                request_id,
                status_url,
                ..
            } => (Some(*request_id), Some(status_url.as_str())),
            _ => (None, None),
        };
        response.json(ErrorBody {
            code: self.code(),
            message: self.to_string(),
            request_id,
            status_url,
        })
    }
}
