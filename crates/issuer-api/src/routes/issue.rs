//! `POST /coupons/{couponId}/issue`: one atomic decision, an acknowledged publish, a true answer.

use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use couponrush_cache::{CacheError, LimitCheck, epoch_ms};
use couponrush_domain::{
    CouponId, IssueRequested, LimitedBy, ParticipantState, ParticipationOutcome,
    ParticipationRecorded, RequestId, Reservation, UserId,
};
use couponrush_messaging::DeliveryFailure;
use couponrush_telemetry::propagation::unless_unsampled;
use futures::StreamExt;
use serde::Serialize;
use time::OffsetDateTime;
use tracing::Instrument;

use crate::auth::Issuing;
use crate::coupon_presence::Presence;
use crate::error::{ApiError, RETRY_AFTER_SECS};
use crate::state::AppState;

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

/// What happened to one request, before it becomes an HTTP answer.
enum Decision {
    Queued,
    Already(ParticipantState),
    SoldOut,
    /// No stock to take, but some is held by publishes not decided yet: not sold out yet.
    Held,
    NotOpen,
    Closed,
    UnknownCoupon,
    /// MySQL has the coupon but Redis has no state for it (lost, or never loaded).
    NotLoaded,
    /// Redis does not know the coupon and MySQL did not answer whether it exists.
    RecordDown,
    /// Redis could not be reached; nothing was reserved.
    CacheDown,
    /// Reserved, but fewer replicas than `redis.min_replica_acks` acknowledged it in time: it
    /// was given back (not published), so nothing is reserved.
    NotReplicated,
    /// The reserve call got no answer: it may run later. It is voided in the background.
    CacheUncertain,
    /// Not queued, certainly: the reservation was given back because the producer cannot
    /// publish now, or after a delivery failure that means "not written".
    BrokerDown,
    /// Reserved and published, but the delivery is unconfirmed: kept, and published again
    /// until acknowledged.
    Unconfirmed,
    /// Over an abuse limit: nothing was reserved.
    RateLimited {
        by: LimitedBy,
        retry_after_ms: u64,
    },
}

impl Decision {
    /// Label of the `issue_outcomes` metric.
    fn label(&self) -> &'static str {
        match self {
            Self::Queued => "QUEUED",
            Self::Already(state) => state.label(),
            Self::SoldOut => "SOLD_OUT",
            Self::Held => "STOCK_HELD",
            Self::NotOpen => "NOT_OPEN",
            Self::Closed => "CLOSED",
            Self::UnknownCoupon => "UNKNOWN_COUPON",
            Self::NotLoaded => "NOT_LOADED",
            Self::CacheDown | Self::NotReplicated | Self::BrokerDown | Self::RecordDown => {
                "UNAVAILABLE"
            }
            Self::CacheUncertain | Self::Unconfirmed => "UNCONFIRMED",
            Self::RateLimited { .. } => "RATE_LIMITED",
        }
    }

    /// What goes into the participation log. Accepted requests (and unconfirmed ones, which
    /// end issued) are logged by the consumer from the issue request itself; an unknown coupon
    /// has no event to log against. A rate-limited request is not logged: a bot's flood must
    /// not become a flood of records (the metric and a log line count it).
    fn participation(&self) -> Option<ParticipationOutcome> {
        match self {
            Self::Already(_) => Some(ParticipationOutcome::Duplicate),
            Self::SoldOut => Some(ParticipationOutcome::SoldOut),
            Self::NotOpen => Some(ParticipationOutcome::NotOpen),
            Self::Closed => Some(ParticipationOutcome::Closed),
            Self::Held
            | Self::BrokerDown
            | Self::CacheDown
            | Self::NotReplicated
            | Self::CacheUncertain
            | Self::NotLoaded => Some(ParticipationOutcome::Unavailable),
            Self::Queued
            | Self::Unconfirmed
            | Self::UnknownCoupon
            | Self::RecordDown
            | Self::RateLimited { .. } => None,
        }
    }

    fn into_response(
        self,
        coupon: CouponId,
        user: &UserId,
        request_id: RequestId,
    ) -> Result<HttpResponse, ApiError> {
        let (status, body) = match self {
            Self::Queued => (
                StatusCode::ACCEPTED,
                IssueAnswer {
                    status: "QUEUED",
                    code: None,
                    request_id: Some(request_id),
                    issued_at: None,
                    message: "request accepted; the coupon is being issued",
                },
            ),
            Self::Already(existing) => {
                let (issued_at, message) = match existing {
                    ParticipantState::Pending { .. } => {
                        (None, "already requested; the coupon is being issued")
                    }
                    ParticipantState::Issued { at, .. } => {
                        (Some(at), "already issued to this user")
                    }
                };
                (
                    StatusCode::CONFLICT,
                    IssueAnswer {
                        status: existing.label(),
                        code: Some("ALREADY_REQUESTED"),
                        request_id: Some(existing.request_id()),
                        issued_at,
                        message,
                    },
                )
            }
            Self::SoldOut => conflict("SOLD_OUT", "all coupons of this event are taken"),
            Self::NotOpen => conflict("NOT_OPEN", "the event has not started yet"),
            Self::Closed => conflict("CLOSED", "the event has ended"),
            Self::UnknownCoupon => return Err(ApiError::CouponNotFound(coupon.to_string())),
            Self::NotLoaded => return Err(ApiError::CouponNotLoaded(coupon.to_string())),
            Self::RecordDown => {
                return Err(ApiError::unavailable("MySQL"));
            }
            Self::CacheDown => {
                return Err(ApiError::unavailable("Redis"));
            }
            Self::NotReplicated => {
                return Err(ApiError::unavailable("Redis replication"));
            }
            Self::BrokerDown => {
                return Err(ApiError::unavailable("the message broker"));
            }
            Self::RateLimited { by, retry_after_ms } => {
                // Whole seconds, rounded up: a client that waits that long is let in.
                let secs = retry_after_ms.div_ceil(1000).max(1);
                return Err(ApiError::RateLimited {
                    by,
                    retry_after_secs: u32::try_from(secs).unwrap_or(u32::MAX),
                });
            }
            Self::Held => {
                return Err(ApiError::StockHeld {
                    retry_after_secs: RETRY_AFTER_SECS,
                });
            }
            Self::CacheUncertain => {
                return Err(ApiError::Unconfirmed {
                    request_id,
                    status_url: status_url(coupon, user),
                    message: "Redis did not answer in time; this request is being cancelled and will take nothing. Check the status, then retry",
                    retry_after_secs: RETRY_AFTER_SECS,
                });
            }
            Self::Unconfirmed => {
                return Err(ApiError::Unconfirmed {
                    request_id,
                    status_url: status_url(coupon, user),
                    message: "the broker has not confirmed this request yet; it keeps its place and is being confirmed. Follow its status",
                    retry_after_secs: RETRY_AFTER_SECS,
                });
            }
        };
        Ok(HttpResponse::build(status).json(body))
    }
}

/// Where a client follows one request's outcome.
fn status_url(coupon: CouponId, user: &UserId) -> String {
    format!("/coupons/{coupon}/issuances/{user}")
}

fn conflict(status: &'static str, message: &'static str) -> (StatusCode, IssueAnswer) {
    (
        StatusCode::CONFLICT,
        IssueAnswer {
            status,
            code: Some(status),
            request_id: None,
            issued_at: None,
            message,
        },
    )
}

/// `POST /coupons/{couponId}/issue`. The endpoint takes no body; one is refused rather than
/// silently ignored.
pub async fn issue(
    state: web::Data<AppState>,
    path: web::Path<String>,
    request: HttpRequest,
    mut body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    // Who it is for comes first: an unauthenticated caller learns nothing, not even whether
    // the coupon id is well-formed.
    let Issuing { user, by_operator } = state.auth.issuing(&request)?;
    let coupon = coupon_id(&path)?;
    // Look at the first chunk only: any byte is enough to refuse, and nothing is buffered.
    match body.next().await {
        None => {}
        Some(Ok(chunk)) if chunk.is_empty() => {}
        Some(Ok(_)) => return Err(ApiError::UnexpectedBody),
        Some(Err(error)) => return Err(ApiError::InvalidBody(error.to_string())),
    }
    // An operator's request (the smoke and load tests) is not limited: `None` skips the check.
    let client = (!by_operator).then(|| state.limits.client(&request));
    let request_id = RequestId::generate();
    let now = OffsetDateTime::now_utc();
    // The request's span (request_span.rs) declares these fields: its log lines and its trace
    // carry them.
    let span = tracing::Span::current();
    span.record("coupon.id", tracing::field::display(coupon));
    span.record("user.id", tracing::field::display(&user));
    span.record("request.id", tracing::field::display(request_id));
    let decision = decide(&state, coupon, &user, client.as_deref(), request_id, now).await;
    span.record("outcome", decision.label());
    tracing::debug!("decided");
    state.metrics.outcome(decision.label());
    if let Decision::RateLimited { by, retry_after_ms } = decision {
        state.metrics.rate_limited(by);
        tracing::warn!(
            reason = by.label(),
            client = client.as_deref().unwrap_or_default(),
            retry_after_ms,
            "issue request refused by an abuse limit"
        );
    }
    if let Some(outcome) = decision.participation() {
        state.participation.record(ParticipationRecorded::new(
            request_id,
            coupon,
            user.clone(),
            outcome,
            now,
        ));
    }
    decision.into_response(coupon, &user, request_id)
}

async fn decide(
    state: &AppState,
    coupon: CouponId,
    user: &UserId,
    client: Option<&str>,
    request_id: RequestId,
    now: OffsetDateTime,
) -> Decision {
    let limit = client
        .zip(state.limits.defaults())
        .map(|(client, defaults)| LimitCheck { client, defaults });
    let asked_at = Instant::now();
    if state
        .sold_out
        .sold_out(coupon, user, limit, epoch_ms(now), asked_at)
    {
        return Decision::SoldOut;
    }
    let reservation = match state
        .reservations
        .reserve(coupon, user, request_id, now, state.hold_for, limit)
        .instrument(unless_unsampled(|| {
            tracing::info_span!("redis.reserve", db.system = "redis")
        }))
        .await
    {
        Ok(reservation) => reservation,
        Err(CacheError::NotReplicated {
            acked,
            wanted,
            address,
        }) => {
            state.metrics.replica_ack_shortfalls.inc();
            tracing::error!(
                acked,
                wanted,
                redis = address,
                "replicas did not acknowledge the reservation in time; giving it back"
            );
            // A failover now could lose it while the user holds a 202: given back, it holds
            // nothing. If that fails too, it is voided once Redis answers.
            let why = "replicas did not acknowledge the reservation";
            return match release(state, coupon, user, request_id, why).await {
                Ok(_) => Decision::NotReplicated,
                Err(_) => {
                    state.resolver.void(coupon, user.clone(), request_id);
                    Decision::CacheUncertain
                }
            };
        }
        Err(error) => {
            state.metrics.redis_errors.inc();
            tracing::error!(%error, "reservation failed");
            if !may_have_run(&error) {
                return Decision::CacheDown;
            }
            // Settle it now if Redis answers on a fresh connection (a connection a Redis
            // restart broke is the common case): then it certainly holds nothing and the
            // answer is a plain "not now". Else it is voided once Redis answers.
            return match state.reservations.void(coupon, user, request_id).await {
                Ok(_) => Decision::CacheDown,
                Err(_) => {
                    state.resolver.void(coupon, user.clone(), request_id);
                    Decision::CacheUncertain
                }
            };
        }
    };
    if reservation == Reservation::UnknownCoupon {
        return match state.presence.classify(coupon, &state.coupons).await {
            Ok(Presence::NotLoaded) => Decision::NotLoaded,
            Ok(Presence::Unknown) => Decision::UnknownCoupon,
            Err(error) => {
                tracing::error!(%error, "Redis does not know the coupon and MySQL did not answer");
                Decision::RecordDown
            }
        };
    }
    state.presence.loaded(coupon);
    match reservation {
        Reservation::Accepted { remaining } => {
            state.sold_out.heard_not_sold_out(coupon);
            state.metrics.stock_seen(coupon, remaining);
            if state.publisher.can_publish().is_ok() {
                publish(state, coupon, user, request_id, now).await
            } else {
                // A producer known not to publish now would only make this reservation an
                // unconfirmed one: give it back, certainly unpublished. Readiness logs the
                // state change once; the answers are counted.
                // A failure is logged and counted there; the user stays pending (alerted).
                let _ = release(state, coupon, user, request_id, "producer cannot publish").await;
                Decision::BrokerDown
            }
        }
        Reservation::AlreadyRequested(existing) => Decision::Already(existing),
        Reservation::SoldOut { generation } => {
            state
                .sold_out
                .heard_sold_out(coupon, generation, asked_at, &state.reservations);
            state.metrics.stock_seen(coupon, 0);
            Decision::SoldOut
        }
        Reservation::Held => {
            state.sold_out.heard_not_sold_out(coupon);
            Decision::Held
        }
        Reservation::NotOpen => {
            state.sold_out.heard_not_sold_out(coupon);
            Decision::NotOpen
        }
        Reservation::Closed => Decision::Closed,
        Reservation::UnknownCoupon => Decision::UnknownCoupon,
        // Only a late run of a request already answered; a new request never gets it.
        Reservation::Void => Decision::CacheUncertain,
        Reservation::RateLimited { by, retry_after_ms } => {
            Decision::RateLimited { by, retry_after_ms }
        }
    }
}

/// Whether a failed Redis call may still have run (or run later): it was sent and no answer
/// came. A call that never got a connection certainly did not.
fn may_have_run(error: &CacheError) -> bool {
    match error {
        // Handled before: it ran, and is given back.
        CacheError::Unavailable { .. } | CacheError::NotReplicated { .. } => false,
        CacheError::Timeout { .. } | CacheError::Corrupt(_) => true,
        CacheError::Command(error) => {
            error.is_timeout() || error.is_io_error() || error.is_connection_dropped()
        }
    }
}

/// Publishes an accepted request and waits for the broker's delivery report, which alone
/// decides: acknowledged, QUEUED; certainly not written, the stock goes back (only if it is
/// still this request's) so they, or someone else, can have it; anything else, the message
/// may be in the topic, so the reservation is kept and the request published again until
/// acknowledged: the user hears UNCONFIRMED, never a "no" that the consumer then contradicts.
async fn publish(
    state: &AppState,
    coupon: CouponId,
    user: &UserId,
    request_id: RequestId,
    now: OffsetDateTime,
) -> Decision {
    let event = IssueRequested::new(request_id, coupon, user.clone(), now);
    let started = Instant::now();
    // The publish span's context travels in the message's headers: the consumer's persist of
    // this message becomes its child, in this request's trace.
    let span = unless_unsampled(|| {
        tracing::info_span!(
            "kafka.publish",
            otel.kind = "producer",
            messaging.system = "kafka",
            messaging.operation = "publish",
            messaging.destination.name = state.publisher.topic(),
        )
    });
    let published = state.publisher.publish(&event).instrument(span).await;
    state
        .metrics
        .publish_duration
        .observe(started.elapsed().as_secs_f64());
    let failure = match published {
        Ok(()) => {
            state.holds.settle(coupon, request_id);
            return Decision::Queued;
        }
        Err(failure) => failure,
    };
    state.metrics.publish_failures.inc();
    match failure {
        DeliveryFailure::NotSent(error) => {
            // A failure is logged and counted there; the user stays pending (alerted).
            let _ = release(state, coupon, user, request_id, &error.to_string()).await;
            Decision::BrokerDown
        }
        DeliveryFailure::Uncertain(error) => {
            tracing::error!(%error, "publish unconfirmed; kept and published again until acknowledged");
            state.holds.settle(coupon, request_id);
            state.resolver.publish(event);
            Decision::Unconfirmed
        }
    }
}

/// Gives back a reservation that was certainly not published (only if it is still this
/// request's), so they, or someone else, can have it. Returns whether stock went back, or
/// the failure that left it held.
async fn release(
    state: &AppState,
    coupon: CouponId,
    user: &UserId,
    request_id: RequestId,
    why: &str,
) -> Result<bool, CacheError> {
    let released = state.reservations.release(coupon, user, request_id).await;
    state.metrics.releases_record(&released);
    tracing::warn!(
        why,
        released = ?released.as_ref().map_err(ToString::to_string),
        "not published; reservation released"
    );
    released
}
