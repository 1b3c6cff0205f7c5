//! Bearer-token check for `/admin` routes.

use std::future::{Ready, ready};

use actix_web::{FromRequest, HttpRequest, web};
use couponrush_config::Secret;

use crate::error::ApiError;
use crate::state::AppState;

/// Extractor proving the caller is an admin. Put it first in a handler's arguments: extractors
/// run in order, so an unauthenticated caller gets 401 before the body is even read.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let result = match request.app_data::<web::Data<AppState>>() {
            Some(state) => require_admin(request, &state.admin_token).map(|()| Admin),
            None => Err(ApiError::AdminDisabled),
        };
        ready(result)
    }
}

/// Accepts the request only with `Authorization: Bearer <admin.token>`.
pub fn require_admin(request: &HttpRequest, token: &Secret) -> Result<(), ApiError> {
    if token.is_empty() {
        return Err(ApiError::AdminDisabled);
    }
    let presented = crate::auth::bearer(request).ok_or(ApiError::Unauthorized)?;
    if constant_time_eq(presented.as_bytes(), token.expose().as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// Compares without an early exit, so response time does not reveal a matching prefix.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn token_rules() {
        let token = Secret::new("s3cret-token-value");
        let ok = TestRequest::default()
            .insert_header(("Authorization", "Bearer s3cret-token-value"))
            .to_http_request();
        assert!(require_admin(&ok, &token).is_ok());
        for bad in [
            "Bearer nope",
            "s3cret-token-value",
            "Basic s3cret-token-value",
        ] {
            let req = TestRequest::default()
                .insert_header(("Authorization", bad))
                .to_http_request();
            assert!(matches!(
                require_admin(&req, &token),
                Err(ApiError::Unauthorized)
            ));
        }
        let none = TestRequest::default().to_http_request();
        assert!(matches!(
            require_admin(&none, &token),
            Err(ApiError::Unauthorized)
        ));
        assert!(matches!(
            require_admin(&ok, &Secret::default()),
            Err(ApiError::AdminDisabled)
        ));
    }

    /// `defaults.toml`, the reference of every key, says what the admin endpoints answer
    /// without a token: it must be what they answer.
    #[test]
    fn the_defaults_tell_the_status_answered_without_a_token() {
        use actix_web::ResponseError;
        let status = ApiError::AdminDisabled.status_code().as_u16();
        assert_eq!(status, 403);
        let comment: String = couponrush_config::DEFAULTS
            .lines()
            .skip_while(|line| *line != "[admin]")
            .take_while(|line| !line.starts_with("token"))
            .collect();
        assert!(comment.contains(&format!("answer {status}")), "{comment}");
    }
}
