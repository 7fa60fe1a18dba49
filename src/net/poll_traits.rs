//! One template for the foreign poll-based I/O traits evloop's streams implement:
//! hyper's `rt::Read` / `rt::Write` (feature `hyper`) and tokio's `AsyncRead` /
//! `AsyncWrite` (feature `tokio-io`), whose methods have the same names and shapes.
//!
//! Owns: the impl blocks' shape — every write method forwards to the sealed stream
//! methods of `net::stream`, flushing is a no-op (nothing is buffered at this level) and
//! shutting down closes the write direction. Must not touch: buffers' initialisation
//! (each trait's module brings its own `read_into`) or readiness.

/// `impl $trait` (a read trait with `poll_read(self, cx, buf: $buf)`) for each listed
/// type, `$read_into($stream, cx, buf)` doing the read.
macro_rules! impl_poll_read {
    ($trait:path, $buf:ty, $read_into:path; $([$($gen:tt)*] $ty:ty, |$this:ident| $stream:expr);+ $(;)?) => {$(
        impl<$($gen)*> $trait for $ty {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: $buf,
            ) -> std::task::Poll<std::io::Result<()>> {
                let $this = &*self;
                $read_into($stream, cx, buf)
            }
        }
    )+};
}

/// `impl $trait` (a write trait with tokio's / hyper's five methods) for each listed
/// type, forwarding to the stream `$stream` evaluates to.
macro_rules! impl_poll_write {
    ($trait:path; $([$($gen:tt)*] $ty:ty, |$this:ident| $stream:expr);+ $(;)?) => {$(
        impl<$($gen)*> $trait for $ty {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let $this = &*self;
                $crate::net::stream::sealed::Sealed::poll_write_priv($stream, cx, buf)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let $this = &*self;
                $crate::net::stream::sealed::Sealed::poll_write_vectored_priv($stream, cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                true
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }

            fn poll_shutdown(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                let $this = &*self;
                std::task::Poll::Ready($crate::net::stream::shutdown_write($stream))
            }
        }
    )+};
}

pub(crate) use {impl_poll_read, impl_poll_write};
