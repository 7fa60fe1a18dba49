//! The shared cell of a [`TaskGroup`](super::TaskGroup) and its loop-local state:
//! what a child's completion does (the batch) and the failure rule.
//!
//! Owns: the children (`pending`, then `done` in completion order), the flags of
//! asyncio's `TaskGroup` (`_aborting`, `_exiting`, `_parent_cancel_requested`), the
//! registrations of the one `join` and the one `join_next` that may wait, and
//! [`Effects`]: what a borrow decided, carried out after it. Must not touch: the
//! children's state machine (read through the future accessors once done) or the
//! parent's cancellation state (only its `TaskRef`'s `cancel` / `uncancel`).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Waker;

use slab::Slab;

use crate::context;
use crate::error::{Error, InvalidStateError};
use crate::future::{Future, Notify};
use crate::handle::LoopHandle;
use crate::task::TaskRef;
use crate::task::coop::LoopLocal;

/// What the children's notifications and the batch share (`Send + Sync`: a child may
/// complete on any thread; the state itself is only touched on the loop thread).
pub(super) struct GroupCell<T> {
    pub(super) owner: LoopHandle,
    pub(super) state: LoopLocal<RefCell<State<T>>>,
    /// Indices of children completed since the last batch.
    pub(super) completed: Mutex<Vec<u32>>,
    pub(super) batch_scheduled: AtomicBool,
}

/// A wait registered by `join` or `join_next`: its token and its waker (taken when
/// woken).
pub(super) type Waiter = Option<(u64, Option<Waker>)>;

pub(super) struct State<T> {
    /// Unfinished children, by the index their `Notify` entry carries.
    pub(super) pending: Slab<Future<T>>,
    /// Finished children not yet returned by `join_next`, in completion order.
    pub(super) done: VecDeque<Future<T>>,
    pub(super) parent: Option<TaskRef>,
    pub(super) parent_cancel_requested: bool,
    /// A child failed or the parent was cancelled in `join`: children are cancelled,
    /// `spawn` is refused.
    pub(super) aborting: bool,
    /// A `join` is in progress (asyncio's `_exiting`).
    pub(super) joining: bool,
    /// A `join` returned.
    pub(super) finished: bool,
    /// `join_next` was called: outside `join`, failures wait to be reaped.
    pub(super) reaping: bool,
    /// The group was dropped: a late batch does nothing.
    pub(super) closed: bool,
    pub(super) join_waiter: Waiter,
    pub(super) next_waiter: Waiter,
    pub(super) tokens: u64,
}

/// User code a borrow of the state decided to run, run after it (rule 1).
pub(super) struct Effects<T: Send + 'static> {
    pub(super) cancel: Vec<Future<T>>,
    pub(super) cancel_parent: Option<TaskRef>,
    pub(super) wake: [Option<Waker>; 2],
}

impl<T: Send + 'static> Effects<T> {
    pub(super) fn new() -> Self {
        Effects {
            cancel: Vec::new(),
            cancel_parent: None,
            wake: [None, None],
        }
    }

    /// Cancels, then wakes, each under its own catch; the first panic is resumed at the
    /// end (rule 2). Returns whether the parent's cancellation was requested.
    pub(super) fn apply(self) -> bool {
        let mut first = None;
        let mut catching = |f: &mut dyn FnMut()| {
            if let Err(payload) = catch_unwind(AssertUnwindSafe(f)) {
                first.get_or_insert(payload);
            }
        };
        for child in self.cancel {
            catching(&mut || {
                child.cancel();
            });
        }
        let mut requested = false;
        if let Some(parent) = self.cancel_parent {
            catching(&mut || requested = parent.cancel());
        }
        for waker in self.wake.into_iter().flatten() {
            catching(&mut || waker.wake_by_ref());
        }
        rethrow(first);
        requested
    }
}

pub(super) fn rethrow(first: Option<Box<dyn std::any::Any + Send>>) {
    if let Some(payload) = first {
        if std::thread::panicking() {
            log::error!(target: "evloop", "a panic in a TaskGroup clean-up during unwinding");
        } else {
            resume_unwind(payload);
        }
    }
}

pub(super) fn invalid(message: &'static str) -> Error {
    Error::InvalidState(InvalidStateError::new(message))
}

impl<T: Send + 'static> State<T> {
    pub(super) fn new(parent: Option<TaskRef>) -> Self {
        State {
            pending: Slab::new(),
            done: VecDeque::new(),
            parent,
            parent_cancel_requested: false,
            aborting: false,
            joining: false,
            finished: false,
            reaping: false,
            closed: false,
            join_waiter: None,
            next_waiter: None,
            tokens: 0,
        }
    }

    /// Why `spawn` is refused now (asyncio's `create_task` checks, in its order).
    pub(super) fn refusal(&self) -> Option<&'static str> {
        if self.finished || (self.joining && self.pending.is_empty()) {
            Some("TaskGroup is finished: join() has returned (or is returning)")
        } else if self.aborting {
            Some(
                "TaskGroup is shutting down: a child failed, or the parent was cancelled in join()",
            )
        } else {
            None
        }
    }

    /// asyncio's `_abort`: every unfinished child is to be cancelled.
    pub(super) fn abort(&mut self, effects: &mut Effects<T>) {
        self.aborting = true;
        effects
            .cancel
            .extend(self.pending.iter().map(|(_, child)| child.clone()));
    }

    /// A child failed (asyncio's `_on_task_done`): the first failure aborts the group
    /// and requests the parent's cancellation once.
    pub(super) fn child_failed(&mut self, effects: &mut Effects<T>, request_parent: bool) {
        if self.aborting || self.parent_cancel_requested {
            return;
        }
        self.abort(effects);
        if let Some(parent) = self.parent.as_ref().filter(|p| request_parent && !p.done()) {
            self.parent_cancel_requested = true;
            effects.cancel_parent = Some(parent.clone());
        }
    }

    /// Hands out the wakers of the waits that can make progress.
    pub(super) fn wake_waiters(&mut self, effects: &mut Effects<T>) {
        if self.pending.is_empty() {
            effects.wake[0] = self.join_waiter.as_mut().and_then(|(_, w)| w.take());
        }
        if !self.done.is_empty() || self.pending.is_empty() {
            effects.wake[1] = self.next_waiter.as_mut().and_then(|(_, w)| w.take());
        }
    }

    pub(super) fn next_token(&mut self) -> u64 {
        self.tokens += 1;
        self.tokens
    }
}

/// Whether a done child failed (an exception; a cancellation is not a failure),
/// without observing the error (F10 stays with `join` / `join_next`).
pub(super) fn failed<T: Send + 'static>(child: &Future<T>) -> bool {
    child.obj.core().peek_exception().is_some()
}

/// Registers (or refreshes) the waker of the wait holding `token` in `slot`; the
/// replaced waker is handed back, to drop after the borrow.
pub(super) fn register(slot: &mut Waiter, token: u64, waker: &Waker) -> Option<Waker> {
    match slot {
        Some((t, Some(old))) if *t == token && old.will_wake(waker) => None,
        Some((t, w)) if *t == token => w.replace(waker.clone()),
        _ => slot
            .replace((token, Some(waker.clone())))
            .and_then(|(_, w)| w),
    }
}

/// Removes the registration of the wait holding `token`, handing its waker back.
pub(super) fn unregister(slot: &mut Waiter, token: u64) -> Option<Waker> {
    match slot {
        Some((t, _)) if *t == token => slot.take().and_then(|(_, w)| w),
        _ => None,
    }
}

impl<T: Send + 'static> GroupCell<T> {
    /// The state, on the loop the group is bound to.
    #[track_caller]
    pub(super) fn state(&self) -> &RefCell<State<T>> {
        assert_eq!(
            context::current_id(),
            self.owner.id(),
            "evloop::TaskGroup: used outside the loop it was first used on (a group is \
             loop-local)"
        );
        self.state.get()
    }

    /// The state, if the group's loop is running on this thread.
    pub(super) fn try_state(&self) -> Option<&RefCell<State<T>>> {
        (context::current_id() == self.owner.id()).then(|| self.state.get())
    }

    /// Processes the children completed so far (a loop callback).
    pub(super) fn run_batch(self: Arc<Self>) {
        self.batch_scheduled.store(false, Ordering::Release);
        let completed = std::mem::take(
            &mut *self
                .completed
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let Some(state) = self.try_state() else {
            return;
        };
        let mut effects = Effects::new();
        {
            let mut st = state.borrow_mut();
            if st.closed {
                return;
            }
            for index in completed {
                let Some(child) = st.pending.try_remove(index as usize) else {
                    continue;
                };
                let failure = failed(&child);
                st.done.push_back(child);
                // Once `join_next` reaps, a failure waits for it, unless `join` runs.
                if failure && (!st.reaping || st.joining) {
                    st.child_failed(&mut effects, true);
                }
            }
            st.wake_waiters(&mut effects);
        }
        let wanted = effects.cancel_parent.is_some();
        let requested = effects.apply();
        if wanted && !requested {
            // The parent ended meanwhile: there is no request to withdraw.
            state.borrow_mut().parent_cancel_requested = false;
        }
    }
}

impl<T: Send + 'static> Notify for GroupCell<T> {
    fn notify(self: Arc<Self>, index: u32) {
        self.completed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(index);
        if !self.batch_scheduled.swap(true, Ordering::AcqRel) {
            let owner = self.owner.clone();
            owner.call_soon(move || self.run_batch());
        }
    }
}

fn _assert_kinds() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<GroupCell<String>>();
}
