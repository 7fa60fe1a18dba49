//! The server side: [`TlsAcceptor`], a shared rustls `ServerConfig` that turns accepted
//! streams into [`TlsStream`](super::TlsStream)s.
//!
//! Owns: building server configurations from PEM files, ALPN and the handshake timeout
//! of a server. Must not touch: the handshake (`handshake`) or the stream (`stream`).

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_io::{AsyncRead, AsyncWrite};
use futures_rustls::rustls::ServerConfig;

use super::handshake::Accept;
use super::{DEFAULT_HANDSHAKE_TIMEOUT, error::describe_peer, pem};

/// Accepts TLS connections with a rustls [`ServerConfig`] (asyncio's server-side
/// `ssl.SSLContext` passed as `ssl=`; tokio-rustls's `TlsAcceptor`). Cheap to clone: the
/// configuration is shared.
///
/// ```
/// # use evloop::tls::rustls;
/// # let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
/// # let dir = std::env::temp_dir().join(format!("evloop-doc-acceptor-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// # let (cert_pem, key_pem) = (dir.join("cert.pem"), dir.join("key.pem"));
/// # std::fs::write(&cert_pem, cert.cert.pem()).unwrap();
/// # std::fs::write(&key_pem, cert.key_pair.serialize_pem()).unwrap();
/// use evloop::tls::TlsAcceptor;
///
/// let acceptor = TlsAcceptor::from_pem_files(&cert_pem, &key_pem)?.with_alpn(&["h2", "http/1.1"]);
/// assert_eq!(acceptor.config().alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
/// // Then, for each accepted `TcpStream`: `let tls = acceptor.accept(tcp).await?;`
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct TlsAcceptor {
    config: Arc<ServerConfig>,
    timeout: Option<Duration>,
}

impl TlsAcceptor {
    /// An acceptor for `config`, with the default handshake timeout
    /// ([`DEFAULT_HANDSHAKE_TIMEOUT`], asyncio's `ssl_handshake_timeout`).
    pub fn new(config: impl Into<Arc<ServerConfig>>) -> TlsAcceptor {
        TlsAcceptor {
            config: config.into(),
            timeout: Some(DEFAULT_HANDSHAKE_TIMEOUT),
        }
    }

    /// A server presenting the certificate chain in the PEM file `cert` with the private
    /// key in the PEM file `key` (asyncio's `ctx.load_cert_chain(certfile, keyfile)`):
    /// TLS 1.3 and 1.2 with rustls's default cipher suites on the ring provider, no
    /// client certificates, no ALPN until [`with_alpn`](Self::with_alpn).
    ///
    /// # Errors
    ///
    /// A file cannot be read or parsed, or the key does not fit the certificate; the
    /// message names the file.
    pub fn from_pem_files(
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> io::Result<TlsAcceptor> {
        let (cert, key) = (cert.as_ref(), key.as_ref());
        let chain = pem::load_certs(cert)?;
        let key_der = pem::load_private_key(key)?;
        let config = ServerConfig::builder_with_provider(pem::crypto_provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| pem::config_error("TLS server configuration", e))?
            .with_no_client_auth()
            .with_single_cert(chain, key_der)
            .map_err(|e| {
                pem::config_error(
                    &format!(
                        "the key {} with the certificate {}",
                        key.display(),
                        cert.display()
                    ),
                    e,
                )
            })?;
        Ok(TlsAcceptor::new(config))
    }

    /// The same acceptor offering `protocols` by ALPN, most preferred first
    /// (`["h2", "http/1.1"]` for HTTP/2 with an HTTP/1.1 fallback). A client offering
    /// none of them is refused with a `no_application_protocol` alert; a client that
    /// offers no ALPN at all is accepted, with [`TlsStream::alpn_protocol`] `None`.
    ///
    /// [`TlsStream::alpn_protocol`]: super::TlsStream::alpn_protocol
    pub fn with_alpn<P: AsRef<[u8]>>(mut self, protocols: &[P]) -> TlsAcceptor {
        Arc::make_mut(&mut self.config).alpn_protocols = super::alpn_ids(protocols);
        self
    }

    /// The same acceptor with another handshake timeout: a peer that has not finished
    /// its handshake by then is refused with `TimedOut`. `None` waits forever (tokio-rustls's
    /// behaviour). Durations saturate.
    pub fn with_handshake_timeout(mut self, timeout: Option<Duration>) -> TlsAcceptor {
        self.timeout = timeout;
        self
    }

    /// The rustls configuration.
    pub fn config(&self) -> &Arc<ServerConfig> {
        &self.config
    }

    /// Runs the server side of a TLS handshake on `stream` (a just-accepted
    /// [`TcpStream`](crate::net::TcpStream), a `UnixStream`, or any futures-io stream).
    ///
    /// # Errors
    ///
    /// The future resolves to an `io::Error` carrying a [`HandshakeError`] that names the
    /// peer's address and the reason: the client's certificate or protocol was refused,
    /// it sent something that is not TLS, it closed mid-handshake, or the handshake
    /// timeout passed. A cancelled task gets its cancellation.
    ///
    /// [`HandshakeError`]: super::HandshakeError
    pub fn accept<S>(&self, stream: S) -> Accept<S>
    where
        S: AsyncRead + AsyncWrite + Unpin + 'static,
    {
        let peer = describe_peer(&stream);
        let inner = futures_rustls::TlsAcceptor::from(self.config.clone());
        Accept::new(inner.accept(stream).into_fallible(), self.timeout, peer)
    }
}

impl From<Arc<ServerConfig>> for TlsAcceptor {
    fn from(config: Arc<ServerConfig>) -> TlsAcceptor {
        TlsAcceptor::new(config)
    }
}

impl From<ServerConfig> for TlsAcceptor {
    fn from(config: ServerConfig) -> TlsAcceptor {
        TlsAcceptor::new(config)
    }
}

impl std::fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsAcceptor")
            .field(
                "alpn_protocols",
                &super::alpn_names(&self.config.alpn_protocols),
            )
            .field("handshake_timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}
