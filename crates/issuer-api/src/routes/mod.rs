//! Route table. Every answer, including unknown routes and bad bodies, is JSON.

mod admin;
mod health;
mod issue;
mod status;

use actix_web::{HttpRequest, HttpResponse, web};
use couponrush_ops::health::{live, metrics, ready};

use crate::error::ApiError;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(16 * 1024)
            .error_handler(|err, _req: &HttpRequest| ApiError::InvalidBody(err.to_string()).into()),
    )
    .app_data(
        web::PathConfig::default()
            .error_handler(|err, _req| ApiError::InvalidBody(err.to_string()).into()),
    )
    .service(
        resource("/coupons/{coupon_id}/issue")
            .route(web::post().to(issue::issue))
            .default_service(only("POST")),
    )
    .service(
        resource("/coupons/{coupon_id}/issuances/{user_id}")
            .route(web::get().to(status::status))
            .default_service(only("GET")),
    )
    .service(
        resource("/health/live")
            .route(web::get().to(live))
            .default_service(only("GET")),
    )
    .service(
        resource("/health/ready")
            .route(web::get().to(ready::<AppState>))
            .default_service(only("GET")),
    )
    .service(
        resource("/openapi.json")
            .route(web::get().to(openapi))
            .default_service(only("GET")),
    )
    .service(
        resource("/metrics")
            .route(web::get().to(metrics::<AppState>))
            .default_service(only("GET")),
    )
    .service(
        resource("/admin/coupons")
            .route(web::post().to(admin::create))
            .default_service(only("POST")),
    )
    .service(
        resource("/admin/coupons/{coupon_id}/stock")
            .route(web::put().to(admin::warm_up))
            .default_service(only("PUT")),
    )
    .service(
        resource("/admin/coupons/{coupon_id}/stats")
            .route(web::get().to(admin::stats))
            .default_service(only("GET")),
    )
    .default_service(web::to(not_found));
}

/// The route pattern of a matched request, for metrics labels. Set per resource, so reading
/// it back is a type lookup, where `HttpRequest::match_pattern` would match the path again.
#[derive(Debug, Clone, Copy)]
pub struct RoutePattern(pub &'static str);

fn resource(pattern: &'static str) -> actix_web::Resource {
    web::resource(pattern).app_data(RoutePattern(pattern))
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::RouteNotFound)
}

/// The fallback of a resource: 405 naming the methods it does serve (RFC 9110 `Allow`).
fn only(allow: &'static str) -> actix_web::Route {
    web::to(move || async move { Err::<HttpResponse, _>(ApiError::MethodNotAllowed { allow }) })
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(include_str!("../openapi.json"))
}

#[cfg(test)]
mod tests {
    use couponrush_domain::{CouponSpec, CouponSpecError};

    /// OpenAPI 3.0 cannot say "`issue_ends_at` after `issue_starts_at`" in a schema: the
    /// document must say it in words, and the API must refuse what it says is refused.
    #[test]
    fn the_document_states_the_window_rule_the_api_enforces() -> Result<(), serde_json::Error> {
        let doc: serde_json::Value = serde_json::from_str(include_str!("../openapi.json"))?;
        let ends = doc["components"]["schemas"]["CouponSpec"]["properties"]["issue_ends_at"]
            ["description"]
            .as_str()
            .unwrap_or_default();
        assert!(
            ends.contains("strictly after") && ends.contains("422"),
            "{ends}"
        );
        let refused = doc["paths"]["/admin/coupons"]["post"]["responses"]["422"]["description"]
            .as_str()
            .unwrap_or_default();
        assert!(refused.contains("equal times are refused"), "{refused}");

        let example = &doc["paths"]["/admin/coupons"]["post"]["requestBody"]["content"]["application/json"]
            ["example"];
        let mut spec: CouponSpec = serde_json::from_value(example.clone())?;
        assert_eq!(spec.validate(), Ok(()));
        spec.issue_ends_at = spec.issue_starts_at;
        assert_eq!(spec.validate(), Err(CouponSpecError::Window));
        Ok(())
    }
}
