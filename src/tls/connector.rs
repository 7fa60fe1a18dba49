//! The client side: [`TlsConnector`], a shared rustls `ClientConfig` that turns connected
//! streams into [`TlsStream`](super::TlsStream)s after checking the server's certificate
//! against a root store.
//!
//! Owns: client configurations (system roots, a CA file), server-name parsing, ALPN and
//! the handshake timeout of a client. Must not touch: the handshake (`handshake`) or the
//! stream (`stream`).

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_io::{AsyncRead, AsyncWrite};
use futures_rustls::rustls::pki_types::ServerName;
use futures_rustls::rustls::{ClientConfig, RootCertStore};

use super::handshake::Connect;
use super::{DEFAULT_HANDSHAKE_TIMEOUT, error::describe_peer, pem};

/// Opens TLS connections with a rustls [`ClientConfig`] (asyncio's client-side
/// `ssl.SSLContext`; tokio-rustls's `TlsConnector`). Cheap to clone: the configuration
/// is shared.
///
/// ```no_run
/// use evloop::net::TcpStream;
/// use evloop::tls::TlsConnector;
///
/// evloop::run(async {
///     let connector = TlsConnector::with_system_roots()?.with_alpn(&["http/1.1"]);
///     let tcp = TcpStream::connect("example.com:443").await?;
///     let mut tls = connector.connect("example.com", tcp).await?;
///     tls.write_all(b"GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n").await?;
///     let mut page = Vec::new();
///     tls.read_to_end(&mut page).await?;
///     Ok::<_, std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct TlsConnector {
    config: Arc<ClientConfig>,
    timeout: Option<Duration>,
}

impl TlsConnector {
    /// A connector for `config`, with the default handshake timeout
    /// ([`DEFAULT_HANDSHAKE_TIMEOUT`], asyncio's `ssl_handshake_timeout`).
    pub fn new(config: impl Into<Arc<ClientConfig>>) -> TlsConnector {
        TlsConnector {
            config: config.into(),
            timeout: Some(DEFAULT_HANDSHAKE_TIMEOUT),
        }
    }

    /// A client trusting the root certificates in `roots`: TLS 1.3 and 1.2 with rustls's
    /// default cipher suites on the ring provider, no client certificate.
    pub fn with_roots(roots: RootCertStore) -> TlsConnector {
        let config = ClientConfig::builder_with_provider(pem::crypto_provider())
            .with_safe_default_protocol_versions()
            .expect("ring supports rustls's default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        TlsConnector::new(config)
    }

    /// A client trusting the operating system's root certificates (asyncio's
    /// `ssl.create_default_context()`), read once, now: on Linux the bundle that
    /// `SSL_CERT_FILE` / `SSL_CERT_DIR` or the usual paths (`/etc/ssl/certs`) hold.
    ///
    /// # Errors
    ///
    /// No root certificate could be loaded; the message lists what failed.
    pub fn with_system_roots() -> io::Result<TlsConnector> {
        let found = rustls_native_certs::load_native_certs();
        let mut roots = RootCertStore::empty();
        let (_added, _ignored) = roots.add_parsable_certificates(found.certs);
        if roots.is_empty() {
            let why: Vec<String> = found.errors.iter().map(|e| e.to_string()).collect();
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "no system root certificate found (set SSL_CERT_FILE, or pass a CA file): {}",
                    if why.is_empty() {
                        "the store is empty".to_string()
                    } else {
                        why.join("; ")
                    }
                ),
            ));
        }
        Ok(TlsConnector::with_roots(roots))
    }

    /// A client trusting only the certificates in the PEM file at `path` (curl's
    /// `--cacert`, asyncio's `ctx.load_verify_locations(cafile)`).
    ///
    /// # Errors
    ///
    /// The file cannot be read, holds no certificate, or a certificate in it is not a
    /// valid trust anchor; the message names the path.
    pub fn with_root_file(path: impl AsRef<Path>) -> io::Result<TlsConnector> {
        let path = path.as_ref();
        let mut roots = RootCertStore::empty();
        for cert in pem::load_certs(path)? {
            roots.add(cert).map_err(|e| {
                pem::config_error(
                    &format!("{}: a certificate is not a usable root", path.display()),
                    e,
                )
            })?;
        }
        Ok(TlsConnector::with_roots(roots))
    }

    /// The same connector offering `protocols` by ALPN, most preferred first.
    pub fn with_alpn<P: AsRef<[u8]>>(mut self, protocols: &[P]) -> TlsConnector {
        Arc::make_mut(&mut self.config).alpn_protocols = super::alpn_ids(protocols);
        self
    }

    /// The same connector with another handshake timeout (`None`: wait forever, as
    /// tokio-rustls does).
    pub fn with_handshake_timeout(mut self, timeout: Option<Duration>) -> TlsConnector {
        self.timeout = timeout;
        self
    }

    /// The rustls configuration.
    pub fn config(&self) -> &Arc<ClientConfig> {
        &self.config
    }

    /// Runs the client side of a TLS handshake on `stream`, asking for and verifying
    /// `server_name`: a DNS name (`example.com`) or an IP address (`127.0.0.1`, `::1`
    /// or `[::1]`), which the server's certificate must name.
    ///
    /// # Errors
    ///
    /// The future resolves to `InvalidInput` naming `server_name` when it is neither a
    /// DNS name nor an IP address, and otherwise to an `io::Error` carrying a
    /// [`HandshakeError`] that names the server and the reason: its certificate is
    /// expired, names another host or chains to no trusted root; no common protocol;
    /// it closed mid-handshake; the handshake timeout passed. A cancelled task gets its
    /// cancellation.
    ///
    /// [`HandshakeError`]: super::HandshakeError
    pub fn connect<S>(&self, server_name: &str, stream: S) -> Connect<S>
    where
        S: AsyncRead + AsyncWrite + Unpin + 'static,
    {
        // `[::1]` as in a URL: the brackets go only around an IPv6 address.
        let bare = server_name
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .filter(|inner| inner.parse::<std::net::Ipv6Addr>().is_ok())
            .unwrap_or(server_name);
        let name = match ServerName::try_from(bare.to_string()) {
            Ok(name) => name,
            Err(e) => {
                return Connect::invalid(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "TLS server name {server_name:?} is neither a DNS name nor an IP \
                         address: {e}{}",
                        if server_name.contains(':') && !server_name.starts_with('[') {
                            " (give the host without its port)"
                        } else {
                            ""
                        }
                    ),
                ));
            }
        };
        let peer = describe_peer(&stream);
        let inner = futures_rustls::TlsConnector::from(self.config.clone());
        Connect::new(
            inner.connect(name, stream).into_fallible(),
            self.timeout,
            server_name.to_string(),
            peer,
        )
    }
}

impl From<Arc<ClientConfig>> for TlsConnector {
    fn from(config: Arc<ClientConfig>) -> TlsConnector {
        TlsConnector::new(config)
    }
}

impl From<ClientConfig> for TlsConnector {
    fn from(config: ClientConfig) -> TlsConnector {
        TlsConnector::new(config)
    }
}

impl std::fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConnector")
            .field(
                "alpn_protocols",
                &super::alpn_names(&self.config.alpn_protocols),
            )
            .field("handshake_timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}
