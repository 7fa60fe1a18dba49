//! The error a failed TLS handshake gives: [`HandshakeError`], naming the peer (its
//! address, and the server name a client asked for) and the reason rustls gave.
//!
//! Owns: the wording and the peer's description. Must not touch: the handshake itself.

use std::any::Any;
use std::fmt;
use std::io;

use futures_rustls::rustls;

/// Why a TLS handshake failed, and with whom. It travels inside the `io::Error` that
/// [`TlsAcceptor::accept`](super::TlsAcceptor::accept) and
/// [`TlsConnector::connect`](super::TlsConnector::connect) return, which keeps the
/// underlying error's kind (`InvalidData` for a TLS protocol or certificate error,
/// `UnexpectedEof` for a peer that closed mid-handshake, `TimedOut` for the handshake
/// timeout); [`HandshakeError::of`] finds it again.
///
/// Its message reads `TLS handshake with localhost (127.0.0.1:4433) failed: invalid
/// peer certificate: certificate expired: …`.
///
/// ```
/// use evloop::tls::HandshakeError;
/// let err: std::io::Error = std::io::Error::other("not a handshake");
/// assert!(HandshakeError::of(&err).is_none());
/// ```
#[derive(Debug)]
pub struct HandshakeError {
    peer: String,
    server_name: Option<String>,
    reason: io::Error,
}

impl HandshakeError {
    pub(super) fn wrap(peer: String, server_name: Option<String>, reason: io::Error) -> io::Error {
        let kind = reason.kind();
        io::Error::new(
            kind,
            HandshakeError {
                peer,
                server_name,
                reason,
            },
        )
    }

    /// The handshake error inside `err`, if it is one.
    pub fn of(err: &io::Error) -> Option<&HandshakeError> {
        err.get_ref()?.downcast_ref::<HandshakeError>()
    }

    /// The peer's address (`127.0.0.1:4433`, a socket path), or `"the peer"` when the
    /// stream was not one of evloop's sockets.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// The server name the client asked for (client side only).
    pub fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }

    /// The underlying error: rustls's, the socket's, or the timeout.
    pub fn reason(&self) -> &io::Error {
        &self.reason
    }

    /// The rustls error, when rustls refused the handshake (a bad certificate, no
    /// common protocol version or cipher suite, an alert from the peer).
    pub fn rustls_error(&self) -> Option<&rustls::Error> {
        self.reason.get_ref()?.downcast_ref::<rustls::Error>()
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TLS handshake with ")?;
        match &self.server_name {
            Some(name) => write!(f, "{name} ({})", self.peer)?,
            None => f.write_str(&self.peer)?,
        }
        f.write_str(" failed: ")?;
        if self.reason.kind() == io::ErrorKind::UnexpectedEof && self.rustls_error().is_none() {
            f.write_str("the peer closed the connection during the handshake")
        } else {
            write!(f, "{}", self.reason)
        }
    }
}

impl std::error::Error for HandshakeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.reason)
    }
}

/// The peer's address when `stream` is one of evloop's sockets (an owned `TcpStream` or `UnixStream`),
/// else `"the peer"`: the handshake futures are generic over any futures-io stream.
pub(super) fn describe_peer<S: 'static>(stream: &S) -> String {
    let any = stream as &dyn Any;
    if let Some(tcp) = any.downcast_ref::<crate::net::TcpStream>() {
        if let Ok(addr) = tcp.peer_addr() {
            return addr.to_string();
        }
    }
    if let Some(unix) = any.downcast_ref::<crate::net::UnixStream>() {
        if let Ok(addr) = unix.peer_addr() {
            return match addr.as_pathname() {
                Some(path) => path.display().to_string(),
                None => "an unnamed unix socket".to_string(),
            };
        }
    }
    "the peer".to_string()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_message_names_the_peer_the_name_and_the_reason() {
        // What webpki reports for an expired certificate (the bare `Expired` variant
        // displays as its name only, "Expired").
        let at = |secs| rustls::pki_types::UnixTime::since_unix_epoch(Duration::from_secs(secs));
        let expired = rustls::CertificateError::ExpiredContext {
            time: at(1_700_000_000),
            not_after: at(1_600_000_000),
        };
        let reason = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(expired),
        );
        let err = HandshakeError::wrap("127.0.0.1:4433".into(), Some("localhost".into()), reason);
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let text = err.to_string();
        assert!(
            text.starts_with("TLS handshake with localhost (127.0.0.1:4433) failed: "),
            "{text}"
        );
        assert!(text.contains("expired"), "{text}");
        let he = HandshakeError::of(&err).unwrap();
        assert!(matches!(
            he.rustls_error(),
            Some(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ExpiredContext { .. }
            ))
        ));
    }

    #[test]
    fn an_eof_mid_handshake_is_said_in_words() {
        let reason = io::Error::new(io::ErrorKind::UnexpectedEof, "tls handshake eof");
        let err = HandshakeError::wrap("[::1]:9".into(), None, reason);
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(
            err.to_string(),
            "TLS handshake with [::1]:9 failed: the peer closed the connection during the handshake"
        );
    }
}
