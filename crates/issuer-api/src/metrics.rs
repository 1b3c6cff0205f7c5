//! Prometheus metrics of the API, served at `/metrics` (OpenMetrics text).
//!
//! Names carry units (`_seconds`, `_total`). Labels are bounded: route patterns (not raw
//! paths), status codes, fixed outcome names, and the ids of coupons Redis holds (never one
//! a request merely named), so a flood of random URLs cannot blow up the series count. Every
//! name, its unit and labels: docs/observability.md.

use std::sync::Arc;
use std::time::Duration;

use couponrush_domain::{CouponId, LimitedBy};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: &'static str,
    pub method: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CouponLabels {
    pub coupon_id: u64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DependencyLabels {
    pub dependency: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.25 ms .. ~4 s
    Histogram::new(exponential_buckets(0.000_25, 2.0, 15))
}

/// Every metric the API exports.
#[derive(Debug)]
pub struct ApiMetrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_duration: HistogramFamily<RouteLabels>,
    pub issue_outcomes: Family<OutcomeLabels, Counter>,
    pub publish_duration: Histogram,
    pub publish_failures: Counter,
    pub releases: Family<OutcomeLabels, Counter>,
    pub redis_errors: Counter,
    /// Reservations given back because too few replicas acknowledged them in time.
    pub replica_ack_shortfalls: Counter,
    /// SOLD_OUT answers the sold-out gate gave without asking Redis.
    pub sold_out_gate_answers: Counter,
    pub coupon_not_loaded: Counter,
    pub participation_failures: Counter,
    pub dependency_up: Family<DependencyLabels, Gauge>,
    /// Accepted requests whose publish is unconfirmed, still being published again.
    pub unresolved: Gauge,
    pub resolutions: Family<OutcomeLabels, Counter>,
    pub participation_pending: Gauge,
    pub participation_dropped: Counter,
    pub producer_rebuilds: Family<ProducerLabels, Counter>,
    pub stock_remaining: Family<CouponLabels, Gauge>,
    /// Callers refused by authentication (auth.rs), by reason.
    pub auth_rejections: Family<ReasonLabels, Counter>,
    pub key_reloads: Family<OutcomeLabels, Counter>,
    pub rate_limited: Family<ReasonLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProducerLabels {
    pub producer: &'static str,
}

impl ApiMetrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("couponrush_api");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route pattern, method and status code",
            requests.clone(),
        );
        let request_duration: HistogramFamily<RouteLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route pattern",
            request_duration.clone(),
        );
        let issue_outcomes = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "issue_outcomes",
            "Issue requests by outcome (QUEUED, PENDING, ISSUED, SOLD_OUT, NOT_OPEN, CLOSED, UNKNOWN_COUPON, NOT_LOADED, UNAVAILABLE, RATE_LIMITED)",
            issue_outcomes.clone(),
        );
        let publish_duration = latency_histogram();
        registry.register(
            "kafka_publish_duration_seconds",
            "Time from publish to the broker's acknowledgement",
            publish_duration.clone(),
        );
        let publish_failures = Counter::default();
        registry.register(
            "kafka_publish_failures",
            "Publishes the broker did not acknowledge in time or rejected",
            publish_failures.clone(),
        );
        let releases = Family::<OutcomeLabels, Counter>::default();
        // Exported at 0 from the start: a family appears only once a series exists, and an
        // alert on its rate (IssueApiReservationReleaseErrors) must see it before the first
        // failed publish, not be blind until then.
        for outcome in ["released", "not_held", "error"] {
            drop(releases.get_or_create(&OutcomeLabels { outcome }));
        }
        registry.register(
            "reservation_releases",
            "Reservations given back after a failed publish or too few replica acknowledgements (outcome released, not_held, error)",
            releases.clone(),
        );
        let redis_errors = Counter::default();
        registry.register(
            "redis_errors",
            "Redis commands that failed or timed out",
            redis_errors.clone(),
        );
        let replica_ack_shortfalls = Counter::default();
        registry.register(
            "redis_replica_ack_shortfalls",
            "Reservations fewer replicas than redis.min_replica_acks acknowledged in time (given back, answered 503)",
            replica_ack_shortfalls.clone(),
        );
        let sold_out_gate_answers = Counter::default();
        registry.register(
            "sold_out_gate_answers",
            "SOLD_OUT answers given without asking Redis, by the sold-out gate (also counted in issue_outcomes)",
            sold_out_gate_answers.clone(),
        );
        let coupon_not_loaded = Counter::default();
        registry.register(
            "coupon_not_loaded",
            "Issue requests for a coupon MySQL has but Redis has no state for (answered 503 COUPON_NOT_LOADED; which coupons: /health/ready)",
            coupon_not_loaded.clone(),
        );
        let participation_failures = Counter::default();
        registry.register(
            "participation_record_failures",
            "Failed deliveries of participation records (each is retried until delivered)",
            participation_failures.clone(),
        );
        let dependency_up = Family::<DependencyLabels, Gauge>::default();
        registry.register(
            "dependency_up",
            "1 when the dependency answered its last readiness check, else 0",
            dependency_up.clone(),
        );
        let unresolved = Gauge::default();
        registry.register(
            "issue_unresolved",
            "Requests answered UNCONFIRMED (or Redis calls that got no answer) not resolved yet",
            unresolved.clone(),
        );
        let resolutions = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "issue_resolutions",
            "Unconfirmed requests resolved in the background: published (acknowledged) or voided",
            resolutions.clone(),
        );
        let participation_pending = Gauge::default();
        registry.register(
            "participation_records_pending",
            "Participation records not yet acknowledged by the broker (retried until they are)",
            participation_pending.clone(),
        );
        let participation_dropped = Counter::default();
        registry.register(
            "participation_records_dropped",
            "Participation records given up because too many were pending (missing from the log)",
            participation_dropped.clone(),
        );
        let producer_rebuilds = Family::<ProducerLabels, Counter>::default();
        registry.register(
            "kafka_producer_rebuilds",
            "Producers replaced because they could no longer publish (fatal error, failure streak)",
            producer_rebuilds.clone(),
        );
        let stock_remaining = Family::<CouponLabels, Gauge>::default();
        registry.register(
            "coupon_stock_remaining",
            "Stock Redis had left for the coupon after this instance's latest reservation of it \
             (0 once it answered sold out); take the min over instances",
            stock_remaining.clone(),
        );
        let auth_rejections = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "auth_rejections",
            "Requests refused because the caller was not authenticated or not allowed, by reason",
            auth_rejections.clone(),
        );
        // Every reason exists from the start, so a rate over it is 0 rather than absent.
        for reason in crate::auth::REJECTION_REASONS {
            let _ = auth_rejections.get_or_create(&ReasonLabels { reason });
        }
        let key_reloads = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "auth_key_reloads",
            "Changes of auth.jwt_keys_file seen: ok (keys replaced) or error (refused, old keys kept)",
            key_reloads.clone(),
        );
        let rate_limited = Family::<ReasonLabels, Counter>::default();
        // Both reasons exported at 0 from the start: IssueApiRateLimitSpike reads their rate,
        // and a series that appears only with the first rejection hides the spike's start.
        for by in LimitedBy::ALL {
            drop(rate_limited.get_or_create(&ReasonLabels { reason: by.label() }));
        }
        registry.register(
            "rate_limited_requests",
            "Issue requests refused 429 by an abuse limit, by reason (user, client); they took nothing",
            rate_limited.clone(),
        );
        Arc::new(Self {
            registry,
            auth_rejections,
            key_reloads,
            rate_limited,
            stock_remaining,
            unresolved,
            resolutions,
            participation_pending,
            participation_dropped,
            producer_rebuilds,
            requests,
            request_duration,
            issue_outcomes,
            publish_duration,
            publish_failures,
            releases,
            redis_errors,
            replica_ack_shortfalls,
            sold_out_gate_answers,
            coupon_not_loaded,
            participation_failures,
            dependency_up,
        })
    }

    pub fn outcome(&self, outcome: &'static str) {
        self.issue_outcomes
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    pub fn observe_request(
        &self,
        route: &'static str,
        method: &'static str,
        status: u16,
        elapsed: Duration,
    ) {
        self.requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status,
            })
            .inc();
        self.request_duration
            .get_or_create(&RouteLabels { route })
            .observe(elapsed.as_secs_f64());
    }

    /// The stock Redis reported left for `coupon` by a reservation it decided (the reserve
    /// script returns it with every acceptance; a sold-out answer means 0). Only coupons Redis
    /// holds get here, which bounds the label. A release gives stock back unseen until the
    /// next reservation: the gauge may read low by the releases since, never high.
    pub fn stock_seen(&self, coupon: CouponId, remaining: u64) {
        self.stock_remaining
            .get_or_create(&CouponLabels {
                coupon_id: coupon.get(),
            })
            .set(i64::try_from(remaining).unwrap_or(i64::MAX));
    }

    pub fn auth_rejected(&self, reason: &'static str) {
        self.auth_rejections
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    pub fn key_reload(&self, outcome: &'static str) {
        self.key_reloads
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Counts one request refused by the `by` limit.
    pub fn rate_limited(&self, by: LimitedBy) {
        self.rate_limited
            .get_or_create(&ReasonLabels { reason: by.label() })
            .inc();
    }

    /// Counts the result of releasing a reservation after a failed publish.
    pub fn releases_record<E>(&self, released: &Result<bool, E>) {
        let outcome = match released {
            Ok(true) => "released",
            Ok(false) => "not_held",
            Err(_) => {
                self.redis_errors.inc();
                "error"
            }
        };
        self.releases
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        couponrush_ops::health::encode(&self.registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stock_remaining_follows_the_latest_reservation_per_coupon()
    -> Result<(), Box<dyn std::error::Error>> {
        let metrics = ApiMetrics::new();
        metrics.stock_seen(CouponId::new(7)?, 41);
        metrics.stock_seen(CouponId::new(7)?, 40);
        metrics.stock_seen(CouponId::new(8)?, 0);
        let text = metrics.encode();
        assert!(
            text.contains("couponrush_api_coupon_stock_remaining{coupon_id=\"7\"} 40\n"),
            "{text}"
        );
        assert!(
            text.contains("couponrush_api_coupon_stock_remaining{coupon_id=\"8\"} 0\n"),
            "{text}"
        );
        Ok(())
    }

    #[test]
    fn release_outcomes_and_limit_reasons_are_exported_before_the_first() {
        let text = ApiMetrics::new().encode();
        let releases = ["released", "not_held", "error"]
            .map(|o| format!("couponrush_api_reservation_releases_total{{outcome=\"{o}\"}} 0\n"));
        let limited = ["user", "client"]
            .map(|r| format!("couponrush_api_rate_limited_requests_total{{reason=\"{r}\"}} 0\n"));
        for series in releases.iter().chain(&limited) {
            assert!(text.contains(series), "{series} missing from\n{text}");
        }
    }
}
