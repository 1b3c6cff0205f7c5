//! A port serving only the [`health`](crate::health) endpoints, for a binary whose work is not
//! HTTP (the consumer's `consumer.ops_bind`). Any other path is actix's plain `404`.

use std::net::SocketAddr;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpServer, web};

use crate::health::{self, HealthReport};

/// The ops port could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpsPortError {
    #[error("cannot listen on {setting} {bind}: {error}")]
    Bind {
        setting: &'static str,
        bind: String,
        error: std::io::Error,
    },
    #[error("{setting} {bind} bound no address")]
    NoAddress { setting: &'static str, bind: String },
}

/// A running ops port.
#[derive(Debug)]
pub struct OpsPort {
    /// Where it listens (the port chosen when bound to `:0`).
    pub addr: SocketAddr,
    handle: ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl OpsPort {
    /// Serves `/metrics`, `/health/live` and `/health/ready` from `report` on `bind` (the value
    /// of the setting named `setting`, for the error) with one worker. Signals are left to the
    /// binary, which stops the port after its own work.
    pub fn serve<R: HealthReport>(
        bind: &str,
        setting: &'static str,
        report: R,
    ) -> Result<Self, OpsPortError> {
        let data = web::Data::new(report);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/metrics", web::get().to(health::metrics::<R>))
                .route("/health/live", web::get().to(health::live))
                .route("/health/ready", web::get().to(health::ready::<R>))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .bind(bind)
        .map_err(|error| OpsPortError::Bind {
            setting,
            bind: bind.to_owned(),
            error,
        })?;
        let addr = server
            .addrs()
            .first()
            .copied()
            .ok_or_else(|| OpsPortError::NoAddress {
                setting,
                bind: bind.to_owned(),
            })?;
        let server = server.run();
        let handle = server.handle();
        Ok(Self {
            addr,
            handle,
            task: tokio::spawn(server),
        })
    }

    /// Stops serving, letting answers in progress finish (within a second).
    pub async fn stop(self) {
        self.handle.stop(true).await;
        self.task.abort();
    }
}
