//! TLS (SPEC §15 X3, feature `tls`): [`TlsAcceptor`] and [`TlsConnector`] turn any
//! evloop stream into a [`TlsStream`], over [rustls] through futures-rustls — evloop
//! writes no record layer. The crypto provider is ring (it builds with only a C
//! compiler); the [`rustls`] crate is re-exported so applications and evloop name one
//! version.
//!
//! Serving HTTPS-style TLS in a few lines (asyncio: `start_server(..., ssl=ctx)`):
//!
//! ```
//! use evloop::net::{TcpListener, TcpStream};
//! use evloop::tls::{TlsAcceptor, TlsConnector, rustls};
//! # let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
//! # let dir = std::env::temp_dir().join(format!("evloop-doc-tls-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! # let (cert_pem, key_pem) = (dir.join("cert.pem"), dir.join("key.pem"));
//! # std::fs::write(&cert_pem, cert.cert.pem()).unwrap();
//! # std::fs::write(&key_pem, cert.key_pair.serialize_pem()).unwrap();
//!
//! evloop::run(async {
//!     let acceptor = TlsAcceptor::from_pem_files(&cert_pem, &key_pem)?.with_alpn(&["echo/1"]);
//!     let listener = TcpListener::bind("127.0.0.1:0").await?;
//!     let addr = listener.local_addr()?;
//!     evloop::create_task(async move {
//!         let (tcp, _) = listener.accept().await?;
//!         let mut tls = acceptor.accept(tcp).await?;
//!         let mut buf = [0u8; 5];
//!         tls.read_exact(&mut buf).await?;
//!         tls.write_all(&buf).await?;
//!         tls.shutdown().await?; // close_notify
//!         Ok::<_, evloop::Error>(())
//!     });
//!
//!     // The client trusts the test certificate (`with_system_roots()` in production).
//!     let connector = TlsConnector::with_root_file(&cert_pem)?.with_alpn(&["echo/1"]);
//!     let mut tls = connector.connect("localhost", TcpStream::connect(addr).await?).await?;
//!     assert_eq!(tls.alpn_protocol(), Some(&b"echo/1"[..]));
//!     assert_eq!(tls.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));
//!     tls.write_all(b"hello").await?;
//!     let mut reply = Vec::new();
//!     tls.read_to_end(&mut reply).await?; // ends cleanly at the server's close_notify
//!     assert_eq!(reply, b"hello");
//!     Ok::<_, std::io::Error>(())
//! })?;
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! **Errors.** A failed handshake is an `io::Error` carrying a [`HandshakeError`] that
//! names the peer and says why (`TLS handshake with localhost (127.0.0.1:4433) failed:
//! invalid peer certificate: certificate expired: …`). Handshakes time out after
//! [`DEFAULT_HANDSHAKE_TIMEOUT`] (asyncio's `ssl_handshake_timeout`), changed with
//! `with_handshake_timeout`.
//!
//! Owns: the TLS types' API. Must not touch: TLS records (rustls), the loop's core, or
//! the reactor (the wrapped stream does its own I/O).

mod acceptor;
mod connector;
mod error;
mod handshake;
mod pem;
mod stream;
mod traits;

use std::time::Duration;

pub use acceptor::TlsAcceptor;
pub use connector::TlsConnector;
pub use error::HandshakeError;
pub use futures_rustls::rustls;
pub use handshake::{Accept, Connect};
pub use pem::{crypto_provider, load_certs, load_private_key};
pub use stream::TlsStream;

/// How long a handshake may take before it is refused with `TimedOut`: 60 seconds, as
/// asyncio's `ssl_handshake_timeout`.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);

/// ALPN protocol ids as rustls keeps them.
fn alpn_ids<P: AsRef<[u8]>>(protocols: &[P]) -> Vec<Vec<u8>> {
    protocols.iter().map(|p| p.as_ref().to_vec()).collect()
}

/// ALPN protocol ids as text, for `Debug`.
fn alpn_names(protocols: &[Vec<u8>]) -> Vec<String> {
    protocols
        .iter()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect()
}
