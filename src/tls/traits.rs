//! The foreign I/O traits on [`TlsStream`]: hyper's `rt::Read` / `rt::Write` (feature
//! `hyper`) and tokio's `AsyncRead` / `AsyncWrite` (feature `tokio-io`), each forwarding
//! to futures-io's.
//!
//! Owns: the buffer conversions. Must not touch: the session (everything goes through
//! the futures-io impls in `stream`).

#![cfg(any(feature = "hyper", feature = "tokio-io"))]

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_io::{AsyncRead, AsyncWrite};

use super::TlsStream;

/// Writes forward to futures-io's; shutting down sends `close_notify` first.
macro_rules! forward_write {
    ($trait:path) => {
        impl<S: AsyncRead + AsyncWrite + Unpin> $trait for TlsStream<S> {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                AsyncWrite::poll_write(self, cx, buf)
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                AsyncWrite::poll_write_vectored(self, cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                true
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                AsyncWrite::poll_flush(self, cx)
            }

            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                AsyncWrite::poll_close(self, cx)
            }
        }
    };
}

#[cfg(feature = "hyper")]
mod hyper_rt {
    use super::*;

    /// The most one read hands hyper: rustls decrypts one record (at most 16 KiB of
    /// plaintext) at a time anyway.
    const CHUNK: usize = 16 * 1024;

    impl<S: AsyncRead + AsyncWrite + Unpin> hyper::rt::Read for TlsStream<S> {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            mut buf: hyper::rt::ReadBufCursor<'_>,
        ) -> Poll<io::Result<()>> {
            // rustls reads plaintext into initialised memory; hyper's cursor may be
            // uninitialised. A stack chunk and `put_slice` keep this free of unsafe, at
            // the cost of one copy that decryption dwarfs.
            let mut chunk = [0u8; CHUNK];
            let want = buf.remaining().min(CHUNK);
            let n = ready!(AsyncRead::poll_read(self, cx, &mut chunk[..want]))?;
            buf.put_slice(&chunk[..n]);
            Poll::Ready(Ok(()))
        }
    }

    forward_write!(hyper::rt::Write);
}

#[cfg(feature = "tokio-io")]
mod tokio_io {
    use super::*;

    impl<S: AsyncRead + AsyncWrite + Unpin> tokio::io::AsyncRead for TlsStream<S> {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            // `initialize_unfilled` zeroes a buffer's spare room only once: ReadBuf
            // remembers what is initialised.
            let n = ready!(AsyncRead::poll_read(self, cx, buf.initialize_unfilled()))?;
            buf.advance(n);
            Poll::Ready(Ok(()))
        }
    }

    forward_write!(tokio::io::AsyncWrite);
}
