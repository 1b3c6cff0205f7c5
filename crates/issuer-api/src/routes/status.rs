//! `GET /coupons/{couponId}/issuances/{userId}`: where one user's request stands.
//!
//! Redis answers first; MySQL, the record, answers whenever Redis does not know (state lost,
//! coupon not loaded, Redis down) and whenever Redis still says PENDING, so a coupon persisted
//! just before a consumer crash is reported ISSUED. Never ISSUED without the MySQL row or the
//! consumer's confirmation that follows it. Without Redis, MySQL can prove ISSUED and SOLD_OUT
//! but not NOT_REQUESTED (a request still in Kafka is only in Redis): that answer is 503
//! (`COUPON_NOT_LOADED` when Redis lost the coupon, `UNAVAILABLE` when it is down).

use actix_web::{HttpRequest, HttpResponse, web};
use couponrush_cache::UserView;
use couponrush_domain::coupon::expires_at;
use couponrush_domain::{CouponId, ParticipantState, RequestId, UserId};
use couponrush_storage::IssuedCoupon;
use serde::Serialize;
use time::OffsetDateTime;

use super::issue::coupon_id;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusAnswer {
    coupon_id: CouponId,
    user_id: UserId,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<RequestId>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    requested_at: Option<OffsetDateTime>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    issued_at: Option<OffsetDateTime>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    expires_at: Option<OffsetDateTime>,
}

impl StatusAnswer {
    fn new(coupon_id: CouponId, user_id: UserId, status: &'static str) -> Self {
        Self {
            coupon_id,
            user_id,
            status,
            request_id: None,
            requested_at: None,
            issued_at: None,
            expires_at: None,
        }
    }

    fn issued(mut self, coupon: IssuedCoupon) -> Self {
        self.status = "ISSUED";
        self.request_id = coupon.request_id.or(self.request_id);
        self.issued_at = Some(coupon.issued_at);
        self.expires_at = Some(coupon.expires_at);
        self
    }
}

pub async fn status(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (raw_coupon, raw_user) = path.into_inner();
    let user = UserId::parse(&raw_user).map_err(ApiError::InvalidUserId)?;
    // Only the user themself (or support staff) may learn where a request stands.
    state.auth.may_read(&request, &user)?;
    let coupon = coupon_id(&raw_coupon)?;
    let answer = StatusAnswer::new(coupon, user.clone(), "NOT_REQUESTED");

    let (view, redis_down) = match state.reservations.user_view(coupon, &user).await {
        Ok(view) => (view, false),
        Err(error) => {
            tracing::warn!(%error, coupon.id = %coupon, "Redis unavailable; answering from MySQL");
            (None, true)
        }
    };
    let persisted = |answer: StatusAnswer| async {
        let found = state.issuances.find(coupon, &user).await?;
        Ok::<_, ApiError>(match found {
            Some(coupon) => Ok(answer.issued(coupon)),
            None => Err(answer),
        })
    };

    let answer = match view {
        Some(UserView {
            state: Some(ParticipantState::Issued { request_id, at }),
            expiry_days: Some(days),
            ..
        }) => StatusAnswer {
            status: "ISSUED",
            request_id: Some(request_id),
            issued_at: Some(at),
            expires_at: Some(expires_at(at, days)),
            ..answer
        },
        Some(UserView {
            state: Some(ParticipantState::Pending { request_id, at }),
            ..
        }) => {
            let pending = StatusAnswer {
                status: "PENDING",
                request_id: Some(request_id),
                requested_at: Some(at),
                ..answer
            };
            persisted(pending).await?.unwrap_or_else(|pending| pending)
        }
        Some(view) => match persisted(answer).await? {
            Ok(issued) => issued,
            Err(answer) if view.stock == 0 => StatusAnswer {
                status: "SOLD_OUT",
                ..answer
            },
            Err(answer) => answer,
        },
        None => match persisted(answer).await? {
            Ok(issued) => issued,
            Err(answer) => {
                let record = state
                    .coupons
                    .find(coupon)
                    .await?
                    .ok_or_else(|| ApiError::CouponNotFound(coupon.to_string()))?;
                state.presence.remember(coupon);
                if record.available_quantity <= 0 {
                    StatusAnswer {
                        status: "SOLD_OUT",
                        ..answer
                    }
                } else if redis_down {
                    // A request still on its way to MySQL lives only in Redis: NOT_REQUESTED
                    // could be untrue.
                    return Err(ApiError::Unavailable {
                        what: "Redis",
                        retry_after_secs: 1,
                    });
                } else {
                    return Err(ApiError::CouponNotLoaded(coupon.to_string()));
                }
            }
        },
    };
    Ok(HttpResponse::Ok().json(answer))
}
