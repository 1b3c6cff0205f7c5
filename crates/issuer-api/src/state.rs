use std::sync::Arc;

use couponrush_cache::ReservationStore;
use couponrush_config::Secret;
use couponrush_messaging::IssuePublisher;
use couponrush_storage::{CouponStore, IssuanceStore};

use crate::metrics::ApiMetrics;
use crate::readiness::Readiness;

/// What every handler shares. Cheap to clone: each field is a handle to a pool or client.
#[derive(Debug, Clone)]
pub struct AppState {
    pub reservations: ReservationStore,
    pub publisher: IssuePublisher,
    pub coupons: CouponStore,
    pub issuances: IssuanceStore,
    pub admin_token: Secret,
    pub metrics: Arc<ApiMetrics>,
    pub readiness: Arc<Readiness>,
}
