use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use couponrush_domain::{
    CouponId, IssueRequested, ParticipantState, RequestId, Reservation, UserId,
};
use serde::Serialize;
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::state::AppState;

/// Header carrying the caller's user id, as in the system this replaces.
pub const USER_ID_HEADER: &str = "userId";

/// Seconds a client should wait before retrying after a transient failure.
const RETRY_AFTER_SECS: u32 = 1;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IssueAnswer {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<RequestId>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    issued_at: Option<OffsetDateTime>,
    message: &'static str,
}

pub fn coupon_id(raw: &str) -> Result<CouponId, ApiError> {
    raw.parse().map_err(ApiError::InvalidCouponId)
}

fn user_id(request: &HttpRequest) -> Result<UserId, ApiError> {
    let raw = request
        .headers()
        .get(USER_ID_HEADER)
        .ok_or(ApiError::MissingUserId)?;
    let raw = raw
        .to_str()
        .map_err(|_| ApiError::InvalidUserId(couponrush_domain::IdError::UserIdCharset))?;
    UserId::parse(raw).map_err(ApiError::InvalidUserId)
}

/// `POST /coupons/{couponId}/issue`.
pub async fn issue(
    state: web::Data<AppState>,
    path: web::Path<String>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let coupon = coupon_id(&path)?;
    let user = user_id(&request)?;
    let request_id = RequestId::generate();
    let now = OffsetDateTime::now_utc();

    let reservation = state
        .reservations
        .reserve(coupon, &user, request_id, now)
        .await
        .map_err(|error| {
            state.metrics.redis_errors.inc();
            state.metrics.outcome("UNAVAILABLE");
            tracing::error!(%error, coupon.id = %coupon, user.id = %user, "reservation failed");
            ApiError::Unavailable {
                what: "Redis",
                retry_after_secs: RETRY_AFTER_SECS,
            }
        })?;

    let answer = |status: StatusCode, body: IssueAnswer| HttpResponse::build(status).json(body);
    Ok(match reservation {
        Reservation::Accepted { remaining } => {
            let event = IssueRequested::new(request_id, coupon, user.clone(), now);
            let publish_started = std::time::Instant::now();
            let published = state.publisher.publish(&event).await;
            state
                .metrics
                .publish_duration
                .observe(publish_started.elapsed().as_secs_f64());
            if let Err(error) = published {
                // The user was not queued: give the stock back (only if it is still this
                // request's) so they, or someone else, can have it.
                state.metrics.publish_failures.inc();
                state.metrics.outcome("UNAVAILABLE");
                let released = state.reservations.release(coupon, &user, request_id).await;
                state.metrics.releases_record(&released);
                tracing::error!(
                    %error, coupon.id = %coupon, user.id = %user, request.id = %request_id,
                    released = ?released.as_ref().map_err(ToString::to_string),
                    "publish failed; reservation released"
                );
                return Err(ApiError::Unavailable {
                    what: "the message broker",
                    retry_after_secs: RETRY_AFTER_SECS,
                });
            }
            tracing::debug!(coupon.id = %coupon, user.id = %user, request.id = %request_id, remaining, "queued");
            state.metrics.outcome("QUEUED");
            answer(
                StatusCode::ACCEPTED,
                IssueAnswer {
                    status: "QUEUED",
                    code: None,
                    request_id: Some(request_id),
                    issued_at: None,
                    message: "request accepted; the coupon is being issued",
                },
            )
        }
        Reservation::AlreadyRequested(existing) => {
            state.metrics.outcome(existing.label());
            let (status, issued_at, message) = match existing {
                ParticipantState::Pending { .. } => (
                    "PENDING",
                    None,
                    "already requested; the coupon is being issued",
                ),
                ParticipantState::Issued { at, .. } => {
                    ("ISSUED", Some(at), "already issued to this user")
                }
            };
            answer(
                StatusCode::CONFLICT,
                IssueAnswer {
                    status,
                    code: Some("ALREADY_REQUESTED"),
                    request_id: Some(existing.request_id()),
                    issued_at,
                    message,
                },
            )
        }
        Reservation::SoldOut => {
            state.metrics.outcome("SOLD_OUT");
            answer(
                StatusCode::CONFLICT,
                IssueAnswer {
                    status: "SOLD_OUT",
                    code: Some("SOLD_OUT"),
                    request_id: None,
                    issued_at: None,
                    message: "all coupons of this event are taken",
                },
            )
        }
        Reservation::NotOpen => {
            state.metrics.outcome("NOT_OPEN");
            answer(
                StatusCode::CONFLICT,
                IssueAnswer {
                    status: "NOT_OPEN",
                    code: Some("NOT_OPEN"),
                    request_id: None,
                    issued_at: None,
                    message: "the event has not started yet",
                },
            )
        }
        Reservation::Closed => {
            state.metrics.outcome("CLOSED");
            answer(
                StatusCode::CONFLICT,
                IssueAnswer {
                    status: "CLOSED",
                    code: Some("CLOSED"),
                    request_id: None,
                    issued_at: None,
                    message: "the event has ended",
                },
            )
        }
        Reservation::UnknownCoupon => {
            state.metrics.outcome("UNKNOWN_COUPON");
            return Err(ApiError::CouponNotFound(coupon.to_string()));
        }
    })
}
