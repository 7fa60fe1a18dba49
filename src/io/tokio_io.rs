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

use std::io;
use std::task::{Context, Poll, ready};

use tokio::io::ReadBuf;

use crate::net::stream::sealed::Sealed;
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

crate::net::poll_traits::impl_poll_read! {
    tokio::io::AsyncRead, &mut ReadBuf<'_>, read_into;
    [] TcpStream, |s| s;
    [] UnixStream, |s| s;
    [S: SplitStream] OwnedReadHalf<S>, |half| half.as_ref();
}

crate::net::poll_traits::impl_poll_write! {
    tokio::io::AsyncWrite;
    [] TcpStream, |s| s;
    [] UnixStream, |s| s;
    [S: SplitStream] OwnedWriteHalf<S>, |half| half.as_ref();
}
