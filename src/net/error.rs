//! Errors that name the address they were about (N6): [`AddrError`].
//!
//! Owns: the wrapping of a connect, bind, accept or lookup error into an `io::Error`
//! that keeps its `ErrorKind` and says which address (or name, or path) failed. Must
//! not touch: sockets or resolution — callers pass the errors in. A cancellation is
//! never wrapped: it stays the `io::Error` around `CancelledError` that `?` turns back
//! into `Error::Cancelled` (T3).

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::SocketAddr;

/// An I/O error about an address: a connect, bind, accept or name lookup that failed,
/// and which address it was about.
///
/// The `io::Error`s evloop's sockets return for those operations wrap one of these, so
/// their message names the address (`"connect 127.0.0.1:1: Connection refused (os error
/// 111)"`), while [`io::Error::kind`] is the kind of the underlying error. The
/// original errors stay reachable: [`errors`](Self::errors) lists each address tried
/// with its error (a connect by name tries several), and `source()` is the first.
///
/// ```
/// use std::io::ErrorKind;
/// use evloop::net::{AddrError, TcpListener, TcpStream};
///
/// evloop::run(async {
///     // A port nobody listens on: bind one, note it, close it.
///     let addr = TcpListener::bind("127.0.0.1:0").await?.local_addr()?;
///     let err = TcpStream::connect(addr).await.unwrap_err();
///     assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
///     assert!(err.to_string().starts_with(&format!("connect {addr}: ")), "{err}");
///
///     let detail = err.get_ref().and_then(|e| e.downcast_ref::<AddrError>()).unwrap();
///     assert_eq!(detail.op(), "connect");
///     assert_eq!(detail.errors()[0].0, Some(addr));
///     assert_eq!(detail.raw_os_error(), Some(libc::ECONNREFUSED));
///     Ok::<_, std::io::Error>(())
/// })
/// .unwrap();
/// ```
#[derive(Debug)]
pub struct AddrError {
    op: &'static str,
    name: Option<String>,
    /// Never empty; `None` as the address only for an error about `name` itself (a
    /// failed lookup, a Unix socket path).
    errors: Vec<(Option<SocketAddr>, io::Error)>,
}

impl AddrError {
    /// What was attempted: `"connect"`, `"bind"`, `"accept on"` or `"lookup"`.
    pub fn op(&self) -> &str {
        self.op
    }

    /// The name as the caller gave it (`"localhost:8080"`, a Unix socket's path), when
    /// the operation was given a name rather than literal addresses.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Each address tried, in the order tried, with its error (at least one entry). The
    /// address is `None` for an error about the name itself (a failed lookup).
    pub fn errors(&self) -> &[(Option<SocketAddr>, io::Error)] {
        &self.errors
    }

    /// The OS error code of the first error, as [`io::Error::raw_os_error`] gives it
    /// for an unwrapped error (the wrapping `io::Error` itself has none).
    pub fn raw_os_error(&self) -> Option<i32> {
        self.errors[0].1.raw_os_error()
    }
}

impl fmt::Display for AddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.op)?;
        if let [(addr, e)] = self.errors.as_slice() {
            match (&self.name, addr) {
                (Some(name), Some(addr)) => write!(f, " {name} ({addr})")?,
                (Some(name), None) => write!(f, " {name}")?,
                (None, Some(addr)) => write!(f, " {addr}")?,
                (None, None) => {}
            }
            return write!(f, ": {e}");
        }
        if let Some(name) = &self.name {
            write!(f, " {name}")?;
        }
        f.write_str(":")?;
        for (i, (addr, e)) in self.errors.iter().enumerate() {
            f.write_str(if i == 0 { " " } else { "; " })?;
            if let Some(addr) = addr {
                write!(f, "{addr}: ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl StdError for AddrError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.errors[0].1)
    }
}

/// `e` is the cancellation of the awaiting task (never wrapped, never collected).
pub(crate) fn is_cancellation(e: &io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.is::<crate::CancelledError>())
}

/// The `io::Error` for `errors` (at least one) of `op` on `name`: the first error's kind,
/// a message naming the addresses. A single cancellation, or an error that already
/// names its address, is returned as it is.
pub(crate) fn named(
    op: &'static str,
    name: Option<String>,
    mut errors: Vec<(Option<SocketAddr>, io::Error)>,
) -> io::Error {
    assert!(!errors.is_empty(), "net::error::named needs an error");
    if errors.len() == 1 {
        let e = &errors[0].1;
        if is_cancellation(e) || e.get_ref().is_some_and(|inner| inner.is::<AddrError>()) {
            return errors.pop().expect("one error").1;
        }
    }
    let kind = errors[0].1.kind();
    io::Error::new(kind, AddrError { op, name, errors })
}

/// `op` on the one literal address `addr` failed with `e`.
pub(crate) fn at(op: &'static str, addr: SocketAddr, e: io::Error) -> io::Error {
    named(op, None, vec![(Some(addr), e)])
}

/// `op` on the name or path `name` (no address to show) failed with `e`.
pub(crate) fn about(op: &'static str, name: impl fmt::Display, e: io::Error) -> io::Error {
    named(op, Some(name.to_string()), vec![(None, e)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> io::Error {
        io::Error::from_raw_os_error(libc::ECONNREFUSED)
    }

    #[test]
    fn one_literal_address() {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let e = at("connect", addr, refused());
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
        assert_eq!(
            e.to_string(),
            "connect 127.0.0.1:1: Connection refused (os error 111)"
        );
        let source = e.get_ref().unwrap().source().unwrap();
        assert_eq!(
            source.downcast_ref::<io::Error>().unwrap().raw_os_error(),
            Some(libc::ECONNREFUSED)
        );
    }

    #[test]
    fn a_name_and_several_addresses() {
        let v6: SocketAddr = "[::1]:1".parse().unwrap();
        let v4: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let e = named(
            "connect",
            Some("localhost:1".into()),
            vec![
                (Some(v6), io::Error::from_raw_os_error(libc::ENETUNREACH)),
                (Some(v4), refused()),
            ],
        );
        assert_eq!(e.kind(), io::ErrorKind::NetworkUnreachable);
        assert_eq!(
            e.to_string(),
            "connect localhost:1: [::1]:1: Network is unreachable (os error 101); \
             127.0.0.1:1: Connection refused (os error 111)"
        );
        let one = named(
            "connect",
            Some("localhost:1".into()),
            vec![(Some(v4), refused())],
        );
        assert_eq!(
            one.to_string(),
            "connect localhost:1 (127.0.0.1:1): Connection refused (os error 111)"
        );
        let lookup = about(
            "lookup",
            "nosuch.invalid:80",
            io::Error::other("no such host"),
        );
        assert_eq!(lookup.to_string(), "lookup nosuch.invalid:80: no such host");
    }

    #[test]
    fn cancellations_and_named_errors_pass_through() {
        let cancelled = io::Error::other(crate::CancelledError::new(None));
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let e = at("connect", addr, cancelled);
        assert!(is_cancellation(&e));
        let twice = at("bind", addr, at("connect", addr, refused()));
        assert!(twice.to_string().starts_with("connect "), "{twice}");
    }
}
