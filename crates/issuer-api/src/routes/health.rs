//! What the API's `/health/ready` and `/metrics` report; the handlers themselves (and
//! `/health/live`) are `couponrush_ops::health`'s, shared by every binary.

use couponrush_ops::HealthReport;
use couponrush_ops::readiness::status;
use serde_json::{Value, json};

use crate::state::AppState;

impl HealthReport for AppState {
    /// Ready when Redis answered a PING and the broker answered the producer's metadata request
    /// at the last check (every second, see `readiness`). Not ready means the load balancer
    /// should send no one here.
    ///
    /// Coupons whose state Redis lost are listed (`coupons.notLoaded`) but leave the API ready:
    /// every replica shares the one Redis, so taking this one out of rotation would fix nothing
    /// and would refuse the coupons that are fine; reloading the coupon is an operator's act.
    fn readiness(&self) -> (bool, Value) {
        let checks: serde_json::Map<String, Value> = self
            .readiness
            .dependencies()
            .iter()
            .map(|check| (check.name().to_owned(), check.report()))
            .collect();
        let up = self.readiness.is_ready();
        let not_loaded: Vec<_> = self
            .presence
            .recently_not_loaded()
            .into_iter()
            .map(|(id, ago)| json!({ "couponId": id, "lastSeenSecondsAgo": ago.as_secs() }))
            .collect();
        let body = json!({
            "status": status(up),
            "checks": checks,
            "coupons": { "notLoaded": not_loaded },
        });
        (up, body)
    }

    fn metrics(&self) -> String {
        self.metrics.encode()
    }
}
