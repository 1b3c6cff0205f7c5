//! Persisting one batch of decoded messages (`intake`) in MySQL (retrying transient failures); what it issued is then confirmed in Redis (`confirm`), what it cannot issue is
//! dead-lettered (`dead_letters`).

use couponrush_domain::{
    CouponId, IssueRequested, ParticipationRecorded, RequestId, TopicMessage, UserId,
};
use couponrush_storage::{IssuanceStore, Persisted};
use time::OffsetDateTime;

use crate::intake::Decoded;
use crate::retry::{RETRY_BACKOFF, RetryWait};

/// Counts of what a batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchReport {
    pub issued: u64,
    pub duplicates: u64,
    pub logged: u64,
    /// Dead-lettered: bad payload or schema, unknown coupon, no stock left in MySQL, a request
    /// id of another user's, retries exhausted.
    pub rejected: u64,
}

impl BatchReport {
    /// Adds another batch's counts (the totals logged at shutdown).
    pub fn add(&mut self, other: &Self) {
        self.issued += other.issued;
        self.duplicates += other.duplicates;
        self.logged += other.logged;
        self.rejected += other.rejected;
    }
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
    /// When the API accepted each request this batch newly issued (not the duplicates): with
    /// `committed_at`, the time to issuance the consumer observes.
    pub issued_requested_at: Vec<OffsetDateTime>,
    /// When the transaction that issued them committed; `None` when nothing committed
    /// (retries exhausted).
    pub committed_at: Option<OffsetDateTime>,
}

/// Persists a batch. MySQL failures are retried with exponential backoff, without committing
/// offsets, up to `max_attempts`; then the batch's messages are dead-lettered. Messages that
/// can never be issued are dead-lettered at once, so they never block a partition. `None`
/// means shutdown came first (nothing committed, the batch will be re-delivered).
pub async fn persist(
    issuances: &IssuanceStore,
    decoded: Vec<Decoded>,
    max_attempts: u32,
    retry: &mut impl RetryWait,
) -> Option<BatchResult> {
    let mut result = BatchResult::default();
    let mut requests: Vec<IssueRequested> = Vec::new();
    let mut request_index: Vec<usize> = Vec::new();
    let mut participation: Vec<ParticipationRecorded> = Vec::new();
    let mut participation_index: Vec<usize> = Vec::new();
    let batch_len = decoded.len();
    for (index, message) in decoded.into_iter().enumerate() {
        match message {
            Ok(TopicMessage::IssueRequested(request)) => {
                requests.push(request);
                request_index.push(index);
            }
            Ok(TopicMessage::Participation(record)) => {
                participation.push(record);
                participation_index.push(index);
            }
            Err((reason, error)) => result.reject(index, reason, error, 0),
        }
    }

    let mut backoff = RETRY_BACKOFF;
    let mut attempt = 1u32;
    let outcomes = loop {
        let now = OffsetDateTime::now_utc();
        // The first attempt's wait for MySQL is when the next batch is read (`meanwhile`).
        let attempted = issuances.persist_batch(&requests, &participation, now);
        match retry.meanwhile(attempted).await {
            Ok(outcomes) => {
                // Read right after the commit returned: the moment the rows became the record.
                result.committed_at = Some(OffsetDateTime::now_utc());
                break outcomes;
            }
            Err(error) if attempt >= max_attempts => {
                tracing::error!(
                    %error, attempt, batch = batch_len,
                    "batch not persisted; giving up, dead-lettering it"
                );
                for &index in request_index.iter().chain(&participation_index) {
                    result.reject(index, "retries-exhausted", error.to_string(), attempt);
                }
                return Some(result);
            }
            Err(error) => {
                let wait = backoff.next_wait();
                tracing::error!(
                    %error, attempt, transient = error.is_transient(),
                    batch = batch_len, retry_in_ms = wait.as_millis(),
                    "batch not persisted; retrying"
                );
                if !retry.wait(wait).await {
                    return None;
                }
                attempt += 1;
            }
        }
    };
    result.report.logged = u64::try_from(requests.len() + participation.len()).unwrap_or(0);

    for ((request, outcome), &index) in requests.iter().zip(&outcomes).zip(&request_index) {
        let reason = match outcome {
            Persisted::Issued { issued_at } => {
                result.report.issued += 1;
                result.issued_requested_at.push(request.requested_at);
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
            Persisted::RequestIdConflict => "request-id-conflict",
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
