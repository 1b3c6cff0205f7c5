use std::net::SocketAddr;

use std::time::{Duration, Instant};

use actix_web::dev::{ServerHandle, Service};
use actix_web::http::Method;
use actix_web::{App, HttpServer, web};
use couponrush_config::Settings;
use tracing_actix_web::TracingLogger;

use crate::request_span::RequestSpan;
use crate::routes;
use crate::startup;
use crate::state::AppState;

/// A started API: where it listens and how to stop it.
#[derive(Debug)]
pub struct RunningApi {
    pub addr: SocketAddr,
    pub handle: ServerHandle,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Probes dependencies, binds `http.bind` and starts serving in the background.
pub async fn start(settings: Settings) -> anyhow::Result<RunningApi> {
    let (state, background) = startup::connect(&settings).await?;
    let http = &settings.http;
    let state = web::Data::new(state);
    let app_state = state.clone();
    let mut server = HttpServer::new(move || {
        let metrics = app_state.metrics.clone();
        // Runs on each worker's thread: its own Redis connection keeps each request's Redis
        // round trip on that thread.
        let worker_state = match app_state.reservations.with_own_connection() {
            Ok(reservations) => web::Data::new(AppState {
                reservations,
                ..app_state.get_ref().clone()
            }),
            Err(error) => {
                tracing::warn!(%error, "worker shares the start-up Redis connection");
                app_state.clone()
            }
        };
        App::new()
            .app_data(worker_state)
            .wrap_fn(move |request, service| {
                let started = Instant::now();
                let method = bounded_method(request.method());
                let metrics = metrics.clone();
                let response = service.call(request);
                async move {
                    let response = response.await?;
                    let route = response
                        .request()
                        .app_data::<routes::RoutePattern>()
                        .map_or("unmatched", |pattern| pattern.0);
                    metrics.observe_request(
                        route,
                        method,
                        response.status().as_u16(),
                        started.elapsed(),
                    );
                    Ok(response)
                }
            })
            .configure(routes::configure)
            // Outermost: the request's span covers everything, the metrics included.
            .wrap(TracingLogger::<RequestSpan>::new())
    })
    // Shutdown waits for in-flight requests (each ends within the publish timeout).
    .shutdown_timeout(10)
    .client_request_timeout(Duration::from_millis(http.client_request_timeout_ms))
    .keep_alive(Duration::from_millis(http.keep_alive_ms));
    let workers = if http.workers > 0 {
        server = server.workers(http.workers);
        http.workers
    } else {
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
    };
    // actix counts connections per worker.
    server = server.max_connections(http.max_connections_per_worker(workers));
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
        background.stop(publisher.longest_wait()).await;
        publisher.flush(Duration::from_secs(5));
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

/// The method as a metric label; anything unusual is one label, so odd requests cannot create
/// unbounded series.
fn bounded_method(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "OTHER",
    }
}
