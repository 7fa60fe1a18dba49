//! The futures of [`TaskGroup::join`](super::TaskGroup::join) and
//! [`TaskGroup::join_next`](super::TaskGroup::join_next).
//!
//! Owns: asyncio's `__aexit__` (waiting for the children, the parent's cancellation
//! while waiting, withdrawing the group's own request, errors before a cancellation)
//! and the `JoinSet` reaping. Must not touch: the batch (in `state`); each wait keeps
//! one registration in the state, removed when the future is dropped.

use std::fmt;
use std::future::Future as StdFuture;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::TaskGroup;
use super::state::{Effects, GroupCell, failed, invalid, register, unregister};
use crate::error::Error;
use crate::exception_group::ExceptionGroup;
use crate::sync::catch;
use crate::task::coop;

/// The future of [`TaskGroup::join`].
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct Join<'a, T: Send + 'static> {
    pub(super) group: &'a TaskGroup<T>,
    /// 0 until the first poll.
    pub(super) token: u64,
    /// The parent's cancellation delivered here (asyncio's
    /// `propagate_cancellation_error`).
    pub(super) propagate: Option<Error>,
    pub(super) finished: bool,
}

impl<T: Send + 'static> Join<'_, T> {
    fn cell(&self) -> &Arc<GroupCell<T>> {
        self.group.cell.get().expect("bound by join()")
    }
}

impl<T: Send + 'static> StdFuture for Join<'_, T> {
    type Output = Result<(), Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(Err(invalid("TaskGroup::join polled after it returned")));
        }
        let cancelled = coop::take_cancel();
        let cell = this.cell().clone();
        let state = cell.state();
        let mut effects = Effects::new();
        let replaced;
        let end = {
            let mut st = state.borrow_mut();
            if this.token == 0 {
                let refused = if st.finished {
                    Some("TaskGroup::join has already returned")
                } else if st.joining {
                    Some("TaskGroup::join is already being awaited elsewhere")
                } else {
                    None
                };
                if let Some(message) = refused {
                    // A cancellation of the awaiting task still wins (a cancellation
                    // point delivers it).
                    return Poll::Ready(Err(cancelled.unwrap_or_else(|| invalid(message))));
                }
                this.token = st.next_token();
                st.joining = true;
                // Failures `join_next` left unreaped: the rule applies now.
                if st.reaping && st.done.iter().any(failed) {
                    st.child_failed(&mut effects, false);
                }
            }
            if let Some(cancelled) = cancelled {
                if !st.aborting {
                    // The parent is cancelled from outside (asyncio's `__aexit__`).
                    this.propagate = Some(cancelled);
                    st.abort(&mut effects);
                }
            }
            if st.pending.is_empty() {
                st.joining = false;
                st.finished = true;
                replaced = unregister(&mut st.join_waiter, this.token);
                let withdraw = std::mem::take(&mut st.parent_cancel_requested)
                    .then(|| st.parent.clone())
                    .flatten();
                Some((std::mem::take(&mut st.done), withdraw, st.parent.clone()))
            } else {
                replaced = register(&mut st.join_waiter, this.token, cx.waker());
                None
            }
        };
        drop(replaced);
        effects.apply();
        let Some((done, withdraw, parent)) = end else {
            return Poll::Pending;
        };
        this.finished = true;
        let mut propagate = this.propagate.take();
        if let Some(parent) = withdraw {
            if parent.uncancel() == 0 {
                propagate = None;
            }
        }
        let errors: Vec<Error> = done
            .iter()
            .filter_map(|child| child.exception().ok().flatten())
            .collect();
        catch::drop_all(done);
        if errors.is_empty() {
            return Poll::Ready(propagate.map_or(Ok(()), Err));
        }
        // Errors win over a cancellation from outside; keep that request pending
        // (Python 3.13: uncancel and cancel again, the count unchanged).
        if let Some(parent) = parent.filter(|p| p.cancelling() > 0) {
            parent.uncancel();
            parent.cancel();
        }
        Poll::Ready(Err(Error::Group(ExceptionGroup::of_task_group(errors))))
    }
}

impl<T: Send + 'static> Drop for Join<'_, T> {
    /// Abandoned before it returned: the group is not joining any more.
    fn drop(&mut self) {
        if self.token == 0 || self.finished {
            return;
        }
        let Some(state) = self.cell().try_state() else {
            return;
        };
        let removed = {
            let mut st = state.borrow_mut();
            st.joining = false;
            unregister(&mut st.join_waiter, self.token)
        };
        drop(removed);
    }
}

/// The future of [`TaskGroup::join_next`].
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct JoinNext<'a, T: Send + 'static> {
    pub(super) group: &'a TaskGroup<T>,
    /// 0 while not registered.
    pub(super) token: u64,
}

impl<T: Send + 'static> StdFuture for JoinNext<'_, T> {
    type Output = Option<Result<T, Error>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Each result handed out spends the task's cooperative budget (K7).
        let this = self.get_mut();
        crate::task::budget::budgeted(cx, |cx| this.poll_now(cx))
    }
}

impl<T: Send + 'static> JoinNext<'_, T> {
    fn poll_now(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, Error>>> {
        let this = self;
        let cell = this.group.cell.get().expect("bound by join_next()").clone();
        let state = cell.state();
        let withdraw = {
            let mut st = state.borrow_mut();
            st.reaping = true;
            std::mem::take(&mut st.parent_cancel_requested)
                .then(|| st.parent.clone())
                .flatten()
        };
        // The caller reaps failures itself: the group's request is withdrawn before the
        // await looks for a cancellation (an undelivered one is dropped at 0, T4).
        if let Some(parent) = withdraw {
            parent.uncancel();
        }
        let cancelled = coop::take_cancel();
        let (next, replaced) = {
            let mut st = state.borrow_mut();
            let token = this.token;
            if cancelled.is_some() {
                (None, unregister(&mut st.next_waiter, token))
            } else if let Some(child) = st.done.pop_front() {
                (Some(child), unregister(&mut st.next_waiter, token))
            } else if st.pending.is_empty() {
                (None, unregister(&mut st.next_waiter, token))
            } else if matches!(st.next_waiter, Some((t, _)) if t != token) {
                drop(st);
                return Poll::Ready(Some(Err(invalid(
                    "TaskGroup::join_next is already being awaited elsewhere",
                ))));
            } else {
                if token == 0 {
                    this.token = st.next_token();
                }
                let replaced = register(&mut st.next_waiter, this.token, cx.waker());
                drop(st);
                drop(replaced);
                return Poll::Pending;
            }
        };
        this.token = 0;
        drop(replaced);
        if let Some(cancelled) = cancelled {
            return Poll::Ready(Some(Err(cancelled)));
        }
        Poll::Ready(next.map(|child| {
            child
                .read_done(|done| done.result_taken())
                .unwrap_or_else(|| Err(invalid("a finished child is pending")))
        }))
    }
}

impl<T: Send + 'static> Drop for JoinNext<'_, T> {
    fn drop(&mut self) {
        if self.token == 0 {
            return;
        }
        let Some(state) = self.group.cell.get().and_then(|cell| cell.try_state()) else {
            return;
        };
        let removed = unregister(&mut state.borrow_mut().next_waiter, self.token);
        drop(removed);
    }
}

impl<T: Send + 'static> fmt::Debug for Join<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Join")
            .field("started", &(self.token != 0))
            .field("finished", &self.finished)
            .finish()
    }
}

impl<T: Send + 'static> fmt::Debug for JoinNext<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinNext")
            .field("waiting", &(self.token != 0))
            .finish()
    }
}
