//! The task record: one allocation holding the task's future state, its scheduling
//! header and its coroutine.
//!
//! Owns: polling a coroutine (T1, T6), turning its output into the task's outcome
//! (T3's "Ok with an undelivered request ends cancelled"), cancel requests (T3, T4),
//! abort (T5) and waking (local fast path, cross-thread slow path). Must not touch: the
//! slab or the ready queue directly — it asks `core::Local` to schedule.
//!
//! Thread rules. The coroutine (`stage`) and [`TaskLocal`] are touched only on the
//! task's loop thread; that is what allows `!Send` coroutines. The future state
//! (`core`) is `Sync`. Wakers and handles may live on any thread; waking from another
//! thread sends the task's `Arc` through the cross-thread queue.

use std::cell::UnsafeCell;
use std::future::Future as StdFuture;
use std::mem::ManuallyDrop;
use std::panic::{AssertUnwindSafe, Location, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use super::coop;
use super::header::TaskHeader;
use super::pool::Pooled;
use crate::closing::Closable;
use crate::context;
use crate::core::Local;
use crate::error::{CancelledError, Error};
use crate::exception::ExceptionContext;
use crate::future::{CancelHook, Future, FutureCore, FutureObj, Outcome};
use crate::handle::LoopHandle;
use crate::reactor::TaskWake;
use crate::self_arc::SelfArc;
use crate::shared::Remote;

/// What the loop must do with a task after running it.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RunResult {
    /// Still running: put it back in its slot.
    Pending,
    /// Finished (result, exception or cancelled): free its slot.
    Done,
}

/// A task as the loop sees it, whatever its output and coroutine types.
pub(crate) trait Runnable: TaskOps + TaskWake + 'static {
    /// Polls the coroutine once (loop thread).
    fn run(&self, local: &Local) -> RunResult;
    /// Drops the coroutine and ends the task cancelled, unless it is done (loop thread,
    /// not while it is being polled).
    fn abort_now(&self);
    /// Applies a cancel request on the loop thread (T3).
    fn apply_cancel(&self, message: Option<Arc<str>>);
    /// Ends a task that never reached its loop (spawned on, or queued to, a closed
    /// loop, L14): the coroutine is dropped on this thread and the task is cancelled.
    fn abort_unstarted(&self);
    fn is_done(&self) -> bool;
    fn is_cancelled(&self) -> bool;
    /// Where the task was created (K6).
    fn created_at(&self) -> &'static Location<'static>;
    /// The cell as a type-erased handle.
    fn to_runnable(&self) -> Arc<dyn Runnable>;
    fn owner(&self) -> &LoopHandle;
    /// The vtable of this task's wakers (to recognise them: `coop`).
    fn waker_vtable(&self) -> &'static std::task::RawWakerVTable;
    /// Drops the last reference, giving the memory to the loop's pool (`task::pool`);
    /// `local`: the loop's core, when the caller has it.
    fn release_last(self: Arc<Self>, local: Option<&Local>);
}

enum Stage<F> {
    Running(F),
    Finished,
}

/// One task: future state, header and coroutine in a single allocation.
pub(crate) struct TaskCell<T, F> {
    /// This cell's own `Arc` (see `self_arc`).
    me: SelfArc<Self>,
    core: FutureCore<T>,
    header: TaskHeader,
    /// Loop thread only (see the module docs).
    stage: UnsafeCell<Stage<F>>,
    /// Created with `LoopHandle::spawn` (`F: Send`): may be dropped on any thread.
    is_send: bool,
}

// SAFETY: `core` and `header` are `Sync` (atomics, mutexes, `LoopLocal`). `stage` holds
// a coroutine that may be `!Send`; it is only accessed on the task's loop thread: `run`
// and `abort_now` are called by that loop (they assert it), and the loop keeps the
// task alive in its slab until the coroutine is dropped there. Other threads only
// touch `core`, the atomics of `header`, and the `Arc` count. `T: Send` because the
// outcome may be moved to or dropped on another thread.
unsafe impl<T: Send, F> Send for TaskCell<T, F> {}
// SAFETY: see `Send`.
unsafe impl<T: Send, F> Sync for TaskCell<T, F> {}

type Coro<T> = dyn StdFuture<Output = Result<T, Error>>;

impl<T, F> TaskCell<T, F>
where
    T: Send + 'static,
    F: StdFuture<Output = Result<T, Error>> + 'static,
{
    #[inline]
    pub(crate) fn new(
        owner: LoopHandle,
        coro: F,
        is_send: bool,
        created_at: &'static Location<'static>,
        memory: Option<Pooled<Self>>,
    ) -> Arc<Self> {
        let loop_id = owner.shared.id;
        // A free allocation from the loop's pool (`task::pool`), or a fresh one.
        let uninit = memory.unwrap_or_else(Pooled::fresh);
        let ptr = uninit.as_mut_ptr();
        // SAFETY: `uninit` is the only reference to its allocation (`Pooled`'s invariant)
        // and no `&` to its contents exists, so writing each field through the
        // allocation's own pointer is allowed; every field is written before
        // `assume_init`. Field by field, so the cell is built in place
        // instead of on the stack and copied; `me` gets the allocation's own pointer
        // (`Arc::new_cyclic` would cost a locked increment, see `self_arc`).
        unsafe {
            (&raw mut (*ptr).me).write(SelfArc::pointing_at(ptr));
            (&raw mut (*ptr).core).write(FutureCore::new(owner, created_at));
            (&raw mut (*ptr).header).write(TaskHeader::new(loop_id, crate::contextvar::capture()));
            (&raw mut (*ptr).stage).write(UnsafeCell::new(Stage::Running(coro)));
            (&raw mut (*ptr).is_send).write(is_send);
            uninit.assume_init()
        }
    }

    /// An owned `Arc` to this cell.
    fn arc(&self) -> Arc<Self> {
        // SAFETY: every `TaskCell` is created by `TaskCell::new` inside an `Arc` and is
        // only reached through one, and no `arc()` call happens from its `Drop`, so
        // the strong count is at least 1 while `&self` exists.
        unsafe { self.me.arc() }
    }

    fn handle(&self) -> Future<T> {
        Future::from_obj(self.arc())
    }

    /// Completes the task's future (at most once) and drops the coroutine.
    fn finish(&self, outcome: Outcome<T>) {
        // Dropped after the borrow: a hook may hold the last handle of a future.
        let hooks = self.header.local.get().borrow_mut().waiters.take_all();
        drop(hooks);
        // SAFETY: loop thread only (asserted just above by `LoopLocal::get`), and never
        // while the coroutine is being polled: `run` calls this after the poll returned.
        unsafe { self.drop_coroutine("Exception while dropping a finished task") };
        let _ = self.core.complete(outcome, &|| self.handle());
    }

    /// Drops the coroutine in place. Its destructors are user code (an unstarted
    /// coroutine still owns everything it captured): a panic there is reported with
    /// `what` and never escapes into the loop (L9).
    ///
    /// # Safety
    ///
    /// Loop thread only, and not while the coroutine is being polled.
    unsafe fn drop_coroutine(&self, what: &str) {
        // SAFETY: the caller's contract: nothing else touches `stage` now. (Futures the
        // coroutine held free what they hold in their own `flat_drop` scopes.)
        let dropped = catch_unwind(AssertUnwindSafe(|| unsafe {
            *self.stage.get() = Stage::Finished
        }));
        if let Err(payload) = dropped {
            // Whatever the unwind left in `stage` (the assignment writes `Finished`
            // even on unwind), make sure it is `Finished` without dropping anything
            // twice.
            // SAFETY: as above; `write` does not drop the old value.
            unsafe { std::ptr::write(self.stage.get(), Stage::Finished) };
            self.core.owner.call_exception_handler(
                ExceptionContext::new(what)
                    .with_exception(Error::from_panic(payload))
                    .with_source(self.header.source()),
            );
        }
    }

    /// Cancel request from any thread (T3). `false` if the task is done.
    pub(crate) fn request_cancel(&self, message: Option<Arc<str>>) -> bool {
        self.core.mark_retrieved();
        if self.core.is_done() {
            return false;
        }
        self.header.add_cancel_request();
        if context::current_id() == self.header.loop_id() {
            coop::apply_cancel_flat(self, message);
        } else {
            let task = self.arc();
            self.core
                .owner
                .call_soon(move || coop::apply_cancel_flat(&*task, message));
        }
        true
    }

    /// T4: withdraws one request; at 0 an undelivered request is dropped.
    pub(crate) fn uncancel(&self) -> usize {
        let prev = self.header.withdraw_cancel_request();
        let now = prev.saturating_sub(1);
        if now == 0 && prev > 0 {
            if context::current_id() == self.header.loop_id() {
                self.header.local.get().borrow_mut().must_cancel = false;
            } else {
                let task = self.arc();
                self.core.owner.call_soon(move || {
                    if task.header.cancelling() == 0 {
                        task.header.local.get().borrow_mut().must_cancel = false;
                    }
                });
            }
        }
        now
    }

    /// T5 from any thread.
    pub(crate) fn request_abort(&self) {
        if self.core.is_done() {
            return;
        }
        if context::current_id() == self.header.loop_id() {
            crate::core::abort_task(&self.to_runnable());
        } else {
            let task = self.to_runnable();
            self.core
                .owner
                .call_soon(move || crate::core::abort_task(&task));
        }
    }
}

impl<T, F> Runnable for TaskCell<T, F>
where
    T: Send + 'static,
    F: StdFuture<Output = Result<T, Error>> + 'static,
{
    fn run(&self, local: &Local) -> RunResult {
        self.header.unschedule();
        let (cancel_first, hooks) = {
            let mut state = self.header.local.get().borrow_mut();
            let hooks = state.waiters.take_all();
            let first = !state.started;
            state.started = true;
            state.polling = true;
            // K6: what a dump reports (the await that suspends records what it waits on).
            state.polls = state.polls.saturating_add(1);
            state.last_poll = local.iteration_time();
            state.waiting = super::dump::Waiting::Nothing;
            (
                (first && state.must_cancel).then(|| state.message.clone()),
                hooks,
            )
        };
        // After the borrow (rule 1): a hook may hold the last handle of a future.
        drop(hooks);
        if let Some(message) = cancel_first {
            // Cancelled before its first poll: the body never runs (T3).
            self.header.local.get().borrow_mut().polling = false;
            self.finish(Outcome::Cancelled(CancelledError::from_arc(message)));
            return RunResult::Done;
        }
        let waker = waker_ref(self);
        let mut cx = Context::from_waker(&waker);
        let start = local.debug_timer();
        let polled = {
            let _current = coop::enter(self);
            let _budget = super::budget::enter(local.coop_budget());
            // SAFETY: loop thread only (asserted by `LoopLocal::get` above); the task is
            // out of the slab while it runs, so nothing else polls or drops the
            // coroutine now; the coroutine is never moved (it lives in the `Arc`).
            let stage = unsafe { &mut *self.stage.get() };
            match stage {
                Stage::Running(coro) => {
                    // SAFETY: the coroutine stays pinned in the `Arc` allocation until
                    // `finish` drops it in place.
                    let coro = unsafe { Pin::new_unchecked(coro as &mut Coro<T>) };
                    catch_unwind(AssertUnwindSafe(|| coro.poll(&mut cx)))
                }
                Stage::Finished => return RunResult::Done,
            }
        };
        local.check_slow(start, SlowTask(self));
        let (must_cancel, message, abort) = {
            let mut state = self.header.local.get().borrow_mut();
            state.polling = false;
            (
                state.must_cancel,
                state.message.clone(),
                state.abort_requested,
            )
        };
        let outcome = match polled {
            Ok(Poll::Pending) if abort => Outcome::Cancelled(CancelledError::from_arc(message)),
            Ok(Poll::Pending) => return RunResult::Pending,
            // The coroutine returned normally with a request still undelivered (T3).
            Ok(Poll::Ready(Ok(_))) if must_cancel => {
                Outcome::Cancelled(CancelledError::from_arc(message))
            }
            Ok(Poll::Ready(Ok(value))) => Outcome::Value(value),
            Ok(Poll::Ready(Err(Error::Cancelled(c)))) => Outcome::Cancelled(c),
            Ok(Poll::Ready(Err(e))) => Outcome::Exception(e),
            Err(payload) => Outcome::Exception(Error::from_panic(payload)),
        };
        self.finish(outcome);
        RunResult::Done
    }

    fn abort_now(&self) {
        if self.core.is_done() {
            return;
        }
        let (message, hooks) = {
            let mut state = self.header.local.get().borrow_mut();
            if state.polling {
                state.abort_requested = true;
                return;
            }
            (state.message.clone(), state.waiters.take_all())
        };
        drop(hooks);
        // Dropping the coroutine runs user destructors: keep the loop alive if one
        // panics, and still end the task cancelled.
        // SAFETY: loop thread (asserted above) and not polling.
        unsafe { self.drop_coroutine("Exception while dropping an aborted task") };
        let _ = self.core.complete(
            Outcome::Cancelled(CancelledError::from_arc(message)),
            &|| self.handle(),
        );
    }

    fn apply_cancel(&self, message: Option<Arc<str>>) {
        if self.core.is_done() {
            return;
        }
        // Cancel what the task is suspended on (T3); the task then resumes with
        // `Err(Cancelled)` from that await.
        let waiters: Vec<_> = self
            .header
            .local
            .get()
            .borrow_mut()
            .waiters
            .take()
            .collect();
        // Each under its own catch: one panicking cancellation (a destructor freed by
        // it) does not spare the other awaited futures (rule 2).
        let mut cancelled_one = false;
        crate::exception::for_each_catching(
            &self.core.owner,
            "Exception while cancelling what a task awaits",
            self.header.source(),
            waiters,
            |waiter| cancelled_one |= waiter.cancel_hook(message.clone()),
        );
        if cancelled_one {
            return;
        }
        {
            let mut state = self.header.local.get().borrow_mut();
            state.must_cancel = true;
            state.message = message;
        }
        super::coop::bump_cancel_epoch();
        // Wake it so the request reaches the coroutine's next loop-native await.
        Wake::wake_by_ref(&self.arc());
    }

    fn abort_unstarted(&self) {
        assert!(
            self.is_send,
            "only tasks from LoopHandle::spawn can end off their loop"
        );
        // SAFETY: the task never reached its loop: it was created by `spawn` on a closed
        // loop, or popped from a closed loop's cross-thread queue. It was never inserted
        // in a slab nor polled, so no loop, waker or poll can reach `stage`; its
        // coroutine is `Send` (asserted), so dropping it on this thread is fine.
        unsafe { *self.stage.get() = Stage::Finished };
        let _ = self
            .core
            .complete(Outcome::Cancelled(CancelledError::new(None)), &|| {
                self.handle()
            });
    }

    fn is_done(&self) -> bool {
        self.core.is_done()
    }

    fn created_at(&self) -> &'static Location<'static> {
        self.core.created_at
    }

    fn is_cancelled(&self) -> bool {
        self.core.is_cancelled()
    }

    fn to_runnable(&self) -> Arc<dyn Runnable> {
        self.arc()
    }

    fn owner(&self) -> &LoopHandle {
        &self.core.owner
    }

    fn waker_vtable(&self) -> &'static std::task::RawWakerVTable {
        waker_ref(self).vtable()
    }

    fn release_last(self: Arc<Self>, local: Option<&Local>) {
        let loop_id = self.core.owner.shared.id;
        super::pool::recycle(self, loop_id, local);
    }
}

impl<T, F> Wake for TaskCell<T, F>
where
    T: Send + 'static,
    F: StdFuture<Output = Result<T, Error>> + 'static,
{
    fn wake(self: Arc<Self>) {
        if context::with_local(self.header.loop_id(), |local| {
            local.schedule_task(&self.header)
        })
        .is_none()
            && !self.core.owner.is_closed()
        {
            let owner = self.core.owner.clone();
            owner.shared.push_remote(Remote::Wake(self));
        }
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if context::with_local(self.header.loop_id(), |local| {
            local.schedule_task(&self.header)
        })
        .is_none()
            && !self.core.owner.is_closed()
        {
            // (A closed loop runs nothing: pushing would only make this thread drain
            // its queue, dropping other producers' closures — perhaps under another
            // loop's reactor borrow, where this may be woken in place.)
            self.core
                .owner
                .shared
                .push_remote(Remote::Wake(self.clone()));
        }
    }
}

/// A `Waker` for one poll that borrows the task's reference instead of taking one:
/// no reference-count traffic unless the coroutine clones it.
fn waker_ref<T, F>(cell: &TaskCell<T, F>) -> ManuallyDrop<Waker>
where
    T: Send + 'static,
    F: StdFuture<Output = Result<T, Error>> + 'static,
{
    // SAFETY: the cell lives in an `Arc` (see `TaskCell::arc`), which the caller keeps
    // alive for longer than the returned waker is used; `me` points at it with
    // provenance for the whole allocation. `Arc::from_raw` re-creates that `Arc`
    // without touching the count, and `ManuallyDrop` ensures the borrowed reference is
    // never released; clones made from the waker increment the count normally.
    ManuallyDrop::new(Waker::from(unsafe { Arc::from_raw(cell.me.as_ptr()) }))
}

impl<T, F> TaskWake for TaskCell<T, F>
where
    T: Send + 'static,
    F: StdFuture<Output = Result<T, Error>> + 'static,
{
    fn wake_task(self: Arc<Self>) {
        Wake::wake(self);
    }
}

impl<T, F> Closable for TaskCell<T, F>
where
    T: Send + 'static,
    F: StdFuture<Output = Result<T, Error>> + 'static,
{
    /// The loop aborts its tasks before it closes; one still pending here (spawned
    /// while the loop closed) is aborted now if this is its loop's thread.
    fn loop_closed(self: Arc<Self>) {
        if !self.core.is_done() && context::current_id() == self.header.loop_id() {
            self.abort_now();
        }
    }
}

impl<T, F> CancelHook for TaskCell<T, F>
where
    T: Send + 'static,
    F: StdFuture<Output = Result<T, Error>> + 'static,
{
    fn cancel_hook(self: Arc<Self>, message: Option<Arc<str>>) -> bool {
        self.request_cancel(message)
    }

    fn describe(&self) -> String {
        format!(
            "task {} {:?} (created at {})",
            self.header.id,
            self.header.name(),
            self.core.created_at
        )
    }
}

impl<T, F> FutureObj<T> for TaskCell<T, F>
where
    T: Send + 'static,
    F: StdFuture<Output = Result<T, Error>> + 'static,
{
    fn core(&self) -> &FutureCore<T> {
        &self.core
    }

    fn task(&self) -> Option<&dyn TaskOps> {
        Some(self)
    }

    fn cancel(&self, _handle: &Future<T>, message: Option<Arc<str>>) -> bool {
        self.request_cancel(message)
    }

    fn release_last(self: Arc<Self>) {
        Runnable::release_last(self, None);
    }
}

/// Task operations reachable from a `Future<T>` view or a `TaskRef`.
pub(crate) trait TaskOps: Send + Sync {
    fn header(&self) -> &TaskHeader;
    fn uncancel(&self) -> usize;
    fn abort(&self);
    fn cancel(&self, message: Option<Arc<str>>) -> bool;
    fn runnable(&self) -> Arc<dyn Runnable>;
}

impl<T, F> TaskOps for TaskCell<T, F>
where
    T: Send + 'static,
    F: StdFuture<Output = Result<T, Error>> + 'static,
{
    fn header(&self) -> &TaskHeader {
        &self.header
    }

    fn uncancel(&self) -> usize {
        TaskCell::uncancel(self)
    }

    fn abort(&self) {
        self.request_abort();
    }

    fn cancel(&self, message: Option<Arc<str>>) -> bool {
        self.request_cancel(message)
    }

    fn runnable(&self) -> Arc<dyn Runnable> {
        self.arc()
    }
}

/// What a slow poll of a task is called in the debug-mode warning (L10): built only when
/// the warning is logged.
struct SlowTask<'a, T, F>(&'a TaskCell<T, F>);

impl<T, F> std::fmt::Display for SlowTask<'_, T, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cell = self.0;
        write!(
            f,
            "a poll of task '{}' (created at {})",
            cell.header.name(),
            cell.core.created_at
        )
    }
}

impl<T, F> Drop for TaskCell<T, F> {
    fn drop(&mut self) {
        // F10: the last reference is gone and nobody looked at the exception.
        if let Some(err) = self.core.unretrieved_exception() {
            let ctx = ExceptionContext::new(format!(
                "Task exception was never retrieved (created at {})",
                self.core.created_at
            ))
            .with_exception(err)
            .with_source(self.header.source());
            self.core.owner.call_exception_handler(ctx);
        }
        let running = matches!(self.stage.get_mut(), Stage::Running(_));
        if running && !self.is_send && context::current_id() != self.header.loop_id() {
            // A `!Send` coroutine must not be dropped off its thread. The loop drops
            // every coroutine before releasing a task, so this is unreachable; if it
            // ever happens, leaking is the only sound choice.
            log::error!(target: "evloop", "task {} leaked: its !Send coroutine outlived its loop thread", self.header.id);
            let stage = std::mem::replace(self.stage.get_mut(), Stage::Finished);
            std::mem::forget(stage);
        }
    }
}
#[cfg(test)]
mod tests {
    /// P14 (bytes per idle task): the sizes issue 17 brought down — the cell of a task
    /// with a trivial coroutine from 376 to 256 bytes (header 200 → 128, the task's
    /// loop-thread state 120 → 88, `Error` and so every outcome 40 → 24). A field added
    /// to a task or a future shows up here first.
    #[test]
    fn a_task_cell_stays_small() {
        use std::mem::size_of;
        type Coro = std::future::Ready<Result<u32, crate::Error>>;
        assert!(size_of::<crate::Error>() <= 24, "Error is three words");
        assert!(size_of::<super::coop::TaskLocal>() <= 88);
        assert!(size_of::<super::TaskHeader>() <= 128);
        assert!(size_of::<crate::future::FutureCore<u32>>() <= 88);
        assert!(size_of::<super::TaskCell<u32, Coro>>() <= 256);
    }
}
