//! A broker that a test can cut off and bring back *with its state*: a private tansu that
//! advertises the address of a TCP gate in front of it, so every client connection goes
//! through the gate. Cutting the gate closes every connection and refuses new ones, as a
//! dead broker does; restoring it finds the topics, ids and committed offsets unchanged, as a
//! restarted Apache Kafka broker would.
//!
//! Why not kill tansu: its storage is memory, so a restart forgets topics, and librdkafka
//! 2.12.1 can then crash (SIGSEGV in `rd_kafka_metadata_update_op`) on the fetch answers for
//! the forgotten topic (confluentinc/librdkafka#5280). That is an artefact of a broker that
//! loses its data, not an outage a consumer must survive.

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::closed_port;
use crate::private_server::{PrivateServer, locate_tansu};

/// A private tansu behind a gate; see the module documentation.
#[derive(Debug)]
pub struct GatedBroker {
    _server: PrivateServer,
    port: u16,
    target: String,
    forwarder: Option<JoinHandle<()>>,
}

impl GatedBroker {
    pub async fn start() -> anyhow::Result<Self> {
        let port = closed_port()?;
        let behind = loop {
            let candidate = closed_port()?;
            if candidate != port {
                break candidate;
            }
        };
        let server = PrivateServer::tansu_on(&locate_tansu()?, behind, port).await?;
        let mut broker = Self {
            target: server.address(),
            _server: server,
            port,
            forwarder: None,
        };
        broker.restore().await?;
        Ok(broker)
    }

    /// The gate's `127.0.0.1:<port>`: the only address clients learn.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Closes every connection through the gate and refuses new ones.
    pub fn cut(&mut self) {
        if let Some(forwarder) = self.forwarder.take() {
            // Aborting the accept loop drops its listener and its set of connections, which
            // aborts them all.
            forwarder.abort();
        }
    }

    /// Accepts connections again, on the same port.
    pub async fn restore(&mut self) -> anyhow::Result<()> {
        self.cut();
        let listener = TcpListener::bind(self.address()).await?;
        self.forwarder = Some(tokio::spawn(forward(listener, self.target.clone())));
        Ok(())
    }
}

impl Drop for GatedBroker {
    fn drop(&mut self) {
        self.cut();
    }
}

async fn forward(listener: TcpListener, target: String) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((mut inbound, _)) = accepted else { continue };
                let target = target.clone();
                connections.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await.ok();
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}
