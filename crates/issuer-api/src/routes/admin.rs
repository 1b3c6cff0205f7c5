use actix_web::{HttpResponse, web};
use couponrush_cache::LoadOutcome;
use couponrush_domain::{CouponId, CouponSpec};
use serde_json::json;

use super::issue::coupon_id;
use crate::admin_auth::Admin;
use crate::error::ApiError;
use crate::state::AppState;

/// `POST /admin/coupons`: creates the coupon in MySQL and loads its stock into Redis.
pub async fn create(
    _admin: Admin,
    state: web::Data<AppState>,
    body: web::Json<CouponSpec>,
) -> Result<HttpResponse, ApiError> {
    let spec = body.into_inner();
    spec.validate()?;
    let record = state.coupons.create(&spec).await?;
    tracing::info!(coupon.id = %record.id, total = spec.total_quantity, "coupon created");
    state.presence.remember(record.id);
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

/// `PUT /admin/coupons/{id}/stock`: loads a coupon into Redis from the records. A coupon Redis
/// has is left as is (repeating never resets a live event). A coupon Redis lost (or never got)
/// is rebuilt as `reconcile --repair` does: stock `total − MySQL holders − requests in flight`,
/// holders recorded as issued and in-flight users as pending, so nobody is accepted twice and
/// no unit is sold twice. Without a count of the requests in flight it loads nothing (503
/// `IN_FLIGHT_UNKNOWN`).
pub async fn warm_up(
    _admin: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = coupon_id(&path)?;
    let coupon = find(&state, id).await?;
    if let Some(snapshot) = state.reservations.stock_snapshot(id).await? {
        state.presence.loaded(id);
        return Ok(HttpResponse::Ok().json(json!({
            "couponId": id,
            "loaded": false,
            "redisStock": snapshot.stock.max(0),
        })));
    }
    // Kafka before MySQL: a request persisted in between is then seen in both (and counted
    // once, as a holder), never in neither.
    let in_flight = state.in_flight.scan().await.map_err(|error| {
        tracing::error!(%error, coupon.id = %id, "warm-up refused: requests in flight unknown");
        ApiError::InFlightUnknown(id.to_string())
    })?;
    let record = state
        .issuances
        .holders(id)
        .await?
        .ok_or_else(|| ApiError::CouponNotFound(id.to_string()))?;
    let holders = record.states().map_err(|error| {
        tracing::error!(%error, coupon.id = %id, "unreadable user id in coupon_user");
        ApiError::unavailable("MySQL")
    })?;
    let pending = in_flight.pending(id, |user| record.holders.contains_key(user.as_str()));
    let rebuilt = state
        .reservations
        .rebuild_lost(id, &coupon.spec, &holders, &pending)
        .await?;
    state.presence.loaded(id);
    tracing::info!(
        coupon.id = %id,
        stock = rebuilt.stock,
        holders = holders.len(),
        in_flight = pending.len(),
        loaded = rebuilt.restored.loaded,
        "coupon rebuilt in Redis from MySQL and the requests in flight"
    );
    Ok(HttpResponse::Ok().json(json!({
        "couponId": id,
        "loaded": rebuilt.restored.loaded,
        "redisStock": rebuilt.stock,
        "restoredIssued": holders.len(),
        "restoredPending": pending.len(),
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
    let counters = state.reservations.counters(id).await?;
    let issued = state.coupons.issued_count(id).await?;
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
        "rateLimit": state.limits.describe(record.spec.rate_limit),
    })))
}

async fn find(
    state: &AppState,
    id: CouponId,
) -> Result<couponrush_storage::CouponRecord, ApiError> {
    state
        .coupons
        .find(id)
        .await?
        .inspect(|record| state.presence.remember(record.id))
        .ok_or_else(|| ApiError::CouponNotFound(id.to_string()))
}

fn stock_of(outcome: LoadOutcome) -> u64 {
    match outcome {
        LoadOutcome::Loaded { stock } | LoadOutcome::AlreadyLoaded { stock } => stock,
    }
}
