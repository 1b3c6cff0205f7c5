//! `http.max_connections` bounds what a flood of connections can hold: past it a connection
//! waits in the listen backlog, unanswered, until connections being served close.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use couponrush_e2e::Running;
use couponrush_testkit::TestEnv;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BOUND: usize = 4;

/// Opens a connection and sends one keep-alive request on it.
async fn request_on_new_connection(addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: couponrush\r\n\r\n")
        .await?;
    Ok(stream)
}

/// Reads the start of an answer, within `within`.
async fn answer(stream: &mut TcpStream, within: Duration) -> anyhow::Result<String> {
    let mut buffer = [0u8; 512];
    let read = tokio::time::timeout(within, stream.read(&mut buffer))
        .await
        .context("no answer in time")??;
    Ok(String::from_utf8_lossy(&buffer[..read]).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_past_the_bound_waits_until_others_close() -> anyhow::Result<()> {
    let mut env = TestEnv::new(1).await?;
    // One worker: actix counts connections per worker, so the bound is exact.
    env.settings.http.workers = 1;
    env.settings.http.max_connections = BOUND;
    // Long enough that the server closes none of them during the test by itself.
    env.settings.http.keep_alive_ms = 60_000;
    env.settings.http.client_request_timeout_ms = 60_000;
    let running = Running::api_only(&env).await?;
    let addr = running.api.addr;

    let mut held = Vec::new();
    for held_count in 0..BOUND {
        let mut stream = request_on_new_connection(addr).await?;
        let head = answer(&mut stream, Duration::from_secs(5))
            .await
            .with_context(|| format!("with {held_count} connections held"))?;
        assert!(
            head.starts_with("HTTP/1.1 200"),
            "a held connection: {head}"
        );
        held.push(stream);
    }

    // The kernel completes the handshake (the backlog), but nobody reads the request.
    let mut waiting = request_on_new_connection(addr).await?;
    let early = answer(&mut waiting, Duration::from_millis(1500)).await;
    assert!(
        early.is_err(),
        "a connection past the bound of {BOUND} was served: {early:?}"
    );

    // Held connections close: the waiting one is taken and answered. actix-server 2.6 resumes
    // accepting once a worker is one below its bound, not at it (its counter compares the
    // value before the decrement with the limit), so that takes two closes, not one.
    held.truncate(BOUND - 2);
    let head = answer(&mut waiting, Duration::from_secs(5))
        .await
        .context("the waiting connection, after two closed")?;
    assert!(head.starts_with("HTTP/1.1 200"), "after a close: {head}");

    // The held ones are still served: the bound refused nobody, it made one wait.
    for stream in &mut held {
        stream
            .write_all(b"GET /health/live HTTP/1.1\r\nHost: couponrush\r\n\r\n")
            .await?;
        let head = answer(stream, Duration::from_secs(5)).await?;
        assert!(
            head.starts_with("HTTP/1.1 200"),
            "a held connection: {head}"
        );
    }
    Ok(())
}
