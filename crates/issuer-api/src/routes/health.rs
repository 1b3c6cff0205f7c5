use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::state::AppState;

/// Liveness: the process serves HTTP.
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "UP" }))
}

/// Readiness: Redis answered a PING and the broker answered the producer's metadata request
/// at the last check (every second, see `readiness`). Not ready means the load balancer should
/// send no one here.
///
/// Coupons whose state Redis lost are listed (`coupons.notLoaded`) but leave the API ready:
/// every replica shares the one Redis, so taking this one out of rotation would fix nothing and
/// would refuse the coupons that are fine; reloading the coupon is an operator's act.
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let mut checks = serde_json::Map::new();
    for dependency in state.readiness.dependencies() {
        let check = match dependency.last_error() {
            None if dependency.is_up() => json!({ "status": "UP" }),
            error => json!({ "status": "DOWN", "error": error }),
        };
        checks.insert(dependency.name.to_owned(), check);
    }
    let up = state.readiness.is_ready();
    let not_loaded: Vec<_> = state
        .presence
        .recently_not_loaded()
        .into_iter()
        .map(|(id, ago)| json!({ "couponId": id, "lastSeenSecondsAgo": ago.as_secs() }))
        .collect();
    let body = json!({
        "status": if up { "UP" } else { "DOWN" },
        "checks": checks,
        "coupons": { "notLoaded": not_loaded },
    });
    if up {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Prometheus scrape endpoint.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.encode())
}
