//! Tasks (SPEC §4): [`create_task`], [`LoopHandle::spawn`], [`Task<T>`],
//! [`yield_now`], [`current_task`], [`shield`] — also at the crate root — and
//! [`cancellable`] (SPEC §14 K4), which makes a foreign future cancellable by the
//! task's cancellation, [`unconstrained`] (K7), which exempts a future from the
//! cooperative budget, and [`TaskGroup`] (K1), whose children finish together.
//!
//! Owns: the public task API. Must not touch: the loop's slab (that is `core`) or
//! the state machine of futures (that is `future::core`). The task record and its
//! polling live in `cell`; cooperative-cancellation hooks in `coop`; task groups in
//! `group`.

pub(crate) mod budget;
mod cancellable;
pub(crate) mod cell;
pub(crate) mod coop;
mod dump;
mod group;
mod header;
pub(crate) mod pool;

pub use budget::{Unconstrained, unconstrained};
pub use cancellable::{Cancellable, cancellable};
pub use dump::{TaskInfo, TaskState};

/// K6: an `evloop::sync` wait of `what` (its type name) is about to queue.
#[inline]
pub(crate) fn waiting_on_sync(what: &'static str) {
    dump::waiting_on(dump::Waiting::Sync(what));
}

/// A thread-safe `evloop::sync` await: budgeted (K7), and named in task dumps when it
/// suspends (K6).
#[inline]
pub(crate) fn sync_await<R>(
    cx: &mut Context<'_>,
    what: &'static str,
    poll: impl FnOnce(&mut Context<'_>) -> Poll<R>,
) -> Poll<R> {
    let out = budget::budgeted(cx, poll);
    if out.is_pending() {
        waiting_on_sync(what);
    }
    out
}

pub(crate) use coop::own_slot_if_waker;

/// K6: a sleep until `deadline` is about to suspend the task.
#[inline]
pub(crate) fn waiting_on_sleep(deadline: std::time::Instant) {
    dump::waiting_on(dump::Waiting::Sleep(deadline));
}

/// K6: a socket await is about to suspend the task.
#[inline]
pub(crate) fn waiting_on_socket(fd: i32, write: bool) {
    dump::waiting_on(dump::Waiting::Socket { fd, write });
}
pub use group::{Join, JoinNext, TaskGroup};

pub(crate) use cell::{RunResult, Runnable, TaskOps};
pub(crate) use header::TaskHeader;
pub(crate) use pool::CellPool;

use std::fmt;
use std::future::Future as StdFuture;
use std::ops::Deref;
use std::panic::Location;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use std::mem::ManuallyDrop;
use std::sync::Weak;

use self::cell::TaskCell;
use crate::closing::Closable;
use crate::context;
use crate::error::Error;
use crate::future::{CancelHook, Future, FutureCore, FutureObj, Notify, Outcome};
use crate::handle::LoopHandle;
use crate::shared::Remote;

/// A coroutine scheduled on a loop: asyncio's `Task` (SPEC §4).
///
/// `Task<T>` derefs to its [`Future<T>`] (`done`, `cancelled`, `cancel`,
/// `add_done_callback`, `result`, `exception`, `get_loop`, …). Awaiting the task yields
/// the coroutine's `Result<T, Error>` and does not need `T: Clone`: the value is moved
/// out (a later `result()` then reports `InvalidState`). Dropping a `Task` does not
/// cancel it; the loop keeps it running.
///
/// ```
/// let out = evloop::run(async {
///     let task = evloop::create_task(async { Ok::<_, evloop::Error>(String::from("hi")) });
///     assert!(!task.done(), "a task never starts synchronously");
///     task.await
/// });
/// assert_eq!(out.unwrap(), "hi");
/// ```
pub struct Task<T> {
    fut: Future<T>,
}

/// Schedules `coro` as a task on the loop running on this thread (T1). No `Send`
/// bound: the coroutine stays on this thread. Its first poll happens in a later
/// iteration, never synchronously — unless the loop was built with
/// [`Builder::eager_tasks`](crate::Builder::eager_tasks), which runs it here until it
/// first suspends.
///
/// # Panics
///
/// When no evloop loop runs on this thread (use [`LoopHandle::spawn`] from other
/// threads).
#[track_caller]
pub fn create_task<T, F>(coro: F) -> Task<T>
where
    T: Send + 'static,
    F: StdFuture<Output = Result<T, Error>> + 'static,
{
    let created_at = Location::caller();
    // The coroutine is user code to drop: with no loop running here it is dropped now,
    // not inside the thread-local borrow `with_current` takes (rule 1).
    let spawned = if context::current_id() == 0 {
        drop(coro);
        None
    } else {
        context::with_current(move |local| {
            let memory = local.cells.borrow_mut().take();
            let cell = TaskCell::new(local.handle.clone(), coro, false, created_at, memory);
            let eager = local.starts_eagerly();
            if !eager {
                local.spawn_task(cell.clone());
            }
            (cell, eager)
        })
        .map(|(cell, eager)| {
            if eager {
                // The first poll is user code: outside `with_current`'s borrow.
                if let Some(local) = context::current() {
                    local.spawn_task_eagerly(cell.clone());
                }
            }
            Task::from_cell(cell)
        })
    };
    match spawned {
        Some(task) => task,
        None => panic!(
            "evloop::create_task: no running event loop on this thread; call it from a \
             coroutine or callback on a loop, or use LoopHandle::spawn from other threads"
        ),
    }
}

impl LoopHandle {
    /// Schedules `coro` as a task on this loop, from any thread (T1). On a closed loop
    /// the coroutine is dropped and the returned task is already cancelled (L14).
    ///
    /// ```
    /// let rt = evloop::Runtime::new()?;
    /// let loop_ = rt.handle();
    /// let task = std::thread::spawn(move || loop_.spawn(async { Ok::<_, evloop::Error>(7) }))
    ///     .join()
    ///     .unwrap();
    /// assert_eq!(rt.block_on(task).unwrap(), 7);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn spawn<T, F>(&self, coro: F) -> Task<T>
    where
        T: Send + 'static,
        F: StdFuture<Output = Result<T, Error>> + Send + 'static,
    {
        let memory = pool::take_on(self.shared.id);
        let cell = TaskCell::new(self.clone(), coro, true, Location::caller(), memory);
        if self.is_closed() {
            log::debug!(target: "evloop", "spawn on closed loop #{}: task cancelled", self.id());
            cell.abort_unstarted();
        } else if context::with_local(self.shared.id, |local| local.spawn_task(cell.clone()))
            .is_none()
        {
            self.shared.push_remote(Remote::Spawn(cell.clone()));
        }
        Task::from_cell(cell)
    }
}

impl<T: Send + 'static> Task<T> {
    fn from_cell<F>(cell: Arc<TaskCell<T, F>>) -> Task<T>
    where
        F: StdFuture<Output = Result<T, Error>> + 'static,
    {
        Task {
            fut: Future::from_obj(cell),
        }
    }

    fn ops(&self) -> &dyn TaskOps {
        self.fut.obj.task().expect("a Task's future is a task cell")
    }

    /// A cloneable `Future<T>` view of the task (T2).
    pub fn future(&self) -> Future<T> {
        self.fut.clone()
    }

    /// The task's id: unique in the process, increasing in creation order among the
    /// tasks created on one thread.
    pub fn id(&self) -> u64 {
        self.ops().header().id
    }

    /// The task's name: the one set, or `Task-<id>`.
    pub fn name(&self) -> String {
        self.ops().header().name()
    }

    /// Names the task (shown in exception reports).
    pub fn set_name(&self, name: impl AsRef<str>) {
        self.ops().header().set_name(name.as_ref());
    }

    /// Number of pending cancel requests (T4, asyncio's `cancelling()`).
    pub fn cancelling(&self) -> usize {
        self.ops().header().cancelling()
    }

    /// Withdraws one cancel request and returns the remaining count; at 0 an
    /// undelivered request is dropped (T4, Python 3.13 semantics).
    pub fn uncancel(&self) -> usize {
        self.ops().uncancel()
    }

    /// Drops the coroutine at once, on the loop thread, and ends the task cancelled
    /// (T5) — for coroutines blocked on foreign futures, and for shutdown. From another
    /// thread, or from inside the task itself, it happens as soon as the loop can.
    pub fn abort(&self) {
        self.ops().abort();
    }

    /// A type-erased handle to this task.
    pub fn to_ref(&self) -> TaskRef {
        TaskRef(self.ops().runnable())
    }
}

impl<T: Send + 'static> Deref for Task<T> {
    type Target = Future<T>;

    fn deref(&self) -> &Future<T> {
        &self.fut
    }
}

impl<T: Send + 'static> From<Task<T>> for Future<T> {
    fn from(task: Task<T>) -> Future<T> {
        task.fut.clone()
    }
}

impl<T: Send + 'static> StdFuture for Task<T> {
    type Output = Result<T, Error>;

    /// The coroutine's result, moved out (no `T: Clone` needed). A loop-native await:
    /// cancelling the awaiting task cancels this task too (T3).
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.fut.poll_outcome(cx, |done| done.result_taken())
    }
}

impl<T: Send + 'static> fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("id", &self.id())
            .field("name", &self.name())
            .field("future", &self.fut)
            .finish()
    }
}

/// A type-erased handle to a task (from [`current_task`] or [`Task::to_ref`]).
#[derive(Clone)]
pub struct TaskRef(Arc<dyn Runnable>);

impl TaskRef {
    fn ops(&self) -> &dyn TaskOps {
        &*self.0
    }

    /// The task's id.
    pub fn id(&self) -> u64 {
        self.0.header().id
    }

    /// The task's name.
    pub fn name(&self) -> String {
        self.0.header().name()
    }

    /// Names the task.
    pub fn set_name(&self, name: impl AsRef<str>) {
        self.0.header().set_name(name.as_ref());
    }

    /// Whether the task is done.
    pub fn done(&self) -> bool {
        self.0.is_done()
    }

    /// Whether the task ended cancelled.
    pub fn cancelled(&self) -> bool {
        self.0.is_cancelled()
    }

    /// Requests cancellation (T3); `false` if the task is done. As for
    /// [`Future::cancel`]: a task waiting on a foreign future sees the request at its
    /// next evloop await, unless that future is wrapped in [`cancellable`].
    pub fn cancel(&self) -> bool {
        self.ops().cancel(None)
    }

    /// Requests cancellation with a message.
    pub fn cancel_with(&self, message: impl Into<String>) -> bool {
        self.ops().cancel(Some(Arc::from(message.into())))
    }

    /// Pending cancel requests (T4).
    pub fn cancelling(&self) -> usize {
        self.0.header().cancelling()
    }

    /// Withdraws a cancel request (T4).
    pub fn uncancel(&self) -> usize {
        self.ops().uncancel()
    }

    /// Aborts the task (T5).
    pub fn abort(&self) {
        self.ops().abort();
    }

    /// The loop the task runs on.
    pub fn get_loop(&self) -> LoopHandle {
        self.0.owner().clone()
    }
}

impl PartialEq for TaskRef {
    fn eq(&self, other: &TaskRef) -> bool {
        self.id() == other.id()
    }
}

impl Eq for TaskRef {}

impl fmt::Debug for TaskRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskRef")
            .field("id", &self.id())
            .field("name", &self.name())
            .field("done", &self.done())
            .finish()
    }
}

/// The task being run on this thread, if any (T8, asyncio's `current_task()`).
///
/// ```
/// evloop::run(async {
///     assert!(evloop::current_task().is_none(), "block_on's future is not a task");
///     let task = evloop::create_task(async {
///         let me = evloop::current_task().unwrap();
///         Ok::<_, evloop::Error>(me.name())
///     });
///     task.set_name("worker");
///     assert_eq!(task.await.unwrap(), "worker");
/// });
/// ```
pub fn current_task() -> Option<TaskRef> {
    coop::with_current(|task| task.runnable()).map(TaskRef)
}

/// Yields to the loop once: the caller is rescheduled behind everything already ready
/// (T8). A loop-native await: a pending cancellation of the current task is delivered
/// here as `Err(Error::Cancelled)`.
///
/// # Errors
///
/// `Error::Cancelled` when the current task has an undelivered cancel request.
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// Future returned by [`yield_now`].
#[derive(Debug)]
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct YieldNow {
    yielded: bool,
}

impl StdFuture for YieldNow {
    type Output = Result<(), Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(cancelled) = coop::take_cancel() {
            return Poll::Ready(Err(cancelled));
        }
        if self.yielded {
            return Poll::Ready(Ok(()));
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Protects `fut` from cancellation (T9, asyncio's `shield`): cancelling the returned
/// future (or a task awaiting it) does not cancel `fut`, which keeps running; its
/// outcome is copied to the returned future unless that was cancelled first.
///
/// ```
/// evloop::run(async {
///     let inner: evloop::Future<u8> = evloop::Future::new();
///     let outer = evloop::shield(inner.clone());
///     assert!(outer.cancel());
///     assert!(!inner.cancelled(), "the shielded future keeps running");
///     inner.set_result(1).unwrap();
/// });
/// ```
#[track_caller]
pub fn shield<T, F>(fut: F) -> Future<T>
where
    T: Send + Clone + 'static,
    F: Into<Future<T>>,
{
    let inner: Future<T> = fut.into();
    if inner.done() {
        return inner;
    }
    let owner = inner.get_loop();
    let created_at = Location::caller();
    let cell = Arc::new_cyclic(|me| ShieldCell {
        me: me.clone(),
        core: FutureCore::new(owner, created_at),
        inner: ManuallyDrop::new(inner),
    });
    let observer: Weak<dyn Notify> = Arc::downgrade(&cell) as Weak<dyn Notify>;
    cell.inner.add_notify(observer, 0);
    Future::from_obj(cell)
}

/// The outer future of a [`shield`]: a future of its own that observes the inner one
/// through a `Notify` entry (asyncio uses a done-callback). Dropping it removes that
/// entry, so an abandoned shield of a future that stays pending leaves nothing behind
/// (Q8); cancelling it removes the entry in a later iteration, as asyncio's
/// `_outer_done_callback` does (until then an inner exception is still marked
/// retrieved).
struct ShieldCell<T> {
    me: Weak<ShieldCell<T>>,
    core: FutureCore<T>,
    /// Taken only by `drop` (to free it in a `flat_drop` scope: shields of shields).
    inner: ManuallyDrop<Future<T>>,
}

impl<T: Send + Clone + 'static> ShieldCell<T> {
    /// The inner future is done (a later iteration, as asyncio's done-callback): copy
    /// its outcome unless the outer was cancelled first.
    fn copy_inner(self: Arc<Self>) {
        if self.core.is_done() {
            self.inner.mark_retrieved();
            return;
        }
        let outer = Future::from_obj(self.clone());
        copy_outcome(&self.inner, &outer);
    }

    fn forget_inner(&self) {
        let me = self as *const Self as *const ();
        self.inner.obj.core().remove_notify(me, 0);
    }
}

impl<T: Send + Clone + 'static> Notify for ShieldCell<T> {
    fn notify(self: Arc<Self>, _index: u32) {
        let owner = self.core.owner.clone();
        owner.call_soon(move || self.copy_inner());
    }
}

impl<T: Send + Clone + 'static> CancelHook for ShieldCell<T> {
    /// A task awaiting the shield is cancelled: only the outer future is (T9).
    fn cancel_hook(self: Arc<Self>, message: Option<Arc<str>>) -> bool {
        let outer = Future::from_obj(self);
        outer.obj.cancel(&outer, message)
    }
}

impl<T: Send + Clone + 'static> Closable for ShieldCell<T> {
    fn loop_closed(self: Arc<Self>) {
        let outer = Future::from_obj(self);
        outer.obj.core().close_pending(&|| outer.clone());
    }
}

impl<T: Send + Clone + 'static> FutureObj<T> for ShieldCell<T> {
    fn core(&self) -> &FutureCore<T> {
        &self.core
    }

    fn task(&self) -> Option<&dyn TaskOps> {
        None
    }

    fn cancel(&self, handle: &Future<T>, message: Option<Arc<str>>) -> bool {
        let cancelled = self.core.cancel(message, &|| handle.clone());
        if let Some(me) = self.me.upgrade().filter(|_| cancelled) {
            self.core.owner.call_soon(move || me.forget_inner());
        }
        cancelled
    }
}

impl<T> Drop for ShieldCell<T> {
    fn drop(&mut self) {
        // F10: the inner outcome was copied here; nobody looked at it.
        crate::future::report_unretrieved(&self.core, "shield ");
        let me = self as *const Self as *const ();
        self.inner.obj.core().remove_notify(me, 0);
        // SAFETY: `inner` is not used after this line: this is the cell's drop.
        let inner = unsafe { ManuallyDrop::take(&mut self.inner) };
        crate::flat_drop::scope(move || drop(inner));
    }
}

/// Copies a done `source`'s outcome into `target` (cancelled → cancel).
pub(crate) fn copy_outcome<T: Send + Clone + 'static>(source: &Future<T>, target: &Future<T>) {
    match source.read_done(|done| done.outcome_cloned()) {
        Some(Outcome::Value(v)) => {
            let _ = target.set_result(v);
        }
        Some(Outcome::Exception(e)) => {
            let _ = target.set_exception(e);
        }
        Some(Outcome::Cancelled(c)) => match c.message() {
            Some(m) => {
                target.cancel_with(m);
            }
            None => {
                target.cancel();
            }
        },
        None => {}
    }
}

fn _assert_kinds() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Task<u8>>();
    send_sync::<TaskRef>();
}
