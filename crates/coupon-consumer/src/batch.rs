//! One batch of messages: decode, persist in one MySQL transaction (retrying transient
//! failures), then confirm in Redis.

use std::time::Duration;

use couponrush_domain::{IssueRequested, ParticipationRecorded, TopicMessage};
use couponrush_storage::Persisted;
use time::OffsetDateTime;

use crate::startup::Dependencies;

/// Counts of what a batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchReport {
    pub issued: u64,
    pub duplicates: u64,
    pub logged: u64,
    /// Not issued and never will be (bad payload, unknown coupon, no stock left in MySQL).
    /// Each is logged at ERROR with what identifies it, so nothing disappears silently.
    pub rejected: u64,
}

/// A message as the batch sees it: where it came from and its payload.
#[derive(Debug)]
pub struct Incoming<'a> {
    pub location: String,
    pub payload: Option<&'a [u8]>,
}

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Persists a batch. MySQL failures are retried with exponential backoff for as long as it
/// takes, without committing offsets; `None` means shutdown came first (nothing committed,
/// the batch will be re-delivered).
pub async fn persist(
    deps: &Dependencies,
    messages: &[Incoming<'_>],
    shutdown: &mut (impl Future<Output = ()> + Unpin),
) -> Option<BatchReport> {
    let mut report = BatchReport::default();
    let mut requests: Vec<IssueRequested> = Vec::new();
    let mut locations: Vec<&str> = Vec::new();
    let mut participation: Vec<ParticipationRecorded> = Vec::new();
    for message in messages {
        match message.payload.map(TopicMessage::decode) {
            Some(Ok(TopicMessage::IssueRequested(request))) => {
                requests.push(request);
                locations.push(&message.location);
            }
            Some(Ok(TopicMessage::Participation(record))) => participation.push(record),
            Some(Err(error)) => {
                report.rejected += 1;
                tracing::error!(
                    %error,
                    location = message.location,
                    payload = %String::from_utf8_lossy(message.payload.unwrap_or_default()),
                    "undecodable message skipped"
                );
            }
            None => {
                report.rejected += 1;
                tracing::error!(
                    location = message.location,
                    "message without payload skipped"
                );
            }
        }
    }

    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 1u32;
    let outcomes = loop {
        let now = OffsetDateTime::now_utc();
        match deps
            .issuances
            .persist_batch(&requests, &participation, now)
            .await
        {
            Ok(outcomes) => break outcomes,
            Err(error) => {
                tracing::error!(
                    %error, attempt, transient = error.is_transient(),
                    batch = messages.len(), retry_in_ms = backoff.as_millis(),
                    "batch not persisted; retrying"
                );
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = &mut *shutdown => return None,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                attempt += 1;
            }
        }
    };
    report.logged = u64::try_from(requests.len() + participation.len()).unwrap_or(0);

    let mut confirmed = Vec::new();
    for ((request, outcome), location) in requests.iter().zip(&outcomes).zip(&locations) {
        match outcome {
            Persisted::Issued { issued_at } => {
                report.issued += 1;
                confirmed.push((request, *issued_at));
            }
            Persisted::AlreadyIssued { issued_at } => {
                // Re-delivery: make sure Redis says so too (the first delivery may have died
                // between MySQL and Redis).
                report.duplicates += 1;
                confirmed.push((request, *issued_at));
            }
            Persisted::OutOfStock | Persisted::UnknownCoupon => {
                report.rejected += 1;
                tracing::error!(
                    location,
                    outcome = ?outcome,
                    coupon.id = %request.coupon_id,
                    user.id = %request.user_id,
                    request.id = %request.request_id,
                    "issue request not issued"
                );
            }
        }
    }
    confirm(deps, &confirmed).await;
    Some(report)
}

/// Marks persisted requests issued in Redis. Best effort: MySQL is the record, and the API
/// answers from it whenever Redis does not say ISSUED.
async fn confirm(deps: &Dependencies, confirmed: &[(&IssueRequested, OffsetDateTime)]) {
    let issued: Vec<_> = confirmed
        .iter()
        .map(|(r, at)| (r.coupon_id, &r.user_id, r.request_id, *at))
        .collect();
    if let Err(error) = deps.reservations.mark_issued_many(&issued).await {
        tracing::warn!(%error, users = issued.len(), "could not mark issued in Redis");
    }
}
