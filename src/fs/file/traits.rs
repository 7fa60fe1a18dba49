//! The poll-based I/O traits on [`File`]: futures-io's `AsyncRead`, `AsyncWrite` and
//! `AsyncSeek`, and with the `tokio-io` feature tokio's `AsyncRead`, `AsyncWrite` and
//! `AsyncSeek`.
//!
//! Owns: the translation of each trait method to the File's own poll functions. Must
//! not touch: the File's state (`state` keeps it) — every method here is one call
//! (tokio's `start_seek` only records the seek `poll_complete` does).
//! `poll_close` / `poll_shutdown` is a flush: the file stays open until it is dropped.
//! tokio's reads fill its `ReadBuf` from the read-ahead without zeroing it.

use std::io::{self, SeekFrom};
use std::pin::Pin;
use std::task::{Context, Poll};

use super::File;

impl futures_io::AsyncRead for File {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_read_slice(cx, buf)
    }
}

/// futures-io's and tokio's write traits, which differ only in the closing method's
/// name; closing is a flush (the file stays open until it is dropped).
macro_rules! write_traits {
    ($trait:path, $close:ident) => {
        impl $trait for File {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                self.get_mut()
                    .poll_op(cx, |me, cx| me.poll_write_inner(cx, buf))
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                self.get_mut().poll_op(cx, File::poll_flush_inner)
            }

            fn $close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                self.get_mut().poll_op(cx, File::poll_flush_inner)
            }
        }
    };
}

write_traits!(futures_io::AsyncWrite, poll_close);
#[cfg(feature = "tokio-io")]
write_traits!(tokio::io::AsyncWrite, poll_shutdown);

impl futures_io::AsyncSeek for File {
    fn poll_seek(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        pos: SeekFrom,
    ) -> Poll<io::Result<u64>> {
        self.get_mut().poll_seek_priv(cx, pos)
    }
}

#[cfg(feature = "tokio-io")]
mod tokio_traits {
    use std::io::{self, SeekFrom};
    use std::pin::Pin;
    use std::task::{Context, Poll, ready};

    use tokio::io::ReadBuf;

    use super::File;

    impl tokio::io::AsyncRead for File {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let max = buf.remaining();
            ready!(
                self.get_mut()
                    .poll_read_with(cx, max, |chunk| buf.put_slice(chunk))
            )?;
            Poll::Ready(Ok(()))
        }
    }

    impl tokio::io::AsyncSeek for File {
        /// Records the seek; `poll_complete` does it. As tokio's trait says, call
        /// `poll_complete` (tokio's `AsyncSeekExt::seek` does) before any other I/O on
        /// the file: a read in between still reads at the old position.
        fn start_seek(self: Pin<&mut Self>, pos: SeekFrom) -> io::Result<()> {
            let me = self.get_mut();
            if me.pending_seek.is_some() {
                return Err(io::Error::other(
                    "other file operation is pending, call poll_complete before start_seek",
                ));
            }
            me.pending_seek = Some(pos);
            Ok(())
        }

        /// The started seek's new position; with none started, the logical position
        /// once the running job is done.
        fn poll_complete(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
            let me = self.get_mut();
            match me.pending_seek {
                Some(pos) => {
                    let r = ready!(me.poll_seek_priv(cx, pos));
                    me.pending_seek = None;
                    Poll::Ready(r)
                }
                None => me.poll_position(cx),
            }
        }
    }
}
