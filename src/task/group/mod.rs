//! [`TaskGroup`] (SPEC §14 K1): asyncio's `TaskGroup` with tokio's `JoinSet::join_next`.
//!
//! Owns: the group's children, its failure rule (asyncio's `_on_task_done`,
//! `_abort`, `_parent_cancel_requested`), and the futures of `join` / `join_next`.
//! Must not touch: the children's state machine (a child is observed through a
//! `Notify` entry in its own registration list, and read with the future accessors once
//! done) or the parent's cancellation state (only `cancel` / `uncancel` /
//! `cancelling` of its `TaskRef`, and `coop::take_cancel` in the waits).
//!
//! How a completion travels: the child's future tells the group's cell (`Notify`,
//! synchronously, on the completing thread) its index; the cell queues it and
//! schedules one batch callback on the loop (asyncio runs `_on_task_done` as a
//! done-callback: the same iteration). The batch, on the loop thread, moves the child
//! from `pending` to the `done` queue (completion order), applies the failure rule,
//! and wakes `join` (when nothing is pending) or `join_next`. Every effect that runs
//! user code — cancelling children or the parent, waking, dropping children's values
//! — is collected under the `RefCell` borrow and carried out after it, each under its
//! own catch (rules 1 and 2).

mod state;
mod wait;

pub use wait::{Join, JoinNext};

use std::cell::{OnceCell, RefCell};
use std::fmt;
use std::future::Future as StdFuture;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, Weak};

use self::state::{Effects, GroupCell, State, invalid, rethrow};
use super::{Task, create_task, current_task};
use crate::error::Error;
use crate::future::Notify;
use crate::handle::LoopHandle;
use crate::sync::catch;
use crate::task::coop::LoopLocal;

/// A group of tasks that finish together: asyncio's `TaskGroup` (SPEC §14 K1), with
/// tokio's `JoinSet::join_next`.
///
/// `async with asyncio.TaskGroup() as tg:` becomes `let tg = TaskGroup::new();`,
/// `tg.spawn(coro)?` for each child, and `tg.join().await` where the block ends:
///
/// * [`join`](Self::join) waits for every child. The first child that *fails* (ends
///   with an error that is not a cancellation; a panic counts) cancels every other
///   child, and requests the cancellation of the group's parent task once, so the body
///   is interrupted at its next evloop await (asyncio's `_parent_cancel_requested`).
///   `join` then waits for all children, withdraws that request (`uncancel`), and
///   returns `Err(Error::Group(..))` with every child error in completion order.
///   Children that were cancelled are not errors.
/// * A parent cancelled while in `join` cancels the children, waits for them, and
///   returns `Err(Cancelled)` — or the [`ExceptionGroup`](crate::ExceptionGroup) if children failed too
///   (asyncio: errors have priority; the outside request then stays pending, so the
///   parent's next await is cancelled, as Python 3.13 does).
/// * [`join_next`](Self::join_next) returns the children's results one by one, as they
///   finish (tokio's `JoinSet`).
///
/// The *parent* is the task running when the group is first used (its first `spawn`,
/// `join` or `join_next`) — asyncio's `__aenter__`. The group binds to that loop.
///
/// In Rust the body is not a block the group can see: if the body propagates the
/// group's cancellation with `?` before reaching `join`, the group is dropped — its
/// children are cancelled and its request withdrawn, but the children's errors are not
/// returned (they are reported as "never retrieved"). Await `join` whatever the body's
/// outcome when the errors matter.
///
/// A finished child stays in the group (its task handle, and its value) until
/// `join_next` returns it or `join` ends, as in a `JoinSet`: a long-lived group that
/// keeps spawning should reap with `join_next`.
///
/// Dropping a group cancels (T3, not abort) its unfinished children. A group is
/// loop-local (`!Send`); share it with its children through an `Rc` to let them spawn
/// siblings.
///
/// ```
/// use std::time::Duration;
/// use evloop::{Error, TaskGroup, time::sleep};
///
/// let out = evloop::run(async {
///     evloop::create_task(async {
///         let tg = TaskGroup::new();
///         let slow = tg.spawn(async {
///             sleep(Duration::from_secs(3600)).await?; // cancelled by the failure
///             Ok(())
///         })?;
///         tg.spawn(async { Err(Error::msg("boom")) })?;
///         let err = tg.join().await.unwrap_err();
///         assert!(slow.cancelled());
///         Ok::<_, Error>(err.to_string())
///     })
///     .await
/// });
/// assert_eq!(out.unwrap(), "unhandled errors in a TaskGroup (1 sub-exception): [boom]");
/// ```
pub struct TaskGroup<T: Send + 'static = ()> {
    cell: OnceCell<Arc<GroupCell<T>>>,
    /// Loop-local: `!Send` and `!Sync`.
    _local: PhantomData<Rc<()>>,
}

impl<T: Send + 'static> Default for TaskGroup<T> {
    fn default() -> Self {
        TaskGroup::new()
    }
}

impl<T: Send + 'static> TaskGroup<T> {
    /// An empty group, bound to no loop yet: the first [`spawn`](Self::spawn),
    /// [`join`](Self::join) or [`join_next`](Self::join_next) binds it to the running
    /// loop and makes the running task its parent.
    ///
    /// ```
    /// let tg: evloop::TaskGroup<u8> = evloop::TaskGroup::new();
    /// assert!(tg.is_empty());
    /// ```
    pub const fn new() -> TaskGroup<T> {
        TaskGroup {
            cell: OnceCell::new(),
            _local: PhantomData,
        }
    }

    #[track_caller]
    fn bind(&self) -> &Arc<GroupCell<T>> {
        self.cell.get_or_init(|| {
            let owner = LoopHandle::try_current().unwrap_or_else(|| {
                panic!(
                    "evloop::TaskGroup: no running event loop on this thread; use a task \
                     group from a task or from the future of Runtime::block_on"
                )
            });
            Arc::new(GroupCell {
                state: LoopLocal::new(owner.id(), RefCell::new(State::new(current_task()))),
                owner,
                completed: Mutex::new(Vec::new()),
                batch_scheduled: AtomicBool::new(false),
            })
        })
    }

    /// Starts `coro` as a child task of the group on the current loop (asyncio's
    /// `tg.create_task`), as [`create_task`](crate::create_task) does: no `Send`
    /// bound, never started synchronously.
    ///
    /// ```
    /// let sum = evloop::run(async {
    ///     let tg = evloop::TaskGroup::new();
    ///     let a = tg.spawn(async { Ok(1) })?;
    ///     let b = tg.spawn(async { Ok(2) })?;
    ///     tg.join().await?;
    ///     Ok::<_, evloop::Error>(a.result()? + b.result()?)
    /// });
    /// assert_eq!(sum.unwrap(), 3);
    /// ```
    ///
    /// # Errors
    ///
    /// `Error::InvalidState` — and `coro` is dropped unstarted — when the group
    /// is finished (`join` returned, or is returning: nothing was left to wait for) or
    /// shutting down (a child failed, or the parent was cancelled while joining), as
    /// asyncio raises `RuntimeError("TaskGroup … is finished" / "is shutting down")`.
    /// Spawning while `join` waits for other children is allowed.
    ///
    /// # Panics
    ///
    /// When no evloop loop runs on this thread, or on another loop than the group's.
    #[track_caller]
    pub fn spawn<F>(&self, coro: F) -> Result<Task<T>, Error>
    where
        F: StdFuture<Output = Result<T, Error>> + 'static,
    {
        let cell = self.bind();
        let refusal = cell.state().borrow().refusal();
        if let Some(message) = refusal {
            drop(coro); // user code: after the borrow
            return Err(invalid(message));
        }
        let task = create_task(coro);
        let child = task.future();
        let index = cell.state().borrow_mut().pending.insert(child.clone());
        let index = u32::try_from(index).expect("evloop::TaskGroup: fewer than 2^32 children");
        let observer: Weak<dyn Notify> = Arc::downgrade(cell) as Weak<dyn Notify>;
        child.add_notify(observer, index);
        Ok(task)
    }

    /// The number of children not yet finished, plus those finished but not yet
    /// returned by [`join_next`](Self::join_next).
    pub fn len(&self) -> usize {
        self.cell
            .get()
            .and_then(|cell| cell.try_state())
            .map_or(0, |st| {
                let st = st.borrow();
                st.pending.len() + st.done.len()
            })
    }

    /// Cancels (T3) every unfinished child and puts the group in its shutting-down
    /// state, so `spawn` is refused (asyncio's `TaskGroup._abort`, which its
    /// `__aexit__` runs when the body raised; tokio's `abort_all`, but cooperative:
    /// the children may clean up). Returns the number of children asked to cancel.
    ///
    /// For a body that fails or is cancelled before `join`: `tg.cancel_all()`, then
    /// `tg.join().await` still waits for the children and returns their failures.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// evloop::run(async {
    ///     let tg = evloop::TaskGroup::new();
    ///     let child = tg.spawn(async {
    ///         evloop::time::sleep(Duration::from_secs(3600)).await?;
    ///         Ok(())
    ///     })?;
    ///     assert_eq!(tg.cancel_all(), 1);
    ///     assert!(tg.spawn(async { Ok(()) }).unwrap_err().is_invalid_state());
    ///     tg.join().await?; // a cancelled child is not an error
    ///     assert!(child.cancelled());
    ///     Ok::<(), evloop::Error>(())
    /// })
    /// .unwrap();
    /// ```
    ///
    /// # Panics
    ///
    /// As [`spawn`](Self::spawn).
    #[track_caller]
    pub fn cancel_all(&self) -> usize {
        let mut effects = Effects::new();
        self.bind().state().borrow_mut().abort(&mut effects);
        let asked = effects.cancel.len();
        effects.apply();
        asked
    }

    /// Whether [`len`](Self::len) is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits for every child (asyncio's `async with` exit); see the type's docs for the
    /// failure rule. A loop-native await (T3). Results already returned by
    /// [`join_next`](Self::join_next) are not reported again; the values of the others
    /// are dropped (read them from the [`Task`]s `spawn` returned).
    ///
    /// ```
    /// use evloop::{Error, TaskGroup};
    ///
    /// let errors = evloop::run(async {
    ///     let tg = TaskGroup::<()>::new();
    ///     tg.spawn(async { Err(Error::msg("one")) })?;
    ///     tg.spawn(async { Err(Error::msg("two")) })?;
    ///     match tg.join().await {
    ///         Err(Error::Group(group)) => {
    ///             Ok::<_, Error>(group.errors().iter().map(|e| e.to_string()).collect::<Vec<_>>())
    ///         }
    ///         other => panic!("{other:?}"),
    ///     }
    /// });
    /// assert_eq!(errors.unwrap(), ["one", "two"], "completion order");
    /// ```
    ///
    /// # Errors
    ///
    /// * `Error::Group` with every child failure, in completion order.
    /// * `Error::Cancelled` when the awaiting task was cancelled (from outside the
    ///   group) and no child failed.
    /// * `Error::InvalidState` when a `join` already returned, or another `join` of
    ///   this group is being awaited.
    ///
    /// # Panics
    ///
    /// As [`spawn`](Self::spawn).
    #[track_caller]
    pub fn join(&self) -> Join<'_, T> {
        self.bind();
        Join {
            group: self,
            token: 0,
            propagate: None,
            finished: false,
        }
    }

    /// The result of the next child to finish, in completion order (tokio's
    /// `JoinSet::join_next`); `None` when the group has no child left to return. The
    /// value is moved out of the child's task (a later `result()` on the `Task` reports
    /// it taken). A loop-native await (T3).
    ///
    /// Once `join_next` has been called, a failing child no longer aborts the group
    /// outside [`join`](Self::join): its error waits to be returned here, as in a
    /// `JoinSet`, and the group's own pending cancel request of the parent (from a
    /// failure before that) is withdrawn. `join` still applies the failure rule to the
    /// failures nobody reaped.
    ///
    /// ```
    /// use std::time::Duration;
    /// use evloop::{Error, TaskGroup, time::sleep};
    ///
    /// let order = evloop::run(async {
    ///     let tg = TaskGroup::new();
    ///     for ms in [30u64, 10, 20] {
    ///         tg.spawn(async move {
    ///             sleep(Duration::from_millis(ms)).await?;
    ///             Ok(ms)
    ///         })?;
    ///     }
    ///     let mut order = Vec::new();
    ///     while let Some(result) = tg.join_next().await {
    ///         order.push(result?);
    ///     }
    ///     Ok::<_, Error>(order)
    /// });
    /// assert_eq!(order.unwrap(), [10, 20, 30]);
    /// ```
    ///
    /// # Errors
    ///
    /// `Some(Err(e))` for a child that failed or was cancelled; `Some(Err(Cancelled))`
    /// also when the *awaiting* task is cancelled (no child is taken then: the
    /// children keep running); `Some(Err(InvalidState))` when another `join_next` of
    /// this group is being awaited.
    ///
    /// # Panics
    ///
    /// As [`spawn`](Self::spawn).
    #[track_caller]
    pub fn join_next(&self) -> JoinNext<'_, T> {
        self.bind();
        JoinNext {
            group: self,
            token: 0,
        }
    }
}

impl<T: Send + 'static> Drop for TaskGroup<T> {
    /// Cancels (T3) the unfinished children, removes the group's registration from
    /// each, and withdraws the group's pending cancel request of its parent. Off the
    /// group's loop nothing can be cancelled: the children are left running.
    fn drop(&mut self) {
        let Some(cell) = self.cell.take() else {
            return;
        };
        let Some(state) = cell.try_state() else {
            return;
        };
        let (pending, done, withdraw, parent) = {
            let mut st = state.borrow_mut();
            st.closed = true;
            let withdraw = std::mem::take(&mut st.parent_cancel_requested);
            (
                std::mem::take(&mut st.pending),
                std::mem::take(&mut st.done),
                withdraw,
                st.parent.take(),
            )
        };
        let me = Arc::as_ptr(&cell) as *const ();
        let mut first = None;
        for (index, child) in pending {
            child.obj.core().remove_notify(me, index as u32);
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| {
                child.cancel();
                drop(child);
            })) {
                first.get_or_insert(payload);
            }
        }
        if let Some(parent) = parent.filter(|_| withdraw) {
            parent.uncancel();
        }
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| catch::drop_all(done))) {
            first.get_or_insert(payload);
        }
        rethrow(first);
    }
}

impl<T: Send + 'static> fmt::Debug for TaskGroup<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("TaskGroup");
        let state = self.cell.get().and_then(|cell| cell.try_state());
        match state.map(RefCell::try_borrow) {
            Some(Ok(st)) => d
                .field("pending", &st.pending.len())
                .field("done", &st.done.len())
                .field("aborting", &st.aborting)
                .field("joining", &st.joining)
                .field("finished", &st.finished),
            _ => d.field("bound", &self.cell.get().is_some()),
        };
        d.finish()
    }
}
