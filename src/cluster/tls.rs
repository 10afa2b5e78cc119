//! Node-to-node encryption: mutual TLS 1.3 with certificates the operator configures
//! (`cluster.tls_cert`, `cluster.tls_key`, `cluster.tls_ca`).
//!
//! Every node presents its own certificate and accepts a peer only if the peer's certificate
//! is signed by the cluster's CA, in both directions: a process without such a certificate
//! cannot open a connection, whatever cookie it knows. The cookie stays as a second check.
//! ractor_cluster carries the encrypted streams; this module only builds their configuration.

use anyhow::Context;
use ractor::ActorRef;
use ractor_cluster::{IncomingEncryptionMode, NodeServerMessage};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// A clustered node's transport: its listener, and how it opens connections.
#[derive(Clone)]
pub struct Transport {
    /// The ractor_cluster node server (listener and sessions).
    pub server: ActorRef<NodeServerMessage>,
    /// Node-to-node TLS, when configured (otherwise connections are plaintext, which the
    /// settings allow on loopback only unless the operator opts out).
    pub tls: Option<Tls>,
}

/// The node's TLS configuration for both ends of its connections; cheap to clone.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls")
    }
}

impl Tls {
    /// Reads the node's certificate chain and key and the cluster's CA (PEM files).
    pub fn load(cert: &Path, key: &Path, ca: &Path) -> anyhow::Result<Self> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .with_context(|| format!("cluster.tls_cert {}", cert.display()))?;
        anyhow::ensure!(
            !chain.is_empty(),
            "cluster.tls_cert {} holds no certificate",
            cert.display()
        );
        let key = PrivateKeyDer::from_pem_file(key)
            .with_context(|| format!("cluster.tls_key {}", key.display()))?;
        let mut roots = RootCertStore::empty();
        let cas = CertificateDer::pem_file_iter(ca)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .with_context(|| format!("cluster.tls_ca {}", ca.display()))?;
        for certificate in cas {
            roots
                .add(certificate)
                .with_context(|| format!("cluster.tls_ca {}", ca.display()))?;
        }
        anyhow::ensure!(
            !roots.is_empty(),
            "cluster.tls_ca {} holds no certificate",
            ca.display()
        );
        let roots = Arc::new(roots);
        let peers = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .context("cluster.tls_ca")?;
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(peers)
            .with_single_cert(chain.clone(), key.clone_key())
            .context("cluster.tls_cert and cluster.tls_key do not match")?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .context("cluster.tls_cert and cluster.tls_key do not match")?;
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
        })
    }

    /// How the node's listener accepts connections.
    pub fn incoming(&self) -> IncomingEncryptionMode {
        IncomingEncryptionMode::Tls(self.acceptor.clone())
    }

    /// Opens an encrypted connection to the node at `addr` (an ip:port, which its certificate
    /// must name).
    pub async fn connect(
        &self,
        server: &ActorRef<NodeServerMessage>,
        addr: &str,
    ) -> Result<(), String> {
        let socket: SocketAddr = addr
            .parse()
            .map_err(|e| format!("cluster address {addr}: {e}"))?;
        let name = ServerName::IpAddress(socket.ip().into());
        ractor_cluster::client_connect_enc(server, socket, self.connector.clone(), name)
            .await
            .map_err(|e| e.to_string())
    }
}
