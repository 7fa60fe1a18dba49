//! `hyper::rt::Read` / `Write` for evloop's stream sockets and split halves.
//!
//! Owns: the translation between hyper's I/O traits and the sealed stream methods of
//! `net::stream`. Must not touch: readiness or syscalls (those stay in `net`).
//!
//! Reads fill hyper's uninitialised buffer without zeroing it: from the stream's
//! leftover bytes or the scratch buffer (`net::scratch`, for buffers under 32 KiB) by a
//! copy, else by a `recv` straight into the `MaybeUninit` memory. Flushing is a no-op
//! (nothing is buffered here); `poll_shutdown` shuts the write direction down.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use hyper::rt::ReadBufCursor;

use crate::net::stream::sealed::Sealed;
use crate::net::stream::shutdown_write;
use crate::net::{OwnedReadHalf, OwnedWriteHalf, SplitStream, TcpStream, UnixStream};

/// Reads once into the unfilled part of `buf` and advances it by what arrived.
fn read_into<S: Sealed + ?Sized>(
    stream: &S,
    cx: &mut Context<'_>,
    mut buf: ReadBufCursor<'_>,
) -> Poll<io::Result<()>> {
    // SAFETY: the read (a `recv` or a copy, `net::scratch::ReadBuf::Uninit`) only
    // writes bytes into the slice; no initialised byte is ever de-initialised through it.
    let unfilled = unsafe { buf.as_mut() };
    let n = ready!(stream.poll_read_uninit_priv(cx, unfilled))?;
    // SAFETY: the read returned `n`: the kernel or the copy initialised the first `n`
    // bytes of the unfilled part.
    unsafe { buf.advance(n) };
    Poll::Ready(Ok(()))
}

/// `hyper::rt::Read` for a type whose `$stream` expression gives a [`Sealed`] stream.
macro_rules! hyper_read {
    ([$($gen:tt)*] $ty:ty, |$this:ident| $stream:expr) => {
        impl<$($gen)*> hyper::rt::Read for $ty {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: ReadBufCursor<'_>,
            ) -> Poll<io::Result<()>> {
                let $this = &*self;
                read_into($stream, cx, buf)
            }
        }
    };
}

/// `hyper::rt::Write` (vectored) for a type whose `$stream` gives a [`Sealed`] stream.
macro_rules! hyper_write {
    ([$($gen:tt)*] $ty:ty, |$this:ident| $stream:expr) => {
        impl<$($gen)*> hyper::rt::Write for $ty {
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

hyper_read!([] TcpStream, |s| s);
hyper_write!([] TcpStream, |s| s);
hyper_read!([] UnixStream, |s| s);
hyper_write!([] UnixStream, |s| s);
hyper_read!([S: SplitStream] OwnedReadHalf<S>, |half| half.as_ref());
hyper_write!([S: SplitStream] OwnedWriteHalf<S>, |half| half.as_ref());
