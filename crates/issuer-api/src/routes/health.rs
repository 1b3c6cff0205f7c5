use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::state::AppState;

/// Liveness: the process serves HTTP.
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "UP" }))
}

/// Readiness: Redis answers a PING and the broker answers the producer's metadata request,
/// each within a bound. Not ready means the load balancer should send no one here.
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let (redis, kafka) = futures::join!(
        state.reservations.probe(state.ready_timeout),
        state.publisher.check(state.ready_timeout),
    );
    let verdict = |r: &Result<(), String>| match r {
        Ok(()) => json!({ "status": "UP" }),
        Err(e) => json!({ "status": "DOWN", "error": e }),
    };
    let redis = redis.map_err(|e| e.to_string());
    let kafka = kafka.map_err(|e| e.to_string());
    let up = redis.is_ok() && kafka.is_ok();
    let body = json!({
        "status": if up { "UP" } else { "DOWN" },
        "checks": { "redis": verdict(&redis), "kafka": verdict(&kafka) },
    });
    if up {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
