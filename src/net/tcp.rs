//! TCP: [`TcpListener`] and [`TcpStream`] (N1, N2).
//!
//! Owns: TCP socket creation (socket2: options, non-blocking connect) and accept. Must
//! not touch: readiness (that is `source`) or the shared stream API (`stream`).

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::addr::{Resolved, ToSocketAddrs, each_addr, resolve};
use super::error;
use super::happy::{self, Lost};
use super::source::{Source, StreamLeftover};
use super::stream::stream_api;
use super::{AcceptBackoff, ListenOptions};
use crate::reactor::{Direction, Interest};

/// A TCP socket listening for connections, registered with the loop it was created on.
///
/// ```
/// evloop::run(async {
///     let listener = evloop::net::TcpListener::bind("127.0.0.1:0").await?;
///     let addr = listener.local_addr()?;
///     let client = evloop::create_task(async move {
///         let stream = evloop::net::TcpStream::connect(addr).await?;
///         stream.write_all(b"ping").await?;
///         Ok::<_, evloop::Error>(())
///     });
///     let (stream, _peer) = listener.accept().await?;
///     let mut buf = [0u8; 4];
///     stream.read_exact(&mut buf).await?;
///     assert_eq!(&buf, b"ping");
///     client.await?;
///     Ok::<_, evloop::Error>(())
/// })
/// .unwrap();
/// ```
pub struct TcpListener {
    source: Source<std::net::TcpListener>,
    backoff: AcceptBackoff,
}

impl TcpListener {
    /// Binds to `addr` with the default [`ListenOptions`] (`SO_REUSEADDR`, backlog
    /// 1024). Names are resolved off the loop thread; each address is tried in turn.
    ///
    /// # Errors
    ///
    /// An [`AddrError`](super::AddrError) naming the address (`"bind 127.0.0.1:80:
    /// Permission denied (os error 13)"`), or every address tried when a name resolved
    /// to several, with the kind of the first error; or a lookup error naming the name.
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        TcpListener::bind_with(addr, ListenOptions::default()).await
    }

    /// Binds with explicit options, e.g. `reuse_port` so that one listener per loop
    /// shares the port (thread-per-core).
    ///
    /// # Errors
    ///
    /// As [`bind`](Self::bind).
    pub async fn bind_with(
        addr: impl ToSocketAddrs,
        options: ListenOptions,
    ) -> io::Result<TcpListener> {
        let resolved = resolve(&addr, "bind").await?;
        each_addr(resolved, "bind", |addr| {
            std::future::ready(TcpListener::bind_addr(addr, &options))
        })
        .await
    }

    fn bind_addr(addr: SocketAddr, options: &ListenOptions) -> io::Result<TcpListener> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(options.reuse_address)?;
        if options.reuse_port {
            socket.set_reuse_port(true)?;
        }
        if let (Some(only_v6), SocketAddr::V6(_)) = (options.only_v6, addr) {
            socket.set_only_v6(only_v6)?;
        }
        socket.set_nonblocking(true)?;
        socket.bind(&SockAddr::from(addr))?;
        socket.listen(options.backlog)?;
        TcpListener::from_nonblocking(socket.into())
    }

    /// Wraps a std listener (made non-blocking here) and registers it with the loop
    /// running on this thread.
    ///
    /// # Errors
    ///
    /// When no loop runs on this thread, or registration fails.
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        listener.set_nonblocking(true)?;
        TcpListener::from_nonblocking(listener)
    }

    fn from_nonblocking(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        Ok(TcpListener {
            source: Source::new(listener, Interest::Readable)?,
            backoff: AcceptBackoff::default(),
        })
    }

    /// Accepts a connection; the stream is registered with the loop this is awaited on.
    ///
    /// When the process or system is out of file descriptors (`EMFILE` / `ENFILE`), the
    /// error is returned — and the next `accept` first waits a little (10 ms, doubling
    /// up to 0.5 s, reset by a success), so a retry loop does not spin (N5).
    ///
    /// # Errors
    ///
    /// The accept error, as an [`AddrError`](super::AddrError) naming the listening
    /// address (`"accept on 127.0.0.1:8080: Too many open files (os error 24)"`) with
    /// the error's kind; an `io::Error` wrapping `CancelledError` when the awaiting task
    /// is cancelled.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        self.backoff.wait().await?;
        let accepted = poll_fn(|cx| self.source.poll_read_with(cx, accept_nonblocking)).await;
        let named = |e| match self.local_addr() {
            Ok(local) => error::at("accept on", local, e),
            Err(_) => e,
        };
        let (stream, peer) = self.backoff.record(accepted).map_err(named)?;
        self.source.registration.count_accept();
        Ok((TcpStream::from_nonblocking(stream).map_err(named)?, peer))
    }

    /// The local address (find the port after binding to port 0).
    ///
    /// # Errors
    ///
    /// The socket's error.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.source.io.local_addr()
    }
}

impl AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> RawFd {
        self.source.io.as_raw_fd()
    }
}

impl AsFd for TcpListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.source.io.as_fd()
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("local_addr", &self.local_addr().ok())
            .finish()
    }
}

/// A TCP connection, registered with the loop it was created on. All I/O methods take
/// `&self`; [`into_split`](Self::into_split) gives owned halves for separate tasks.
pub struct TcpStream {
    source: Source<std::net::TcpStream>,
    leftover: StreamLeftover,
}

stream_api!(TcpStream);

impl TcpStream {
    /// Connects to `addr` (a non-blocking connect; names are resolved off the loop
    /// thread, [`lookup_host`](super::lookup_host)).
    ///
    /// When `addr` names several addresses (a host with IPv6 and IPv4 addresses, or a
    /// list), they are tried with Happy Eyeballs (RFC 8305): IPv6 and IPv4 interleaved
    /// starting with the resolver's first choice, each attempt started 250 ms after the
    /// one before it unless that one failed sooner, attempts in flight left running;
    /// the first to connect wins and the others are closed. (tokio tries the addresses
    /// one after another; asyncio does this with `happy_eyeballs_delay=0.25`.)
    ///
    /// ```
    /// use evloop::net::{TcpListener, TcpStream};
    ///
    /// evloop::run(async {
    ///     // Nobody listens on the first address: the second attempt starts at once.
    ///     let closed = TcpListener::bind("127.0.0.1:0").await?.local_addr()?;
    ///     let listener = TcpListener::bind("127.0.0.1:0").await?;
    ///     let open = listener.local_addr()?;
    ///     let stream = TcpStream::connect(&[closed, open][..]).await?;
    ///     assert_eq!(stream.peer_addr()?, open);
    ///     Ok::<_, std::io::Error>(())
    /// })
    /// .unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// An [`AddrError`](super::AddrError) naming the address (`"connect 127.0.0.1:1:
    /// Connection refused (os error 111)"`), or, when several were tried, each with its
    /// error, with the kind of the first address's error; a lookup error naming the
    /// name; an `io::Error` wrapping `CancelledError` when the awaiting task is
    /// cancelled (every attempt in flight is closed).
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        let Resolved { addrs, name } = resolve(&addr, "connect").await?;
        if let [addr] = addrs[..] {
            return TcpStream::connect_addr(addr)
                .await
                .map_err(|e| error::named("connect", name, vec![(Some(addr), e)]));
        }
        match happy::race(happy::interleave(addrs), TcpStream::connect_addr).await {
            Ok(stream) => Ok(stream),
            Err(Lost::Cancelled(e)) => Err(e),
            Err(Lost::Failed(failed)) => Err(error::named(
                "connect",
                name,
                failed.into_iter().map(|(a, e)| (Some(a), e)).collect(),
            )),
        }
    }

    async fn connect_addr(addr: SocketAddr) -> io::Result<TcpStream> {
        // `SOCK_NONBLOCK` (with socket2's `SOCK_CLOEXEC`) in the `socket` call itself:
        // no `fcntl` pair afterwards.
        let stream = Type::STREAM.nonblocking();
        let socket = Socket::new(Domain::for_address(addr), stream, Some(Protocol::TCP))?;
        match socket.connect(&SockAddr::from(addr)) {
            Ok(()) => {}
            Err(e)
                if e.raw_os_error() == Some(libc::EINPROGRESS)
                    || e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        let stream = TcpStream::from_nonblocking(socket.into())?;
        poll_fn(|cx| stream.source.poll_ready(cx, Direction::Write)).await?;
        match stream.source.io.take_error()? {
            Some(e) => Err(e),
            None => Ok(stream),
        }
    }

    /// Wraps a std stream (made non-blocking here) and registers it with the loop
    /// running on this thread.
    ///
    /// # Errors
    ///
    /// When no loop runs on this thread, or registration fails.
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        stream.set_nonblocking(true)?;
        TcpStream::from_nonblocking(stream)
    }

    fn from_nonblocking(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream {
            source: Source::new(stream, Interest::Both)?,
            leftover: StreamLeftover::new(),
        })
    }

    /// The remote address.
    ///
    /// # Errors
    ///
    /// The socket's error (e.g. `NotConnected`).
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

    /// Sets `TCP_NODELAY` (disables Nagle's algorithm).
    ///
    /// # Errors
    ///
    /// The socket's error.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.source.io.set_nodelay(nodelay)
    }

    /// Whether `TCP_NODELAY` is set.
    ///
    /// # Errors
    ///
    /// The socket's error.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.source.io.nodelay()
    }

    /// Sets `SO_LINGER` (`Some(Duration::ZERO)` makes `close` send a reset).
    ///
    /// # Errors
    ///
    /// The socket's error.
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        socket2::SockRef::from(&self.source.io).set_linger(linger)
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

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("local_addr", &self.local_addr().ok())
            .field("peer_addr", &self.peer_addr().ok())
            .finish()
    }
}

fn _assert_kinds() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<TcpStream>();
    send_sync::<TcpListener>();
}

/// One `accept4(SOCK_NONBLOCK | SOCK_CLOEXEC)`: the accepted socket is non-blocking from
/// the start (std's `accept` needs an `ioctl` after). `EINTR` is retried.
fn accept_nonblocking(
    listener: &std::net::TcpListener,
) -> io::Result<(std::net::TcpStream, SocketAddr)> {
    let listener = socket2::SockRef::from(listener);
    let (socket, peer) = loop {
        match listener.accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            accepted => break accepted?,
        }
    };
    let peer = peer
        .as_socket()
        .ok_or_else(|| io::Error::other("accept returned a non-IP peer address"))?;
    Ok((socket.into(), peer))
}
