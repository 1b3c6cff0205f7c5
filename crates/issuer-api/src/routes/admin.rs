use actix_web::{HttpResponse, web};
use couponrush_cache::LoadOutcome;
use couponrush_domain::{CouponId, CouponSpec};
use serde_json::json;

use super::issue::coupon_id;
use crate::admin_auth::Admin;
use crate::error::ApiError;
use crate::state::AppState;

fn unavailable(what: &'static str) -> impl Fn(&dyn std::fmt::Display) -> ApiError {
    move |error| {
        tracing::error!(%error, "admin request failed on {what}");
        ApiError::Unavailable {
            what,
            retry_after_secs: 1,
        }
    }
}

/// `POST /admin/coupons`: creates the coupon in MySQL and loads its stock into Redis.
pub async fn create(
    _admin: Admin,
    state: web::Data<AppState>,
    body: web::Json<CouponSpec>,
) -> Result<HttpResponse, ApiError> {
    let spec = body.into_inner();
    spec.validate()?;
    let record = state
        .coupons
        .create(&spec)
        .await
        .map_err(|e| unavailable("MySQL")(&e))?;
    tracing::info!(coupon.id = %record.id, total = spec.total_quantity, "coupon created");
    // The coupon exists from here on: a failed Redis load must not invite a retry that would
    // create a second one, so the answer is still 201 and says how to load the stock.
    let body = match state.reservations.load(record.id, &record.spec).await {
        Ok(loaded) => json!({
            "couponId": record.id,
            "coupon": record.spec,
            "redisLoaded": true,
            "redisStock": stock_of(loaded),
        }),
        Err(error) => {
            state.metrics.redis_errors.inc();
            tracing::error!(%error, coupon.id = %record.id, "coupon created but not loaded into Redis");
            json!({
                "couponId": record.id,
                "coupon": record.spec,
                "redisLoaded": false,
                "redisStock": null,
                "message": format!(
                    "created in MySQL but not loaded into Redis; load it with PUT /admin/coupons/{}/stock",
                    record.id
                ),
            })
        }
    };
    Ok(HttpResponse::Created().json(body))
}

/// `PUT /admin/coupons/{id}/stock`: (re)loads a coupon into Redis from MySQL. Repeating it
/// never resets a live event's counters.
pub async fn warm_up(
    _admin: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = coupon_id(&path)?;
    let record = find(&state, id).await?;
    let loaded = state
        .reservations
        .load(id, &record.spec)
        .await
        .map_err(|e| unavailable("Redis")(&e))?;
    Ok(HttpResponse::Ok().json(json!({
        "couponId": id,
        "loaded": matches!(loaded, LoadOutcome::Loaded { .. }),
        "redisStock": stock_of(loaded),
    })))
}

/// `GET /admin/coupons/{id}/stats`: live counters from Redis and MySQL side by side.
pub async fn stats(
    _admin: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = coupon_id(&path)?;
    let record = find(&state, id).await?;
    let counters = state
        .reservations
        .counters(id)
        .await
        .map_err(|e| unavailable("Redis")(&e))?;
    let issued = state
        .coupons
        .issued_count(id)
        .await
        .map_err(|e| unavailable("MySQL")(&e))?;
    Ok(HttpResponse::Ok().json(json!({
        "couponId": id,
        "totalQuantity": record.spec.total_quantity,
        "redis": counters.map(|c| json!({
            "loaded": true,
            "stock": c.stock,
            "accepted": c.participants,
            "issued": c.issued,
            "pending": c.participants.saturating_sub(c.issued),
        })).unwrap_or_else(|| json!({ "loaded": false })),
        "mysql": {
            "issued": issued,
            "availableQuantity": record.available_quantity,
        },
    })))
}

async fn find(
    state: &AppState,
    id: CouponId,
) -> Result<couponrush_storage::CouponRecord, ApiError> {
    state
        .coupons
        .find(id)
        .await
        .map_err(|e| unavailable("MySQL")(&e))?
        .ok_or_else(|| ApiError::CouponNotFound(id.to_string()))
}

fn stock_of(outcome: LoadOutcome) -> u64 {
    match outcome {
        LoadOutcome::Loaded { stock } | LoadOutcome::AlreadyLoaded { stock } => stock,
    }
}
