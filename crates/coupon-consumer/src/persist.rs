//! Handling of one message: decode, persist with retries, confirm in Redis.

use std::time::Duration;

use couponrush_domain::IssueRequested;
use couponrush_storage::Persisted;
use time::OffsetDateTime;

use crate::startup::Dependencies;

/// What became of one message; every variant lets the offset move on.
#[derive(Debug)]
pub enum Handled {
    Issued,
    Duplicate,
    /// Could not be issued and never will be (bad payload, unknown coupon, no stock in MySQL).
    /// Logged at ERROR with the payload so nothing is lost silently.
    Rejected,
}

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Persists one message. Transient MySQL failures are retried with exponential backoff for as
/// long as it takes (the offset is not committed meanwhile); `None` means shutdown came first.
pub async fn handle(
    deps: &Dependencies,
    payload: Option<&[u8]>,
    location: &str,
    shutdown: &mut (impl Future<Output = ()> + Unpin),
) -> Option<Handled> {
    let request = match payload.map(IssueRequested::decode) {
        Some(Ok(request)) => request,
        Some(Err(error)) => {
            tracing::error!(
                %error, location,
                payload = %String::from_utf8_lossy(payload.unwrap_or_default()),
                "undecodable message skipped"
            );
            return Some(Handled::Rejected);
        }
        None => {
            tracing::error!(location, "message without payload skipped");
            return Some(Handled::Rejected);
        }
    };

    let mut backoff = FIRST_BACKOFF;
    let persisted = loop {
        match deps
            .issuances
            .issue(&request, OffsetDateTime::now_utc())
            .await
        {
            Ok(persisted) => break persisted,
            Err(error) if error.is_transient() => {
                tracing::error!(%error, location, retry_in_ms = backoff.as_millis(), "MySQL unavailable; retrying");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = &mut *shutdown => return None,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(error) => {
                tracing::error!(
                    %error, location,
                    coupon.id = %request.coupon_id, user.id = %request.user_id,
                    request.id = %request.request_id,
                    "issue request cannot be persisted; skipped"
                );
                return Some(Handled::Rejected);
            }
        }
    };
    Some(match persisted {
        Persisted::Issued { issued_at } => {
            confirm(deps, &request, issued_at).await;
            Handled::Issued
        }
        Persisted::AlreadyIssued { issued_at } => {
            // Re-delivery; make sure Redis reflects it (the first attempt may have crashed
            // between MySQL and Redis).
            confirm(deps, &request, issued_at).await;
            Handled::Duplicate
        }
    })
}

/// Marks the user issued in Redis. Best effort: MySQL is the record, and the API falls back to
/// it when Redis does not say ISSUED.
async fn confirm(deps: &Dependencies, request: &IssueRequested, issued_at: OffsetDateTime) {
    if let Err(error) = deps
        .reservations
        .mark_issued(
            request.coupon_id,
            &request.user_id,
            request.request_id,
            issued_at,
        )
        .await
    {
        tracing::warn!(%error, coupon.id = %request.coupon_id, user.id = %request.user_id, "could not mark issued in Redis");
    }
}
