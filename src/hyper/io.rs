//! `hyper::rt::Read` / `Write` for evloop's stream sockets and split halves.
//!
//! Owns: the translation between hyper's I/O traits and the sealed stream methods of
//! `net::stream`. Must not touch: readiness or syscalls (those stay in `net`).
//!
//! Reads fill hyper's uninitialised buffer without zeroing it: from the stream's
//! leftover bytes or the scratch buffer (`net::scratch`, for buffers under 32 KiB) by a
//! copy, else by a `recv` straight into the `MaybeUninit` memory. Flushing is a no-op
//! (nothing is buffered here); `poll_shutdown` shuts the write direction down.

use std::io;
use std::task::{Context, Poll, ready};

use hyper::rt::ReadBufCursor;

use crate::net::stream::sealed::Sealed;
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

crate::net::poll_traits::impl_poll_read! {
    hyper::rt::Read, ReadBufCursor<'_>, read_into;
    [] TcpStream, |s| s;
    [] UnixStream, |s| s;
    [S: SplitStream] OwnedReadHalf<S>, |half| half.as_ref();
}

crate::net::poll_traits::impl_poll_write! {
    hyper::rt::Write;
    [] TcpStream, |s| s;
    [] UnixStream, |s| s;
    [S: SplitStream] OwnedWriteHalf<S>, |half| half.as_ref();
}
