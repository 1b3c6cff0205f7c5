//! The operations port: `/metrics`, `/health/live`, `/health/ready` (see [`Health`] for what
//! ready means).

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::json;

use crate::metrics::ConsumerMetrics;
use crate::readiness::Health;

/// What the ops endpoints report.
#[derive(Debug, Clone)]
pub struct OpsState {
    pub metrics: Arc<ConsumerMetrics>,
    pub health: Arc<Health>,
}

async fn metrics(state: web::Data<OpsState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.encode())
}

async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "UP" }))
}

async fn ready(state: web::Data<OpsState>) -> HttpResponse {
    match state.health.verdict() {
        (true, body) => HttpResponse::Ok().json(body),
        (false, body) => HttpResponse::ServiceUnavailable().json(body),
    }
}

/// Serves the ops endpoints on `bind` with one worker; returns the bound address.
pub fn serve(
    bind: &str,
    state: OpsState,
) -> anyhow::Result<(
    SocketAddr,
    ServerHandle,
    tokio::task::JoinHandle<std::io::Result<()>>,
)> {
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/metrics", web::get().to(metrics))
            .route("/health/live", web::get().to(live))
            .route("/health/ready", web::get().to(ready))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .bind(bind)
    .map_err(|e| anyhow::anyhow!("cannot listen on consumer.ops_bind {bind}: {e}"))?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| anyhow::anyhow!("consumer.ops_bind {bind} bound no address"))?;
    let server = server.run();
    let handle = server.handle();
    Ok((addr, handle, tokio::spawn(server)))
}
