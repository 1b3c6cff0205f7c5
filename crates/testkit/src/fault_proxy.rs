//! A TCP proxy a test puts in front of a real server (MySQL, Redis, a broker) to inject the
//! network faults a production peer shows: refused connections, resets, a peer that hangs with
//! its connections open, latency. Real sockets and real clients on both sides: no mocks.
//!
//! Modes take effect at once on open connections too:
//! - [`Mode::Pass`]: bytes flow both ways.
//! - [`Mode::Refuse`]: the listener is closed (connecting fails with `ECONNREFUSED`) and every
//!   open connection is reset, as when the peer's process died.
//! - [`Mode::Reset`]: every open connection is reset, and each new one right after it is
//!   accepted: the port answers, the peer does not keep anyone.
//! - [`Mode::Freeze`]: connections stay open (and new ones are accepted) but no byte moves
//!   either way: a peer stopped with SIGSTOP, or a cable pulled without a FIN.
//! - [`Mode::Delay`]: every chunk is held that long before it is forwarded.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// What the proxy does with traffic; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Pass,
    Refuse,
    Reset,
    Freeze,
    Delay(Duration),
}

#[derive(Debug, Clone, Copy)]
struct State {
    mode: Mode,
    /// Whether the listener is open: what `set` waits for, so a test that switched to
    /// `Refuse` can count on the next connect failing.
    listening: bool,
}

/// A fault-injecting TCP proxy on `127.0.0.1:<free port>`; see the module documentation.
#[derive(Debug)]
pub struct FaultProxy {
    address: SocketAddr,
    state: watch::Sender<State>,
    server: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy to `target` (`host:port`) in [`Mode::Pass`].
    pub async fn start(target: impl Into<String>) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        Self::serve(listener, target.into()).await
    }

    /// Starts a proxy to `target` on a given `port` (e.g. one a broker already advertises).
    pub async fn start_on(port: u16, target: impl Into<String>) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        Self::serve(listener, target.into()).await
    }

    async fn serve(listener: TcpListener, target: String) -> anyhow::Result<Self> {
        let address = listener.local_addr()?;
        let (state, watcher) = watch::channel(State {
            mode: Mode::Pass,
            listening: true,
        });
        let server = tokio::spawn(accept_loop(
            listener,
            address,
            target,
            state.clone(),
            watcher,
        ));
        Ok(Self {
            address,
            state,
            server,
        })
    }

    /// `127.0.0.1:<port>`: where clients connect.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    pub fn mode(&self) -> Mode {
        self.state.borrow().mode
    }

    /// Switches the mode without waiting for the listener to follow (it does within a few
    /// milliseconds); for callers that cannot await.
    pub fn switch(&self, mode: Mode) {
        self.state.send_modify(|s| s.mode = mode);
    }

    /// Switches the mode and waits until the listener is closed (`Refuse`) or open (any
    /// other mode).
    pub async fn set(&self, mode: Mode) -> anyhow::Result<()> {
        self.switch(mode);
        let listening = mode != Mode::Refuse;
        let mut state = self.state.subscribe();
        tokio::time::timeout(
            Duration::from_secs(5),
            state.wait_for(|s| s.listening == listening && s.mode == mode),
        )
        .await
        .map_err(|_| anyhow::anyhow!("the fault proxy did not switch to {mode:?} within 5 s"))?
        .map_err(|_| anyhow::anyhow!("the fault proxy has stopped"))?;
        Ok(())
    }

    pub async fn pass(&self) -> anyhow::Result<()> {
        self.set(Mode::Pass).await
    }

    pub async fn refuse(&self) -> anyhow::Result<()> {
        self.set(Mode::Refuse).await
    }

    pub async fn reset(&self) -> anyhow::Result<()> {
        self.set(Mode::Reset).await
    }

    pub async fn freeze(&self) -> anyhow::Result<()> {
        self.set(Mode::Freeze).await
    }

    pub async fn delay(&self, latency: Duration) -> anyhow::Result<()> {
        self.set(Mode::Delay(latency)).await
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // The accept loop owns the listener and the set of connections: aborting it closes all.
        self.server.abort();
    }
}

async fn accept_loop(
    mut listener: TcpListener,
    address: SocketAddr,
    target: String,
    state: watch::Sender<State>,
    mut watcher: watch::Receiver<State>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((inbound, _)) = accepted else { continue };
                connections.spawn(connection(inbound, target.clone(), state.subscribe()));
            }
            refusing = async { watcher.wait_for(|s| s.mode == Mode::Refuse).await.is_ok() } => {
                if !refusing {
                    return;
                }
                drop(listener);
                state.send_modify(|s| s.listening = false);
                // Open connections see `Refuse` themselves and reset; keep reaping them.
                let reopened = loop {
                    tokio::select! {
                        open = async { watcher.wait_for(|s| s.mode != Mode::Refuse).await.is_ok() } => break open,
                        Some(_) = connections.join_next(), if !connections.is_empty() => {}
                    }
                };
                if !reopened {
                    return;
                }
                listener = match bind_again(address).await {
                    Some(listener) => listener,
                    None => return,
                };
                state.send_modify(|s| s.listening = true);
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// The same port again; the previous listener's socket may take a moment to go.
async fn bind_again(address: SocketAddr) -> Option<TcpListener> {
    for _ in 0..100 {
        if let Ok(listener) = TcpListener::bind(address).await {
            return Some(listener);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

fn killed(state: &State) -> bool {
    matches!(state.mode, Mode::Refuse | Mode::Reset)
}

async fn connection(inbound: TcpStream, target: String, mut state: watch::Receiver<State>) {
    if killed(&state.borrow()) {
        reset(&inbound);
        return;
    }
    let Ok(outbound) = TcpStream::connect(&target).await else {
        reset(&inbound);
        return;
    };
    let (mut inbound, mut outbound) = (inbound, outbound);
    {
        let (from_client, to_client) = inbound.split();
        let (from_server, to_server) = outbound.split();
        let upstream = pump(from_client, to_server, state.clone());
        let downstream = pump(from_server, to_client, state.clone());
        tokio::select! {
            _ = async { tokio::join!(upstream, downstream) } => return,
            _ = state.wait_for(killed) => {}
        }
    }
    reset(&inbound);
    reset(&outbound);
}

/// Closes with an RST instead of a FIN once the stream is dropped.
fn reset(stream: &TcpStream) {
    stream.set_zero_linger().ok();
}

/// Copies one direction chunk by chunk, honouring `Freeze` and `Delay` per chunk.
async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    mut state: watch::Receiver<State>,
) -> io::Result<()> {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        // Frozen: read nothing, so the sender's window fills as with a hung peer.
        thawed(&mut state).await?;
        let read = from.read(&mut buffer).await?;
        // A chunk read just before a freeze is held until the thaw.
        if let Mode::Delay(latency) = thawed(&mut state).await? {
            tokio::time::sleep(latency).await;
        }
        if read == 0 {
            return to.shutdown().await;
        }
        let chunk = buffer.get(..read).unwrap_or_default();
        to.write_all(chunk).await?;
    }
}

/// Waits while frozen; returns the mode it thawed into.
async fn thawed(state: &mut watch::Receiver<State>) -> io::Result<Mode> {
    state
        .wait_for(|s| s.mode != Mode::Freeze)
        .await
        .map(|s| s.mode)
        .map_err(|_| io::Error::other("fault proxy stopped"))
}

#[cfg(test)]
#[path = "fault_proxy_tests.rs"]
mod tests;
