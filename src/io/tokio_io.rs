//! tokio's I/O traits on evloop's streams (SPEC §15 N8, feature `tokio-io`):
//! `tokio::io::{AsyncRead, AsyncWrite}` on [`TcpStream`](crate::net::TcpStream),
//! [`UnixStream`](crate::net::UnixStream) and the split halves, so crates written
//! against tokio's traits — tokio-util's codecs, tokio-rustls, tokio-tungstenite — run
//! on evloop's loop. Only tokio's trait definitions are compiled (no tokio feature at
//! all: no runtime, reactor or timer; `tests/tokio_io.rs` pins it with `cargo tree`).
//!
//! Owns: the translation between tokio's traits and the sealed stream methods of
//! `net::stream`, as `hyper::io` does for hyper's. Must not touch: readiness or
//! syscalls (those stay in `net`). Reads fill tokio's `ReadBuf` without zeroing it;
//! writes are vectored; `poll_flush` is a no-op (nothing is buffered here) and
//! `poll_shutdown` shuts the write direction down. Every wait is the stream's own
//! loop-native await: a cancelled task's next read or write resumes with the
//! cancellation.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::ReadBuf;

use crate::net::stream::sealed::Sealed;
use crate::net::stream::shutdown_write;
use crate::net::{OwnedReadHalf, OwnedWriteHalf, SplitStream, TcpStream, UnixStream};

/// Reads once into the unfilled part of `buf` and advances it by what arrived.
fn read_into<S: Sealed + ?Sized>(
    stream: &S,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
) -> Poll<io::Result<()>> {
    // SAFETY: the read (a `recv` or a copy, `net::scratch::ReadBuf::Uninit`) only writes
    // bytes into the slice; no initialised byte is ever de-initialised through it.
    let unfilled = unsafe { buf.unfilled_mut() };
    let n = ready!(stream.poll_read_uninit_priv(cx, unfilled))?;
    // SAFETY: the read returned `n`: the kernel or the copy initialised the first `n`
    // bytes of the unfilled part.
    unsafe { buf.assume_init(n) };
    buf.advance(n);
    Poll::Ready(Ok(()))
}

/// `tokio::io::AsyncRead` for a type whose `$stream` expression gives a [`Sealed`] stream.
macro_rules! tokio_read {
    ([$($gen:tt)*] $ty:ty, |$this:ident| $stream:expr) => {
        impl<$($gen)*> tokio::io::AsyncRead for $ty {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                let $this = &*self;
                read_into($stream, cx, buf)
            }
        }
    };
}

/// `tokio::io::AsyncWrite` (vectored) for a type whose `$stream` gives a [`Sealed`]
/// stream.
macro_rules! tokio_write {
    ([$($gen:tt)*] $ty:ty, |$this:ident| $stream:expr) => {
        impl<$($gen)*> tokio::io::AsyncWrite for $ty {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                let $this = &*self;
                $stream.poll_write_priv(cx, buf)
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                let $this = &*self;
                $stream.poll_write_vectored_priv(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                true
            }

            fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }

            fn poll_shutdown(
                self: Pin<&mut Self>,
                _cx: &mut Context<'_>,
            ) -> Poll<io::Result<()>> {
                let $this = &*self;
                Poll::Ready(shutdown_write($stream))
            }
        }
    };
}

tokio_read!([] TcpStream, |s| s);
tokio_write!([] TcpStream, |s| s);
tokio_read!([] UnixStream, |s| s);
tokio_write!([] UnixStream, |s| s);
tokio_read!([S: SplitStream] OwnedReadHalf<S>, |half| half.as_ref());
tokio_write!([S: SplitStream] OwnedWriteHalf<S>, |half| half.as_ref());
