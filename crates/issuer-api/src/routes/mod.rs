//! Route table. Every answer, including unknown routes and bad bodies, is JSON.

mod admin;
mod health;
mod issue;
mod status;

use actix_web::{HttpRequest, HttpResponse, web};

use crate::error::ApiError;

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
        web::resource("/coupons/{coupon_id}/issue")
            .route(web::post().to(issue::issue))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/coupons/{coupon_id}/issuances/{user_id}")
            .route(web::get().to(status::status))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/health/live")
            .route(web::get().to(health::live))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/health/ready")
            .route(web::get().to(health::ready))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/metrics")
            .route(web::get().to(health::metrics))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/admin/coupons")
            .route(web::post().to(admin::create))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/admin/coupons/{coupon_id}/stock")
            .route(web::put().to(admin::warm_up))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/admin/coupons/{coupon_id}/stats")
            .route(web::get().to(admin::stats))
            .default_service(web::to(method_not_allowed)),
    )
    .default_service(web::to(not_found));
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::RouteNotFound)
}

async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed)
}
