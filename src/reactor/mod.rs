//! The reactor: the only module that imports mio.
//!
//! Owns: the loop's `mio::Poll` and `Events` buffer, the `mio::Waker` (wrapped as
//! [`Unparker`], token `usize::MAX`), the precision timer (`sys::TimerFd`, token
//! `usize::MAX - 1`) and the `slab` of I/O registrations keyed by token, each with its
//! cached readiness ([`ScheduledIo`]). Must not touch: tasks, callbacks, the ready
//! queue — it hands the wakers of ready I/O back to the loop, which wakes them after
//! releasing its borrow of the reactor.
//!
//! mio is edge-triggered: readiness is cached per registration and cleared only when an
//! operation reports `WouldBlock` ([`ScheduledIo::clear_readiness`]), and only if no
//! newer event arrived since the readiness was observed (an event tick in the same word).
//! Sources are registered by raw fd, so the socket types never see mio.
//!
//! No user code runs while the reactor is borrowed or a registration's lock is held
//! (rule 1 of ARCHITECTURE.md): a waker the registrant vouched for as evloop's own
//! ([`WakerKind`]: a task's waker while that task is being polled, `block_on`'s root
//! waker, a watch's) is woken by reference in place — it only queues a task; any other
//! waker (a foreign executor's), and every displaced one, is handed to the loop as a
//! [`Deferred`] wake-up, which it runs after the poll under a catch, so a panicking
//! waker loses no other event of the batch (rule 2). The waiter bookkeeping lives in
//! [`scheduled_io`].

mod scheduled_io;

pub(crate) use scheduled_io::{
    Deferred, Direction, Ready, ReadyEvent, ScheduledIo, TaskWake, WakerKind,
};

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Token};
use slab::Slab;

use crate::sys::TimerFd;

const WAKE_TOKEN: Token = Token(usize::MAX);
const TIMER_TOKEN: Token = Token(usize::MAX - 1);

/// Wakes a loop blocked in its reactor from any thread (one eventfd write, which is
/// async-signal-safe: signal handlers use it too).
#[derive(Debug)]
pub(crate) struct Unparker(mio::Waker);

impl Unparker {
    pub(crate) fn unpark(&self) -> io::Result<()> {
        self.0.wake()
    }
}

/// Changes registrations of a loop's poller from any thread (`epoll_ctl` is
/// thread-safe): I/O objects dropped off their loop deregister their fd *before* it is
/// closed, so a reused fd number can never be confused with it.
#[derive(Debug)]
pub(crate) struct Registrar(mio::Registry);

impl Registrar {
    pub(crate) fn deregister(&self, fd: RawFd) -> io::Result<()> {
        self.0.deregister(&mut SourceFd(&fd))
    }

    /// Re-arms a registration: the kernel re-checks readiness and reports it again if
    /// it still holds (how level-triggered watches are built on edge-triggered epoll).
    pub(crate) fn reregister(
        &self,
        io: &ScheduledIo,
        fd: RawFd,
        interest: Interest,
    ) -> io::Result<()> {
        self.0
            .reregister(&mut SourceFd(&fd), Token(io.token), interest.to_mio())
    }
}

/// How long [`Reactor::poll`] may block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timeout {
    /// Do not block: collect what is ready now.
    Zero,
    /// Block until this instant (the timerfd makes it precise), an event or a wake-up.
    At(Instant),
    /// Block until an event or a wake-up.
    Forever,
}

/// What a registration is interested in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Interest {
    Readable,
    Writable,
    Both,
}

impl Interest {
    fn to_mio(self) -> mio::Interest {
        match self {
            Interest::Readable => mio::Interest::READABLE,
            Interest::Writable => mio::Interest::WRITABLE,
            Interest::Both => mio::Interest::READABLE | mio::Interest::WRITABLE,
        }
    }
}

/// The loop's mio reactor.
pub(crate) struct Reactor {
    poll: mio::Poll,
    events: Events,
    ios: Slab<Arc<ScheduledIo>>,
    timer: Option<TimerFd>,
    /// The deadline the timerfd is armed for, if it has not been seen to expire.
    armed: Option<Instant>,
}

impl Reactor {
    /// A reactor with room for `event_capacity` events per poll, the unparker other
    /// threads use to wake it, and a registrar they use to deregister fds.
    pub(crate) fn new(event_capacity: usize) -> io::Result<(Reactor, Unparker, Registrar)> {
        let poll = mio::Poll::new()?;
        let waker = mio::Waker::new(poll.registry(), WAKE_TOKEN)?;
        let registrar = Registrar(poll.registry().try_clone()?);
        let timer = match TimerFd::new() {
            Ok(timer) => {
                let fd = timer.raw_fd();
                poll.registry().register(
                    &mut SourceFd(&fd),
                    TIMER_TOKEN,
                    mio::Interest::READABLE,
                )?;
                Some(timer)
            }
            Err(e) if e.kind() == io::ErrorKind::Unsupported => None,
            Err(e) => return Err(e),
        };
        let reactor = Reactor {
            poll,
            events: Events::with_capacity(event_capacity.max(1)),
            ios: Slab::new(),
            timer,
            armed: None,
        };
        Ok((reactor, Unparker(waker), registrar))
    }

    /// Whether any I/O source is registered (the mid-run-phase poll is skipped if not).
    pub(crate) fn has_sources(&self) -> bool {
        !self.ios.is_empty()
    }

    /// Polls for events, blocking as `timeout` allows. Sets the readiness of every
    /// registration that had an event and wakes its waiters (displaced ones are appended
    /// to `later`, for the caller to wake after releasing the reactor). Returns the
    /// number of I/O events.
    pub(crate) fn poll(
        &mut self,
        timeout: Timeout,
        later: &mut Vec<Deferred>,
    ) -> io::Result<usize> {
        let mio_timeout = match timeout {
            Timeout::Zero => Some(Duration::ZERO),
            Timeout::Forever => None,
            Timeout::At(deadline) => {
                let now = Instant::now();
                match &self.timer {
                    _ if deadline <= now => Some(Duration::ZERO),
                    Some(timer) => {
                        if self.armed != Some(deadline) {
                            timer.set(deadline - now)?;
                            self.armed = Some(deadline);
                        }
                        None
                    }
                    None => Some(deadline - now),
                }
            }
        };
        match self.poll.poll(&mut self.events, mio_timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(0),
            Err(e) => return Err(e),
        }
        let mut n = 0;
        for event in self.events.iter() {
            match event.token() {
                WAKE_TOKEN => {}
                TIMER_TOKEN => self.armed = None,
                Token(key) => {
                    if let Some(io) = self.ios.get(key) {
                        let ready = Ready::from_event(event);
                        io.set_readiness(ready);
                        io.wake(ready, later);
                        n += 1;
                    }
                }
            }
        }
        Ok(n)
    }

    /// `poll`, waking displaced wakers too (tests).
    #[cfg(test)]
    fn poll_all(&mut self, timeout: Timeout) -> io::Result<usize> {
        let mut later = Vec::new();
        let n = self.poll(timeout, &mut later)?;
        later.into_iter().for_each(Deferred::wake);
        Ok(n)
    }

    /// Registers `fd` (edge-triggered) and returns its readiness cell.
    pub(crate) fn register(
        &mut self,
        fd: RawFd,
        interest: Interest,
    ) -> io::Result<Arc<ScheduledIo>> {
        let entry = self.ios.vacant_entry();
        let token = entry.key();
        if token >= TIMER_TOKEN.0 {
            return Err(io::Error::other("evloop: too many I/O registrations"));
        }
        self.poll
            .registry()
            .register(&mut SourceFd(&fd), Token(token), interest.to_mio())?;
        let io = Arc::new(ScheduledIo::new(token));
        entry.insert(io.clone());
        Ok(io)
    }
    /// Frees the slot of a registration whose fd was already deregistered (or closed).
    /// A slot that was reused meanwhile (another `ScheduledIo`) is left alone.
    pub(crate) fn forget(&mut self, io: &ScheduledIo) {
        if self
            .ios
            .get(io.token)
            .is_some_and(|r| std::ptr::eq(&**r, io))
        {
            self.ios.remove(io.token);
        }
    }

    /// Drops every registration's wakers (loop close), returning them to be dropped
    /// outside the reactor's borrow.
    pub(crate) fn drain(&mut self, out: &mut Vec<Deferred>) {
        for (_, io) in self.ios.iter() {
            io.take_all_wakers(out);
        }
    }
}

impl std::fmt::Debug for Reactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reactor")
            .field("registrations", &self.ios.len())
            .field("precise_timer", &self.timer.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::sync::atomic::{AtomicUsize as StdAtomicUsize, Ordering as StdOrdering};
    use std::task::{Context, Poll, Wake, Waker};

    struct CountWake(StdAtomicUsize);
    impl Wake for CountWake {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, StdOrdering::SeqCst);
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot make a socketpair non-blocking (ioctl)")]
    fn readiness_is_cached_until_would_block_and_wakes_the_reader() {
        let (mut reactor, _unparker, registrar) = Reactor::new(16).unwrap();
        let (a, mut b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let io = reactor.register(a.as_raw_fd(), Interest::Readable).unwrap();
        assert!(reactor.has_sources());

        let counter = std::sync::Arc::new(CountWake(StdAtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        reactor.poll_all(Timeout::Zero).unwrap();
        assert!(
            io.poll_ready(&mut cx, Direction::Read, |_| WakerKind::Foreign)
                .is_pending()
        );

        b.write_all(b"hi").unwrap();
        let n = reactor
            .poll_all(Timeout::At(Instant::now() + Duration::from_secs(5)))
            .unwrap();
        assert_eq!(n, 1);
        assert_eq!(
            counter.0.load(StdOrdering::SeqCst),
            1,
            "woken during the poll"
        );

        // Edge-triggered: the cached readiness survives until WouldBlock.
        let ev = match io.poll_ready(&mut cx, Direction::Read, |_| WakerKind::Foreign) {
            Poll::Ready(ev) => ev,
            Poll::Pending => panic!("readable"),
        };
        assert!(ev.ready.contains(Ready::READABLE));
        let mut buf = [0u8; 8];
        assert_eq!((&a).read(&mut buf).unwrap(), 2);
        assert!(
            io.poll_ready(&mut cx, Direction::Read, |_| WakerKind::Foreign)
                .is_ready(),
            "not cleared yet"
        );
        assert_eq!(
            (&a).read(&mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        io.clear_readiness(ev);
        assert!(
            io.poll_ready(&mut cx, Direction::Read, |_| WakerKind::Foreign)
                .is_pending()
        );

        registrar.deregister(a.as_raw_fd()).unwrap();
        reactor.forget(&io);
        assert!(!reactor.has_sources());
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot make a socketpair non-blocking (ioctl)")]
    fn clear_is_skipped_when_a_newer_event_arrived() {
        let (mut reactor, _unparker, _registrar) = Reactor::new(16).unwrap();
        let (a, mut b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let io = reactor.register(a.as_raw_fd(), Interest::Readable).unwrap();
        b.write_all(b"1").unwrap();
        reactor
            .poll_all(Timeout::At(Instant::now() + Duration::from_secs(5)))
            .unwrap();
        let stale = io.ready_now(Direction::Read).unwrap();
        b.write_all(b"2").unwrap();
        reactor
            .poll_all(Timeout::At(Instant::now() + Duration::from_secs(5)))
            .unwrap();
        io.clear_readiness(stale);
        assert!(
            io.ready_now(Direction::Read).is_some(),
            "newer readiness must survive"
        );
    }

    /// A short read's `clear_drained` forgets readability but keeps the closed bit (data
    /// and the peer's FIN in one event: the next read must see end-of-stream without a
    /// new event), and a newer event survives it.
    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot make a socketpair non-blocking (ioctl)")]
    fn clear_drained_keeps_closed_and_newer_readiness() {
        let (mut reactor, _unparker, _registrar) = Reactor::new(16).unwrap();
        let (a, mut b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let io = reactor.register(a.as_raw_fd(), Interest::Readable).unwrap();
        let poll = |reactor: &mut Reactor| {
            reactor
                .poll_all(Timeout::At(Instant::now() + Duration::from_secs(5)))
                .unwrap()
        };
        b.write_all(b"1").unwrap();
        poll(&mut reactor);
        let first = io.ready_now(Direction::Read).unwrap();
        io.clear_drained(first, Direction::Read);
        assert!(
            io.ready_now(Direction::Read).is_none(),
            "drained: wait for the next event"
        );

        b.write_all(b"2").unwrap();
        poll(&mut reactor);
        let second = io.ready_now(Direction::Read).unwrap();
        b.write_all(b"3").unwrap();
        poll(&mut reactor);
        io.clear_drained(second, Direction::Read);
        assert!(
            io.ready_now(Direction::Read).is_some(),
            "newer readiness must survive"
        );

        let third = io.ready_now(Direction::Read).unwrap();
        drop(b); // FIN
        poll(&mut reactor);
        let with_fin = io.ready_now(Direction::Read).unwrap();
        assert!(with_fin.tick != third.tick);
        io.clear_drained(with_fin, Direction::Read);
        assert!(
            io.ready_now(Direction::Read).is_some(),
            "end of stream stays ready after a short read"
        );
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot make a socketpair non-blocking (ioctl)")]
    fn writable_interest_and_reregister() {
        let (mut reactor, _unparker, registrar) = Reactor::new(16).unwrap();
        let (a, mut b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let io = reactor.register(a.as_raw_fd(), Interest::Writable).unwrap();
        reactor
            .poll_all(Timeout::At(Instant::now() + Duration::from_secs(5)))
            .unwrap();
        assert!(
            io.ready_now(Direction::Write).is_some(),
            "a fresh socket is writable"
        );
        assert!(io.ready_now(Direction::Read).is_none());

        // Re-registering for both makes the kernel report current readiness again.
        b.write_all(b"x").unwrap();
        registrar
            .reregister(&io, a.as_raw_fd(), Interest::Both)
            .unwrap();
        reactor
            .poll_all(Timeout::At(Instant::now() + Duration::from_secs(5)))
            .unwrap();
        assert!(io.ready_now(Direction::Read).is_some());
        registrar.deregister(a.as_raw_fd()).unwrap();
        reactor.forget(&io);
    }

    #[test]
    fn unparker_wakes_a_blocked_poll() {
        let (mut reactor, unparker, _registrar) = Reactor::new(4).unwrap();
        // The thread hands the unparker back: dropping it closes the eventfd, and epoll
        // forgets a closed fd's pending event, so it must outlive the poll (as it does
        // in the loop, where `Shared` owns it).
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            unparker.unpark().unwrap();
            unparker
        });
        assert_eq!(reactor.poll_all(Timeout::Forever).unwrap(), 0);
        drop(t.join().unwrap());
    }

    #[test]
    fn timed_poll_does_not_return_before_its_deadline() {
        let (mut reactor, _unparker, _registrar) = Reactor::new(4).unwrap();
        let deadline = Instant::now() + Duration::from_micros(1500);
        while Instant::now() < deadline {
            reactor.poll_all(Timeout::At(deadline)).unwrap();
        }
        assert!(Instant::now() >= deadline);
    }
}
