//! UDP: [`UdpSocket`] (N3).
//!
//! Owns: UDP socket creation and datagram I/O. Must not touch: readiness (`source`).

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use super::addr::{ToSocketAddrs, each_addr, resolve};
use super::source::Source;
use crate::reactor::{Direction, Interest};

/// A UDP socket registered with the loop it was created on.
///
/// ```
/// evloop::run(async {
///     let a = evloop::net::UdpSocket::bind("127.0.0.1:0").await?;
///     let b = evloop::net::UdpSocket::bind("127.0.0.1:0").await?;
///     a.send_to(b"hello", b.local_addr()?).await?;
///     let mut buf = [0u8; 16];
///     let (n, from) = b.recv_from(&mut buf).await?;
///     assert_eq!((&buf[..n], from), (&b"hello"[..], a.local_addr()?));
///     Ok::<_, std::io::Error>(())
/// })
/// .unwrap();
/// ```
pub struct UdpSocket {
    source: Source<std::net::UdpSocket>,
}

impl UdpSocket {
    /// Binds to `addr` (names resolved off the loop thread; each address tried).
    ///
    /// # Errors
    ///
    /// An [`AddrError`](super::AddrError) naming the address (each address tried, for a
    /// name), or a lookup error naming the name.
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        let resolved = resolve(&addr, "bind").await?;
        each_addr(resolved, "bind", |addr| {
            std::future::ready(std::net::UdpSocket::bind(addr).and_then(UdpSocket::from_std))
        })
        .await
    }

    /// Wraps a std socket (made non-blocking here), registering it with the loop
    /// running on this thread.
    ///
    /// # Errors
    ///
    /// When no loop runs on this thread, or registration fails.
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        socket.set_nonblocking(true)?;
        Ok(UdpSocket {
            source: Source::new(socket, Interest::Both)?,
        })
    }

    /// Sets the default peer for [`send`](Self::send) / [`recv`](Self::recv) and
    /// filters incoming datagrams to it.
    ///
    /// # Errors
    ///
    /// An [`AddrError`](super::AddrError) naming the address, or a lookup error naming
    /// the name.
    pub async fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        let resolved = resolve(&addr, "connect").await?;
        each_addr(resolved, "connect", |addr| {
            std::future::ready(self.source.io.connect(addr))
        })
        .await
    }

    /// Sends a datagram to the connected peer.
    ///
    /// # Errors
    ///
    /// The socket's error (e.g. `ConnectionRefused` from an earlier ICMP message).
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        poll_fn(|cx| self.source.poll_write_with(cx, |s| s.send(buf))).await
    }

    /// Receives a datagram from the connected peer.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| self.source.poll_read_with(cx, |s| s.recv(buf))).await
    }

    /// Sends a datagram to `target`.
    ///
    /// # Errors
    ///
    /// Resolution or send errors.
    pub async fn send_to(&self, buf: &[u8], target: impl ToSocketAddrs) -> io::Result<usize> {
        let target = resolve(&target, "send to").await?.addrs[0];
        poll_fn(|cx| self.source.poll_write_with(cx, |s| s.send_to(buf, target))).await
    }

    /// Receives a datagram and its sender.
    ///
    /// # Errors
    ///
    /// The socket's error.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        poll_fn(|cx| self.source.poll_read_with(cx, |s| s.recv_from(buf))).await
    }

    /// Sends to `target` without waiting (`WouldBlock` if the buffer is full).
    ///
    /// # Errors
    ///
    /// `WouldBlock` or the socket's error.
    pub fn try_send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize> {
        self.source.try_write_with(|s| s.send_to(buf, target))
    }

    /// Receives without waiting (`WouldBlock` if nothing is queued).
    ///
    /// # Errors
    ///
    /// `WouldBlock` or the socket's error.
    pub fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.source.try_read_with(|s| s.recv_from(buf))
    }

    /// Waits until a datagram can be read.
    ///
    /// # Errors
    ///
    /// An `io::Error` wrapping `CancelledError` when the awaiting task is cancelled.
    pub async fn readable(&self) -> io::Result<()> {
        poll_fn(|cx| self.source.poll_ready(cx, Direction::Read)).await
    }

    /// The local address.
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
    /// `NotConnected` if [`connect`](Self::connect) was not called.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.source.io.peer_addr()
    }

    /// Sets `SO_BROADCAST`.
    ///
    /// # Errors
    ///
    /// The socket's error.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.source.io.set_broadcast(on)
    }
}

impl AsRawFd for UdpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.source.io.as_raw_fd()
    }
}

impl AsFd for UdpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.source.io.as_fd()
    }
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpSocket")
            .field("local_addr", &self.local_addr().ok())
            .finish()
    }
}
