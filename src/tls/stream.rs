//! [`TlsStream`]: one type for both ends of an established TLS connection, over
//! futures-rustls's stream, with evloop's inherent I/O methods and futures-io's traits.
//!
//! Owns: the stream's public face — reads, writes, `shutdown` (which sends
//! `close_notify`) and what the handshake negotiated. Must not touch: records or keys
//! (rustls), the transport's readiness (the wrapped stream's own).

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};
use futures_rustls::rustls::pki_types::CertificateDer;
use futures_rustls::rustls::{CommonState, ProtocolVersion, SupportedCipherSuite};

/// An established TLS connection over the stream `S` (usually a
/// [`TcpStream`](crate::net::TcpStream)), from [`TlsAcceptor::accept`] or
/// [`TlsConnector::connect`]. It implements futures-io's `AsyncRead` / `AsyncWrite`
/// (so [`io::BufReader`](crate::io::BufReader) and [`io::BufWriter`](crate::io::BufWriter)
/// work over it), tokio's with feature `tokio-io`, and hyper's `rt` traits with feature
/// `hyper`.
///
/// **Closing.** [`shutdown`](Self::shutdown) (or futures-io's `poll_close`, tokio's
/// `poll_shutdown`) sends TLS `close_notify`, flushes it and then shuts the transport's
/// write side, as asyncio's `writer.close()` on an SSL transport does. Dropping the
/// stream without it closes the socket with no `close_notify`, which a strict peer
/// reports as a truncation.
///
/// **A peer that closes without `close_notify`** makes a read fail with
/// `UnexpectedEof` ("peer closed connection without sending TLS close_notify") rather
/// than look like a clean end of stream: the data may have been cut short by an
/// attacker. Protocols that frame their own ends (HTTP with a length) may treat it as
/// an end.
///
/// [`TlsAcceptor::accept`]: super::TlsAcceptor::accept
/// [`TlsConnector::connect`]: super::TlsConnector::connect
pub struct TlsStream<S> {
    inner: futures_rustls::TlsStream<S>,
}

impl<S> TlsStream<S> {
    pub(super) fn from_inner(inner: futures_rustls::TlsStream<S>) -> Self {
        TlsStream { inner }
    }

    /// The wrapped transport.
    pub fn get_ref(&self) -> &S {
        self.inner.get_ref().0
    }

    /// The wrapped transport, mutably. Reading or writing it directly corrupts the TLS
    /// session.
    pub fn get_mut(&mut self) -> &mut S {
        self.inner.get_mut().0
    }

    /// The transport, giving up the TLS session: no `close_notify` is sent, and records
    /// still waiting in rustls's send buffer (after a `write` without a `flush`) and
    /// plaintext decrypted but not yet read are dropped with it.
    pub fn into_inner(self) -> S {
        match self.inner {
            futures_rustls::TlsStream::Client(s) => s.into_inner().0,
            futures_rustls::TlsStream::Server(s) => s.into_inner().0,
        }
    }

    /// rustls's view of the session: negotiated parameters, the peer's certificates.
    pub fn session(&self) -> &CommonState {
        self.inner.get_ref().1
    }

    /// The protocol ALPN chose (`Some(b"h2")`), or `None` when either side offered none.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.session().alpn_protocol()
    }

    /// The TLS version in use (`TLSv1_3`).
    pub fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.session().protocol_version()
    }

    /// The cipher suite in use.
    pub fn cipher_suite(&self) -> Option<SupportedCipherSuite> {
        self.session().negotiated_cipher_suite()
    }

    /// The peer's certificate chain, its own first: always there on a client; on a
    /// server only when it asked for client certificates.
    pub fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        self.session().peer_certificates()
    }

    /// On a server, the name the client asked for by SNI; `None` on a client (its name
    /// is the one it passed to `connect`).
    pub fn sni_hostname(&self) -> Option<&str> {
        match &self.inner {
            futures_rustls::TlsStream::Server(s) => s.get_ref().1.server_name(),
            futures_rustls::TlsStream::Client(_) => None,
        }
    }

    /// Whether this is the client end.
    pub fn is_client(&self) -> bool {
        matches!(self.inner, futures_rustls::TlsStream::Client(_))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream<S> {
    /// Reads decrypted bytes into `buf`: `Ok(0)` at the end of the stream (the peer sent
    /// `close_notify`) or for an empty `buf`.
    ///
    /// # Errors
    ///
    /// The transport's error; `UnexpectedEof` if the peer closed without
    /// `close_notify`; `InvalidData` for a corrupt record or an alert.
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| Pin::new(&mut *self).poll_read(cx, buf)).await
    }

    /// Fills `buf` exactly.
    ///
    /// # Errors
    ///
    /// As [`read`](Self::read), and `UnexpectedEof` if the stream ends first.
    pub async fn read_exact(&mut self, mut buf: &mut [u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let n = self.read(buf).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the TLS stream ended before the buffer was filled",
                ));
            }
            buf = &mut buf[n..];
        }
        Ok(())
    }

    /// Reads until the end of the stream, appending to `out`; returns how many bytes
    /// were read.
    ///
    /// # Errors
    ///
    /// As [`read`](Self::read); what was read before the error stays in `out`.
    pub async fn read_to_end(&mut self, out: &mut Vec<u8>) -> io::Result<usize> {
        let start = out.len();
        let mut chunk = [0u8; 8192];
        loop {
            let n = self.read(&mut chunk).await?;
            if n == 0 {
                return Ok(out.len() - start);
            }
            out.extend_from_slice(&chunk[..n]);
        }
    }

    /// Encrypts and sends some of `buf`, returning how much was taken. The record may
    /// wait in rustls's buffer until the transport can take it: [`flush`](Self::flush)
    /// waits until it has.
    ///
    /// # Errors
    ///
    /// The transport's error.
    pub async fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        poll_fn(|cx| Pin::new(&mut *self).poll_write(cx, buf)).await
    }

    /// Encrypts and sends all of `buf`, and flushes.
    ///
    /// # Errors
    ///
    /// The transport's error; `WriteZero` if it takes nothing.
    pub async fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let n = self.write(buf).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "the TLS stream took no bytes",
                ));
            }
            buf = &buf[n..];
        }
        self.flush().await
    }

    /// Waits until every record written so far has reached the transport.
    ///
    /// # Errors
    ///
    /// The transport's error.
    pub async fn flush(&mut self) -> io::Result<()> {
        poll_fn(|cx| Pin::new(&mut self.inner).poll_flush(cx)).await
    }

    /// Sends `close_notify`, flushes it and shuts the transport's write side down
    /// (asyncio's `writer.close()`; tokio's `shutdown().await`). Reads still work until
    /// the peer's own `close_notify` ends them.
    ///
    /// # Errors
    ///
    /// The transport's error.
    pub async fn shutdown(&mut self) -> io::Result<()> {
        poll_fn(|cx| Pin::new(&mut self.inner).poll_close(cx)).await
    }
}

/// The futures-io traits every other path (the inherent methods, tokio's and hyper's
/// traits) goes through, adding two rules futures-rustls does not keep:
///
/// * an empty read buffer reads `Ok(0)` without reaching futures-rustls, which would
///   take rustls's `Ok(0)` for the end of the stream and end every later read too;
/// * a write delivers a pending cancellation of the task *before* rustls takes any
///   bytes (futures-rustls encrypts first and meets the cancellation at the socket
///   after), so an `Err(Cancelled)` from a write means nothing was sent, as on a plain
///   stream (N4).
impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(cancelled) = crate::task::coop::take_cancel() {
            return Poll::Ready(Err(io::Error::from(cancelled)));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Some(cancelled) = crate::task::coop::take_cancel() {
            return Poll::Ready(Err(io::Error::from(cancelled)));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    /// Sends `close_notify`, flushes, and closes the transport's write side.
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

impl<S: std::os::fd::AsRawFd> std::os::fd::AsRawFd for TlsStream<S> {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.get_ref().as_raw_fd()
    }
}

impl<S> std::fmt::Debug for TlsStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsStream")
            .field("side", &if self.is_client() { "client" } else { "server" })
            .field("version", &self.protocol_version())
            .field("alpn", &self.alpn_protocol().map(String::from_utf8_lossy))
            .finish_non_exhaustive()
    }
}
