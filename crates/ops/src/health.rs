//! The endpoints operators and orchestrators read, answered the same way by every binary:
//!
//! - `GET /health/live`: `200 {"status":"UP"}` while the process serves HTTP;
//! - `GET /health/ready`: `200` when ready, else `503`, with the binary's JSON body saying
//!   which check failed ([`HealthReport::readiness`]);
//! - `GET /metrics`: every metric in OpenMetrics text.

use actix_web::{HttpResponse, web};
use prometheus_client::registry::Registry;
use serde_json::{Value, json};

/// The content type of `/metrics`.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What a binary's `/health/ready` and `/metrics` report.
pub trait HealthReport: Send + Sync + 'static {
    /// Ready or not, and the JSON body that says why.
    fn readiness(&self) -> (bool, Value);

    /// Every metric, in OpenMetrics text (see [`encode`]).
    fn metrics(&self) -> String;
}

/// Liveness: the process serves HTTP.
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "UP" }))
}

/// Readiness: `200` when ready, else `503`; the body says why either way.
pub async fn ready<R: HealthReport>(report: web::Data<R>) -> HttpResponse {
    match report.readiness() {
        (true, body) => HttpResponse::Ok().json(body),
        (false, body) => HttpResponse::ServiceUnavailable().json(body),
    }
}

/// Prometheus scrape endpoint.
pub async fn metrics<R: HealthReport>(report: web::Data<R>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(OPENMETRICS)
        .body(report.metrics())
}

/// A registry in OpenMetrics text. A failure is logged and leaves what was written: a scrape
/// with some metrics beats none.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    if let Err(error) = prometheus_client::encoding::text::encode(&mut out, registry) {
        tracing::error!(%error, "metrics encoding failed");
    }
    out
}
