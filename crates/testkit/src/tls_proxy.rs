//! A TLS-terminating TCP proxy: TLS with a test's certificate on its side, plain TCP to the
//! server behind it. tansu 0.6 speaks no TLS itself (its `--cert` and `--key` flags refuse to
//! be given together, and `--cert` alone leaves the listener plain: docs/security.md), so the
//! Kafka TLS tests put this in front of a private tansu that advertises the proxy's address:
//! every connection a client makes, bootstrap and metadata-directed alike, goes through TLS.

use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::test_ca::Issued;

/// Listens on a free loopback port until dropped.
#[derive(Debug)]
pub struct TlsProxy {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl TlsProxy {
    /// A listener bound now, whose port can be advertised before the server behind it starts;
    /// [`TlsProxy::serve`] starts relaying.
    pub async fn bind() -> anyhow::Result<TcpListener> {
        Ok(TcpListener::bind("127.0.0.1:0").await?)
    }

    /// Relays TLS connections on `listener` (certificate `identity`) to `upstream`.
    pub fn serve(
        listener: TcpListener,
        identity: &Issued,
        upstream: String,
    ) -> anyhow::Result<Self> {
        let certs = CertificateDer::pem_file_iter(&identity.cert)
            .context("read the proxy certificate")?
            .collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_file(&identity.key).context("read the proxy key")?;
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let port = listener.local_addr()?.port();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (acceptor, upstream) = (acceptor.clone(), upstream.clone());
                tokio::spawn(async move {
                    // A client that fails the handshake (it distrusts our CA) just goes away.
                    let Ok(mut tls) = acceptor.accept(client).await else {
                        return;
                    };
                    if let Ok(mut server) = TcpStream::connect(&upstream).await {
                        tokio::io::copy_bidirectional(&mut tls, &mut server)
                            .await
                            .ok();
                    }
                });
            }
        });
        Ok(Self { port, task })
    }

    /// `127.0.0.1:<port>`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A private tansu reached only through a [`TlsProxy`] with the certificate `identity`: the
/// broker advertises the proxy's address, so metadata sends every client back through TLS.
/// Returns the proxy (its address is the bootstrap address) and the broker.
pub async fn tansu_behind_tls(
    identity: &Issued,
) -> anyhow::Result<(TlsProxy, crate::PrivateServer)> {
    let listener = TlsProxy::bind().await?;
    let advertised = listener.local_addr()?.port();
    let program = crate::private_server::locate_tansu()?;
    let broker =
        crate::PrivateServer::tansu_on(&program, crate::closed_port()?, advertised).await?;
    let proxy = TlsProxy::serve(listener, identity, broker.address())?;
    Ok((proxy, broker))
}
