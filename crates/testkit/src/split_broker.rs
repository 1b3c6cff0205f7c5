//! A broker that ONE client loses while the others keep it: the incident's shape, where the
//! consumer could not reach Kafka while the API published to it. A private tansu advertises
//! the address of a gate in front of it (as [`crate::GatedBroker`]), so every connection of
//! every client goes through the gate; the gate reads the client id from the first request of
//! each connection (every Kafka request header carries it, after the size, API key, version
//! and correlation id) and, while that client is cut, closes its connections: those open at
//! the cut and each new one after its first request. Other clients' bytes pass untouched.
//!
//! Why by client id: librdkafka connects to the address the broker advertises, so a plain TCP
//! proxy in front of one client's bootstrap address would cut only its bootstrap connection,
//! and one in front of the advertised address cuts every client.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::closed_port;
use crate::private_server::{PrivateServer, locate_tansu};

/// A private tansu behind a client-aware gate; see the module documentation.
#[derive(Debug)]
pub struct SplitBroker {
    _server: PrivateServer,
    address: SocketAddr,
    /// The client id cut off, if any.
    cut: watch::Sender<Option<String>>,
    gate: JoinHandle<()>,
}

impl SplitBroker {
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let behind = loop {
            let candidate = closed_port()?;
            if candidate != address.port() {
                break candidate;
            }
        };
        let server = PrivateServer::tansu_on(&locate_tansu()?, behind, address.port()).await?;
        let (cut, watcher) = watch::channel(None);
        let gate = tokio::spawn(accept_loop(listener, server.address(), watcher));
        Ok(Self {
            _server: server,
            address,
            cut,
            gate,
        })
    }

    /// The gate's `127.0.0.1:<port>`: the only address clients learn.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// Closes every connection of the client whose `client.id` is `client_id`, and each one it
    /// opens from now on, until [`SplitBroker::heal`].
    pub fn cut(&self, client_id: &str) {
        self.cut.send_replace(Some(client_id.to_owned()));
    }

    /// Lets every client through again.
    pub fn heal(&self) {
        self.cut.send_replace(None);
    }
}

impl Drop for SplitBroker {
    fn drop(&mut self) {
        // Dropping the accept loop drops its JoinSet: every open connection closes.
        self.gate.abort();
    }
}

async fn accept_loop(listener: TcpListener, target: String, cut: watch::Receiver<Option<String>>) {
    let mut connections = JoinSet::new();
    loop {
        // A failed accept (e.g. out of descriptors) is the client's failure to connect.
        if let Ok((client, _)) = listener.accept().await {
            connections.spawn(serve(client, target.clone(), cut.clone()));
        }
        while connections.try_join_next().is_some() {}
    }
}

/// One client connection: its first request's header read, then either closed (its client is
/// cut) or forwarded both ways until either side closes or its client is cut.
async fn serve(mut client: TcpStream, target: String, mut cut: watch::Receiver<Option<String>>) {
    let Ok((head, client_id)) = first_request_head(&mut client).await else {
        return;
    };
    let is_cut = |cut: &Option<String>| cut.as_deref() == Some(client_id.as_str());
    if is_cut(&cut.borrow()) {
        return;
    }
    let Ok(mut upstream) = TcpStream::connect(&target).await else {
        return;
    };
    if upstream.write_all(&head).await.is_err() {
        return;
    }
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
        _ = cut.wait_for(is_cut) => {}
    }
}

/// The bytes of a request's size and header up to its client id, and that client id (empty
/// when null): `INT32 size, INT16 api_key, INT16 api_version, INT32 correlation_id,
/// NULLABLE_STRING client_id` in every request header version (v2 adds tagged fields after it).
async fn first_request_head(client: &mut TcpStream) -> std::io::Result<(Vec<u8>, String)> {
    let mut head = vec![0u8; 14];
    client.read_exact(&mut head).await?;
    let length = i16::from_be_bytes([head[12], head[13]]);
    let Ok(length) = usize::try_from(length) else {
        return Ok((head, String::new())); // -1: a null client id
    };
    let mut id = vec![0u8; length];
    client.read_exact(&mut id).await?;
    head.extend_from_slice(&id);
    Ok((head, String::from_utf8_lossy(&id).into_owned()))
}

#[cfg(test)]
#[path = "split_broker_tests.rs"]
mod tests;
