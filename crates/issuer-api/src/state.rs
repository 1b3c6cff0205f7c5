use std::sync::Arc;

use couponrush_cache::ReservationStore;
use couponrush_config::Secret;
use couponrush_messaging::{InFlightScan, IssuePublisher};
use couponrush_storage::{CouponStore, IssuanceStore};

use crate::abuse_limits::AbuseLimits;
use crate::auth::Authenticator;
use crate::coupon_presence::CouponPresence;
use crate::holds::HoldSettler;
use crate::metrics::ApiMetrics;
use crate::participation::ParticipationOutbox;
use crate::readiness::Readiness;
use crate::resolver::Resolver;
use crate::sold_out_gate::SoldOutGate;

/// What every handler shares. Cheap to clone: each field is a handle to a pool or client.
#[derive(Debug, Clone)]
pub struct AppState {
    pub reservations: ReservationStore,
    pub publisher: IssuePublisher,
    /// Counts requests in flight before a warm-up rebuilds a coupon Redis lost.
    pub in_flight: InFlightScan,
    pub coupons: CouponStore,
    pub issuances: IssuanceStore,
    pub admin_token: Secret,
    /// Who calls the user endpoints (`[auth]`).
    pub auth: Arc<Authenticator>,
    pub metrics: Arc<ApiMetrics>,
    pub readiness: Arc<Readiness>,
    pub resolver: Resolver,
    pub holds: HoldSettler,
    pub participation: ParticipationOutbox,
    /// How long a reservation's publish may take to be decided (see `ReservationStore::reserve`).
    pub hold_for: std::time::Duration,
    pub presence: Arc<CouponPresence>,
    /// The issue endpoint's abuse limits (`[rate_limit]`) and how clients are told apart.
    pub limits: Arc<AbuseLimits>,
    /// Answers SOLD_OUT without Redis once Redis said it (`[sold_out_gate]`).
    pub sold_out: Arc<SoldOutGate>,
}
