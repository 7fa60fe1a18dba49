//! Cooperative cancellation (T3): the task being polled on this thread, and the hooks
//! every loop-native awaitable calls.
//!
//! Owns: the thread-local "current task" pointer (set only while the loop polls a
//! task) and the loop-thread-only task state it reaches ([`LoopLocal`]). Must not
//! touch: scheduling — it only reads and updates a task's cancellation state.
//!
//! A loop-native awaitable (`Future`, `Task`, `sleep`, `yield_now`, I/O waits,
//! executor jobs) calls [`take_cancel`] first in its `poll`: an undelivered cancel
//! request of the current task is handed over there as `Err(Error::Cancelled)`. A
//! `Future` that returns `Pending` also records itself with [`suspended_on`], so that
//! cancelling the task cancels that future at once, as asyncio does.

use std::cell::{Cell, RefCell, RefMut};
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::ptr::NonNull;
use std::sync::{Arc, Weak};
use std::task::Waker;

use super::cell::Runnable;
use super::header::TaskHeader;
use crate::context;
use crate::error::{CancelledError, Error};
use crate::future::CancelHook;
use crate::reactor::TaskWake;

thread_local! {
    /// The task being polled on this thread.
    static CURRENT: Cell<Option<NonNull<dyn Runnable>>> = const { Cell::new(None) };
    /// An [`apply_cancel_flat`] is draining on this thread: nested requests queue.
    static CANCELLING: Cell<bool> = const { Cell::new(false) };
    static CANCEL_QUEUE: RefCell<VecDeque<CancelRequest>> = const { RefCell::new(VecDeque::new()) };
    /// Bumped whenever a cancel request is recorded for a task on this thread: a
    /// [`WaiterTask`] taken before the last bump may have one pending.
    static CANCEL_EPOCH: Cell<u64> = const { Cell::new(0) };
}

/// A cancel request was recorded for a task of this thread's loop (see [`WaiterTask`]).
pub(crate) fn bump_cancel_epoch() {
    let _ = CANCEL_EPOCH.try_with(|e| e.set(e.get().wrapping_add(1)));
}

/// The number of cancel requests recorded on this thread so far (wrapping): unchanged
/// means no task of this thread's loop was asked to cancel in between.
#[inline]
pub(crate) fn cancel_epoch() -> u64 {
    CANCEL_EPOCH.try_with(Cell::get).unwrap_or(u64::MAX)
}

/// Which task queued a wait (in `sync`'s wait lists), so that a primitive handing over a
/// lock, a permit or an item can skip a waiter whose task has a cancel request pending —
/// as asyncio skips the waiter future that `Task.cancel` cancelled. No reference to the
/// task is kept: its loop, its slab slot and generation (a stale slot is "no task"),
/// and the cancel epoch when it was last seen not cancelled (the fast path: no cancel
/// since then, nothing to look up).
#[derive(Debug, Clone, Copy)]
pub(crate) struct WaiterTask {
    loop_id: u64,
    key: u32,
    generation: u32,
    epoch: u64,
}

impl WaiterTask {
    /// The task being polled on this thread, if any.
    #[inline]
    pub(crate) fn current() -> Option<WaiterTask> {
        let (key, generation) = with_current(|task| task.header().slot())??;
        Some(WaiterTask {
            loop_id: context::current_id(),
            key,
            generation,
            epoch: cancel_epoch(),
        })
    }

    /// Whether the task has an undelivered cancel request: its next loop-native await
    /// returns `Err(Cancelled)`. Only answered on the task's own loop thread (anywhere
    /// else: `false`).
    #[inline]
    pub(crate) fn cancel_pending(&mut self) -> bool {
        let now = cancel_epoch();
        if now == self.epoch {
            return false;
        }
        let pending = context::current_id() == self.loop_id
            && context::with_local(self.loop_id, |local| {
                local.task_cancel_pending(self.key, self.generation)
            })
            .unwrap_or(false);
        if !pending {
            self.epoch = now;
        }
        pending
    }
}

/// Whether `header`'s task has an undelivered cancel request (loop thread only; `false`
/// while its state is borrowed — the request is being applied or taken right now).
pub(crate) fn has_pending_cancel(header: &TaskHeader) -> bool {
    header.cancelling() != 0
        && header
            .local
            .get()
            .try_borrow()
            .is_ok_and(|local| local.must_cancel)
}

/// A cancel request queued by [`apply_cancel_flat`]: the task and the message.
type CancelRequest = (Arc<dyn Runnable>, Option<Arc<str>>);

/// Applies a cancel request to `task` on its loop thread (T3) in bounded stack.
///
/// Cancelling a task cancels what it is suspended on, and when that is another task
/// its cancellation cancels what *it* waits on, and so on: done recursively, a chain of
/// 100 000 tasks each awaiting the next overflows the stack. Instead the outermost call
/// on a thread applies its request, and requests made meanwhile (the awaited tasks')
/// are queued and applied, in order, before it returns — so when `cancel()` returns,
/// the whole chain has been cancelled, as with the recursion (rule 3). Each request is
/// applied under its own `catch_unwind`; the first panic is resumed once the queue is
/// empty (rule 2).
pub(crate) fn apply_cancel_flat(task: &dyn Runnable, message: Option<Arc<str>>) {
    if CANCELLING.with(|c| c.replace(true)) {
        let mut entry = Some((task.to_runnable(), message));
        let _ = CANCEL_QUEUE.try_with(|q| q.borrow_mut().extend(entry.take()));
        // Thread teardown: no queue any more, apply it here.
        if let Some((task, message)) = entry {
            task.apply_cancel(message);
        }
        return;
    }
    let mut first_panic = catch_unwind(AssertUnwindSafe(|| task.apply_cancel(message))).err();
    loop {
        // The borrow ends before the request is applied: applying it may queue more.
        let next = CANCEL_QUEUE
            .try_with(|q| q.borrow_mut().pop_front())
            .ok()
            .flatten();
        let Some((task, message)) = next else {
            break;
        };
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| task.apply_cancel(message))) {
            first_panic.get_or_insert(payload);
        }
    }
    let _ = CANCEL_QUEUE.try_with(|q| {
        let mut q = q.borrow_mut();
        if q.capacity() > 64 {
            *q = VecDeque::new();
        }
    });
    CANCELLING.with(|c| c.set(false));
    if let Some(payload) = first_panic {
        if std::thread::panicking() {
            log::error!(target: "evloop", "a panic escaped while cancelling a task during unwinding");
        } else {
            resume_unwind(payload);
        }
    }
}

/// The cancellation worklist of the loop that was current on this thread, set aside
/// while another loop's runtime shuts down here (see `context::enter_for_shutdown`):
/// that shutdown's cancel requests must apply at once, not wait in the outer queue
/// until the shutdown has given up on them.
pub(crate) struct CancelScope {
    cancelling: bool,
    queue: VecDeque<CancelRequest>,
}

/// Sets the current cancellation worklist aside (a fresh, empty one takes its place).
pub(crate) fn suspend_cancel_scope() -> CancelScope {
    CancelScope {
        cancelling: CANCELLING.with(|c| c.replace(false)),
        queue: CANCEL_QUEUE
            .try_with(|q| std::mem::take(&mut *q.borrow_mut()))
            .unwrap_or_default(),
    }
}

/// Puts a worklist set aside by [`suspend_cancel_scope`] back.
pub(crate) fn restore_cancel_scope(scope: CancelScope) {
    CANCELLING.with(|c| c.set(scope.cancelling));
    let mut queue = Some(scope.queue);
    let _ = CANCEL_QUEUE.try_with(|q| {
        let mut q = q.borrow_mut();
        let outer = queue.take().unwrap_or_default();
        // Whatever the nested scope left (nothing: its drains ran) goes after.
        let nested = std::mem::replace(&mut *q, outer);
        q.extend(nested);
    });
}

/// State of a task that only its loop thread may touch.
///
/// The task cell is shared with other threads (wakers, handles), so this wrapper is
/// `Sync`; every access goes through [`LoopLocal::get`], which checks that the caller
/// is running on the owning loop's thread (a thread-local load) and panics otherwise.
pub(crate) struct LoopLocal<T> {
    loop_id: u64,
    value: T,
}

// SAFETY: `value` is only reachable through `get`, which asserts that the calling
// thread is the one running loop `loop_id`; a loop runs on exactly one thread at a
// time (a `Runtime` is `!Send`), so the value is never accessed concurrently. `T: Send`
// because the last reference may drop it on another thread.
unsafe impl<T: Send> Sync for LoopLocal<T> {}

impl<T> LoopLocal<T> {
    pub(crate) fn new(loop_id: u64, value: T) -> Self {
        LoopLocal { loop_id, value }
    }

    /// The loop this value belongs to.
    #[inline]
    pub(crate) fn loop_id(&self) -> u64 {
        self.loop_id
    }

    /// # Panics
    ///
    /// If the calling thread is not running loop `loop_id`.
    #[track_caller]
    pub(crate) fn get(&self) -> &T {
        assert_eq!(
            context::current_id(),
            self.loop_id,
            "evloop: loop-thread-only task state touched from another thread"
        );
        &self.value
    }
}

/// A task's cancellation state (loop thread only).
#[derive(Default)]
pub(crate) struct TaskLocal {
    /// A cancel request is waiting to be delivered at the next loop-native await.
    pub(crate) must_cancel: bool,
    pub(crate) message: Option<Arc<str>>,
    /// The evloop futures the task is suspended on (one, or several under a join or
    /// select), cancelled when the task is. Cleared at the start of every poll; a
    /// handle dropped during a poll removes its own entry.
    pub(crate) waiters: Hooks,
    /// The coroutine has been polled at least once.
    pub(crate) started: bool,
    /// The coroutine is being polled right now (abort must wait).
    pub(crate) polling: bool,
    pub(crate) abort_requested: bool,
    /// The task's context (K5); `None`: empty (see `contextvar`).
    pub(crate) context: crate::contextvar::Snapshot,
    /// K6: polls so far, the loop iteration time of the last one, and what the await
    /// that suspended the task recorded (see `dump`).
    pub(crate) polls: u32,
    /// On `sys::coarse_monotonic_ns`'s clock; 0: never polled.
    pub(crate) last_poll: u64,
    pub(crate) waiting: super::dump::Waiting,
}

/// The futures a task is suspended on: the first inline (no allocation in the usual
/// case of one), more in a vector.
#[derive(Default)]
pub(crate) struct Hooks {
    first: Option<Arc<dyn CancelHook>>,
    /// Boxed: a task suspended on more than one future is rare, and a task's state is
    /// kept small (P14).
    // One pointer where a `Vec` takes three words, in every task (P14); the extra
    // allocation is paid only by the rare second entry.
    #[allow(clippy::box_collection)]
    rest: Option<Box<Vec<Arc<dyn CancelHook>>>>,
}

fn addr(hook: &Arc<dyn CancelHook>) -> *const () {
    Arc::as_ptr(hook) as *const ()
}

impl Hooks {
    /// Adds the hook at `ptr` unless it is there already; `make` gives the reference
    /// to keep (called only when it is new: each clone of an `Arc` is a locked
    /// increment, and its drop a locked decrement).
    fn insert(&mut self, ptr: *const (), make: impl FnOnce() -> Arc<dyn CancelHook>) {
        match &self.first {
            None => self.first = Some(make()),
            Some(first) if addr(first) == ptr => {}
            Some(_) if self.rest().iter().any(|h| addr(h) == ptr) => {}
            Some(_) => self.rest.get_or_insert_default().push(make()),
        }
    }

    /// Takes the hook of `cell` out (for the caller to drop after the borrow).
    fn remove(&mut self, cell: *const ()) -> Option<Arc<dyn CancelHook>> {
        if self.first.as_ref().is_some_and(|h| addr(h) == cell) {
            let next = self.rest.as_mut().and_then(|rest| rest.pop());
            return std::mem::replace(&mut self.first, next);
        }
        let rest = self.rest.as_mut()?;
        let i = rest.iter().position(|h| addr(h) == cell)?;
        Some(rest.swap_remove(i))
    }

    fn rest(&self) -> &[Arc<dyn CancelHook>] {
        self.rest.as_deref().map_or(&[], |rest| rest.as_slice())
    }

    /// Empties the set, handing its members out (for the caller to drop after its
    /// borrow); `None`, with nothing to move, when it is empty (the usual case).
    pub(crate) fn take_all(&mut self) -> Option<Hooks> {
        // `rest` is only used once `first` is taken (see `insert` and `remove`); an
        // empty `rest` keeps its capacity here.
        let first = self.first.take()?;
        let rest = if self.rest().is_empty() {
            None
        } else {
            self.rest.take()
        };
        Some(Hooks {
            first: Some(first),
            rest,
        })
    }

    /// The members (K6: a dump describes them).
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<dyn CancelHook>> {
        self.first.iter().chain(self.rest())
    }

    /// Empties the set, returning its members.
    pub(crate) fn take(&mut self) -> impl Iterator<Item = Arc<dyn CancelHook>> + use<> {
        let first = self.first.take();
        let rest = self.rest.take().map(|rest| *rest).unwrap_or_default();
        first.into_iter().chain(rest)
    }
}

/// Marks `task` as the task being polled on this thread until the guard is dropped.
pub(crate) fn enter(task: &dyn Runnable) -> CurrentGuard {
    let prev = CURRENT.with(|c| c.replace(Some(NonNull::from(task))));
    CurrentGuard { prev }
}

/// The task being polled on this thread, if `waker` is its own waker: evloop's, whose
/// wake only queues the task (the reactor may wake it in place), and which the reactor
/// may keep weakly. (The identity check — data and vtable — runs only when a socket
/// registers a new waker; `enter` records nothing extra.)
pub(crate) fn current_task_if_waker(waker: &Waker) -> Option<Weak<dyn TaskWake>> {
    with_current(|task| {
        let own = waker.data() == task as *const dyn Runnable as *const ()
            && std::ptr::eq(waker.vtable(), task.waker_vtable());
        own.then(|| {
            let task: Arc<dyn TaskWake> = task.to_runnable();
            Arc::downgrade(&task)
        })
    })
    .flatten()
}

/// The slab slot of the task being polled on this thread, if `waker` is its own
/// waker (the identity check of [`current_task_if_waker`], without a reference): what a
/// timer of this loop may hold instead of a waker clone (`TimerPayload::Task`).
#[inline]
pub(crate) fn own_slot_if_waker(waker: &Waker) -> Option<(u32, u32)> {
    with_current(|task| {
        let own = waker.data() == task as *const dyn Runnable as *const ()
            && std::ptr::eq(waker.vtable(), task.waker_vtable());
        if own { task.header().slot() } else { None }
    })
    .flatten()
}

pub(crate) struct CurrentGuard {
    prev: Option<NonNull<dyn Runnable>>,
}

impl Drop for CurrentGuard {
    fn drop(&mut self) {
        let _ = CURRENT.try_with(|c| c.set(self.prev));
    }
}

/// Runs `f` with the current task, if a task is being polled here.
#[inline]
pub(crate) fn with_current<R>(f: impl FnOnce(&dyn Runnable) -> R) -> Option<R> {
    let task = CURRENT.try_with(Cell::get).ok()??;
    // SAFETY: `CURRENT` holds a pointer only between `enter` and the guard's drop,
    // which bracket one poll of that task; the loop keeps the task's `Arc` alive for
    // the whole poll, so the task outlives every use here.
    Some(f(unsafe { task.as_ref() }))
}

fn local_of(header: &TaskHeader) -> RefMut<'_, TaskLocal> {
    header.local.get().borrow_mut()
}

/// Delivers an undelivered cancel request of the current task (T3): `Some(error)` once,
/// then the request is consumed.
///
/// Every await asks, and almost always nobody ever asked this task to cancel: that
/// check is inlined into the caller; building the error is out of line.
#[inline]
pub(crate) fn take_cancel() -> Option<Error> {
    // (A request withdrawn by `uncancel` to 0 is not delivered either, T4.)
    let requested = with_current(|task| task.header().cancelling() != 0).unwrap_or(false);
    if requested { take_cancel_slow() } else { None }
}

#[cold]
#[inline(never)]
fn take_cancel_slow() -> Option<Error> {
    with_current(|task| {
        let mut local = local_of(task.header());
        if !local.must_cancel {
            return None;
        }
        local.must_cancel = false;
        Some(Error::Cancelled(CancelledError::from_arc(
            local.message.clone(),
        )))
    })
    .flatten()
}

/// Records that the current task is suspended on the cancellable future whose cell is
/// at `cell`; `make` gives the reference the task keeps, called only if it is not
/// recorded yet (and never for a poll outside a task). Cloning an `Arc` cannot run
/// user code, so it may happen under the task-state borrow.
pub(crate) fn suspended_on(cell: *const (), make: impl FnOnce() -> Arc<dyn CancelHook>) {
    with_current(|task| local_of(task.header()).waiters.insert(cell, make));
}

/// A future handle that registered with [`suspended_on`] is going away: the current
/// task no longer waits on it, so cancelling the task must not cancel it.
pub(crate) fn forget(cell: *const ()) {
    let removed = with_current(|task| local_of(task.header()).waiters.remove(cell));
    drop(removed);
}

/// Whether the task being polled is the cell at `cell` (T7).
pub(crate) fn is_current(cell: *const ()) -> bool {
    CURRENT
        .try_with(|c| c.get().is_some_and(|t| t.as_ptr() as *const () == cell))
        .unwrap_or(false)
}

impl<T> std::fmt::Debug for LoopLocal<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopLocal")
            .field("loop_id", &self.loop_id)
            .finish_non_exhaustive()
    }
}

fn _assert_kinds() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<LoopLocal<RefCell<TaskLocal>>>();
}
