//! Start-up: build the clients and prove each dependency answers, or refuse to start.

use std::sync::Arc;
use std::time::Duration;

use couponrush_cache::ReservationStore;
use couponrush_config::Settings;
use couponrush_messaging::{InFlightScan, IssuePublisher};
use couponrush_ops::StartupProbes;
use couponrush_storage::{CouponStore, Database, IssuanceStore};

use crate::abuse_limits::AbuseLimits;
use crate::auth::Authenticator;
use crate::coupon_presence::CouponPresence;
use crate::holds::HoldSettler;
use crate::metrics::ApiMetrics;
use crate::participation::ParticipationOutbox;
use crate::readiness::Readiness;
use crate::resolver::{Resolver, ResolverTask};
use crate::sold_out_gate::SoldOutGate;
use crate::state::AppState;
use crate::trusted_proxies::TrustedProxies;

/// Connects to Redis, Kafka and MySQL, each within `startup.probe_timeout_ms`. The first that
/// does not answer aborts start-up with its name and address: the incident's consumer ran for
/// 45 minutes against a broker that was never there.
/// Also starts the background tasks (readiness watch, resolver, participation outbox); stop
/// them with [`Background::stop`] at shutdown.
pub async fn connect(settings: &Settings) -> anyhow::Result<(AppState, Background)> {
    // Keys first: a keys file that does not parse needs no network to refuse start-up.
    let metrics = ApiMetrics::new();
    let (auth, key_watch) =
        Authenticator::start(&settings.auth, &settings.admin.token, metrics.clone())?;
    let probes = StartupProbes::new(&settings.startup);
    let timeout = probes.timeout();

    let reservations =
        ReservationStore::new(&settings.redis)?.with_sold_out_lease(settings.sold_out_gate.lease());
    probes.redis(&reservations).await?;

    probes.kafka(&settings.kafka, &settings.kafka.topic).await?;
    let publisher = IssuePublisher::new(&settings.kafka, &settings.message_signing)?;

    let db = Database::new(&settings.mysql)?;
    probes.mysql(&db).await?;

    tracing::info!(
        redis = reservations.address(),
        kafka = %settings.kafka.bootstrap_servers,
        topic = %settings.kafka.topic,
        mysql = db.address(),
        "dependencies answered"
    );
    let ready_timeout = Duration::from_secs(1).min(timeout);
    let (readiness, watch) = Readiness::watch(
        reservations.clone(),
        publisher.clone(),
        metrics.clone(),
        ready_timeout,
    );
    // A hold outlives the longest wait for replicas and then for the publish, so only a dead
    // API's holds expire.
    let hold_for = settings.redis.replica_wait() + publisher.longest_wait() + HOLD_MARGIN;
    let (resolver, resolver_task) =
        Resolver::start(publisher.clone(), reservations.clone(), metrics.clone());
    let participation = ParticipationOutbox::start(publisher.clone(), metrics.clone());
    let (holds, holds_task) = HoldSettler::start(reservations.clone());
    let state = AppState {
        reservations,
        publisher,
        in_flight: InFlightScan::new(&settings.kafka, timeout),
        coupons: CouponStore::new(db.clone()),
        issuances: IssuanceStore::new(db),
        admin_token: settings.admin.token.clone(),
        auth: Arc::new(auth),
        presence: Arc::new(CouponPresence::new(metrics.coupon_not_loaded.clone())),
        sold_out: Arc::new(SoldOutGate::new(
            settings.sold_out_gate.lease(),
            settings.sold_out_gate.max_participants,
            metrics.sold_out_gate_answers.clone(),
        )),
        metrics,
        readiness,
        resolver,
        holds,
        participation: participation.clone(),
        hold_for,
        limits: Arc::new(AbuseLimits::new(
            &settings.rate_limit,
            TrustedProxies::new(settings.auth.trusted_proxies()),
        )),
    };
    let background = Background {
        readiness_watch: watch,
        resolver: resolver_task,
        participation,
        holds: holds_task,
        key_watch,
    };
    Ok((state, background))
}

/// Added to the longest publish wait to make a reservation's hold.
const HOLD_MARGIN: Duration = Duration::from_secs(1);
/// Bound on delivering the participation records still queued at shutdown.
const PARTICIPATION_DRAIN: Duration = Duration::from_secs(5);

/// The API's background tasks.
#[derive(Debug)]
pub struct Background {
    readiness_watch: tokio::task::JoinHandle<()>,
    resolver: ResolverTask,
    participation: ParticipationOutbox,
    holds: tokio::task::JoinHandle<()>,
    /// Watches `auth.jwt_keys_file` (jwt mode with a keys file).
    key_watch: Option<tokio::task::JoinHandle<()>>,
}

impl Background {
    /// After the HTTP server stopped: resolve what can be resolved within `resolve_for`,
    /// deliver the queued participation records, then stop watching readiness.
    pub async fn stop(self, resolve_for: Duration) {
        self.resolver.drain(resolve_for).await;
        self.participation.drain(PARTICIPATION_DRAIN).await;
        // Holds not flushed yet expire by themselves after the longest publish wait.
        self.holds.abort();
        self.readiness_watch.abort();
        if let Some(watch) = self.key_watch {
            watch.abort();
        }
    }
}
