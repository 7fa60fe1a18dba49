//! [`Future<T>`]: asyncio's / Tornado's future, bound to an evloop loop (SPEC §3).
//!
//! Owns: the public handle, its identity, awaiting it, and the plain (non-task)
//! future cell. Must not touch: tasks' internals — a task's cell implements
//! [`FutureObj`] too and decides itself what `cancel` and `set_result` mean for it.
//! The state machine lives in [`core`](self::core).

mod core;
mod done;
#[cfg(all(test, loom))]
mod loom_models;
#[cfg(all(test, not(loom)))]
mod tests;
mod waiters;

pub(crate) use self::core::{CallbackKey, EntryId, FutureCore, Notify, Outcome};

use std::fmt;
use std::future::Future as StdFuture;
use std::hash::{Hash, Hasher};
use std::mem::ManuallyDrop;
use std::panic::Location;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::closing::Closable;
use crate::error::{Error, InvalidStateError};
use crate::exception::{ExceptionContext, ExceptionSource};
use crate::handle::LoopHandle;
use crate::task::pool::Pooled;
use crate::task::{TaskOps, coop};

/// Something a task can be suspended on and that its cancellation cancels.
pub(crate) trait CancelHook: Send + Sync {
    /// `cancel_with(message)` on the underlying future (for a task: a cancel request).
    fn cancel_hook(self: Arc<Self>, message: Option<Arc<str>>) -> bool;
    /// What a task dump says about a task suspended on this (K6). Reads only.
    fn describe(&self) -> String {
        "an evloop future".to_string()
    }
}

/// The cell behind a `Future<T>`: a plain future, a task, a gather or a shield.
pub(crate) trait FutureObj<T>: CancelHook + Closable {
    fn core(&self) -> &FutureCore<T>;
    /// The task, if this future is a task's.
    fn task(&self) -> Option<&dyn TaskOps>;
    /// F6 / T3: what `cancel` means for this cell.
    fn cancel(&self, handle: &Future<T>, message: Option<Arc<str>>) -> bool;
    /// The cell as a gather, for the cancellation walk (G4 in bounded stack).
    fn as_gather(&self) -> Option<&dyn crate::gather::GatherNode> {
        None
    }
    /// Drops the last reference to this cell (a task cell gives its memory to its
    /// loop's pool: `task::pool`).
    fn release_last(self: Arc<Self>) {
        drop(self);
    }
}

/// A plain future's cell: just the state.
struct PlainCell<T> {
    core: FutureCore<T>,
}

impl<T: Send + 'static> CancelHook for PlainCell<T> {
    fn cancel_hook(self: Arc<Self>, message: Option<Arc<str>>) -> bool {
        let fut = Future::from_obj(self);
        fut.obj.core().cancel(message, &|| fut.clone())
    }

    fn describe(&self) -> String {
        format!("a future created at {}", self.core.created_at)
    }
}

impl<T: Send + 'static> FutureObj<T> for PlainCell<T> {
    fn core(&self) -> &FutureCore<T> {
        &self.core
    }

    fn task(&self) -> Option<&dyn TaskOps> {
        None
    }

    fn cancel(&self, handle: &Future<T>, message: Option<Arc<str>>) -> bool {
        self.core.cancel(message, &|| handle.clone())
    }

    fn release_last(self: Arc<Self>) {
        let loop_id = self.core.owner.shared.id;
        crate::task::pool::recycle(self, loop_id, None);
    }
}

impl<T: Send + 'static> Closable for PlainCell<T> {
    fn loop_closed(self: Arc<Self>) {
        let fut = Future::from_obj(self);
        fut.obj.core().close_pending(&|| fut.clone());
    }
}

impl<T> Drop for PlainCell<T> {
    fn drop(&mut self) {
        report_unretrieved(&self.core, "");
    }
}

/// F10: the last handle of a future cell is gone and nobody looked at its exception:
/// "Future exception was never retrieved ({kind}created at …)". Every future cell's
/// `Drop` calls it (a task's reports "Task exception" itself).
pub(crate) fn report_unretrieved<T>(core: &FutureCore<T>, kind: &str) {
    if let Some(err) = core.unretrieved_exception() {
        let ctx = ExceptionContext::new(format!(
            "Future exception was never retrieved ({kind}created at {})",
            core.created_at
        ))
        .with_exception(err)
        .with_source(ExceptionSource::Future);
        core.owner.call_exception_handler(ctx);
    }
}

/// Identifies a done-callback registration, for [`Future::remove_done_callback`].
///
/// Ids are unique in the process: an id is only ever accepted by the future that
/// issued it (another future's `remove_done_callback` returns 0 for it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CallbackId(CallbackKey);

/// A shared, loop-bound future: asyncio's `Future` (SPEC §3).
///
/// A `Future<T>` is a handle: clones name the same future (`==` is identity). It is
/// bound to one loop ([`get_loop`](Self::get_loop)); it can be completed, inspected and
/// awaited from any thread. States: pending, finished with a result, finished with an
/// exception, cancelled.
///
/// * Completion: [`set_result`](Self::set_result), [`set_exception`](Self::set_exception),
///   [`cancel`](Self::cancel) — from any thread; the first one wins.
/// * Done-callbacks ([`add_done_callback`](Self::add_done_callback)) are never called
///   synchronously: each is scheduled on the future's loop, in registration order,
///   and awaiters are woken through the same queue in the same order (F7).
/// * Awaiting (`T: Clone`) yields `Result<T, Error>` from any loop or thread (F9).
///   Inside an evloop task, awaiting a future is a cancellation point (T3).
///
/// `T` must be `Send + 'static`: the value may be handed over by another thread.
///
/// If the future's loop closes while it is pending and something outside that loop
/// waits on it (a task of another loop, a plain thread, a done-callback), it is
/// completed with `Error::InvalidState("event loop is closed")` (SPEC U2); awaiting a
/// pending future of a closed loop fails the same way at once.
///
/// ```
/// use evloop::{Future, LoopHandle};
///
/// let out = evloop::run(async {
///     let fut: Future<u32> = Future::new();
///     // A worker thread hands its result to the loop.
///     let worker = {
///         let fut = fut.clone();
///         std::thread::spawn(move || fut.set_result(42).unwrap())
///     };
///     let value = fut.await?;
///     worker.join().unwrap();
///     Ok::<_, evloop::Error>(value)
/// });
/// assert_eq!(out.unwrap(), 42);
/// ```
pub struct Future<T> {
    /// Taken only by `drop` (see there).
    pub(crate) obj: ManuallyDrop<Arc<dyn FutureObj<T>>>,
    /// This handle's awaiter registration, while it is being awaited.
    waiter: Option<EntryId>,
}

impl<T: Send + 'static> Future<T> {
    /// A pending future bound to the loop running on this thread (F1).
    ///
    /// # Panics
    ///
    /// With "no running event loop" when no evloop loop runs on this thread; use
    /// [`Future::with_loop`] or [`LoopHandle::create_future`] there.
    #[track_caller]
    #[allow(
        clippy::new_without_default,
        reason = "new() needs a running loop; a Default that panics off a loop would surprise"
    )]
    pub fn new() -> Future<T> {
        let created_at = Location::caller();
        match crate::context::with_current(|local| {
            let memory = local.cells.borrow_mut().take();
            Future::bound_to(local.handle.clone(), created_at, memory)
        }) {
            Some(fut) => fut,
            None => panic!(
                "evloop: Future::new(): no running event loop on this thread; use \
                 Future::with_loop(&handle) or handle.create_future() with a LoopHandle"
            ),
        }
    }

    /// A pending future bound to `owner`, from any thread.
    #[track_caller]
    pub fn with_loop(owner: &LoopHandle) -> Future<T> {
        // On the owner's thread, a free allocation from its pool (`task::pool`).
        let memory = crate::task::pool::take_on(owner.shared.id);
        Future::bound_to(owner.clone(), Location::caller(), memory)
    }

    fn bound_to(
        owner: LoopHandle,
        created_at: &'static Location<'static>,
        memory: Option<Pooled<PlainCell<T>>>,
    ) -> Future<T> {
        let memory = memory.unwrap_or_else(Pooled::fresh);
        Future::from_obj(memory.init(PlainCell {
            core: FutureCore::new(owner, created_at),
        }))
    }

    pub(crate) fn from_obj(obj: Arc<dyn FutureObj<T>>) -> Future<T> {
        Future {
            obj: ManuallyDrop::new(obj),
            waiter: None,
        }
    }

    fn core(&self) -> &FutureCore<T> {
        self.obj.core()
    }

    /// Whether the future is done: finished with a result or exception, or cancelled.
    pub fn done(&self) -> bool {
        self.core().is_done()
    }

    /// Whether the future was cancelled. A future that finished with an
    /// `Error::Cancelled` *exception* (as `gather` does) is not cancelled.
    pub fn cancelled(&self) -> bool {
        self.core().is_cancelled()
    }

    /// The loop this future is bound to (F2).
    pub fn get_loop(&self) -> LoopHandle {
        self.core().owner.clone()
    }

    /// Finishes the future with `value` (F3). Callable from any thread.
    ///
    /// # Errors
    ///
    /// `InvalidStateError` if the future is already done (cancelled included), or if it
    /// is a task's future (a task sets its own result, T2).
    pub fn set_result(&self, value: T) -> Result<(), InvalidStateError> {
        self.complete_external(Outcome::Value(value))
    }

    /// Finishes the future with an exception (F3). Callable from any thread. Setting an
    /// `Error::Cancelled` stores it as an exception: the future is not `cancelled()`.
    ///
    /// # Errors
    ///
    /// As [`set_result`](Self::set_result).
    pub fn set_exception(&self, error: impl Into<Error>) -> Result<(), InvalidStateError> {
        self.complete_external(Outcome::Exception(error.into()))
    }

    fn complete_external(&self, outcome: Outcome<T>) -> Result<(), InvalidStateError> {
        if self.obj.task().is_some() {
            return Err(InvalidStateError::new(
                "a task's result cannot be set from outside; it is what its coroutine returns",
            ));
        }
        self.core()
            .complete(outcome, &|| self.clone())
            .map_err(|_| InvalidStateError::new("the future is already done"))
    }

    /// The result (F4): `Ok(value)`, the exception as `Err`, `Err(Error::Cancelled)`
    /// when cancelled, `Err(Error::InvalidState)` while pending.
    ///
    /// # Errors
    ///
    /// As listed above.
    pub fn result(&self) -> Result<T, Error>
    where
        T: Clone,
    {
        self.core()
            .read(|done| done.result_cloned())
            .unwrap_or_else(|| Err(not_done("result")))
    }

    /// The exception (F5): `Ok(None)` after a result, `Ok(Some(e))` after an exception.
    ///
    /// # Errors
    ///
    /// `Error::Cancelled` when cancelled; `Error::InvalidState` while pending.
    pub fn exception(&self) -> Result<Option<Error>, Error> {
        self.core()
            .read(|done| done.exception())
            .unwrap_or_else(|| Err(not_done("exception")))
    }

    /// Cancels the future (F6): `false` if it is done; otherwise it becomes cancelled,
    /// callbacks are scheduled and awaiters woken, and `true` is returned. For a task's
    /// future this is a cancel request to the task (T3): the task is woken, and the
    /// evloop await it is suspended on (a `Future`, a `Task`, `sleep`, a socket, an
    /// `evloop::sync` wait, …) resolves with `Err(Error::Cancelled)`.
    ///
    /// A task suspended on a *foreign* future (another crate's channel, lock or timer)
    /// cannot be interrupted there: the request waits until the foreign future
    /// completes and the task reaches its next evloop await. Wrap such a future in
    /// [`task::cancellable`](crate::task::cancellable) to have it resolve with
    /// `Err(Cancelled)` at once (K4).
    pub fn cancel(&self) -> bool {
        self.obj.cancel(self, None)
    }

    /// [`cancel`](Self::cancel) with a message, carried by every later
    /// `Error::Cancelled` of this future.
    pub fn cancel_with(&self, message: impl Into<String>) -> bool {
        self.obj.cancel(self, Some(Arc::from(message.into())))
    }

    /// Awaits the result and *moves* it out, so `T` need not be `Clone` (for example a
    /// `File` from [`spawn_blocking`](crate::spawn_blocking)). Other handles of this
    /// future then see `Error::InvalidState` from `result()`; use the plain `.await`
    /// when the value must be shared. A loop-native await, like `.await` (T3).
    ///
    /// ```
    /// evloop::run(async {
    ///     let fut = evloop::Future::new();
    ///     fut.set_result(std::sync::Mutex::new(5)).unwrap(); // not Clone
    ///     let m = fut.clone().take().await.unwrap();
    ///     assert_eq!(*m.lock().unwrap(), 5);
    ///     assert!(fut.result_is_taken());
    /// });
    /// ```
    pub fn take(self) -> Take<T> {
        Take { fut: self }
    }

    /// Whether the value was moved out by [`take`](Self::take) or by awaiting a task.
    pub fn result_is_taken(&self) -> bool {
        self.read_done(|done| done.is_taken()).unwrap_or(false)
    }

    /// Registers `callback` to run on the future's loop once it is done (F7). It is
    /// never called synchronously: if the future is already done it is scheduled now.
    /// Callbacks run in registration order, each as its own loop callback (one that
    /// panics does not stop the others).
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    ///
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// evloop::run({
    ///     let seen = seen.clone();
    ///     async move {
    ///         let fut = evloop::Future::new();
    ///         for i in 0..3 {
    ///             let seen = seen.clone();
    ///             fut.add_done_callback(move |f: &evloop::Future<&str>| {
    ///                 seen.lock().unwrap().push((i, f.result().unwrap()));
    ///             });
    ///         }
    ///         fut.set_result("done").unwrap();
    ///         assert!(seen.lock().unwrap().is_empty(), "not synchronous");
    ///         evloop::yield_now().await.unwrap();
    ///     }
    /// });
    /// assert_eq!(*seen.lock().unwrap(), [(0, "done"), (1, "done"), (2, "done")]);
    /// ```
    pub fn add_done_callback<F>(&self, callback: F) -> CallbackId
    where
        F: FnOnce(&Future<T>) + Send + 'static,
    {
        CallbackId(self.core().add_callback(callback, &|| self.clone()))
    }

    /// Removes a registration (F8): the number removed, 0 once the future is done (a
    /// callback already scheduled still runs), and 0 for an id another future issued.
    /// The removed callback is dropped before this returns.
    pub fn remove_done_callback(&self, id: CallbackId) -> usize {
        self.core().remove_callback(id.0)
    }

    /// Registers an internal observer told `index` when this future completes.
    pub(crate) fn add_notify(&self, observer: std::sync::Weak<dyn Notify>, index: u32) {
        self.core().add_notify(observer, index, &|| self.clone());
    }

    /// The error of a done future (exception, or `Error::Cancelled` when cancelled),
    /// `None` for a result or while pending. Observes the outcome (F10).
    pub(crate) fn error(&self) -> Option<Error> {
        self.read_done(|done| done.error().err()).flatten()
    }

    /// Marks the outcome as observed (F10), e.g. by a combinator that handled it.
    pub(crate) fn mark_retrieved(&self) {
        self.core().mark_retrieved();
    }

    /// Reads the outcome under the future's lock; `None` while pending.
    pub(crate) fn read_done<R>(
        &self,
        read: impl FnOnce(&mut self::core::Done<'_, T>) -> R,
    ) -> Option<R> {
        self.core().read(read)
    }

    /// A pointer identifying the cell (identity, T7).
    pub(crate) fn cell_ptr(&self) -> *const () {
        Arc::as_ptr(&*self.obj) as *const ()
    }

    /// Polls for the outcome with `read`, as a loop-native await (T3, T7).
    #[inline]
    pub(crate) fn poll_outcome<R>(
        &mut self,
        cx: &mut Context<'_>,
        read: impl FnOnce(&mut self::core::Done<'_, T>) -> Result<R, Error>,
    ) -> Poll<Result<R, Error>> {
        if let Some(cancelled) = coop::take_cancel() {
            // As asyncio: if the awaited future ended cancelled itself, its own
            // cancellation is what the coroutine sees (the request is consumed with it).
            if self.cancelled() {
                if let Some(Err(own)) = self.read_done(|done| done.error()) {
                    return Poll::Ready(Err(own));
                }
            }
            return Poll::Ready(Err(cancelled));
        }
        if coop::is_current(self.cell_ptr()) {
            return Poll::Ready(Err(Error::InvalidState(InvalidStateError::new(
                "task cannot await on itself",
            ))));
        }
        // A future found done spends the task's cooperative budget (K7).
        crate::task::budget::budgeted(cx, |cx| {
            let obj = &*self.obj;
            let handle = || Future::from_obj(obj.clone());
            match obj.core().poll_with(cx, &mut self.waiter, &handle, read) {
                Poll::Ready(r) => Poll::Ready(r),
                Poll::Pending => {
                    coop::suspended_on(self.cell_ptr(), || {
                        let hook: Arc<dyn CancelHook> = obj.clone();
                        hook
                    });
                    Poll::Pending
                }
            }
        })
    }
}

/// Future returned by [`Future::take`]: the result, moved out.
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct Take<T> {
    fut: Future<T>,
}

impl<T: Send + 'static> StdFuture for Take<T> {
    type Output = Result<T, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.fut.poll_outcome(cx, |done| done.result_taken())
    }
}

impl<T: Send + 'static> fmt::Debug for Take<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Take").field(&self.fut).finish()
    }
}

fn not_done(what: &str) -> Error {
    Error::InvalidState(InvalidStateError::new(format!(
        "{what}: the future is not done yet"
    )))
}

impl<T> Clone for Future<T> {
    /// Another handle to the same future.
    fn clone(&self) -> Future<T> {
        Future {
            obj: self.obj.clone(),
            waiter: None,
        }
    }
}

impl<T> Drop for Future<T> {
    #[inline]
    fn drop(&mut self) {
        if let Some(id) = self.waiter.take() {
            self.abandon(id);
        }
        // SAFETY: `obj` is not used after this line: this is the handle's drop.
        let obj = unsafe { ManuallyDrop::take(&mut self.obj) };
        // The last handle, while a cell is dropping what it holds: free this cell
        // afterwards, not inside that drop (rule 3: bounded stack, see `flat_drop`).
        if Arc::strong_count(&obj) == 1 {
            if crate::flat_drop::draining() {
                let cell: Arc<dyn CancelHook> = obj;
                crate::flat_drop::defer(cell);
            } else {
                obj.release_last();
            }
        }
    }
}

impl<T> Future<T> {
    /// Abandoned while pending (a select, a timeout): unregister the waker, and stop the
    /// current task from cancelling a future it no longer awaits.
    #[cold]
    #[inline(never)]
    fn abandon(&self, id: EntryId) {
        self.obj.core().remove_waiter(id);
        coop::forget(Arc::as_ptr(&*self.obj) as *const ());
    }
}

impl<T: Send + Clone + 'static> StdFuture for Future<T> {
    type Output = Result<T, Error>;

    /// F9: the result (cloned) or the error; does not suspend when already done.
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.poll_outcome(cx, |done| done.result_cloned())
    }
}

impl<T: Send + 'static> PartialEq for Future<T> {
    /// Identity: clones are equal (F11).
    fn eq(&self, other: &Future<T>) -> bool {
        self.cell_ptr() == other.cell_ptr()
    }
}

impl<T: Send + 'static> Eq for Future<T> {}

impl<T: Send + 'static> Hash for Future<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.cell_ptr().hash(state);
    }
}

impl<T: Send + 'static> fmt::Debug for Future<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if !self.done() {
            "pending"
        } else if self.cancelled() {
            "cancelled"
        } else {
            "finished"
        };
        let mut d = f.debug_struct("Future");
        d.field("state", &state)
            .field("loop", &self.core().owner.id());
        if let Some(task) = self.obj.task() {
            d.field("task", &task.header().id);
        }
        d.finish()
    }
}

impl LoopHandle {
    /// A pending future bound to this loop (asyncio's `loop.create_future()`), from
    /// any thread.
    #[track_caller]
    pub fn create_future<T: Send + 'static>(&self) -> Future<T> {
        Future::with_loop(self)
    }
}

fn _assert_kinds() {
    fn kinds<T: Send + Sync + Clone + Unpin + Eq + Hash + fmt::Debug>() {}
    kinds::<Future<u8>>();
    // Sound for `T: Send` only, because values are only touched under the lock.
    kinds::<Future<std::cell::Cell<u8>>>();
}
