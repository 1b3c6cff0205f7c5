//! Start-up: build the clients and prove each dependency answers, or refuse to start.

use std::sync::Arc;

use anyhow::Context;
use couponrush_cache::ReservationStore;
use couponrush_config::Settings;
use couponrush_messaging::{InFlightScan, IssuePublisher, probe_topic};
use couponrush_storage::{CouponStore, Database, IssuanceStore};

use crate::coupon_presence::CouponPresence;
use crate::metrics::ApiMetrics;
use crate::readiness::Readiness;
use crate::state::AppState;

/// Connects to Redis, Kafka and MySQL, each within `startup.probe_timeout_ms`. The first that
/// does not answer aborts start-up with its name and address: the incident's consumer ran for
/// 45 minutes against a broker that was never there.
/// Also starts the readiness watch; abort the returned handle at shutdown.
pub async fn connect(
    settings: &Settings,
) -> anyhow::Result<(AppState, tokio::task::JoinHandle<()>)> {
    let timeout = settings.startup.probe_timeout();

    let reservations = ReservationStore::new(&settings.redis)?;
    reservations
        .probe(timeout)
        .await
        .context("start-up check failed for Redis")?;

    probe_topic(&settings.kafka, &settings.kafka.topic, timeout)
        .await
        .context("start-up check failed for Kafka")?;
    let publisher = IssuePublisher::new(&settings.kafka)?;

    let db = Database::new(&settings.mysql)?;
    db.probe(timeout)
        .await
        .context("start-up check failed for MySQL")?;

    tracing::info!(
        redis = reservations.address(),
        kafka = %settings.kafka.bootstrap_servers,
        topic = %settings.kafka.topic,
        mysql = db.address(),
        "dependencies answered"
    );
    let metrics = ApiMetrics::new();
    let ready_timeout = std::time::Duration::from_secs(1).min(timeout);
    let (readiness, watch) = Readiness::watch(
        reservations.clone(),
        publisher.clone(),
        metrics.clone(),
        ready_timeout,
    );
    let state = AppState {
        reservations,
        publisher,
        in_flight: InFlightScan::new(&settings.kafka, timeout),
        coupons: CouponStore::new(db.clone()),
        issuances: IssuanceStore::new(db),
        admin_token: settings.admin.token.clone(),
        presence: Arc::new(CouponPresence::new(metrics.coupon_not_loaded.clone())),
        metrics,
        readiness,
    };
    Ok((state, watch))
}
