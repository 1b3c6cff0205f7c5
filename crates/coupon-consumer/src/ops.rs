//! What the consumer's ops port (`consumer.ops_bind`, served by `couponrush_ops::OpsPort`)
//! reports: its metrics, and readiness as [`Health`] judges it.

use std::sync::Arc;

use couponrush_ops::HealthReport;
use serde_json::Value;

use crate::metrics::ConsumerMetrics;
use crate::readiness::Health;

#[derive(Debug, Clone)]
pub struct OpsState {
    pub metrics: Arc<ConsumerMetrics>,
    pub health: Arc<Health>,
}

impl HealthReport for OpsState {
    fn readiness(&self) -> (bool, Value) {
        self.health.verdict()
    }

    fn metrics(&self) -> String {
        self.metrics.encode()
    }
}
