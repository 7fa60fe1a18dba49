//! A child's standard streams as evloop streams: [`ChildStdin`], [`ChildStdout`] and
//! [`ChildStderr`], each one end of an `O_NONBLOCK` pipe registered with the reactor of
//! the loop that spawned the child.
//!
//! Owns: the pipe fd, its registration, and the `read(2)` / `write(2)` calls made in
//! the registration's readiness loop (a short transfer proves the pipe drained or full,
//! so the next call waits for the next event without a syscall). Must not touch: the
//! child's lifetime (`child`) or mio (the reactor registers the fd).
//!
//! Every wait is a loop-native await: cancellable, and a dropped read or write loses no
//! data (bytes are consumed only by a syscall that returns them in the same poll).

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::process::Stdio;
use std::task::{Context, Poll};

use crate::net::Registration;
use crate::reactor::{Direction, Interest};

/// One registered pipe end; `None` once closed. The registration is declared first so
/// it is dropped (deregistered) before the fd closes.
struct Pipe {
    open: Option<(Registration, OwnedFd)>,
    name: &'static str,
}

impl Pipe {
    /// Makes `fd` non-blocking and registers it with the loop on this thread.
    fn new(fd: OwnedFd, name: &'static str, interest: Interest) -> io::Result<Pipe> {
        crate::sys::set_nonblocking(fd.as_raw_fd(), true)?;
        let registration = Registration::new(fd.as_raw_fd(), interest)?;
        Ok(Pipe {
            open: Some((registration, fd)),
            name,
        })
    }

    fn closed_error(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::BrokenPipe,
            format!("the child's {} was closed", self.name),
        )
    }

    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let Some((reg, fd)) = &self.open else {
            return Poll::Ready(Err(self.closed_error()));
        };
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let fd = fd.as_raw_fd();
        let len = buf.len();
        reg.poll_stream_io(cx, Direction::Read, len, || crate::sys::read(fd, buf))
    }

    fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let Some((reg, fd)) = &self.open else {
            return Poll::Ready(Err(self.closed_error()));
        };
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let fd = fd.as_raw_fd();
        reg.poll_stream_io(cx, Direction::Write, buf.len(), || {
            crate::sys::write(fd, buf)
        })
    }

    /// Closes the pipe end (deregistering it first); later calls fail with
    /// `BrokenPipe`.
    fn close(&mut self) {
        drop(self.open.take());
    }

    /// The fd back in blocking mode, deregistered, to hand to another child.
    fn into_owned_fd(mut self) -> io::Result<OwnedFd> {
        let Some((registration, fd)) = self.open.take() else {
            return Err(self.closed_error());
        };
        drop(registration);
        crate::sys::set_nonblocking(fd.as_raw_fd(), false)?;
        Ok(fd)
    }

    fn raw_fd(&self) -> RawFd {
        self.open.as_ref().map_or(-1, |(_, fd)| fd.as_raw_fd())
    }
}

/// Reads until end of file, appending to `out`.
async fn read_to_end(pipe: &Pipe, out: &mut Vec<u8>) -> io::Result<usize> {
    let start = out.len();
    loop {
        if out.capacity() - out.len() < 8192 {
            out.reserve(64 * 1024);
        }
        let len = out.len();
        out.resize(out.capacity(), 0);
        let n = std::future::poll_fn(|cx| pipe.poll_read(cx, &mut out[len..])).await;
        let n = match n {
            Ok(n) => n,
            Err(e) => {
                out.truncate(len);
                return Err(e);
            }
        };
        out.truncate(len + n);
        if n == 0 {
            return Ok(out.len() - start);
        }
    }
}

macro_rules! reader {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        pub struct $name {
            pipe: Pipe,
        }

        impl $name {
            pub(super) fn new(fd: OwnedFd) -> io::Result<$name> {
                Ok($name { pipe: Pipe::new(fd, $what, Interest::Readable)? })
            }

            /// Reads some bytes into `buf`; `Ok(0)` at end of file (the child closed its
            /// end, or exited). A loop-native await: cancellable, and a cancelled read
            /// has consumed nothing.
            ///
            /// # Errors
            ///
            /// The OS error of `read(2)`; an `io::Error` wrapping `CancelledError` when
            /// the awaiting task is cancelled.
            pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                std::future::poll_fn(|cx| self.pipe.poll_read(cx, buf)).await
            }

            /// Reads until end of file, appending to `out`; returns the number of bytes
            /// read.
            ///
            /// # Errors
            ///
            /// As [`read`](Self::read); the bytes read before an error stay in `out`.
            pub async fn read_to_end(&mut self, out: &mut Vec<u8>) -> io::Result<usize> {
                read_to_end(&self.pipe, out).await
            }

            /// The pipe end as a blocking, deregistered fd (to pass to another child,
            /// see the `TryFrom` into `Stdio`).
            ///
            /// # Errors
            ///
            /// When the fd's flags cannot be changed.
            pub fn into_owned_fd(self) -> io::Result<OwnedFd> {
                self.pipe.into_owned_fd()
            }
        }

        impl futures_io::AsyncRead for $name {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut [u8],
            ) -> Poll<io::Result<usize>> {
                self.pipe.poll_read(cx, buf)
            }
        }

        #[cfg(feature = "tokio-io")]
        impl tokio::io::AsyncRead for $name {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                let n = std::task::ready!(self.pipe.poll_read(cx, buf.initialize_unfilled()))?;
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
        }

        common!($name);
    };
}

macro_rules! common {
    ($name:ident) => {
        impl TryFrom<$name> for Stdio {
            type Error = io::Error;

            /// The pipe end as another child's standard stream.
            fn try_from(pipe: $name) -> io::Result<Stdio> {
                pipe.into_owned_fd().map(Stdio::from)
            }
        }

        impl AsRawFd for $name {
            /// The pipe's fd (`-1` once closed).
            fn as_raw_fd(&self) -> RawFd {
                self.pipe.raw_fd()
            }
        }

        impl AsFd for $name {
            /// The pipe's fd.
            ///
            /// # Panics
            ///
            /// When the pipe was closed ([`ChildStdin::close`]).
            fn as_fd(&self) -> BorrowedFd<'_> {
                match &self.pipe.open {
                    Some((_, fd)) => fd.as_fd(),
                    None => panic!(
                        "evloop: as_fd on a closed {}: it no longer has a file descriptor",
                        self.pipe.name
                    ),
                }
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("fd", &self.pipe.raw_fd())
                    .finish()
            }
        }
    };
}

reader!(
    /// The read end of a child's standard output (`Stdio::piped()`): an evloop stream
    /// with futures-io's `AsyncRead` (tokio's with feature `tokio-io`), so
    /// [`io::BufReader`](crate::io::BufReader) reads its lines.
    ///
    /// ```
    /// use evloop::process::{Command, Stdio};
    /// evloop::run(async {
    ///     let mut child = Command::new("printf").arg("one\ntwo\n").stdout(Stdio::piped()).spawn()?;
    ///     let mut lines = evloop::io::BufReader::new(child.stdout.take().unwrap()).lines();
    ///     assert_eq!(lines.next_line().await?.as_deref(), Some("one"));
    ///     assert_eq!(lines.next_line().await?.as_deref(), Some("two"));
    ///     assert_eq!(lines.next_line().await?, None);
    ///     assert!(child.wait().await?.success());
    ///     Ok::<_, std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ChildStdout,
    "stdout"
);

reader!(
    /// The read end of a child's standard error (`Stdio::piped()`), as
    /// [`ChildStdout`].
    ChildStderr,
    "stderr"
);

/// The write end of a child's standard input (`Stdio::piped()`): an evloop stream with
/// futures-io's `AsyncWrite` (tokio's with feature `tokio-io`). Dropping it, or
/// [`close`](Self::close), gives the child end of file.
///
/// A write after the child closed its end fails with `BrokenPipe`. That relies on
/// `SIGPIPE` being ignored, as every Rust program's `main` arranges; a host that
/// restores its default action (a non-Rust `main`) is killed by such a write instead,
/// as with any pipe (pipes have no `MSG_NOSIGNAL`).
///
/// ```
/// use evloop::process::{Command, Stdio};
/// evloop::run(async {
///     let mut child = Command::new("cat")
///         .stdin(Stdio::piped())
///         .stdout(Stdio::piped())
///         .spawn()?;
///     let mut stdin = child.stdin.take().unwrap();
///     stdin.write_all(b"hello").await?;
///     stdin.close()?;
///     let mut out = Vec::new();
///     child.stdout.as_mut().unwrap().read_to_end(&mut out).await?;
///     assert_eq!(out, b"hello");
///     assert!(child.wait().await?.success());
///     Ok::<_, std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct ChildStdin {
    pipe: Pipe,
}

impl ChildStdin {
    pub(super) fn new(fd: OwnedFd) -> io::Result<ChildStdin> {
        Ok(ChildStdin {
            pipe: Pipe::new(fd, "stdin", Interest::Writable)?,
        })
    }

    /// Writes some of `buf`; returns how many bytes the pipe took. A loop-native await.
    ///
    /// # Errors
    ///
    /// `BrokenPipe` when the child closed its end (or exited), or after
    /// [`close`](Self::close); the OS error otherwise.
    pub async fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.pipe.poll_write(cx, buf)).await
    }

    /// Writes all of `buf`. Cancelled half-way, a prefix of `buf` has been written.
    ///
    /// # Errors
    ///
    /// As [`write`](Self::write).
    pub async fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let n = self.write(buf).await?;
            buf = &buf[n..];
        }
        Ok(())
    }

    /// Closes the pipe: the child reads end of file. Idempotent.
    ///
    /// # Errors
    ///
    /// None today (the `Result` leaves room for a flush, as asyncio's `close` /
    /// `wait_closed` pair has).
    pub fn close(&mut self) -> io::Result<()> {
        self.pipe.close();
        Ok(())
    }

    /// The pipe end as a blocking, deregistered fd.
    ///
    /// # Errors
    ///
    /// When it was closed, or the fd's flags cannot be changed.
    pub fn into_owned_fd(self) -> io::Result<OwnedFd> {
        self.pipe.into_owned_fd()
    }

    pub(super) fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.pipe.poll_write(cx, buf)
    }
}

/// futures-io's and tokio's write traits, which differ only in the closing method's
/// name: flushing is a no-op (nothing is buffered here), closing closes the pipe (the
/// child reads end of file).
macro_rules! write_traits {
    ($trait:path, $close:ident) => {
        impl $trait for ChildStdin {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                self.pipe.poll_write(cx, buf)
            }

            fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }

            fn $close(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                self.pipe.close();
                Poll::Ready(Ok(()))
            }
        }
    };
}

write_traits!(futures_io::AsyncWrite, poll_close);
#[cfg(feature = "tokio-io")]
write_traits!(tokio::io::AsyncWrite, poll_shutdown);

common!(ChildStdin);

impl ChildStdout {
    pub(super) fn poll_read(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.pipe.poll_read(cx, buf)
    }
}

impl ChildStderr {
    pub(super) fn poll_read(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.pipe.poll_read(cx, buf)
    }
}
