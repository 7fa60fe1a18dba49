//! What every stream socket (`TcpStream`, `UnixStream`) shares: the read / write
//! methods, `futures_io::AsyncRead` / `AsyncWrite`, and owned split halves.
//!
//! Owns: the stream API surface, generated once by [`stream_api!`] for each type. Must
//! not touch: readiness (that is `source`) or socket creation (the type's module).
//!
//! Reads go through `scratch`: a small read asks the kernel for more than its buffer
//! holds, so it can tell a drained socket from a full buffer; the bytes that do not fit
//! stay with the stream (its `leftover`) and are read first.
//!
//! Writes go through `send(…, MSG_NOSIGNAL)`: a closed peer gives `EPIPE` as an error,
//! never a SIGPIPE that kills the process (N5).

use std::fmt;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::net::Shutdown;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Stream sockets that can be split into owned halves ([`OwnedReadHalf`],
/// [`OwnedWriteHalf`]). Implemented by [`TcpStream`](super::TcpStream) and
/// [`UnixStream`](super::UnixStream); sealed.
pub trait SplitStream: sealed::Sealed + Send + Sync + fmt::Debug + 'static {}

pub(crate) mod sealed {
    use std::io::{self, IoSlice};
    use std::net::Shutdown;
    use std::task::{Context, Poll};

    pub trait Sealed {
        fn poll_read_priv(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>>;
        fn poll_write_priv(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>>;
        fn poll_write_vectored_priv(
            &self,
            cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>>;
        fn shutdown_priv(&self, how: Shutdown) -> io::Result<()>;
        /// Reads into uninitialised memory (hyper's `ReadBufCursor`, tokio's `ReadBuf`), no
        /// zeroing first.
        #[cfg(any(feature = "hyper", feature = "tokio-io"))]
        fn poll_read_uninit_priv(
            &self,
            cx: &mut Context<'_>,
            buf: &mut [std::mem::MaybeUninit<u8>],
        ) -> Poll<io::Result<usize>>;
    }

    impl<T: Sealed + ?Sized> Sealed for &T {
        fn poll_read_priv(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
            (**self).poll_read_priv(cx, buf)
        }
        fn poll_write_priv(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            (**self).poll_write_priv(cx, buf)
        }
        fn poll_write_vectored_priv(
            &self,
            cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            (**self).poll_write_vectored_priv(cx, bufs)
        }
        fn shutdown_priv(&self, how: Shutdown) -> io::Result<()> {
            (**self).shutdown_priv(how)
        }
        #[cfg(any(feature = "hyper", feature = "tokio-io"))]
        fn poll_read_uninit_priv(
            &self,
            cx: &mut Context<'_>,
            buf: &mut [std::mem::MaybeUninit<u8>],
        ) -> Poll<io::Result<usize>> {
            (**self).poll_read_uninit_priv(cx, buf)
        }
    }
}

/// Generates the stream API of `$ty`, whose `source: Source<$std>` holds a std socket
/// and whose `leftover: StreamLeftover` holds the bytes a read took beyond its buffer
/// (`net::scratch`): every read method serves them first.
macro_rules! stream_api {
    ($ty:ident) => {
        impl $ty {
            /// Reads into `buf`, waiting until data or end-of-stream arrives; `Ok(0)` is the
            /// end of the stream. Dropping the future before it completes loses no data.
            ///
            /// A read into less than 32 KiB may take more from the kernel than `buf`
            /// holds; the rest stays with the stream and comes first in its next reads
            /// (any read method, either split half). So do not mix these reads with
            /// reads of the raw fd.
            ///
            /// # Errors
            ///
            /// The socket's error (e.g. `ConnectionReset`); an `io::Error` wrapping
            /// `CancelledError` when the awaiting task is cancelled.
            pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
                std::future::poll_fn(|cx| {
                    $crate::net::stream::sealed::Sealed::poll_read_priv(self, cx, buf)
                })
                .await
            }

            /// Writes some of `buf`, waiting until the socket accepts data.
            ///
            /// # Errors
            ///
            /// As [`read`](Self::read); `BrokenPipe` when the peer is gone.
            pub async fn write(&self, buf: &[u8]) -> io::Result<usize> {
                std::future::poll_fn(|cx| {
                    $crate::net::stream::sealed::Sealed::poll_write_priv(self, cx, buf)
                })
                .await
            }

            /// Writes all of `buf`. If the future is dropped midway, the bytes already
            /// written are gone to the peer and the rest is not sent.
            ///
            /// # Errors
            ///
            /// As [`write`](Self::write); `WriteZero` if the socket takes no more.
            pub async fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
                while !buf.is_empty() {
                    match self.write(buf).await? {
                        0 => return Err(io::ErrorKind::WriteZero.into()),
                        n => buf = &buf[n..],
                    }
                }
                Ok(())
            }

            /// Reads exactly `buf.len()` bytes.
            ///
            /// # Errors
            ///
            /// As [`read`](Self::read); `UnexpectedEof` if the stream ends first.
            pub async fn read_exact(&self, mut buf: &mut [u8]) -> io::Result<()> {
                while !buf.is_empty() {
                    match self.read(buf).await? {
                        0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                        n => buf = &mut buf[n..],
                    }
                }
                Ok(())
            }

            /// Waits until the stream is readable: data (in the socket, or left over from
            /// an earlier read), end-of-stream or an error.
            ///
            /// # Errors
            ///
            /// An `io::Error` wrapping `CancelledError` when the awaiting task is cancelled.
            pub async fn readable(&self) -> io::Result<()> {
                std::future::poll_fn(|cx| {
                    self.source.poll_ready(cx, crate::reactor::Direction::Read)
                })
                .await
            }

            /// Waits until the socket is writable.
            ///
            /// # Errors
            ///
            /// As [`readable`](Self::readable).
            pub async fn writable(&self) -> io::Result<()> {
                std::future::poll_fn(|cx| {
                    self.source.poll_ready(cx, crate::reactor::Direction::Write)
                })
                .await
            }

            /// Reads without waiting (bytes left over from an earlier read first):
            /// `WouldBlock` if nothing is available now.
            ///
            /// # Errors
            ///
            /// `WouldBlock`, or the socket's error.
            pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
                let buf = $crate::net::scratch::ReadBuf::Init(buf);
                self.source.try_stream_read(&self.leftover, buf)
            }

            /// Writes without waiting: `WouldBlock` if the socket's buffer is full.
            ///
            /// # Errors
            ///
            /// `WouldBlock`, or the socket's error.
            pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
                self.source
                    .try_write_with(|s| $crate::net::stream::send(s, buf))
            }

            /// Writes from several buffers at once (one `sendmsg`).
            ///
            /// # Errors
            ///
            /// As [`write`](Self::write).
            pub async fn write_vectored(&self, bufs: &[std::io::IoSlice<'_>]) -> io::Result<usize> {
                std::future::poll_fn(|cx| {
                    $crate::net::stream::sealed::Sealed::poll_write_vectored_priv(self, cx, bufs)
                })
                .await
            }

            /// Shuts down the read, write or both halves (`shutdown(2)`).
            ///
            /// # Errors
            ///
            /// The socket's error (e.g. `NotConnected`).
            pub fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
                self.source.io.shutdown(how)
            }

            /// Splits the stream into owned halves, so one task can read while another
            /// writes (N4). Dropping the write half shuts down the write direction.
            pub fn into_split(
                self,
            ) -> (
                $crate::net::OwnedReadHalf<$ty>,
                $crate::net::OwnedWriteHalf<$ty>,
            ) {
                $crate::net::stream::split(self)
            }
        }

        impl $crate::net::stream::sealed::Sealed for $ty {
            fn poll_read_priv(
                &self,
                cx: &mut std::task::Context<'_>,
                buf: &mut [u8],
            ) -> std::task::Poll<io::Result<usize>> {
                let buf = $crate::net::scratch::ReadBuf::Init(buf);
                self.source.poll_stream_read(cx, &self.leftover, buf)
            }

            fn poll_write_priv(
                &self,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<io::Result<usize>> {
                let (len, dir) = (buf.len(), $crate::reactor::Direction::Write);
                self.source
                    .poll_stream_with(cx, dir, len, |s| $crate::net::stream::send(s, buf))
            }

            fn poll_write_vectored_priv(
                &self,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<io::Result<usize>> {
                let len = bufs.iter().map(|b| b.len()).sum();
                let dir = $crate::reactor::Direction::Write;
                self.source.poll_stream_with(cx, dir, len, |s| {
                    $crate::net::stream::send_vectored(s, bufs)
                })
            }

            fn shutdown_priv(&self, how: std::net::Shutdown) -> io::Result<()> {
                self.source.io.shutdown(how)
            }

            #[cfg(any(feature = "hyper", feature = "tokio-io"))]
            fn poll_read_uninit_priv(
                &self,
                cx: &mut std::task::Context<'_>,
                buf: &mut [std::mem::MaybeUninit<u8>],
            ) -> std::task::Poll<io::Result<usize>> {
                let buf = $crate::net::scratch::ReadBuf::Uninit(buf);
                self.source.poll_stream_read(cx, &self.leftover, buf)
            }
        }

        impl $crate::net::SplitStream for $ty {}

        impl std::os::fd::AsRawFd for $ty {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                self.source.io.as_raw_fd()
            }
        }

        impl std::os::fd::AsFd for $ty {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                self.source.io.as_fd()
            }
        }

        $crate::net::stream::async_io!($ty);
        $crate::net::stream::async_io!(&$ty);
    };
}

/// `futures_io::AsyncRead` / `AsyncWrite` for `$ty` (I1), in terms of the sealed
/// methods. `poll_close` shuts the write direction down.
macro_rules! async_io {
    ($($ty:tt)+) => {
        impl futures_io::AsyncRead for $($ty)+ {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut [u8],
            ) -> std::task::Poll<io::Result<usize>> {
                $crate::net::stream::sealed::Sealed::poll_read_priv(&*self, cx, buf)
            }
        }

        impl futures_io::AsyncWrite for $($ty)+ {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<io::Result<usize>> {
                $crate::net::stream::sealed::Sealed::poll_write_priv(&*self, cx, buf)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<io::Result<usize>> {
                $crate::net::stream::sealed::Sealed::poll_write_vectored_priv(&*self, cx, bufs)
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }

            fn poll_close(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<io::Result<()>> {
                std::task::Poll::Ready($crate::net::stream::shutdown_write(&*self))
            }
        }
    };
}

pub(crate) use {async_io, stream_api};

/// `send` with `MSG_NOSIGNAL` (no SIGPIPE).
pub(crate) fn send<S: std::os::fd::AsFd>(socket: &S, buf: &[u8]) -> io::Result<usize> {
    socket2::SockRef::from(socket).send_with_flags(buf, crate::sys::SEND_FLAGS)
}

/// `sendmsg` of several buffers with `MSG_NOSIGNAL`.
pub(crate) fn send_vectored<S: std::os::fd::AsFd>(
    socket: &S,
    bufs: &[IoSlice<'_>],
) -> io::Result<usize> {
    socket2::SockRef::from(socket).send_vectored_with_flags(bufs, crate::sys::SEND_FLAGS)
}

/// Shuts the write direction down; already-closed sockets are not an error.
pub(crate) fn shutdown_write<S: sealed::Sealed + ?Sized>(stream: &S) -> io::Result<()> {
    match stream.shutdown_priv(Shutdown::Write) {
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
        other => other,
    }
}

/// The reading half of a split stream; `AsyncRead` too.
pub struct OwnedReadHalf<S: SplitStream> {
    stream: Arc<S>,
}

/// The writing half of a split stream; `AsyncWrite` too. Dropping it shuts down the
/// write direction (the peer reads end-of-stream), unless [`forget`](Self::forget) was
/// called.
pub struct OwnedWriteHalf<S: SplitStream> {
    stream: Arc<S>,
    shutdown_on_drop: bool,
}

pub(crate) fn split<S: SplitStream>(stream: S) -> (OwnedReadHalf<S>, OwnedWriteHalf<S>) {
    let stream = Arc::new(stream);
    (
        OwnedReadHalf {
            stream: stream.clone(),
        },
        OwnedWriteHalf {
            stream,
            shutdown_on_drop: true,
        },
    )
}

macro_rules! tcp_half_addrs {
    ($($half:ident),+) => {$(
        impl $half<super::TcpStream> {
            /// The remote address of the connection (asyncio's
            /// `get_extra_info('peername')`).
            ///
            /// # Errors
            ///
            /// The socket's error (e.g. `NotConnected`).
            pub fn peer_addr(&self) -> io::Result<std::net::SocketAddr> {
                self.stream.peer_addr()
            }

            /// The local address of the connection.
            ///
            /// # Errors
            ///
            /// The socket's error.
            pub fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
                self.stream.local_addr()
            }
        }
    )+};
}
tcp_half_addrs!(OwnedReadHalf, OwnedWriteHalf);

/// [`OwnedReadHalf::reunite`] was given halves of two different streams.
#[derive(Debug)]
pub struct ReuniteError<S: SplitStream>(pub OwnedReadHalf<S>, pub OwnedWriteHalf<S>);

impl<S: SplitStream> fmt::Display for ReuniteError<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tried to reunite halves that are not from the same stream")
    }
}

impl<S: SplitStream> std::error::Error for ReuniteError<S> {}

impl<S: SplitStream> OwnedReadHalf<S> {
    /// Reads into `buf` (see the stream's `read`).
    ///
    /// # Errors
    ///
    /// As the stream's `read`.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| self.stream.poll_read_priv(cx, buf)).await
    }

    /// Reads exactly `buf.len()` bytes.
    ///
    /// # Errors
    ///
    /// As the stream's `read_exact`.
    pub async fn read_exact(&self, mut buf: &mut [u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read(buf).await? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => buf = &mut buf[n..],
            }
        }
        Ok(())
    }

    /// Puts the halves back together.
    ///
    /// # Errors
    ///
    /// [`ReuniteError`] (with both halves) if they come from different streams.
    pub fn reunite(self, mut write: OwnedWriteHalf<S>) -> Result<S, ReuniteError<S>> {
        if !Arc::ptr_eq(&self.stream, &write.stream) {
            return Err(ReuniteError(self, write));
        }
        write.shutdown_on_drop = false;
        let stream = write.stream.clone();
        drop(write);
        drop(self);
        Ok(Arc::try_unwrap(stream).expect("both halves were just dropped"))
    }
}

impl<S: SplitStream> OwnedWriteHalf<S> {
    /// Writes some of `buf`.
    ///
    /// # Errors
    ///
    /// As the stream's `write`.
    pub async fn write(&self, buf: &[u8]) -> io::Result<usize> {
        poll_fn(|cx| self.stream.poll_write_priv(cx, buf)).await
    }

    /// Writes all of `buf`.
    ///
    /// # Errors
    ///
    /// As the stream's `write_all`.
    pub async fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match self.write(buf).await? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                n => buf = &buf[n..],
            }
        }
        Ok(())
    }

    /// Shuts down the write direction now (the peer reads end-of-stream).
    ///
    /// # Errors
    ///
    /// The socket's error.
    pub fn shutdown(&self) -> io::Result<()> {
        shutdown_write(&*self.stream)
    }

    /// Keeps the write direction open when this half is dropped.
    pub fn forget(mut self) {
        self.shutdown_on_drop = false;
    }
}

impl<S: SplitStream> AsRef<S> for OwnedReadHalf<S> {
    /// The stream both halves share (for its addresses and options).
    fn as_ref(&self) -> &S {
        &self.stream
    }
}

impl<S: SplitStream> AsRef<S> for OwnedWriteHalf<S> {
    /// The stream both halves share.
    fn as_ref(&self) -> &S {
        &self.stream
    }
}

impl<S: SplitStream> Drop for OwnedWriteHalf<S> {
    fn drop(&mut self) {
        if self.shutdown_on_drop {
            let _ = shutdown_write(&*self.stream);
        }
    }
}

impl<S: SplitStream> futures_io::AsyncRead for OwnedReadHalf<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.stream.poll_read_priv(cx, buf)
    }
}

impl<S: SplitStream> futures_io::AsyncWrite for OwnedWriteHalf<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.stream.poll_write_priv(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.stream.poll_write_vectored_priv(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(shutdown_write(&*self.stream))
    }
}

impl<S: SplitStream> fmt::Debug for OwnedReadHalf<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OwnedReadHalf").field(&self.stream).finish()
    }
}

impl<S: SplitStream> fmt::Debug for OwnedWriteHalf<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OwnedWriteHalf").field(&self.stream).finish()
    }
}
