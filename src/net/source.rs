//! An fd registered with its loop's reactor, and the readiness loop every socket type
//! runs its syscalls in.
//!
//! Owns: the lifetime of one registration (register on creation, deregister before
//! the fd closes — from any thread) and the rule "try the syscall; on `WouldBlock`
//! forget the cached readiness and wait for the next event" — or, for a stream, forget
//! it as soon as a transfer proves the kernel's queue drained or its buffer full (stream
//! reads learn that through `scratch`). Must not touch: mio (the reactor does) or the
//! socket's own syscalls (the socket types and `scratch` make them).
//!
//! Every wait is a loop-native await (T3): a pending cancellation of the current task
//! is delivered as an `io::Error` wrapping `CancelledError`, which `?` turns into
//! `Error::Cancelled`. Dropping a pending read or write future loses nothing: data is
//! only consumed by a syscall that returns it in the same poll (N4).

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};

use super::scratch::{Leftover, Outcome, ReadBuf};
use crate::context;
use crate::handle::LoopHandle;
use crate::reactor::{Direction, Interest, ReadyEvent, ScheduledIo, WakerKind};
use crate::shared::Remote;
use crate::task::coop;

/// The leftover bytes of a stream (see `net::scratch`), naming readiness events.
pub(crate) type StreamLeftover = Leftover<ReadyEvent>;

/// A registration of one fd with the reactor of the loop it was created on.
pub(crate) struct Registration {
    owner: LoopHandle,
    io: Arc<ScheduledIo>,
    fd: RawFd,
}

impl Registration {
    /// Registers `fd` (edge-triggered, for `interest`) with the loop running on this
    /// thread.
    ///
    /// # Errors
    ///
    /// When no loop runs on this thread, or the reactor refuses the fd.
    pub(crate) fn new(fd: RawFd, interest: Interest) -> io::Result<Registration> {
        context::with_current(|local| {
            Ok(Registration {
                owner: local.handle.clone(),
                io: local.register_io(fd, interest)?,
                fd,
            })
        })
        .unwrap_or_else(|| {
            Err(io::Error::other(
                "evloop: no running event loop on this thread; sockets are registered with \
                 the loop they are created on (create them inside Runtime::block_on or a task)",
            ))
        })
    }

    /// Ready when the cached readiness allows progress in `dir`; otherwise registers the
    /// waker. A loop-native await: delivers a pending cancellation of the current task.
    pub(crate) fn poll_ready(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
    ) -> Poll<io::Result<ReadyEvent>> {
        if let Some(cancelled) = coop::take_cancel() {
            return Poll::Ready(Err(io::Error::from(cancelled)));
        }
        // Each read, write or accept that finds the socket ready spends the task's
        // cooperative budget (K7): a socket that always has data cannot starve the loop.
        crate::task::budget::budgeted(cx, |cx| match self.io.poll_ready(cx, dir, waker_kind) {
            Poll::Ready(event) => Poll::Ready(Ok(event)),
            // Readiness only ever comes from the owner's reactor: once it is closed
            // (L14) a wait would never end, so it fails instead (Q3).
            Poll::Pending if self.owner.is_closed() => Poll::Ready(Err(io::Error::other(
                "evloop: the event loop this socket (or pipe) was created on is closed; its I/O \
                 cannot make progress any more",
            ))),
            Poll::Pending => {
                crate::task::waiting_on_socket(self.fd, matches!(dir, Direction::Write));
                Poll::Pending
            }
        })
    }

    /// Runs `op` once readiness allows it, retrying after each `WouldBlock` (which
    /// clears the cached readiness, unless a newer event arrived meanwhile).
    pub(crate) fn poll_io<R>(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
        op: impl FnMut() -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        self.poll_io_until_drained(cx, dir, op, |_| false)
    }

    /// The id of the loop this fd is registered with.
    pub(crate) fn owner_id(&self) -> u64 {
        self.owner.id()
    }

    /// Counts an accepted connection in the owning loop's [`LoopStats`](crate::LoopStats).
    pub(crate) fn count_accept(&self) {
        self.owner
            .shared
            .stats
            .accepts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// [`poll_io`](Self::poll_io) for a stream write of `len` bytes (reads go through
    /// [`poll_stream_read`](Self::poll_stream_read)). A short transfer (`0 < n < len`)
    /// means the kernel's send buffer filled, so that readiness is forgotten at once: the
    /// next call waits for the next event instead of spending a syscall to learn
    /// `WouldBlock` (tokio does the same). If room came free meanwhile, its event is
    /// newer and wins.
    pub(crate) fn poll_stream_io(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
        len: usize,
        op: impl FnMut() -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        self.poll_io_until_drained(cx, dir, op, |&n| n > 0 && n < len)
    }

    /// The readiness loop behind both: `drained(&result)` says a successful `op` proved
    /// the direction exhausted, so only its ready bit is forgotten.
    fn poll_io_until_drained<R>(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
        mut op: impl FnMut() -> io::Result<R>,
        drained: impl Fn(&R) -> bool,
    ) -> Poll<io::Result<R>> {
        loop {
            let event = ready!(self.poll_ready(cx, dir))?;
            match op() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.io.clear_readiness(event),
                Ok(r) if drained(&r) => {
                    self.io.clear_drained(event, dir);
                    return Poll::Ready(Ok(r));
                }
                result => return Poll::Ready(result),
            }
        }
    }

    /// A stream read: `read(event)` is one [`Leftover::read`] given the readiness seen.
    /// Every read — one served from leftover bytes too — first passes
    /// [`poll_ready`](Self::poll_ready) (cancellation, budget; while bytes are left over
    /// the read readiness stays set, see `net::scratch`). `WouldBlock` clears the
    /// readiness and waits again; a read that proved the receive queue empty (a short
    /// read, or a scratch read with nothing left over) forgets the readable bit of the
    /// event it names, unless a newer event arrived meanwhile.
    pub(crate) fn poll_stream_read(
        &self,
        cx: &mut Context<'_>,
        mut read: impl FnMut(ReadyEvent) -> io::Result<Outcome<ReadyEvent>>,
    ) -> Poll<io::Result<usize>> {
        loop {
            let event = ready!(self.poll_ready(cx, Direction::Read))?;
            match read(event) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.io.clear_readiness(event),
                Ok(out) => {
                    if let Some(drained) = out.drained {
                        self.io.clear_drained(drained, Direction::Read);
                    }
                    return Poll::Ready(Ok(out.n));
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// [`poll_stream_read`](Self::poll_stream_read) without waiting (`try_read`).
    pub(crate) fn try_stream_read(
        &self,
        read: impl FnOnce(Option<ReadyEvent>) -> io::Result<Outcome<ReadyEvent>>,
    ) -> io::Result<usize> {
        let event = self.io.ready_now(Direction::Read);
        match read(event) {
            Err(e) => {
                if let (io::ErrorKind::WouldBlock, Some(event)) = (e.kind(), event) {
                    self.io.clear_readiness(event);
                }
                Err(e)
            }
            Ok(out) => {
                if let Some(drained) = out.drained {
                    self.io.clear_drained(drained, Direction::Read);
                }
                Ok(out.n)
            }
        }
    }

    /// Runs `op` now, without waiting (`try_read` / `try_write`). A `WouldBlock` clears
    /// the cached readiness so the next wait really waits.
    pub(crate) fn try_io<R>(
        &self,
        dir: Direction,
        op: impl FnOnce() -> io::Result<R>,
    ) -> io::Result<R> {
        let event = self.io.ready_now(dir);
        let result = op();
        if let (Err(e), Some(event)) = (&result, event) {
            if e.kind() == io::ErrorKind::WouldBlock {
                self.io.clear_readiness(event);
            }
        }
        result
    }
}

/// Whose `waker` is: the polling task's or `block_on`'s root waker — evloop's own,
/// which the reactor may wake in place — or a foreign executor's (see `reactor`).
fn waker_kind(waker: &Waker) -> WakerKind {
    if let Some(task) = coop::current_task_if_waker(waker) {
        WakerKind::Task(task)
    } else if context::with_current(|local| local.root_waker().will_wake(waker)).unwrap_or(false) {
        WakerKind::Loop
    } else {
        WakerKind::Foreign
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // Deregister before the owner closes the fd (it is dropped after this), so the
        // fd number can be reused safely. `epoll_ctl` works from any thread.
        let _ = self.owner.shared.registrar.deregister(self.fd);
        let io = self.io.clone();
        let id = self.owner.id();
        if context::with_local(id, |local| local.forget_io(&io)).is_none()
            && !self.owner.is_closed()
        {
            self.owner.shared.push_remote(Remote::ForgetIo(io));
        }
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("fd", &self.fd)
            .field("loop", &self.owner.id())
            .finish()
    }
}

/// A socket `S` and its registration; the registration is declared first so it is
/// dropped (deregistered) before the socket closes its fd.
pub(crate) struct Source<S> {
    pub(crate) registration: Registration,
    pub(crate) io: S,
}

impl<S: AsRawFd> Source<S> {
    /// Registers `io` (already non-blocking) with the current loop.
    pub(crate) fn new(io: S, interest: Interest) -> io::Result<Source<S>> {
        let registration = Registration::new(io.as_raw_fd(), interest)?;
        Ok(Source { registration, io })
    }

    pub(crate) fn poll_read_with<R>(
        &self,
        cx: &mut Context<'_>,
        op: impl FnMut(&S) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        let mut op = op;
        self.registration
            .poll_io(cx, Direction::Read, || op(&self.io))
    }

    pub(crate) fn poll_write_with<R>(
        &self,
        cx: &mut Context<'_>,
        op: impl FnMut(&S) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        let mut op = op;
        self.registration
            .poll_io(cx, Direction::Write, || op(&self.io))
    }

    /// A stream write of `len` bytes (see [`Registration::poll_stream_io`]).
    pub(crate) fn poll_stream_with(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
        len: usize,
        op: impl FnMut(&S) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        let mut op = op;
        self.registration
            .poll_stream_io(cx, dir, len, || op(&self.io))
    }

    /// A stream read into `buf` through `leftover` (see `net::scratch`).
    pub(crate) fn poll_stream_read(
        &self,
        cx: &mut Context<'_>,
        leftover: &StreamLeftover,
        mut buf: ReadBuf<'_>,
    ) -> Poll<io::Result<usize>>
    where
        S: AsFd,
    {
        self.registration
            .poll_stream_read(cx, |event| leftover.read(&self.io, &mut buf, Some(event)))
    }

    /// A stream read without waiting (`try_read`): leftover bytes first.
    pub(crate) fn try_stream_read(
        &self,
        leftover: &StreamLeftover,
        mut buf: ReadBuf<'_>,
    ) -> io::Result<usize>
    where
        S: AsFd,
    {
        self.registration
            .try_stream_read(|event| leftover.read(&self.io, &mut buf, event))
    }

    pub(crate) fn try_read_with<R>(&self, op: impl FnOnce(&S) -> io::Result<R>) -> io::Result<R> {
        self.registration.try_io(Direction::Read, || op(&self.io))
    }

    pub(crate) fn try_write_with<R>(&self, op: impl FnOnce(&S) -> io::Result<R>) -> io::Result<R> {
        self.registration.try_io(Direction::Write, || op(&self.io))
    }

    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>, dir: Direction) -> Poll<io::Result<()>> {
        self.registration.poll_ready(cx, dir).map_ok(|_| ())
    }
}

impl<S: fmt::Debug> fmt::Debug for Source<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.io, f)
    }
}
