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
//!
//! User code never runs under the lock (rule 1 of ARCHITECTURE.md): a replaced or
//! removed waker or callback is moved out and dropped after the guard. (Two documented
//! exceptions: `T::clone` when a value is read, and `Waker::clone` when an awaiter
//! registers — both reference-count increments for every real executor and value.) Dispatch is panic-safe (rule 2): each entry is
//! dispatched under its own `catch_unwind`, a panicking waker is reported to the
//! loop's exception handler, and the drain always ends (`DRAINING` is never left
//! set). Done-callback keys are unique in the process, so a [`CallbackKey`] of one
//! future never matches a registration of another (rule 5).
//!
//! A pending future that gets a done-callback, or an awaiter or observer from off its
//! loop's thread, is registered (once) with its loop's `closing` registry, which
//! completes it if the loop closes first (U2); it is unregistered when it completes.

use std::mem::ManuallyDrop;
use std::num::NonZeroU32;
use std::ops::{Deref, DerefMut};
use std::panic::{AssertUnwindSafe, Location, catch_unwind};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};

use super::Future;
pub(crate) use super::done::Done;
pub(crate) use super::waiters::{CallbackKey, EntryId, Notify};
use super::waiters::{DoneFn, Entry, Key, Keyed, WaiterList, next_callback_key};
use crate::closing::Closable;
use crate::context;
use crate::error::{CancelledError, Error, InvalidStateError};
use crate::exception::{ExceptionContext, ExceptionSource, drop_each_catching};
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

/// The error of a future whose loop closed while it was pending (U2).
pub(crate) fn loop_closed_error() -> Error {
    Error::InvalidState(InvalidStateError::new("event loop is closed"))
}

pub(super) struct Inner<T> {
    pub(super) outcome: Option<Outcome<T>>,
    waiters: WaiterList<T>,
    last_id: u32,
    /// Registered with the owner's `closing` registry (under this state's address).
    tracked: bool,
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

    /// Forgets an awaiter registration (its `Future` handle was dropped). The waker is
    /// dropped after the lock is released.
    pub(crate) fn remove_waiter(&self, id: EntryId) {
        let removed = self.lock().waiters.remove(Key::Waker(id));
        drop(removed);
    }

    /// Forgets the registration of `observer` for child `index` (the observer — a
    /// gather or a shield — is being dropped).
    pub(crate) fn remove_notify(&self, observer: *const (), index: u32) {
        if !self.is_done() {
            let removed = self.lock().waiters.remove(Key::Notify(observer, index));
            drop(removed);
        }
    }

    /// This future's key in its owner's `closing` registry.
    fn closing_key(&self) -> usize {
        self as *const Self as usize
    }

    fn untrack(&self, tracked: bool) {
        if tracked {
            self.owner.shared.closing.untrack(self.closing_key());
        }
    }

    /// F10: the exception nobody observed, for the "never retrieved" report on drop.
    /// (Every future's drop asks: the usual answer is one load, inlined.)
    #[inline]
    pub(crate) fn unretrieved_exception(&self) -> Option<Error> {
        if self.phase() != EXCEPTION {
            return None;
        }
        self.unretrieved_exception_locked()
    }

    /// The exception of a future that finished with one, without observing it: F10
    /// stays with whoever hands it on (a task group, when it reports it).
    pub(crate) fn peek_exception(&self) -> Option<Error> {
        if self.phase() != EXCEPTION {
            return None;
        }
        match &self.lock().outcome {
            Some(Outcome::Exception(e)) => Some(e.clone()),
            _ => None,
        }
    }

    fn unretrieved_exception_locked(&self) -> Option<Error> {
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
                tracked: false,
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
        let inner = self.lock();
        if inner.state & PHASE != PENDING {
            return Err(outcome);
        }
        self.finish_locked(inner, outcome, retrieved, handle);
        Ok(())
    }

    /// Completes the pending future `inner` guards, then dispatches its registrations.
    fn finish_locked(
        &self,
        mut inner: Guard<'_, T>,
        outcome: Outcome<T>,
        retrieved: bool,
        handle: &dyn Fn() -> Future<T>,
    ) {
        let phase = outcome.phase();
        inner.outcome = Some(outcome);
        inner.retrieved |= retrieved;
        let tracked = std::mem::replace(&mut inner.tracked, false);
        if inner.waiters.is_empty() {
            inner.state = phase;
            drop(inner);
            self.untrack(tracked);
            return;
        }
        inner.state = phase | DRAINING;
        let mut batch = inner.waiters.take();
        drop(inner);
        self.untrack(tracked);
        loop {
            for entry in batch {
                self.dispatch_catching(entry, handle);
            }
            // Fails if a registrar holds the lock or has set NEW.
            let drained = self.state.compare_exchange(
                phase | DRAINING,
                phase,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
            if drained.is_ok() {
                return;
            }
            let mut inner = self.lock();
            inner.state = phase | DRAINING;
            batch = inner.waiters.take();
        }
    }

    /// Dispatches one entry; a panicking waker is reported to the owner's exception
    /// handler and never stops the rest of the batch (rule 2).
    fn dispatch_catching(&self, entry: Entry<T>, handle: &dyn Fn() -> Future<T>) {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| self.dispatch(entry, handle))) {
            self.owner.call_exception_handler(
                ExceptionContext::new("Exception in a waker woken by a future's completion")
                    .with_exception(Error::from_panic(payload))
                    .with_source(ExceptionSource::Waker),
            );
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
            Entry::Callback(callback) => {
                let fut = handle();
                self.owner.call_soon(move || callback.call(&fut));
            }
        }
    }

    /// Registers the future with its owner's `closing` registry unless it already is
    /// (see the module docs); `false` if the owner is closed — the caller then
    /// completes the future with [`loop_closed_error`].
    fn track_locked(&self, inner: &mut Guard<'_, T>, handle: &dyn Fn() -> Future<T>) -> bool {
        if inner.tracked {
            return true;
        }
        let fut = handle();
        let weak: Weak<dyn super::FutureObj<T>> = Arc::downgrade(&*fut.obj);
        let weak: Weak<dyn Closable> = weak;
        drop(fut);
        inner.tracked = self.owner.shared.closing.track(self.closing_key(), weak);
        inner.tracked
    }

    /// Whether a registration from this thread must be tracked: it comes from off the
    /// owner's loop thread (a task of the owner is aborted when it closes).
    fn off_owner_thread(&self) -> bool {
        context::current_id() != self.owner.shared.id
    }

    /// Completes a pending future whose loop is closed (U2), marked retrieved (nobody
    /// needs a "never retrieved" report about it).
    pub(crate) fn close_pending(&self, handle: &dyn Fn() -> Future<T>) {
        let _ = self.complete_with(Outcome::Exception(loop_closed_error()), true, handle);
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

    /// Registers `entry`, tracking the future if `track` and it is pending; a done and
    /// drained future dispatches the entry at once (after the lock is released).
    fn register_tracked(&self, entry: Entry<T>, track: bool, handle: &dyn Fn() -> Future<T>) {
        let mut inner = self.lock();
        match Self::register(&mut inner, entry) {
            Ok(()) => {
                if track && inner.state & PHASE == PENDING && !self.track_locked(&mut inner, handle)
                {
                    // The loop is closed: complete now, which dispatches this entry too.
                    self.finish_locked(
                        inner,
                        Outcome::Exception(loop_closed_error()),
                        true,
                        handle,
                    );
                }
            }
            Err(entry) => {
                drop(inner);
                self.dispatch_catching(entry, handle);
            }
        }
    }

    /// F7: registers a done-callback; when already done it is scheduled at once.
    pub(crate) fn add_callback<F>(&self, f: F, handle: &dyn Fn() -> Future<T>) -> CallbackKey
    where
        F: FnOnce(&Future<T>) + Send + 'static,
    {
        let key = next_callback_key();
        // K5: a done-callback runs in (a copy of) the context current when it was added.
        let callback: Box<dyn DoneFn<T>> = match crate::contextvar::capture() {
            None => Box::new(Keyed { key, f }),
            Some(ctx) => Box::new(Keyed {
                key,
                f: move |fut: &Future<T>| crate::contextvar::run_in(Some(ctx), || f(fut)),
            }),
        };
        self.register_tracked(Entry::Callback(callback), true, handle);
        key
    }

    /// Registers an internal observer; if the future is already done and drained it is
    /// notified at once (on this thread).
    pub(crate) fn add_notify(
        &self,
        observer: Weak<dyn Notify>,
        index: u32,
        handle: &dyn Fn() -> Future<T>,
    ) {
        let track = self.off_owner_thread();
        self.register_tracked(Entry::Notify(observer, index), track, handle);
    }

    /// F8: removes a pending registration; 0 once the future is done, or when `key` is
    /// not one of this future's. The callback is dropped after the lock is released.
    pub(crate) fn remove_callback(&self, key: CallbackKey) -> usize {
        let mut inner = self.lock();
        if inner.state & PHASE != PENDING {
            return 0;
        }
        let removed = inner.waiters.remove(Key::Callback(key));
        drop(inner);
        usize::from(removed.is_some())
    }

    /// Polls for the outcome. When pending, registers (or refreshes, keeping its place
    /// in the order) the waker under `slot`. When done, hands the outcome to `read`.
    ///
    /// A replaced or removed waker is dropped after the lock is released. (Cloning the
    /// new waker is the one waker operation done under the lock, as before: every
    /// executor's clone is a reference-count increment, and doing it outside would cost
    /// the usual first await a second lock.)
    pub(crate) fn poll_with<R>(
        &self,
        cx: &mut Context<'_>,
        slot: &mut Option<EntryId>,
        handle: &dyn Fn() -> Future<T>,
        read: impl FnOnce(&mut Done<'_, T>) -> R,
    ) -> Poll<R> {
        let mut inner = self.lock();
        if inner.state & PHASE != PENDING {
            let removed = slot
                .take()
                .and_then(|id| inner.waiters.remove(Key::Waker(id)));
            inner.retrieved = true;
            let out = read(&mut Done::new(&mut inner));
            drop(inner);
            drop(removed);
            return Poll::Ready(out);
        }
        let replaced = match *slot {
            Some(id) => match inner.waiters.waker_mut(id) {
                Some(w) if w.will_wake(cx.waker()) => return Poll::Pending,
                Some(w) => Some(std::mem::replace(w, cx.waker().clone())),
                None => {
                    inner.waiters.push(Entry::Waker(id, cx.waker().clone()));
                    None
                }
            },
            None => {
                let id = inner.next_id();
                inner.waiters.push(Entry::Waker(id, cx.waker().clone()));
                *slot = Some(id);
                None
            }
        };
        if !inner.tracked && self.off_owner_thread() {
            return self.track_awaiter(inner, replaced, cx, slot, handle, read);
        }
        drop(inner);
        drop(replaced);
        Poll::Pending
    }

    /// `poll_with` for an awaiter from off the owner's thread: the future is tracked (U2)
    /// — or, its loop being closed, completed and read at once.
    #[cold]
    #[inline(never)]
    fn track_awaiter<R>(
        &self,
        mut inner: Guard<'_, T>,
        replaced: Option<Waker>,
        cx: &mut Context<'_>,
        slot: &mut Option<EntryId>,
        handle: &dyn Fn() -> Future<T>,
        read: impl FnOnce(&mut Done<'_, T>) -> R,
    ) -> Poll<R> {
        if self.track_locked(&mut inner, handle) {
            drop(inner);
            drop(replaced);
            return Poll::Pending;
        }
        // The loop is closed: complete, then read the outcome (U2).
        self.finish_locked(inner, Outcome::Exception(loop_closed_error()), true, handle);
        drop(replaced);
        self.poll_with(cx, slot, handle, read)
    }

    /// Reads the outcome of a done future under the lock (`None` while pending); this
    /// observes it (F10).
    pub(crate) fn read<R>(&self, read: impl FnOnce(&mut Done<'_, T>) -> R) -> Option<R> {
        let mut inner = self.lock();
        if inner.state & PHASE == PENDING {
            return None;
        }
        inner.retrieved = true;
        Some(read(&mut Done::new(&mut inner)))
    }
}

impl<T> Drop for FutureCore<T> {
    /// Leaves the owner's `closing` registry, then drops what the future still holds —
    /// its value, and the callbacks and wakers of a future freed while pending — inside
    /// a `flat_drop` scope (futures they hold are freed after them, rule 3), each under
    /// its own catch (rule 7): a panicking destructor is reported to the owner's
    /// exception handler and never unwinds while another one is dropped (which would
    /// abort the process). A value without drop glue and no registrations: nothing to
    /// do (the usual case).
    #[inline]
    fn drop(&mut self) {
        let inner = self.inner.get_mut();
        // SAFETY: `&mut self`: no guard exists, nothing else can access `inner`.
        let inner = unsafe { MutPtr::deref(&inner) };
        if inner.tracked {
            self.untrack(true);
        }
        let holds_value = std::mem::needs_drop::<T>() && inner.outcome.is_some();
        if !inner.waiters.is_empty() || holds_value {
            Self::drop_contents(&self.owner, inner);
        }
    }
}

impl<T> FutureCore<T> {
    /// The slow path of the drop: see there.
    #[inline(never)]
    fn drop_contents(owner: &LoopHandle, inner: &mut Inner<T>) {
        let outcome = inner.outcome.take();
        let mut waiters = std::mem::replace(&mut inner.waiters, WaiterList::new());
        crate::flat_drop::scope(|| {
            let what = "Exception while dropping a future's result or done-callback";
            drop_each_catching(owner, what, outcome);
            drop_each_catching(owner, what, waiters.take());
        });
    }
}
