//! issuer-api's connection bounds on the real stack: `http.max_connections` caps how many
//! connections it serves at once (a flood of idle connections cannot make it hold more, the
//! rest wait in the listen backlog), and `http.client_request_timeout_ms` closes a connection
//! that sends no request, which frees its place.

use std::time::Duration;

use couponrush_e2e::Running;
use couponrush_testkit::{TestEnv, eventually};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

#[tokio::test]
async fn connections_past_the_bound_wait_until_idle_ones_are_closed() -> anyhow::Result<()> {
    let mut env = TestEnv::new(1).await?;
    let http = &mut env.settings.http;
    http.workers = 1;
    http.max_connections = 2;
    http.client_request_timeout_ms = 1500;
    let running = Running::api_only(&env).await?;
    let health = format!("{}/health/live", running.base);
    // A fresh connection per request, so each asks for a place of its own.
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_millis(500))
        .build()?;
    let served = fresh.get(&health).send().await?;
    assert_eq!(served.status(), 200, "served while there is room");

    // Two idle connections take both places: a third client is not served meanwhile.
    let mut idle = [
        TcpStream::connect(running.api.addr).await?,
        TcpStream::connect(running.api.addr).await?,
    ];
    tokio::time::sleep(Duration::from_millis(200)).await;
    let waiting = fresh.get(&health).send().await;
    assert!(
        waiting.as_ref().is_err_and(reqwest::Error::is_timeout),
        "a connection past the bound must wait, got {waiting:?}"
    );

    // Having sent nothing, they are closed once the first-request timeout passes...
    for conn in &mut idle {
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut rest))
            .await
            .map_err(|_| anyhow::anyhow!("an idle connection was not closed within 10 s"))??;
    }
    // ... and the places they held serve others again.
    eventually(Duration::from_secs(10), "served again", async || {
        let response = fresh.get(&health).send().await.ok()?;
        (response.status() == 200).then_some(())
    })
    .await?;
    running.stop().await
}
