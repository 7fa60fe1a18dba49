//! The shared state behind every `Future<T>` (and every task's future view).
//!
//! Owns: the outcome, the ordered list of done-callbacks and awaiters, and the rules of
//! SPEC §3 for completing, observing and cancelling. Must not touch: tasks or the loop's
//! queues — callbacks are scheduled with `LoopHandle::call_soon` and awaiters woken
//! with their `Waker`, both after the lock is released.
//!
//! The outcome and the waiter list live behind one mutex (values are only ever cloned
//! or moved under it, which is what makes `Future<T>: Sync` sound for `T: Send`). A
//! state byte mirrors the phase so that `done()`, `cancelled()` and the "still
//! pending?" check never lock.
//!
//! | state bits | set when | cleared |
//! |---|---|---|
//! | phase `RESULT` / `EXCEPTION` / `CANCELLED` | completion, under the lock, once | never |
//! | `RETRIEVED` | `result()`, `exception()`, an await or `cancel()` observed the outcome (F10) | never |
//! | `TAKEN` | a task's value was moved out by awaiting the task | never |
//!
//! Ordering (F7): completion takes the whole list under the lock and marks the future
//! `draining`; it schedules the entries in order outside the lock, then takes whatever
//! was appended meanwhile, until the list stays empty. A registration that finds the
//! future done and not draining is scheduled at once — after everything earlier.

use std::panic::Location;
use std::sync::{Arc, PoisonError};
use std::task::{Context, Poll, Waker};

use super::Future;
use crate::error::{CancelledError, Error, InvalidStateError};
use crate::handle::LoopHandle;
use crate::loom::sync::Mutex;
use crate::loom::sync::atomic::{AtomicU8, Ordering};

const PENDING: u8 = 0;
const RESULT: u8 = 1;
const EXCEPTION: u8 = 2;
const CANCELLED: u8 = 3;
const PHASE: u8 = 0b111;
const RETRIEVED: u8 = 8;
const TAKEN: u8 = 16;

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

enum Entry<T> {
    Callback(u64, DoneCallback<T>),
    Waker(u64, Waker),
}

impl<T> Entry<T> {
    fn id(&self) -> u64 {
        match self {
            Entry::Callback(id, _) | Entry::Waker(id, _) => *id,
        }
    }
}

/// Registrations in order; the first one inline (the common single awaiter allocates
/// nothing).
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

    fn remove(&mut self, id: u64, callbacks: bool) -> bool {
        let matches = |e: &Entry<T>| e.id() == id && matches!(e, Entry::Callback(..)) == callbacks;
        if self.first.as_ref().is_some_and(matches) {
            self.first = if self.rest.is_empty() {
                None
            } else {
                Some(self.rest.remove(0))
            };
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

    fn waker_mut(&mut self, id: u64) -> Option<&mut Waker> {
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
    next_id: u64,
    draining: bool,
}

/// The state of one future.
pub(crate) struct FutureCore<T> {
    state: AtomicU8,
    inner: Mutex<Inner<T>>,
    pub(crate) owner: LoopHandle,
    pub(crate) created_at: &'static Location<'static>,
}

impl<T: Send + 'static> FutureCore<T> {
    pub(crate) fn new(owner: LoopHandle, created_at: &'static Location<'static>) -> Self {
        FutureCore {
            state: AtomicU8::new(PENDING),
            inner: Mutex::new(Inner {
                outcome: None,
                waiters: WaiterList::new(),
                next_id: 0,
                draining: false,
            }),
            owner,
            created_at,
        }
    }

    fn lock(&self) -> impl std::ops::DerefMut<Target = Inner<T>> + '_ {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
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

    pub(crate) fn mark_retrieved(&self) {
        if self.state.load(Ordering::Relaxed) & RETRIEVED == 0 {
            self.state.fetch_or(RETRIEVED, Ordering::Relaxed);
        }
    }

    /// Completes the future, then schedules its callbacks and wakes its awaiters in
    /// registration order. `Err` gives the outcome back if it was already done.
    pub(crate) fn complete(
        &self,
        outcome: Outcome<T>,
        handle: &dyn Fn() -> Future<T>,
    ) -> Result<(), Outcome<T>> {
        let mut inner = self.lock();
        if self.phase() != PENDING {
            return Err(outcome);
        }
        let phase = outcome.phase();
        inner.outcome = Some(outcome);
        self.state.fetch_or(phase, Ordering::Release);
        if inner.waiters.is_empty() {
            return Ok(());
        }
        inner.draining = true;
        let mut batch = inner.waiters.take();
        drop(inner);
        loop {
            for entry in batch {
                self.dispatch(entry, handle);
            }
            let mut inner = self.lock();
            if inner.waiters.is_empty() {
                inner.draining = false;
                return Ok(());
            }
            batch = inner.waiters.take();
        }
    }

    fn dispatch(&self, entry: Entry<T>, handle: &dyn Fn() -> Future<T>) {
        match entry {
            Entry::Waker(_, waker) => waker.wake(),
            Entry::Callback(_, callback) => {
                let fut = handle();
                self.owner.call_soon(move || callback(&fut));
            }
        }
    }

    /// `cancel()` on a plain future (F6).
    pub(crate) fn cancel(&self, message: Option<Arc<str>>, handle: &dyn Fn() -> Future<T>) -> bool {
        self.state.fetch_or(RETRIEVED, Ordering::Relaxed);
        self.complete(
            Outcome::Cancelled(CancelledError::from_arc(message)),
            handle,
        )
        .is_ok()
    }

    /// F7: registers a done-callback; when already done it is scheduled at once.
    pub(crate) fn add_callback(
        &self,
        callback: DoneCallback<T>,
        handle: &dyn Fn() -> Future<T>,
    ) -> u64 {
        let mut inner = self.lock();
        let id = inner.next_id;
        inner.next_id += 1;
        if self.phase() == PENDING || inner.draining {
            inner.waiters.push(Entry::Callback(id, callback));
        } else {
            drop(inner);
            self.dispatch(Entry::Callback(id, callback), handle);
        }
        id
    }

    /// F8: removes a pending registration; 0 once the future is done.
    pub(crate) fn remove_callback(&self, id: u64) -> usize {
        let mut inner = self.lock();
        if self.phase() != PENDING {
            return 0;
        }
        usize::from(inner.waiters.remove(id, true))
    }

    /// Polls for the outcome. When pending, registers (or refreshes, keeping its place
    /// in the order) the waker under `slot`. When done, hands the outcome to `read`.
    pub(crate) fn poll_with<R>(
        &self,
        cx: &mut Context<'_>,
        slot: &mut Option<u64>,
        read: impl FnOnce(&mut Done<'_, T>) -> R,
    ) -> Poll<R> {
        let mut inner = self.lock();
        if self.phase() == PENDING {
            match *slot {
                Some(id) => match inner.waiters.waker_mut(id) {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    Some(w) => w.clone_from(cx.waker()),
                    None => inner.waiters.push(Entry::Waker(id, cx.waker().clone())),
                },
                None => {
                    let id = inner.next_id;
                    inner.next_id += 1;
                    inner.waiters.push(Entry::Waker(id, cx.waker().clone()));
                    *slot = Some(id);
                }
            }
            return Poll::Pending;
        }
        if let Some(id) = slot.take() {
            inner.waiters.remove(id, false);
        }
        self.mark_retrieved_if_exception();
        Poll::Ready(read(&mut Done {
            inner: &mut inner,
            state: &self.state,
        }))
    }

    /// Reads the outcome of a done future under the lock (`None` while pending).
    pub(crate) fn read<R>(&self, read: impl FnOnce(&mut Done<'_, T>) -> R) -> Option<R> {
        let mut inner = self.lock();
        if self.phase() == PENDING {
            return None;
        }
        self.mark_retrieved_if_exception();
        Some(read(&mut Done {
            inner: &mut inner,
            state: &self.state,
        }))
    }

    fn mark_retrieved_if_exception(&self) {
        if self.phase() == EXCEPTION {
            self.mark_retrieved();
        }
    }
}

impl<T> FutureCore<T> {
    /// Forgets an awaiter registration (its `Future` handle was dropped or completed).
    pub(crate) fn remove_waiter(&self, id: u64) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.waiters.remove(id, false);
    }

    /// F10: the exception nobody observed, for the "never retrieved" report on drop.
    pub(crate) fn unretrieved_exception(&self) -> Option<Error> {
        let state = self.state.load(Ordering::Acquire);
        if state & PHASE != EXCEPTION || state & RETRIEVED != 0 {
            return None;
        }
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        match &inner.outcome {
            Some(Outcome::Exception(e)) => Some(e.clone()),
            _ => None,
        }
    }
}

/// The locked outcome of a done future, as handed to readers.
pub(crate) struct Done<'a, T> {
    inner: &'a mut Inner<T>,
    state: &'a AtomicU8,
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
            Some(Outcome::Value(v)) => {
                self.state.fetch_or(TAKEN, Ordering::Relaxed);
                Ok(v)
            }
            Some(other) => {
                let err = match &other {
                    Outcome::Exception(e) => e.clone(),
                    Outcome::Cancelled(c) => Error::Cancelled(c.clone()),
                    Outcome::Value(_) => unreachable!(),
                };
                self.inner.outcome = Some(other);
                Err(err)
            }
            None => Err(taken()),
        }
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
