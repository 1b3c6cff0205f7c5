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

use crate::closed_port;
use crate::fault_proxy::{FaultProxy, Mode};
use crate::private_server::{PrivateServer, locate_tansu};

/// A private tansu behind a gate; see the module documentation.
#[derive(Debug)]
pub struct GatedBroker {
    server: PrivateServer,
    gate: FaultProxy,
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
        let gate = FaultProxy::start_on(port, server.address()).await?;
        Ok(Self { server, gate })
    }

    /// The gate's `127.0.0.1:<port>`: the only address clients learn.
    pub fn address(&self) -> String {
        self.gate.address()
    }

    /// Closes every connection through the gate and refuses new ones.
    pub fn cut(&mut self) {
        self.gate.switch(Mode::Refuse);
    }

    /// Accepts connections again, on the same port.
    pub async fn restore(&mut self) -> anyhow::Result<()> {
        self.gate.pass().await
    }

    /// The gate itself, for the other faults (freeze, reset, delay).
    pub fn gate(&self) -> &FaultProxy {
        &self.gate
    }

    /// The broker process behind the gate (to stop it with SIGSTOP, for instance).
    pub fn server(&self) -> &PrivateServer {
        &self.server
    }
}
