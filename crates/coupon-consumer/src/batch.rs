//! One batch of messages: decode, persist in one MySQL transaction (retrying transient
//! failures); what was issued is then confirmed in Redis.

use std::time::Duration;

use couponrush_cache::ReservationStore;
use couponrush_domain::{
    CouponId, IssueRequested, ParticipationRecorded, RequestId, TopicMessage, UserId,
};
use couponrush_storage::Persisted;
use time::OffsetDateTime;

use crate::startup::Dependencies;

/// Counts of what a batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchReport {
    pub issued: u64,
    pub duplicates: u64,
    pub logged: u64,
    /// Dead-lettered: bad payload, unknown coupon, no stock left in MySQL, retries exhausted.
    pub rejected: u64,
}

/// A message of the batch that must go to the dead-letter topic.
#[derive(Debug)]
pub struct Rejected {
    /// Index into the batch.
    pub index: usize,
    pub reason: &'static str,
    pub error: String,
    pub attempts: u32,
}

/// A request whose row is in MySQL, to be marked ISSUED in Redis.
pub type Confirmed = (CouponId, UserId, RequestId, OffsetDateTime);

/// What persisting a batch did, which of its messages to dead-letter, and what to confirm.
#[derive(Debug, Default)]
pub struct BatchResult {
    pub report: BatchReport,
    pub rejected: Vec<Rejected>,
    pub confirmed: Vec<Confirmed>,
}

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How a batch waits out a backoff before its next attempt.
pub trait RetryWait {
    /// Waits `backoff`; `false` when shutdown came first.
    async fn wait(&mut self, backoff: Duration) -> bool;
}

/// Persists a batch. MySQL failures are retried with exponential backoff, without committing
/// offsets, up to `max_attempts`; then the batch's messages are dead-lettered. Messages that
/// can never be issued are dead-lettered at once, so they never block a partition. `None`
/// means shutdown came first (nothing committed, the batch will be re-delivered).
pub async fn persist(
    deps: &Dependencies,
    payloads: &[Option<&[u8]>],
    max_attempts: u32,
    retry: &mut impl RetryWait,
) -> Option<BatchResult> {
    let mut result = BatchResult::default();
    let mut requests: Vec<IssueRequested> = Vec::new();
    let mut request_index: Vec<usize> = Vec::new();
    let mut participation: Vec<ParticipationRecorded> = Vec::new();
    let mut participation_index: Vec<usize> = Vec::new();
    for (index, payload) in payloads.iter().enumerate() {
        match payload.map(TopicMessage::decode) {
            Some(Ok(TopicMessage::IssueRequested(request))) => {
                requests.push(request);
                request_index.push(index);
            }
            Some(Ok(TopicMessage::Participation(record))) => {
                participation.push(record);
                participation_index.push(index);
            }
            Some(Err(error)) => result.reject(index, "undecodable", error.to_string(), 0),
            None => result.reject(index, "undecodable", "message without payload".into(), 0),
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
            Err(error) if attempt >= max_attempts => {
                tracing::error!(
                    %error, attempt, batch = payloads.len(),
                    "batch not persisted; giving up, dead-lettering it"
                );
                for &index in request_index.iter().chain(&participation_index) {
                    result.reject(index, "retries-exhausted", error.to_string(), attempt);
                }
                return Some(result);
            }
            Err(error) => {
                tracing::error!(
                    %error, attempt, transient = error.is_transient(),
                    batch = payloads.len(), retry_in_ms = backoff.as_millis(),
                    "batch not persisted; retrying"
                );
                if !retry.wait(backoff).await {
                    return None;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                attempt += 1;
            }
        }
    };
    result.report.logged = u64::try_from(requests.len() + participation.len()).unwrap_or(0);

    for ((request, outcome), &index) in requests.iter().zip(&outcomes).zip(&request_index) {
        let reason = match outcome {
            Persisted::Issued { issued_at } => {
                result.report.issued += 1;
                result.confirm(request, *issued_at);
                continue;
            }
            Persisted::AlreadyIssued { issued_at } => {
                // Re-delivery: make sure Redis says so too (the first delivery may have died
                // between MySQL and Redis).
                result.report.duplicates += 1;
                result.confirm(request, *issued_at);
                continue;
            }
            Persisted::OutOfStock => "out-of-stock",
            Persisted::UnknownCoupon => "unknown-coupon",
        };
        let error = format!(
            "coupon {} cannot be issued to {} (request {}): {reason}",
            request.coupon_id, request.user_id, request.request_id
        );
        result.reject(index, reason, error, attempt);
    }
    Some(result)
}

impl BatchResult {
    fn confirm(&mut self, request: &IssueRequested, issued_at: OffsetDateTime) {
        self.confirmed.push((
            request.coupon_id,
            request.user_id.clone(),
            request.request_id,
            issued_at,
        ));
    }

    /// Marks a message for the dead-letter topic, loudly: nothing is dropped in silence.
    fn reject(&mut self, index: usize, reason: &'static str, error: String, attempts: u32) {
        tracing::error!(index, reason, %error, "message will be dead-lettered");
        self.report.rejected += 1;
        self.rejected.push(Rejected {
            index,
            reason,
            error,
            attempts,
        });
    }
}

/// Marks persisted requests issued in Redis. Best effort: MySQL is the record, and the API
/// answers from it whenever Redis does not say ISSUED.
pub async fn confirm(reservations: &ReservationStore, confirmed: &[Confirmed]) {
    let issued: Vec<_> = confirmed
        .iter()
        .map(|(coupon, user, request, at)| (*coupon, user, *request, *at))
        .collect();
    if let Err(error) = reservations.mark_issued_many(&issued).await {
        tracing::warn!(%error, users = issued.len(), "could not mark issued in Redis");
    }
}
