//! The operations port: `/metrics`, `/health/live`, `/health/ready`.
//!
//! Ready means: connected to a broker (librdkafka statistics, every second) and MySQL answered
//! its last check (every second). Either going away turns it false within seconds.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpResponse, HttpServer, web};
use couponrush_storage::Database;
use serde_json::json;

use crate::metrics::ConsumerMetrics;

/// What the ops endpoints report.
#[derive(Debug, Clone)]
pub struct OpsState {
    pub metrics: Arc<ConsumerMetrics>,
    pub kafka_up: Arc<AtomicBool>,
    pub mysql_up: Arc<AtomicBool>,
}

impl OpsState {
    fn ready(&self) -> (bool, serde_json::Value) {
        let status = |up: bool| if up { "UP" } else { "DOWN" };
        let kafka = self.kafka_up.load(Ordering::Relaxed);
        let mysql = self.mysql_up.load(Ordering::Relaxed);
        let up = kafka && mysql;
        let body = json!({
            "status": status(up),
            "checks": {
                "kafka": { "status": status(kafka) },
                "mysql": { "status": status(mysql) },
            },
        });
        (up, body)
    }
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
    match state.ready() {
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

/// Checks MySQL every second; logs once per change of state.
pub fn watch_mysql(db: Database, up: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let result = db.probe(Duration::from_secs(1)).await;
            let now_up = result.is_ok();
            if up.swap(now_up, Ordering::Relaxed) != now_up {
                match result {
                    Ok(()) => tracing::info!("MySQL answers again: ready"),
                    Err(error) => tracing::error!(%error, "MySQL lost: not ready"),
                }
            }
        }
    })
}
