//! The shared state behind every `Future<T>` (and every task's future view).
//!
//! Owns: the outcome, the ordered list of done-callbacks and awaiters, and the rules of
//! SPEC §3 for completing, observing and cancelling. Must not touch: tasks or the loop's
//! queues — callbacks are scheduled with `LoopHandle::call_soon` and awaiters woken
//! with their `Waker`, both after the lock is released.
//!
//! The outcome and the waiter list are guarded by a lock bit in the future's state
//! byte: values are only ever cloned or moved while holding it, which is what makes
//! `Future<T>: Sync` sound for `T: Send`. Taking the lock is one compare-and-swap;
//! releasing it is a plain `Release` store of the new state (half the atomic
//! read-modify-writes of a `Mutex`), because every other writer of the byte either holds
//! the lock or uses a CAS that expects it free. `done()`, `cancelled()` and the "still
//! pending?" check are plain loads.
//!
//! | state bits | set when | cleared |
//! |---|---|---|
//! | `LOCKED` | a thread takes the lock (CAS) | by that thread's unlock (store) |
//! | phase `RESULT` / `EXCEPTION` / `CANCELLED` | completion, under the lock | never |
//! | `DRAINING` | completion, with the phase, when there are registrations to dispatch | by the completer (CAS, lock free) once nothing new arrived |
//! | `NEW` | a registrar that finds `DRAINING`, under the lock | by the completer when it takes the new entries |
//!
//! Ordering (F7): completion takes the whole list under the lock and sets `DRAINING`;
//! it dispatches the entries in order outside the lock, then clears `DRAINING` with a
//! CAS that fails if a registrar set `NEW` meanwhile — then it takes the new entries
//! under the lock and goes round again. A registrar on a done future that is not
//! draining dispatches its entry itself: everything registered earlier has already
//! been dispatched. So done-callbacks and awaiters run in registration order, and the
//! completer locks once, not twice.
//!
//! Whether the outcome was observed (F10) is recorded under the lock too; a task's
//! value moved out by awaiting the task leaves the outcome `None`.

use std::mem::ManuallyDrop;
use std::num::NonZeroU32;
use std::ops::{Deref, DerefMut};
use std::panic::Location;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};

use super::Future;
use crate::error::{CancelledError, Error, InvalidStateError};
use crate::handle::LoopHandle;
use crate::loom::cell::{MutPtr, UnsafeCell};
use crate::loom::sync::atomic::{AtomicU8, Ordering};

const PENDING: u8 = 0;
const RESULT: u8 = 1;
const EXCEPTION: u8 = 2;
const CANCELLED: u8 = 3;
const PHASE: u8 = 0b111;
const DRAINING: u8 = 8;
const NEW: u8 = 16;
const LOCKED: u8 = 32;

/// How a future finished.
pub(crate) enum Outcome<T> {
    Value(T),
    Exception(Error),
    Cancelled(CancelledError),
}

impl<T> Outcome<T> {
    fn phase(&self) -> u8 {
        match self {
            Outcome::Value(_) => RESULT,
            Outcome::Exception(_) => EXCEPTION,
            Outcome::Cancelled(_) => CANCELLED,
        }
    }
}

/// A done-callback as registered by `add_done_callback`.
pub(crate) type DoneCallback<T> = Box<dyn FnOnce(&Future<T>) + Send + 'static>;

/// Identifies a registration (an awaiter or a done-callback) within one future.
pub(crate) type EntryId = NonZeroU32;

/// An internal observer of completions (a `gather`): told the index it registered
/// with, synchronously, on the completing thread. It must not block or run user code.
pub(crate) trait Notify: Send + Sync {
    fn notify(&self, index: u32);
}

enum Entry<T> {
    Callback(EntryId, DoneCallback<T>),
    Waker(EntryId, Waker),
    /// No id: never removed individually; no allocation beyond the list slot. Weak, so
    /// a pending child does not keep an abandoned observer (and itself) alive.
    Notify(Weak<dyn Notify>, u32),
}

impl<T> Entry<T> {
    fn id(&self) -> Option<EntryId> {
        match self {
            Entry::Callback(id, _) | Entry::Waker(id, _) => Some(*id),
            Entry::Notify(..) => None,
        }
    }
}

/// Registrations in order; the first one inline, so the common single awaiter
/// allocates nothing.
struct WaiterList<T> {
    first: Option<Entry<T>>,
    rest: Vec<Entry<T>>,
}

impl<T> WaiterList<T> {
    const fn new() -> Self {
        WaiterList {
            first: None,
            rest: Vec::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    fn push(&mut self, entry: Entry<T>) {
        if self.first.is_none() {
            self.first = Some(entry);
        } else {
            self.rest.push(entry);
        }
    }

    fn take(&mut self) -> impl Iterator<Item = Entry<T>> + use<T> {
        let first = self.first.take();
        let rest = std::mem::take(&mut self.rest);
        first.into_iter().chain(rest)
    }

    fn remove(&mut self, id: EntryId, callbacks: bool) -> bool {
        let matches =
            |e: &Entry<T>| e.id() == Some(id) && matches!(e, Entry::Callback(..)) == callbacks;
        if self.first.as_ref().is_some_and(matches) {
            self.first = (!self.rest.is_empty()).then(|| self.rest.remove(0));
            return true;
        }
        match self.rest.iter().position(matches) {
            Some(i) => {
                self.rest.remove(i);
                true
            }
            None => false,
        }
    }

    fn waker_mut(&mut self, id: EntryId) -> Option<&mut Waker> {
        self.first
            .iter_mut()
            .chain(self.rest.iter_mut())
            .find_map(|e| match e {
                Entry::Waker(i, w) if *i == id => Some(w),
                _ => None,
            })
    }
}

struct Inner<T> {
    outcome: Option<Outcome<T>>,
    waiters: WaiterList<T>,
    last_id: u32,
    /// F10: someone observed the outcome.
    retrieved: bool,
}

impl<T> Inner<T> {
    fn next_id(&mut self) -> EntryId {
        self.last_id = self.last_id.wrapping_add(1).max(1);
        NonZeroU32::new(self.last_id).expect("ids start at 1")
    }
}

/// The state of one future.
pub(crate) struct FutureCore<T> {
    state: AtomicU8,
    inner: UnsafeCell<Inner<T>>,
    pub(crate) owner: LoopHandle,
    pub(crate) created_at: &'static Location<'static>,
}

// SAFETY: `inner` is only accessed through a `Guard`, i.e. while holding the `LOCKED`
// bit, so never concurrently; values of `T` move between threads through it, hence
// `T: Send`. Everything else is `Sync` on its own.
unsafe impl<T: Send> Sync for FutureCore<T> {}

/// Exclusive access to a future's `Inner`, and the state byte to publish on unlock.
struct Guard<'a, T> {
    core: &'a FutureCore<T>,
    /// The access to `inner`, held for the guard's lifetime (loom tracks it); ended
    /// explicitly in `drop`, before the unlock.
    inner: ManuallyDrop<MutPtr<Inner<T>>>,
    /// The state as it will be stored on unlock (without `LOCKED`).
    state: u8,
}

impl<T> Deref for Guard<'_, T> {
    type Target = Inner<T>;

    fn deref(&self) -> &Inner<T> {
        // SAFETY: this guard holds the `LOCKED` bit (see `FutureCore::lock`), so it is
        // the only access to `inner` until it is dropped.
        unsafe { MutPtr::deref(&self.inner) }
    }
}

impl<T> DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut Inner<T> {
        // SAFETY: as for `deref`; `&mut self` makes this the only reference derived
        // from the guard.
        unsafe { MutPtr::deref(&self.inner) }
    }
}

impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: `inner` is not used after this line: the access ends before the lock
        // is released, so the next holder's access never overlaps it.
        unsafe { ManuallyDrop::drop(&mut self.inner) };
        // While `LOCKED` is set nobody else writes the byte (other writers hold the lock
        // or CAS expecting it clear), so a plain store both publishes and unlocks.
        self.core.state.store(self.state, Ordering::Release);
    }
}

impl<T> FutureCore<T> {
    /// Takes the lock: one CAS when free; spins, then yields, when contended (the
    /// critical sections are short and never run user code other than `T::clone`).
    fn lock(&self) -> Guard<'_, T> {
        let mut spins = 0u32;
        loop {
            let state = self.state.load(Ordering::Relaxed);
            if state & LOCKED == 0
                && self
                    .state
                    .compare_exchange_weak(
                        state,
                        state | LOCKED,
                        Ordering::Acquire,
                        Ordering::Relaxed,
                    )
                    .is_ok()
            {
                return Guard {
                    core: self,
                    inner: ManuallyDrop::new(self.inner.get_mut()),
                    state,
                };
            }
            spins += 1;
            crate::loom::spin_wait(spins);
        }
    }

    fn phase(&self) -> u8 {
        self.state.load(Ordering::Acquire) & PHASE
    }

    pub(crate) fn is_done(&self) -> bool {
        self.phase() != PENDING
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.phase() == CANCELLED
    }

    /// Forgets an awaiter registration (its `Future` handle was dropped).
    pub(crate) fn remove_waiter(&self, id: EntryId) {
        self.lock().waiters.remove(id, false);
    }

    /// F10: the exception nobody observed, for the "never retrieved" report on drop.
    pub(crate) fn unretrieved_exception(&self) -> Option<Error> {
        if self.phase() != EXCEPTION {
            return None;
        }
        let inner = self.lock();
        match &inner.outcome {
            Some(Outcome::Exception(e)) if !inner.retrieved => Some(e.clone()),
            _ => None,
        }
    }
}

impl<T: Send + 'static> FutureCore<T> {
    pub(crate) fn new(owner: LoopHandle, created_at: &'static Location<'static>) -> Self {
        FutureCore {
            state: AtomicU8::new(PENDING),
            inner: UnsafeCell::new(Inner {
                outcome: None,
                waiters: WaiterList::new(),
                last_id: 0,
                retrieved: false,
            }),
            owner,
            created_at,
        }
    }

    /// Marks the outcome as observed (F10).
    pub(crate) fn mark_retrieved(&self) {
        self.lock().retrieved = true;
    }

    /// Completes the future, then schedules its callbacks and wakes its awaiters in
    /// registration order. `Err` gives the outcome back if it was already done.
    pub(crate) fn complete(
        &self,
        outcome: Outcome<T>,
        handle: &dyn Fn() -> Future<T>,
    ) -> Result<(), Outcome<T>> {
        self.complete_with(outcome, false, handle)
    }

    fn complete_with(
        &self,
        outcome: Outcome<T>,
        retrieved: bool,
        handle: &dyn Fn() -> Future<T>,
    ) -> Result<(), Outcome<T>> {
        let mut inner = self.lock();
        if inner.state & PHASE != PENDING {
            return Err(outcome);
        }
        let phase = outcome.phase();
        inner.outcome = Some(outcome);
        inner.retrieved |= retrieved;
        if inner.waiters.is_empty() {
            inner.state = phase;
            return Ok(());
        }
        inner.state = phase | DRAINING;
        let mut batch = inner.waiters.take();
        drop(inner);
        loop {
            for entry in batch {
                self.dispatch(entry, handle);
            }
            // Fails if a registrar holds the lock or has set NEW.
            let drained = self.state.compare_exchange(
                phase | DRAINING,
                phase,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
            if drained.is_ok() {
                return Ok(());
            }
            let mut inner = self.lock();
            inner.state = phase | DRAINING;
            batch = inner.waiters.take();
        }
    }

    fn dispatch(&self, entry: Entry<T>, handle: &dyn Fn() -> Future<T>) {
        match entry {
            Entry::Waker(_, waker) => waker.wake(),
            Entry::Notify(observer, index) => {
                if let Some(observer) = observer.upgrade() {
                    observer.notify(index);
                }
            }
            Entry::Callback(_, callback) => {
                let fut = handle();
                self.owner.call_soon(move || callback(&fut));
            }
        }
    }

    /// `cancel()` on a plain future (F6); cancelling counts as observing it (F10).
    pub(crate) fn cancel(&self, message: Option<Arc<str>>, handle: &dyn Fn() -> Future<T>) -> bool {
        let outcome = Outcome::Cancelled(CancelledError::from_arc(message));
        match self.complete_with(outcome, true, handle) {
            Ok(()) => true,
            Err(_) => {
                self.mark_retrieved();
                false
            }
        }
    }

    /// Appends a registration to a pending or draining future. `Err` hands the entry
    /// back when the future is done and fully dispatched: the caller dispatches it,
    /// after everything registered earlier.
    fn register(inner: &mut Guard<'_, T>, entry: Entry<T>) -> Result<(), Entry<T>> {
        let state = inner.state;
        if state & PHASE == PENDING {
            inner.waiters.push(entry);
            Ok(())
        } else if state & DRAINING != 0 {
            // The completer will take it after the earlier entries (NEW makes its
            // lock-free exit fail).
            inner.state |= NEW;
            inner.waiters.push(entry);
            Ok(())
        } else {
            Err(entry)
        }
    }

    /// F7: registers a done-callback; when already done it is scheduled at once.
    pub(crate) fn add_callback(
        &self,
        callback: DoneCallback<T>,
        handle: &dyn Fn() -> Future<T>,
    ) -> EntryId {
        let mut inner = self.lock();
        let id = inner.next_id();
        let entry = Entry::Callback(id, callback);
        if let Err(entry) = Self::register(&mut inner, entry) {
            drop(inner);
            self.dispatch(entry, handle);
        }
        id
    }

    /// Registers an internal observer; if the future is already done and drained it is
    /// notified at once (on this thread).
    pub(crate) fn add_notify(
        &self,
        observer: Weak<dyn Notify>,
        index: u32,
        handle: &dyn Fn() -> Future<T>,
    ) {
        let mut inner = self.lock();
        if let Err(entry) = Self::register(&mut inner, Entry::Notify(observer, index)) {
            drop(inner);
            self.dispatch(entry, handle);
        }
    }

    /// F8: removes a pending registration; 0 once the future is done.
    pub(crate) fn remove_callback(&self, id: EntryId) -> usize {
        let mut inner = self.lock();
        if inner.state & PHASE != PENDING {
            return 0;
        }
        usize::from(inner.waiters.remove(id, true))
    }

    /// Polls for the outcome. When pending, registers (or refreshes, keeping its place
    /// in the order) the waker under `slot`. When done, hands the outcome to `read`.
    pub(crate) fn poll_with<R>(
        &self,
        cx: &mut Context<'_>,
        slot: &mut Option<EntryId>,
        read: impl FnOnce(&mut Done<'_, T>) -> R,
    ) -> Poll<R> {
        let mut inner = self.lock();
        if inner.state & PHASE == PENDING {
            match *slot {
                Some(id) => match inner.waiters.waker_mut(id) {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    Some(w) => w.clone_from(cx.waker()),
                    None => inner.waiters.push(Entry::Waker(id, cx.waker().clone())),
                },
                None => {
                    let id = inner.next_id();
                    inner.waiters.push(Entry::Waker(id, cx.waker().clone()));
                    *slot = Some(id);
                }
            }
            return Poll::Pending;
        }
        if let Some(id) = slot.take() {
            inner.waiters.remove(id, false);
        }
        inner.retrieved = true;
        Poll::Ready(read(&mut Done { inner: &mut inner }))
    }

    /// Reads the outcome of a done future under the lock (`None` while pending); this
    /// observes it (F10).
    pub(crate) fn read<R>(&self, read: impl FnOnce(&mut Done<'_, T>) -> R) -> Option<R> {
        let mut inner = self.lock();
        if inner.state & PHASE == PENDING {
            return None;
        }
        inner.retrieved = true;
        Some(read(&mut Done { inner: &mut inner }))
    }
}

/// The locked outcome of a done future, as handed to readers.
pub(crate) struct Done<'a, T> {
    inner: &'a mut Inner<T>,
}

impl<T> Done<'_, T> {
    /// F4: the result by clone, or the error.
    pub(crate) fn result_cloned(&self) -> Result<T, Error>
    where
        T: Clone,
    {
        match &self.inner.outcome {
            Some(Outcome::Value(v)) => Ok(v.clone()),
            Some(Outcome::Exception(e)) => Err(e.clone()),
            Some(Outcome::Cancelled(c)) => Err(Error::Cancelled(c.clone())),
            None => Err(taken()),
        }
    }

    /// The result moved out (awaiting a task); a second take is an `InvalidState`.
    pub(crate) fn result_taken(&mut self) -> Result<T, Error> {
        match self.inner.outcome.take() {
            Some(Outcome::Value(v)) => Ok(v),
            Some(other) => {
                let err = match &other {
                    Outcome::Exception(e) => e.clone(),
                    Outcome::Cancelled(c) => Error::Cancelled(c.clone()),
                    Outcome::Value(_) => unreachable!("matched above"),
                };
                self.inner.outcome = Some(other);
                Err(err)
            }
            None => Err(taken()),
        }
    }

    /// The error of an exception or cancellation (never touches a value).
    pub(crate) fn error(&self) -> Result<(), Error> {
        match &self.inner.outcome {
            Some(Outcome::Exception(e)) => Err(e.clone()),
            Some(Outcome::Cancelled(c)) => Err(Error::Cancelled(c.clone())),
            Some(Outcome::Value(_)) | None => Ok(()),
        }
    }

    /// Whether a value was moved out.
    pub(crate) fn is_taken(&self) -> bool {
        self.inner.outcome.is_none()
    }

    /// F5: `Ok(None)` for a result, `Ok(Some(e))` for an exception, `Err` if cancelled.
    pub(crate) fn exception(&self) -> Result<Option<Error>, Error> {
        match &self.inner.outcome {
            Some(Outcome::Exception(e)) => Ok(Some(e.clone())),
            Some(Outcome::Cancelled(c)) => Err(Error::Cancelled(c.clone())),
            Some(Outcome::Value(_)) | None => Ok(None),
        }
    }

    /// A copy of the outcome (for chaining); a taken value copies as the
    /// `InvalidState` error a reader would get.
    pub(crate) fn outcome_cloned(&self) -> Outcome<T>
    where
        T: Clone,
    {
        match &self.inner.outcome {
            Some(Outcome::Value(v)) => Outcome::Value(v.clone()),
            Some(Outcome::Exception(e)) => Outcome::Exception(e.clone()),
            Some(Outcome::Cancelled(c)) => Outcome::Cancelled(c.clone()),
            None => Outcome::Exception(taken()),
        }
    }
}

fn taken() -> Error {
    Error::InvalidState(InvalidStateError::new(
        "the result was already taken by awaiting the task",
    ))
}
