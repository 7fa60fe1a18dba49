//! The handshake futures [`Accept`] and [`Connect`]: futures-rustls's fallible
//! handshake, a deadline on the loop's timer wheel, and the error wording of
//! [`HandshakeError`].
//!
//! Owns: when a handshake is given up (its timeout) and what its failure says. Must not
//! touch: TLS records (futures-rustls and rustls do every byte of the handshake).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures_io::{AsyncRead, AsyncWrite};

use super::error::HandshakeError;
use super::stream::TlsStream;
use crate::time::Sleep;

/// The handshake both sides share: the futures-rustls future, and the timer started on
/// the first poll.
struct Handshake<F> {
    inner: F,
    timeout: Option<Duration>,
    timer: Option<Sleep>,
    server_name: Option<String>,
    /// Set once the future has returned `Ready`: futures-rustls panics (or, after our
    /// timeout, goes on handshaking) if polled again.
    done: bool,
    /// Described when the handshake starts (one `getpeername`): by a timeout the stream
    /// is inside futures-rustls's future, and a failed connection may no longer have a
    /// peer address to ask for.
    peer: String,
}

impl<F> Handshake<F> {
    fn new(inner: F, timeout: Option<Duration>, server_name: Option<String>, peer: String) -> Self {
        Handshake {
            inner,
            timeout,
            timer: None,
            server_name,
            peer,
            done: false,
        }
    }

    /// Polls the handshake, then its deadline. `finish` turns futures-rustls's stream
    /// into ours.
    ///
    /// # Panics
    ///
    /// When polled again after it returned `Ready` (`what` names the future), and when
    /// its timeout needs a timer off an evloop loop.
    fn poll_with<S, T>(
        &mut self,
        cx: &mut Context<'_>,
        what: &str,
        finish: impl FnOnce(T) -> TlsStream<S>,
    ) -> Poll<io::Result<TlsStream<S>>>
    where
        F: Future<Output = Result<T, (io::Error, S)>> + Unpin,
    {
        assert!(
            !self.done,
            "evloop::tls::{what} polled after it completed: await a handshake future once"
        );
        let result = ready!(self.poll_once(cx, what, finish));
        self.done = true;
        Poll::Ready(result)
    }

    fn poll_once<S, T>(
        &mut self,
        cx: &mut Context<'_>,
        what: &str,
        finish: impl FnOnce(T) -> TlsStream<S>,
    ) -> Poll<io::Result<TlsStream<S>>>
    where
        F: Future<Output = Result<T, (io::Error, S)>> + Unpin,
    {
        match Pin::new(&mut self.inner).poll(cx) {
            Poll::Ready(Ok(stream)) => return Poll::Ready(Ok(finish(stream))),
            Poll::Ready(Err((err, _stream))) => {
                // A cancelled task's socket await ends the handshake with the
                // cancellation itself, which `?` must still see as one.
                if is_cancellation(&err) {
                    return Poll::Ready(Err(err));
                }
                let peer = std::mem::take(&mut self.peer);
                return Poll::Ready(Err(HandshakeError::wrap(
                    peer,
                    self.server_name.take(),
                    err,
                )));
            }
            Poll::Pending => {}
        }
        let Some(timeout) = self.timeout else {
            return Poll::Pending;
        };
        if self.timer.is_none() && crate::LoopHandle::try_current().is_none() {
            panic!(
                "evloop::tls::{what} with a handshake timeout was polled outside an evloop \
                 loop: await it inside Runtime::block_on or a task, or turn the timeout off \
                 with with_handshake_timeout(None)"
            );
        }
        let timer = self
            .timer
            .get_or_insert_with(|| crate::time::sleep(timeout));
        match ready!(Pin::new(timer).poll(cx)) {
            Ok(()) => {
                let reason = io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no handshake within the {timeout:?} handshake timeout"),
                );
                let peer = std::mem::take(&mut self.peer);
                Poll::Ready(Err(HandshakeError::wrap(
                    peer,
                    self.server_name.take(),
                    reason,
                )))
            }
            Err(err) => Poll::Ready(Err(io::Error::from(err))),
        }
    }
}

fn is_cancellation(err: &io::Error) -> bool {
    err.get_ref()
        .is_some_and(|inner| inner.downcast_ref::<crate::CancelledError>().is_some())
}

/// The future of [`TlsAcceptor::accept`](super::TlsAcceptor::accept): the server side
/// of a handshake. Resolves to the [`TlsStream`], or an `io::Error` carrying a
/// [`HandshakeError`].
///
/// # Panics
///
/// Polled again after it completed; polled outside an evloop loop while a handshake
/// timeout is set (the timeout is a timer on the loop).
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct Accept<S> {
    handshake: Handshake<futures_rustls::FallibleAccept<S>>,
}

impl<S> Accept<S> {
    pub(super) fn new(
        inner: futures_rustls::FallibleAccept<S>,
        timeout: Option<Duration>,
        peer: String,
    ) -> Self {
        Accept {
            handshake: Handshake::new(inner, timeout, None, peer),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + 'static> Future for Accept<S> {
    type Output = io::Result<TlsStream<S>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let handshake = &mut self.handshake;
        handshake.poll_with(cx, "Accept", |s| TlsStream::from_inner(s.into()))
    }
}

impl<S> std::fmt::Debug for Accept<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accept")
            .field("timeout", &self.handshake.timeout)
            .finish_non_exhaustive()
    }
}

/// The future of [`TlsConnector::connect`](super::TlsConnector::connect): the client
/// side of a handshake. Resolves to the [`TlsStream`], or an `io::Error` carrying a
/// [`HandshakeError`].
///
/// # Panics
///
/// Polled again after it completed; polled outside an evloop loop while a handshake
/// timeout is set (the timeout is a timer on the loop).
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct Connect<S> {
    /// `Err`: the server name was refused before any byte was sent (taken when polled).
    handshake: Result<Handshake<futures_rustls::FallibleConnect<S>>, Option<io::Error>>,
}

impl<S> Connect<S> {
    pub(super) fn new(
        inner: futures_rustls::FallibleConnect<S>,
        timeout: Option<Duration>,
        server_name: String,
        peer: String,
    ) -> Self {
        Connect {
            handshake: Ok(Handshake::new(inner, timeout, Some(server_name), peer)),
        }
    }

    pub(super) fn invalid(err: io::Error) -> Self {
        Connect {
            handshake: Err(Some(err)),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + 'static> Future for Connect<S> {
    type Output = io::Result<TlsStream<S>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.handshake {
            Ok(handshake) => {
                handshake.poll_with(cx, "Connect", |s| TlsStream::from_inner(s.into()))
            }
            Err(err) => Poll::Ready(Err(err.take().expect(
                "evloop::tls::Connect polled after it completed: await a handshake future once",
            ))),
        }
    }
}

impl<S> std::fmt::Debug for Connect<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Connect");
        match &self.handshake {
            Ok(h) => d
                .field("server_name", &h.server_name)
                .field("timeout", &h.timeout),
            Err(e) => d.field("error", e),
        };
        d.finish_non_exhaustive()
    }
}
