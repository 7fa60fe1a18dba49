//! One I/O registration's readiness and waiters ([`ScheduledIo`]).
//!
//! Owns: the cached readiness word (edge-triggered events OR their bits in; an event
//! tick guards every clear) and the wakers of each direction. Must not touch: mio's
//! poll (the parent module dispatches events here) or what a waker belongs to beyond
//! the [`WakerKind`] its registrant declared.
//!
//! Each direction has a *sticky* waker (the task that polled last; it stays registered,
//! so a task looping on one socket registers once) and a list of *displaced* ones: when
//! another task polls the same direction, the previous waker moves to that list and is
//! woken — once — by the next event. So several tasks may wait on one socket (two
//! `accept`s on a shared listener) without a lost wake-up.
//!
//! Rules 1 and 4 of ARCHITECTURE.md: only a sticky waker the registrant vouched for as
//! evloop's own ([`WakerKind::Task`] or [`WakerKind::Loop`]) is woken in place, under the
//! reactor's borrow and this registration's lock; every other waker is handed out to be
//! woken after the poll ([`Deferred`]). A displaced *task* is kept as a weak reference,
//! and dead ones are pruned whenever another is displaced: a task that waited on a
//! socket and went away (a read abandoned under a timeout) is freed at once, not held
//! until the socket's next event. Wakers are cloned before the lock and replaced ones
//! dropped after it.

use std::sync::{PoisonError, Weak};
use std::task::{Context, Poll, Waker};

use crate::loom::sync::Mutex;
use crate::loom::sync::atomic::{AtomicUsize, Ordering};

/// Readiness bits of a registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct Ready(u8);

impl Ready {
    pub(crate) const READABLE: Ready = Ready(1);
    pub(crate) const WRITABLE: Ready = Ready(2);
    pub(crate) const READ_CLOSED: Ready = Ready(4);
    pub(crate) const WRITE_CLOSED: Ready = Ready(8);
    pub(crate) const ERROR: Ready = Ready(16);

    pub(super) fn from_event(event: &mio::event::Event) -> Ready {
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

/// Readiness observed by [`ScheduledIo::poll_ready`], to be cleared on `WouldBlock`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReadyEvent {
    pub(crate) ready: Ready,
    pub(super) tick: usize,
}

const READY_MASK: usize = 0xff;
const TICK_SHIFT: u32 = 8;

fn pack(ready: Ready, tick: usize) -> usize {
    (tick << TICK_SHIFT) | usize::from(ready.0)
}

fn unpack(word: usize) -> (Ready, usize) {
    (Ready((word & READY_MASK) as u8), word >> TICK_SHIFT)
}

/// A task whose waker an evloop task registered: woken through this (after the poll)
/// when it was displaced, without keeping the task alive meanwhile.
pub(crate) trait TaskWake: Send + Sync {
    fn wake_task(self: std::sync::Arc<Self>);
}

/// What a registrant says about the waker it polls with.
pub(crate) enum WakerKind {
    /// The waker of this evloop task (the task being polled): woken in place; kept
    /// weakly when displaced.
    Task(Weak<dyn TaskWake>),
    /// Another of evloop's own wakers (`block_on`'s root, an fd watch's): woken in
    /// place.
    Loop,
    /// Anything else (a foreign executor's): only woken outside the reactor's borrow.
    Foreign,
}

impl WakerKind {
    fn in_place(&self) -> bool {
        !matches!(self, WakerKind::Foreign)
    }
}

/// A wake-up handed out by the reactor, for the loop to run after the poll (under a
/// catch), outside every borrow and lock.
pub(crate) enum Deferred {
    Waker(Waker),
    Task(Weak<dyn TaskWake>),
}

impl Deferred {
    pub(crate) fn wake(self) {
        match self {
            Deferred::Waker(waker) => waker.wake(),
            Deferred::Task(task) => {
                if let Some(task) = task.upgrade() {
                    task.wake_task();
                }
            }
        }
    }

    fn is_dead(&self) -> bool {
        matches!(self, Deferred::Task(task) if task.strong_count() == 0)
    }
}

/// Wakers displaced from one direction, waiting for its next event. Boxed: almost
/// every registration never displaces a waker (one task per socket direction), so an
/// empty list is one null pointer instead of a `Vec`'s three words, twice per
/// registration (P14: −32 bytes per connection).
#[derive(Default)]
#[allow(
    clippy::box_collection,
    reason = "one pointer instead of a Vec's three words, for size"
)]
struct Displaced(Option<Box<Vec<Deferred>>>);

impl Displaced {
    fn list(&mut self) -> &mut Vec<Deferred> {
        self.0.get_or_insert_with(Box::default)
    }

    fn retain(&mut self, keep: impl FnMut(&Deferred) -> bool) {
        if let Some(list) = &mut self.0 {
            list.retain(keep);
        }
    }

    fn any(&self, f: impl FnMut(&Deferred) -> bool) -> bool {
        self.0.as_ref().is_some_and(|list| list.iter().any(f))
    }

    fn push(&mut self, d: Deferred) {
        self.list().push(d);
    }

    /// Moves every entry to `out` (the box is kept for the next displacement).
    fn move_to(&mut self, out: &mut Vec<Deferred>) {
        if let Some(list) = &mut self.0 {
            out.append(list);
        }
    }

    fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |list| list.len())
    }
}

/// The waiters of one direction (see the module docs).
#[derive(Default)]
struct Slot {
    sticky: Option<(Waker, WakerKind)>,
    displaced: Displaced,
}

impl Slot {
    /// `fresh` (already cloned) becomes the sticky waker; the waker to drop after the
    /// lock comes back.
    fn register(&mut self, fresh: Waker, kind: WakerKind) -> Option<Waker> {
        match &self.sticky {
            Some((w, _)) if w.will_wake(&fresh) => return Some(fresh),
            Some(_) => {}
            None => {
                self.sticky = Some((fresh, kind));
                return None;
            }
        }
        let (previous, previous_kind) = self.sticky.replace((fresh, kind))?;
        // Tasks that went away since they were displaced are freed now (rule 4).
        self.displaced.retain(|d| !d.is_dead());
        match previous_kind {
            WakerKind::Task(task) => {
                let seen = self
                    .displaced
                    .any(|d| matches!(d, Deferred::Task(t) if Weak::ptr_eq(t, &task)));
                if !seen {
                    self.displaced.push(Deferred::Task(task));
                }
                // Kept weakly: the strong waker goes (after the lock).
                Some(previous)
            }
            WakerKind::Loop | WakerKind::Foreign => {
                let seen = self
                    .displaced
                    .any(|d| matches!(d, Deferred::Waker(w) if w.will_wake(&previous)));
                if seen {
                    Some(previous)
                } else {
                    self.displaced.push(Deferred::Waker(previous));
                    None
                }
            }
        }
    }

    /// An event in this direction: wakes the sticky waker in place if it may be, hands
    /// out everything else.
    fn wake(&mut self, id: &WakerId, later: &mut Vec<Deferred>) {
        match &self.sticky {
            Some((w, kind)) if kind.in_place() => w.wake_by_ref(),
            Some(_) => {
                id.clear();
                later.extend(self.sticky.take().map(|(w, _)| Deferred::Waker(w)));
            }
            None => {}
        }
        self.displaced.move_to(later);
    }

    fn take_all(&mut self, out: &mut Vec<Deferred>) {
        out.extend(self.sticky.take().map(|(w, _)| Deferred::Waker(w)));
        self.displaced.move_to(out);
    }
}

#[derive(Default)]
struct Waiters {
    reader: Slot,
    writer: Slot,
}

impl std::fmt::Debug for Waiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiters")
            .field("reader", &self.reader.sticky.is_some())
            .field("writer", &self.writer.sticky.is_some())
            .field("displaced_readers", &self.reader.displaced.len())
            .field("displaced_writers", &self.writer.displaced.len())
            .finish()
    }
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
    pub(super) token: usize,
    /// Readiness bits in the low byte; the number of events dispatched above them.
    readiness: AtomicUsize,
    waiters: Mutex<Waiters>,
    reader_id: WakerId,
    writer_id: WakerId,
}
impl ScheduledIo {
    pub(super) fn new(token: usize) -> ScheduledIo {
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
    /// `Pending`. `kind` says, when the waker changes, whose it is (see [`WakerKind`]).
    pub(crate) fn poll_ready(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
        kind: impl FnOnce(&Waker) -> WakerKind,
    ) -> Poll<ReadyEvent> {
        if let Some(ev) = self.ready_now(dir) {
            return Poll::Ready(ev);
        }
        let id = match dir {
            Direction::Read => &self.reader_id,
            Direction::Write => &self.writer_id,
        };
        if !id.is(cx.waker()) {
            self.register_waker(cx.waker(), dir, kind(cx.waker()));
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
    fn register_waker(&self, waker: &Waker, dir: Direction, kind: WakerKind) {
        let fresh = waker.clone();
        let dropped = {
            let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
            let (slot, id) = match dir {
                Direction::Read => (&mut waiters.reader, &self.reader_id),
                Direction::Write => (&mut waiters.writer, &self.writer_id),
            };
            let dropped = slot.register(fresh, kind);
            if let Some((w, _)) = &slot.sticky {
                id.set(w);
            }
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

    pub(super) fn set_readiness(&self, add: Ready) {
        let _ = self
            .readiness
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                let (ready, tick) = unpack(word);
                let next = tick.wrapping_add(1) & (usize::MAX >> TICK_SHIFT);
                Some(pack(Ready(ready.0 | add.0), next))
            });
    }

    /// Wakes the wakers that `ready` concerns: a sticky waker of evloop's own stays
    /// registered and is woken by reference here — while the reactor is borrowed and
    /// this registration's lock is held, which is fine because it only queues a task
    /// and never drops one (the slot keeps its reference); everything else is handed
    /// to `later`, for the loop to wake (and drop) after the borrow ends.
    pub(super) fn wake(&self, ready: Ready, later: &mut Vec<Deferred>) {
        let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        if !ready.intersect(Direction::Read.mask()).is_empty() {
            waiters.reader.wake(&self.reader_id, later);
        }
        if !ready.intersect(Direction::Write.mask()).is_empty() {
            waiters.writer.wake(&self.writer_id, later);
        }
    }

    /// Takes the wakers of both directions (loop close), for the caller to drop.
    pub(super) fn take_all_wakers(&self, out: &mut Vec<Deferred>) {
        let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        waiters.reader.take_all(out);
        waiters.writer.take_all(out);
        for id in [&self.reader_id, &self.writer_id] {
            id.clear();
        }
    }
}
