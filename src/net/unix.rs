//! Unix domain sockets: [`UnixListener`], [`UnixStream`] (with `pair()`),
//! [`UnixDatagram`] (N3).
//!
//! Owns: Unix socket creation, accept and datagram I/O. Must not touch: readiness
//! (`source`) or the shared stream API (`stream`).

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::SocketAddr;
use std::path::Path;

use socket2::{Domain, SockAddr, Socket, Type};

use super::AcceptBackoff;
use super::error;
use super::source::{Source, StreamLeftover};
use super::stream::stream_api;
use crate::reactor::{Direction, Interest};

/// A Unix stream socket listening for connections.
pub struct UnixListener {
    source: Source<std::os::unix::net::UnixListener>,
    backoff: AcceptBackoff,
}

impl UnixListener {
    /// Binds to `path` (which must not exist) and listens.
    ///
    /// # Errors
    ///
    /// Bind errors (e.g. `AddrInUse` if the path exists) as an
    /// [`AddrError`](super::AddrError) naming the path; when no loop runs here.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        let path = path.as_ref();
        std::os::unix::net::UnixListener::bind(path)
            .and_then(UnixListener::from_std)
            .map_err(|e| error::about("bind", path.display(), e))
    }

    /// Wraps a std listener (made non-blocking here).
    ///
    /// # Errors
    ///
    /// When no loop runs on this thread, or registration fails.
    pub fn from_std(listener: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        listener.set_nonblocking(true)?;
        Ok(UnixListener {
            source: Source::new(listener, Interest::Readable)?,
            backoff: AcceptBackoff::default(),
        })
    }

    /// Accepts a connection (with the same `EMFILE` back-off as
    /// [`TcpListener::accept`](super::TcpListener::accept)).
    ///
    /// # Errors
    ///
    /// The accept error; an `io::Error` wrapping `CancelledError` when the awaiting task
    /// is cancelled.
    pub async fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        self.backoff.wait().await?;
        let accepted = poll_fn(|cx| self.source.poll_read_with(cx, |l| l.accept())).await;
        let named = |e| match self
            .local_addr()
            .ok()
            .as_ref()
            .and_then(|a| a.as_pathname())
        {
            Some(path) => error::about("accept on", path.display(), e),
            None => e,
        };
        let (stream, addr) = self.backoff.record(accepted).map_err(named)?;
        self.source.registration.count_accept();
        Ok((UnixStream::from_std(stream).map_err(named)?, addr))
    }

    /// The bound address.
    ///
    /// # Errors
    ///
    /// The socket's error.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.source.io.local_addr()
    }
}

impl AsRawFd for UnixListener {
    fn as_raw_fd(&self) -> RawFd {
        self.source.io.as_raw_fd()
    }
}

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixListener")
            .field("local_addr", &self.local_addr().ok())
            .finish()
    }
}

/// A Unix stream connection; the same API as [`TcpStream`](super::TcpStream).
///
/// ```
/// evloop::run(async {
///     let (a, b) = evloop::net::UnixStream::pair()?;
///     a.write_all(b"hi").await?;
///     let mut buf = [0u8; 2];
///     b.read_exact(&mut buf).await?;
///     assert_eq!(&buf, b"hi");
///     Ok::<_, std::io::Error>(())
/// })
/// .unwrap();
/// ```
pub struct UnixStream {
    source: Source<std::os::unix::net::UnixStream>,
    leftover: StreamLeftover,
}

stream_api!(UnixStream);

impl UnixStream {
    /// Connects to the socket at `path` (non-blocking connect).
    ///
    /// # Errors
    ///
    /// Connect errors (e.g. `NotFound`, `ConnectionRefused`) as an
    /// [`AddrError`](super::AddrError) naming the path; an `io::Error` wrapping
    /// `CancelledError` when the awaiting task is cancelled.
    pub async fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let path = path.as_ref();
        UnixStream::connect_path(path)
            .await
            .map_err(|e| error::about("connect", path.display(), e))
    }

    async fn connect_path(path: &Path) -> io::Result<UnixStream> {
        let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
        socket.set_nonblocking(true)?;
        match socket.connect(&SockAddr::unix(path)?) {
            Ok(()) => {}
            Err(e)
                if e.raw_os_error() == Some(libc::EINPROGRESS)
                    || e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        let stream = UnixStream {
            source: Source::new(
                std::os::unix::net::UnixStream::from(std::os::fd::OwnedFd::from(socket)),
                Interest::Both,
            )?,
            leftover: StreamLeftover::new(),
        };
        poll_fn(|cx| stream.source.poll_ready(cx, Direction::Write)).await?;
        match stream.source.io.take_error()? {
            Some(e) => Err(e),
            None => Ok(stream),
        }
    }

    /// A connected pair of streams (`socketpair(2)`), both on the current loop.
    ///
    /// # Errors
    ///
    /// When no loop runs on this thread, or the system refuses the sockets.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = std::os::unix::net::UnixStream::pair()?;
        Ok((UnixStream::from_std(a)?, UnixStream::from_std(b)?))
    }

    /// Wraps a std stream (made non-blocking here).
    ///
    /// # Errors
    ///
    /// When no loop runs on this thread, or registration fails.
    pub fn from_std(stream: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        stream.set_nonblocking(true)?;
        Ok(UnixStream {
            source: Source::new(stream, Interest::Both)?,
            leftover: StreamLeftover::new(),
        })
    }

    /// The remote address.
    ///
    /// # Errors
    ///
    /// The socket's error.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.source.io.peer_addr()
    }

    /// The local address.
    ///
    /// # Errors
    ///
    /// The socket's error.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.source.io.local_addr()
    }

    /// The pending socket error (`SO_ERROR`), if any.
    ///
    /// # Errors
    ///
    /// The socket's error.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.source.io.take_error()
    }
}

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixStream")
            .field("local_addr", &self.local_addr().ok())
            .field("peer_addr", &self.peer_addr().ok())
            .finish()
    }
}

/// A Unix datagram socket.
pub struct UnixDatagram {
    source: Source<std::os::unix::net::UnixDatagram>,
}

impl UnixDatagram {
    /// Binds to `path`.
    ///
    /// # Errors
    ///
    /// Bind errors as an [`AddrError`](super::AddrError) naming the path; when no loop
    /// runs here.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixDatagram> {
        let path = path.as_ref();
        std::os::unix::net::UnixDatagram::bind(path)
            .and_then(UnixDatagram::from_std)
            .map_err(|e| error::about("bind", path.display(), e))
    }

    /// A socket bound to no address (it can send, and receive replies when connected).
    ///
    /// # Errors
    ///
    /// When no loop runs here, or the system refuses the socket.
    pub fn unbound() -> io::Result<UnixDatagram> {
        UnixDatagram::from_std(std::os::unix::net::UnixDatagram::unbound()?)
    }

    /// A connected pair of datagram sockets.
    ///
    /// # Errors
    ///
    /// When no loop runs here, or the system refuses the sockets.
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = std::os::unix::net::UnixDatagram::pair()?;
        Ok((UnixDatagram::from_std(a)?, UnixDatagram::from_std(b)?))
    }

    /// Wraps a std socket (made non-blocking here).
    ///
    /// # Errors
    ///
    /// When no loop runs on this thread, or registration fails.
    pub fn from_std(socket: std::os::unix::net::UnixDatagram) -> io::Result<UnixDatagram> {
        socket.set_nonblocking(true)?;
        Ok(UnixDatagram {
            source: Source::new(socket, Interest::Both)?,
        })
    }

    /// Sets the default peer.
    ///
    /// # Errors
    ///
    /// Connect errors as an [`AddrError`](super::AddrError) naming the path.
    pub fn connect(&self, path: impl AsRef<Path>) -> io::Result<()> {
        let path = path.as_ref();
        self.source
            .io
            .connect(path)
            .map_err(|e| error::about("connect", path.display(), e))
    }

    /// Sends a datagram to the connected peer.
    ///
    /// # Errors
    ///
    /// The socket's error.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        poll_fn(|cx| self.source.poll_write_with(cx, |s| s.send(buf))).await
    }

    /// Receives a datagram from the connected peer.
    ///
    /// # Errors
    ///
    /// The socket's error.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| self.source.poll_read_with(cx, |s| s.recv(buf))).await
    }

    /// Sends a datagram to the socket at `path`.
    ///
    /// # Errors
    ///
    /// The socket's error.
    pub async fn send_to(&self, buf: &[u8], path: impl AsRef<Path>) -> io::Result<usize> {
        let path = path.as_ref();
        poll_fn(|cx| self.source.poll_write_with(cx, |s| s.send_to(buf, path))).await
    }

    /// Receives a datagram and its sender's address.
    ///
    /// # Errors
    ///
    /// The socket's error.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        poll_fn(|cx| self.source.poll_read_with(cx, |s| s.recv_from(buf))).await
    }

    /// The bound address.
    ///
    /// # Errors
    ///
    /// The socket's error.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.source.io.local_addr()
    }

    /// The connected peer's address.
    ///
    /// # Errors
    ///
    /// The socket's error.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.source.io.peer_addr()
    }
}

impl AsRawFd for UnixDatagram {
    fn as_raw_fd(&self) -> RawFd {
        self.source.io.as_raw_fd()
    }
}

impl AsFd for UnixDatagram {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.source.io.as_fd()
    }
}

impl fmt::Debug for UnixDatagram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixDatagram")
            .field("local_addr", &self.local_addr().ok())
            .finish()
    }
}
