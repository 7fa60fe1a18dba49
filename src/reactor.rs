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
//! (rule 1 of ARCHITECTURE.md): a waker the registrant vouched for as evloop's own (a
//! task's waker while that task is being polled, `block_on`'s root waker, a watch's) is
//! woken by reference in place — it only queues a task; any other waker (a foreign
//! executor's) is moved out of its slot and handed to the loop, which wakes it after
//! the poll, under a catch, so a panicking waker loses no other event of the batch
//! (rule 2). Wakers are cloned before the lock and replaced ones dropped after it.

use std::io;
use std::os::fd::RawFd;
use std::sync::PoisonError;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Token};
use slab::Slab;

use std::sync::Arc;

use crate::loom::sync::Mutex;
use crate::loom::sync::atomic::{AtomicUsize, Ordering};
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

/// Readiness bits of a registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct Ready(u8);

impl Ready {
    pub(crate) const READABLE: Ready = Ready(1);
    pub(crate) const WRITABLE: Ready = Ready(2);
    pub(crate) const READ_CLOSED: Ready = Ready(4);
    pub(crate) const WRITE_CLOSED: Ready = Ready(8);
    pub(crate) const ERROR: Ready = Ready(16);

    fn from_event(event: &mio::event::Event) -> Ready {
        let mut r = 0;
        if event.is_readable() {
            r |= Ready::READABLE.0;
        }
        if event.is_writable() {
            r |= Ready::WRITABLE.0;
        }
        if event.is_read_closed() {
            r |= Ready::READ_CLOSED.0;
        }
        if event.is_write_closed() {
            r |= Ready::WRITE_CLOSED.0;
        }
        if event.is_error() {
            r |= Ready::ERROR.0;
        }
        Ready(r)
    }

    pub(crate) fn is_empty(self) -> bool {
        self.0 == 0
    }
    #[cfg(test)]
    pub(crate) fn contains(self, other: Ready) -> bool {
        self.0 & other.0 == other.0
    }

    fn intersect(self, other: Ready) -> Ready {
        Ready(self.0 & other.0)
    }
}

/// Which half of a registration an operation waits on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    Read,
    Write,
}

impl Direction {
    /// Readiness that lets an operation in this direction make progress (or fail).
    fn mask(self) -> Ready {
        match self {
            Direction::Read => Ready(Ready::READABLE.0 | Ready::READ_CLOSED.0 | Ready::ERROR.0),
            Direction::Write => Ready(Ready::WRITABLE.0 | Ready::WRITE_CLOSED.0 | Ready::ERROR.0),
        }
    }
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

/// Readiness observed by [`ScheduledIo::poll_ready`], to be cleared on `WouldBlock`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReadyEvent {
    pub(crate) ready: Ready,
    tick: usize,
}

const READY_MASK: usize = 0xff;
const TICK_SHIFT: u32 = 8;

fn pack(ready: Ready, tick: usize) -> usize {
    (tick << TICK_SHIFT) | usize::from(ready.0)
}

fn unpack(word: usize) -> (Ready, usize) {
    (Ready((word & READY_MASK) as u8), word >> TICK_SHIFT)
}

/// The wakers of one registration. Each direction has a *sticky* waker (the task that
/// polled last; it stays registered, so a task looping on one socket registers once) and
/// a list of *displaced* ones: when another task polls the same direction, the previous
/// waker moves to that list and is woken — once — by the next event. So several tasks
/// may wait on one socket (two `accept`s on a shared listener) without a lost wake-up.
/// A sticky waker that is not *trusted* (see the module docs) is handed out and woken
/// once, like a displaced one; its owner registers again on its next poll.
#[derive(Debug, Default)]
struct Waiters {
    reader: Option<Waker>,
    writer: Option<Waker>,
    reader_trusted: bool,
    writer_trusted: bool,
    displaced_readers: Vec<Waker>,
    displaced_writers: Vec<Waker>,
}

/// The identity (data and vtable addresses) of the waker registered for one
/// direction, readable without the lock. Written only under the lock; the slot keeps
/// its waker alive, so the addresses cannot be reused while they are registered.
#[derive(Debug, Default)]
struct WakerId {
    data: AtomicUsize,
    vtable: AtomicUsize,
}

impl WakerId {
    fn clear(&self) {
        self.data.store(0, Ordering::Release);
        self.vtable.store(0, Ordering::Release);
    }

    fn is(&self, waker: &Waker) -> bool {
        self.data.load(Ordering::Acquire) == waker.data() as usize
            && self.vtable.load(Ordering::Acquire) == waker.vtable() as *const _ as usize
    }

    fn set(&self, waker: &Waker) {
        self.data.store(waker.data() as usize, Ordering::Release);
        self.vtable
            .store(waker.vtable() as *const _ as usize, Ordering::Release);
    }
}

/// One I/O registration: cached readiness and the tasks waiting on it (one waker per
/// direction; a waker stays registered until replaced, so a task that keeps polling
/// the same socket registers once).
#[derive(Debug)]
pub(crate) struct ScheduledIo {
    token: usize,
    /// Readiness bits in the low byte; the number of events dispatched above them.
    readiness: AtomicUsize,
    waiters: Mutex<Waiters>,
    reader_id: WakerId,
    writer_id: WakerId,
}
impl ScheduledIo {
    fn new(token: usize) -> ScheduledIo {
        ScheduledIo {
            token,
            readiness: AtomicUsize::new(0),
            waiters: Mutex::new(Waiters::default()),
            reader_id: WakerId::default(),
            writer_id: WakerId::default(),
        }
    }

    /// Ready if the cached readiness allows progress in `dir`; otherwise makes sure the
    /// task's waker is the registered one (no lock when it already is) and returns
    /// `Pending`. `trusted` tells, when the waker changes, whether it is one of
    /// evloop's own (woken in place by the reactor) or must be woken outside its borrow.
    pub(crate) fn poll_ready(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
        trusted: impl FnOnce(&Waker) -> bool,
    ) -> Poll<ReadyEvent> {
        if let Some(ev) = self.ready_now(dir) {
            return Poll::Ready(ev);
        }
        let id = match dir {
            Direction::Read => &self.reader_id,
            Direction::Write => &self.writer_id,
        };
        if !id.is(cx.waker()) {
            self.register_waker(cx.waker(), dir, trusted(cx.waker()));
        }
        // The reactor sets readiness before it wakes the registered waker, so checking
        // again now cannot miss an event.
        match self.ready_now(dir) {
            Some(ev) => Poll::Ready(ev),
            None => Poll::Pending,
        }
    }

    /// The slow path of `poll_ready`: `waker` becomes the sticky waker of `dir`, the
    /// previous one is displaced (woken by the next event). Clones before and drops
    /// after the lock (rule 1).
    fn register_waker(&self, waker: &Waker, dir: Direction, trusted: bool) {
        let fresh = waker.clone();
        let dropped = {
            let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
            let waiters = &mut *waiters;
            let (slot, slot_trusted, displaced, id) = match dir {
                Direction::Read => (
                    &mut waiters.reader,
                    &mut waiters.reader_trusted,
                    &mut waiters.displaced_readers,
                    &self.reader_id,
                ),
                Direction::Write => (
                    &mut waiters.writer,
                    &mut waiters.writer_trusted,
                    &mut waiters.displaced_writers,
                    &self.writer_id,
                ),
            };
            let dropped = match slot {
                Some(w) if w.will_wake(waker) => Some(fresh),
                Some(w) => {
                    let previous = std::mem::replace(w, fresh);
                    if displaced.iter().any(|d| d.will_wake(&previous)) {
                        Some(previous)
                    } else {
                        displaced.push(previous);
                        None
                    }
                }
                None => {
                    *slot = Some(fresh);
                    None
                }
            };
            *slot_trusted = trusted;
            id.set(slot.as_ref().expect("just set"));
            dropped
        };
        drop(dropped);
    }

    pub(crate) fn ready_now(&self, dir: Direction) -> Option<ReadyEvent> {
        let (ready, tick) = unpack(self.readiness.load(Ordering::Acquire));
        let ready = ready.intersect(dir.mask());
        (!ready.is_empty()).then_some(ReadyEvent { ready, tick })
    }
    /// Forgets the readable / writable / error bits of `ev` after an operation hit
    /// `WouldBlock`, unless a newer event arrived meanwhile. The closed bits stay (end of
    /// stream is permanent). The error bit goes too: the error was returned by an earlier
    /// call (`WouldBlock` proves it is gone), and a lasting error would be returned again
    /// instead of `WouldBlock`. (Regression: keeping it made the next wait spin forever.)
    pub(crate) fn clear_readiness(&self, ev: ReadyEvent) {
        self.clear_bits(ev, Ready::READABLE.0 | Ready::WRITABLE.0 | Ready::ERROR.0);
    }

    /// Forgets only the readable (read) or writable (write) bit of `ev` after a short
    /// transfer on a stream socket drained its receive queue or filled its send buffer;
    /// unless a newer event arrived meanwhile. Error and closed bits stay: they are not
    /// proven gone.
    pub(crate) fn clear_drained(&self, ev: ReadyEvent, dir: Direction) {
        self.clear_bits(
            ev,
            match dir {
                Direction::Read => Ready::READABLE.0,
                Direction::Write => Ready::WRITABLE.0,
            },
        );
    }

    /// Clears the bits of `mask` that `ev` reported, if no newer event arrived since.
    fn clear_bits(&self, ev: ReadyEvent, mask: u8) {
        let clear = usize::from(ev.ready.0 & mask);
        let _ = self
            .readiness
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                (unpack(word).1 == ev.tick).then_some(word & !clear)
            });
    }

    fn set_readiness(&self, add: Ready) {
        let _ = self
            .readiness
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                let (ready, tick) = unpack(word);
                let next = tick.wrapping_add(1) & (usize::MAX >> TICK_SHIFT);
                Some(pack(Ready(ready.0 | add.0), next))
            });
    }

    /// Wakes the wakers that `ready` concerns. A trusted sticky waker stays registered
    /// and is woken by reference here — while the reactor is borrowed and this
    /// registration's lock is held, which is fine because it is evloop's own: it only
    /// queues a task and never drops one (the slot keeps its reference). Untrusted
    /// sticky wakers and displaced ones are moved to `later`, to be woken (and dropped)
    /// by the loop after the borrow ends.
    fn wake(&self, ready: Ready, later: &mut Vec<Waker>) {
        let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        let waiters = &mut *waiters;
        if !ready.intersect(Direction::Read.mask()).is_empty() {
            Self::wake_direction(
                &mut waiters.reader,
                waiters.reader_trusted,
                &mut waiters.displaced_readers,
                &self.reader_id,
                later,
            );
        }
        if !ready.intersect(Direction::Write.mask()).is_empty() {
            Self::wake_direction(
                &mut waiters.writer,
                waiters.writer_trusted,
                &mut waiters.displaced_writers,
                &self.writer_id,
                later,
            );
        }
    }

    fn wake_direction(
        sticky: &mut Option<Waker>,
        trusted: bool,
        displaced: &mut Vec<Waker>,
        id: &WakerId,
        later: &mut Vec<Waker>,
    ) {
        match sticky {
            Some(w) if trusted => w.wake_by_ref(),
            Some(_) => {
                id.clear();
                later.extend(sticky.take());
            }
            None => {}
        }
        later.append(displaced);
    }

    /// Takes the wakers of both directions (loop close), for the caller to drop.
    fn take_all_wakers(&self, out: &mut Vec<Waker>) {
        let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        out.extend(waiters.reader.take());
        out.extend(waiters.writer.take());
        out.append(&mut waiters.displaced_readers);
        out.append(&mut waiters.displaced_writers);
        for id in [&self.reader_id, &self.writer_id] {
            id.clear();
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
    pub(crate) fn poll(&mut self, timeout: Timeout, later: &mut Vec<Waker>) -> io::Result<usize> {
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
        later.into_iter().for_each(Waker::wake);
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
    pub(crate) fn drain(&mut self, out: &mut Vec<Waker>) {
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
    use std::task::Wake;

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
            io.poll_ready(&mut cx, Direction::Read, |_| false)
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
        let ev = match io.poll_ready(&mut cx, Direction::Read, |_| false) {
            Poll::Ready(ev) => ev,
            Poll::Pending => panic!("readable"),
        };
        assert!(ev.ready.contains(Ready::READABLE));
        let mut buf = [0u8; 8];
        assert_eq!((&a).read(&mut buf).unwrap(), 2);
        assert!(
            io.poll_ready(&mut cx, Direction::Read, |_| false)
                .is_ready(),
            "not cleared yet"
        );
        assert_eq!(
            (&a).read(&mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        io.clear_readiness(ev);
        assert!(
            io.poll_ready(&mut cx, Direction::Read, |_| false)
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
