use std::net::SocketAddr;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpServer, web};
use couponrush_config::Settings;

use crate::routes;
use crate::startup;

/// A started API: where it listens and how to stop it.
#[derive(Debug)]
pub struct RunningApi {
    pub addr: SocketAddr,
    pub handle: ServerHandle,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Probes dependencies, binds `http.bind` and starts serving in the background.
pub async fn start(settings: Settings) -> anyhow::Result<RunningApi> {
    let state = web::Data::new(startup::connect(&settings).await?);
    let app_state = state.clone();
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(app_state.clone())
            .configure(routes::configure)
    })
    // Shutdown waits for in-flight requests (each ends within the publish timeout).
    .shutdown_timeout(10);
    if settings.http.workers > 0 {
        server = server.workers(settings.http.workers);
    }
    let server = server
        .bind(&settings.http.bind)
        .map_err(|e| anyhow::anyhow!("cannot listen on http.bind {}: {e}", settings.http.bind))?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| anyhow::anyhow!("http.bind {} bound no address", settings.http.bind))?;
    let server = server.run();
    let handle = server.handle();
    let publisher = state.publisher.clone();
    let task = tokio::spawn(async move {
        let result = server.await;
        publisher.flush(std::time::Duration::from_secs(5));
        result
    });
    tracing::info!(%addr, "issuer-api listening");
    Ok(RunningApi { addr, handle, task })
}

/// Runs the API until SIGINT/SIGTERM.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let running = start(settings).await?;
    running.task.await??;
    Ok(())
}
