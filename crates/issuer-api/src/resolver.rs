//! Requests whose outcome the API could not know when it answered, resolved one way, visibly.
//!
//! - A publish whose delivery is unconfirmed (timed out in flight, producer replaced) may be in
//!   the topic already. Releasing its stock could hand the unit to someone else while the
//!   consumer issues it anyway, so it is kept and published again, under the same request id,
//!   until the broker acknowledges it: the consumer issues it once whatever the copies. The
//!   user was told `UNCONFIRMED` with the status endpoint; it ends `ISSUED`.
//! - A reserve call that got no answer may still run when Redis resumes. It is voided by
//!   compare-and-set on its request id, with a marker so a late run takes nothing; the user
//!   was told to check the status endpoint; it ends `NOT_REQUESTED`.
//!
//! Runs on the main runtime, so it outlives the HTTP workers at shutdown and gets
//! [`Resolver::drain`]'s bounded time to finish; what is still unresolved then stays PENDING in
//! Redis, where `compensation-batch reconcile --repair` finds it (LOST) and re-publishes it.

use std::sync::Arc;
use std::time::Duration;

use couponrush_cache::ReservationStore;
use couponrush_domain::{CouponId, IssueRequested, RequestId, UserId};
use couponrush_messaging::IssuePublisher;
use couponrush_ops::Backoff;
use futures::future::join_all;
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::metrics::{ApiMetrics, OutcomeLabels};

/// Between rounds that resolve nothing; a round that resolves something, or a new arrival,
/// starts it over.
const BACKOFF: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
/// Attempts run at once per round; more wait for the next round.
const ROUND_SIZE: usize = 512;

/// Something to resolve.
#[derive(Debug)]
enum Unresolved {
    /// With the span its attempts run in: in the request's trace, so the consumer's persist of
    /// the copy that gets through is too.
    Publish(IssueRequested, tracing::Span),
    Void {
        coupon: CouponId,
        user: UserId,
        request_id: RequestId,
    },
}

/// Hands unresolved requests to the background task. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Resolver {
    jobs: mpsc::UnboundedSender<Unresolved>,
    metrics: Arc<ApiMetrics>,
}

/// The background task; [`Self::drain`] at shutdown.
#[derive(Debug)]
pub struct ResolverTask {
    stop: tokio::sync::oneshot::Sender<Duration>,
    task: tokio::task::JoinHandle<()>,
}

impl Resolver {
    /// Starts the task on the current (main) runtime.
    pub fn start(
        publisher: IssuePublisher,
        reservations: ReservationStore,
        metrics: Arc<ApiMetrics>,
    ) -> (Self, ResolverTask) {
        let (jobs, rx) = mpsc::unbounded_channel();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let work = Work {
            publisher,
            reservations,
            metrics: metrics.clone(),
        };
        let task = tokio::spawn(work.run(rx, stopped));
        (Self { jobs, metrics }, ResolverTask { stop, task })
    }

    /// Keeps publishing `event` until the broker acknowledges it, continuing the current
    /// span's trace (without keeping that span open meanwhile).
    pub fn publish(&self, event: IssueRequested) {
        let span = tracing::info_span!(
            parent: None,
            "kafka.republish",
            otel.kind = "producer",
            request.id = %event.request_id,
        );
        couponrush_telemetry::propagation::continue_trace(&span, &tracing::Span::current());
        self.submit(Unresolved::Publish(event, span));
    }

    /// Voids a reservation whose reserve call got no answer.
    pub fn void(&self, coupon: CouponId, user: UserId, request_id: RequestId) {
        self.submit(Unresolved::Void {
            coupon,
            user,
            request_id,
        });
    }

    fn submit(&self, job: Unresolved) {
        self.metrics.unresolved.inc();
        if let Err(refused) = self.jobs.send(job) {
            // Only after shutdown began: reconciliation finds the reservation.
            self.metrics.unresolved.dec();
            tracing::error!(job = ?refused.0, "resolver stopped; left for reconcile --repair");
        }
    }
}

impl ResolverTask {
    /// Gives the task up to `deadline` to resolve what it holds, then stops it.
    pub async fn drain(self, deadline: Duration) {
        self.stop.send(deadline).ok();
        self.task.await.ok();
    }
}

struct Work {
    publisher: IssuePublisher,
    reservations: ReservationStore,
    metrics: Arc<ApiMetrics>,
}

impl Work {
    async fn run(
        self,
        mut rx: mpsc::UnboundedReceiver<Unresolved>,
        mut stopped: tokio::sync::oneshot::Receiver<Duration>,
    ) {
        let mut pending: Vec<Unresolved> = Vec::new();
        let mut backoff = BACKOFF;
        let mut stop_at: Option<tokio::time::Instant> = None;
        loop {
            if let Some(at) = stop_at
                && (pending.is_empty() || tokio::time::Instant::now() >= at)
            {
                for job in &pending {
                    tracing::error!(
                        ?job,
                        "unresolved at shutdown; left PENDING for reconcile --repair"
                    );
                }
                return;
            }
            tokio::select! {
                job = rx.recv() => match job {
                    Some(job) => {
                        pending.push(job);
                        // A new arrival is tried at once, not after a long backoff.
                        backoff.reset();
                    }
                    None if pending.is_empty() => return,
                    None => tokio::time::sleep(backoff.current()).await,
                },
                deadline = &mut stopped, if stop_at.is_none() => {
                    stop_at = Some(tokio::time::Instant::now() + deadline.unwrap_or_default());
                    rx.close();
                }
                () = tokio::time::sleep(backoff.current()), if !pending.is_empty() => {
                    let before = pending.len();
                    pending = self.round(std::mem::take(&mut pending)).await;
                    if pending.len() < before {
                        backoff.reset();
                    } else {
                        backoff.grow();
                    }
                }
            }
        }
    }

    /// One attempt at each of the first [`ROUND_SIZE`] jobs; returns those still unresolved.
    async fn round(&self, mut jobs: Vec<Unresolved>) -> Vec<Unresolved> {
        let later = jobs.split_off(jobs.len().min(ROUND_SIZE));
        let attempts = join_all(jobs.into_iter().map(|job| self.attempt(job))).await;
        attempts.into_iter().flatten().chain(later).collect()
    }

    /// `None` when resolved.
    async fn attempt(&self, job: Unresolved) -> Option<Unresolved> {
        let resolved = match &job {
            Unresolved::Publish(event, span) => {
                match self.publisher.publish(event).instrument(span.clone()).await {
                    Ok(()) => {
                        // Its hold was cleared when it was handed here: it was decided then.
                        tracing::info!(request.id = %event.request_id, coupon.id = %event.coupon_id,
                        user.id = %event.user_id, "unconfirmed request published");
                        Some("published")
                    }
                    Err(error) => {
                        tracing::debug!(%error, request.id = %event.request_id, "still unconfirmed");
                        None
                    }
                }
            }
            Unresolved::Void {
                coupon,
                user,
                request_id,
            } => match self.reservations.void(*coupon, user, *request_id).await {
                Ok(released) => {
                    tracing::info!(request.id = %request_id, coupon.id = %coupon, user.id = %user,
                        released, "unanswered reservation voided");
                    Some("voided")
                }
                Err(error) => {
                    tracing::debug!(%error, request.id = %request_id, "void not applied yet");
                    None
                }
            },
        };
        match resolved {
            Some(outcome) => {
                self.metrics.unresolved.dec();
                self.metrics
                    .resolutions
                    .get_or_create(&OutcomeLabels { outcome })
                    .inc();
                None
            }
            None => Some(job),
        }
    }
}
