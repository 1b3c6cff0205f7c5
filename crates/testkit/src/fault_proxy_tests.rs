//! Each mode against a real echo server.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::{FaultProxy, Mode};

/// A TCP echo server on a free port.
async fn echo_server() -> anyhow::Result<(String, JoinHandle<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?.to_string();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                tokio::io::copy(&mut read, &mut write).await.ok();
            });
        }
    });
    Ok((address, task))
}

async fn proxied() -> anyhow::Result<(FaultProxy, JoinHandle<()>)> {
    let (target, echo) = echo_server().await?;
    Ok((FaultProxy::start(target).await?, echo))
}

/// Sends `text` and reads its echo within `within`.
async fn round_trip(stream: &mut TcpStream, text: &[u8], within: Duration) -> anyhow::Result<()> {
    stream.write_all(text).await?;
    let mut echoed = vec![0u8; text.len()];
    tokio::time::timeout(within, stream.read_exact(&mut echoed)).await??;
    anyhow::ensure!(echoed == text, "echo differs");
    Ok(())
}

/// The connection is gone: a read ends (reset or EOF) instead of waiting.
async fn assert_broken(stream: &mut TcpStream) -> anyhow::Result<()> {
    let mut byte = [0u8; 1];
    stream.write_all(b"x").await.ok();
    match tokio::time::timeout(Duration::from_secs(2), stream.read(&mut byte)).await {
        Ok(Ok(0) | Err(_)) => Ok(()),
        Ok(Ok(_)) => anyhow::bail!("the connection still carries bytes"),
        Err(_) => anyhow::bail!("the connection hangs instead of being broken"),
    }
}

const QUICK: Duration = Duration::from_secs(2);

#[tokio::test]
async fn passes_bytes_both_ways() -> anyhow::Result<()> {
    let (proxy, _echo) = proxied().await?;
    let mut client = TcpStream::connect(proxy.address()).await?;
    round_trip(&mut client, b"hello", QUICK).await?;
    assert_eq!(proxy.mode(), Mode::Pass);
    Ok(())
}

#[tokio::test]
async fn refuse_resets_open_connections_and_refuses_new_ones_until_pass() -> anyhow::Result<()> {
    let (proxy, _echo) = proxied().await?;
    let mut open = TcpStream::connect(proxy.address()).await?;
    round_trip(&mut open, b"before", QUICK).await?;

    proxy.refuse().await?;
    assert_broken(&mut open).await?;
    let refused = TcpStream::connect(proxy.address()).await;
    assert_eq!(
        refused.map(drop).map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionRefused)
    );

    proxy.pass().await?;
    let mut again = TcpStream::connect(proxy.address()).await?;
    round_trip(&mut again, b"after", QUICK).await
}

#[tokio::test]
async fn reset_breaks_open_and_new_connections_but_keeps_accepting() -> anyhow::Result<()> {
    let (proxy, _echo) = proxied().await?;
    let mut open = TcpStream::connect(proxy.address()).await?;
    round_trip(&mut open, b"before", QUICK).await?;

    proxy.reset().await?;
    assert_broken(&mut open).await?;
    // The port still answers: the connect succeeds, the connection does not last.
    let mut accepted = TcpStream::connect(proxy.address()).await?;
    assert_broken(&mut accepted).await?;

    proxy.pass().await?;
    let mut again = TcpStream::connect(proxy.address()).await?;
    round_trip(&mut again, b"after", QUICK).await
}

#[tokio::test]
async fn freeze_holds_bytes_until_thawed_without_closing() -> anyhow::Result<()> {
    let (proxy, _echo) = proxied().await?;
    let mut open = TcpStream::connect(proxy.address()).await?;
    round_trip(&mut open, b"before", QUICK).await?;

    proxy.freeze().await?;
    open.write_all(b"held").await?;
    let mut echoed = [0u8; 4];
    let waited = tokio::time::timeout(Duration::from_millis(500), open.read_exact(&mut echoed));
    assert!(waited.await.is_err(), "a frozen proxy forwarded bytes");
    // New connections are accepted, and hang as well.
    let mut late = TcpStream::connect(proxy.address()).await?;
    late.write_all(b"late").await?;

    proxy.pass().await?;
    tokio::time::timeout(QUICK, open.read_exact(&mut echoed)).await??;
    assert_eq!(&echoed, b"held");
    tokio::time::timeout(QUICK, late.read_exact(&mut echoed)).await??;
    assert_eq!(&echoed, b"late");
    Ok(())
}

#[tokio::test]
async fn delay_adds_latency_per_chunk() -> anyhow::Result<()> {
    let (proxy, _echo) = proxied().await?;
    let latency = Duration::from_millis(200);
    proxy.delay(latency).await?;
    let mut client = TcpStream::connect(proxy.address()).await?;
    let started = Instant::now();
    round_trip(&mut client, b"slow", QUICK).await?;
    // One chunk each way.
    assert!(
        started.elapsed() >= latency * 2,
        "{:?} round trip",
        started.elapsed()
    );

    proxy.pass().await?;
    let started = Instant::now();
    round_trip(&mut client, b"fast", QUICK).await?;
    assert!(started.elapsed() < latency, "{:?}", started.elapsed());
    Ok(())
}
