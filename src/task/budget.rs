//! The cooperative budget (SPEC K7): how many awaits a task may complete in one poll
//! before it is made to yield.
//!
//! Owns: the thread-local budget counter, its reset at each task poll ([`enter`]) and
//! [`unconstrained`]. Must not touch: scheduling. A spent budget only wakes the current
//! task through its own waker, so it goes to the back of the ready queue and runs
//! again in the next loop iteration — after the timers and I/O events of that
//! iteration, like every other woken task.
//!
//! | counter value | meaning |
//! |---|---|
//! | `UNCONSTRAINED` (`u32::MAX`) | no budget: outside a task, in [`unconstrained`], or `Builder::coop_budget(None)` |
//! | `1 ..= u32::MAX - 1` | this many more awaits may complete without suspending |
//! | `0` | spent: the next budgeted await wakes the task and returns `Pending` |
//!
//! Rules: the loop sets the counter to its configured budget (128, as tokio) before
//! each poll of a task or of the `block_on` future and restores the previous value after
//! it; a budgeted await ([`budgeted`]) first checks the counter and, if it is spent,
//! yields without doing anything; only an await that completes (`Ready`) spends one
//! unit — a `Pending` poll spends nothing, so a future polling many pending children
//! never busy-loops.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The counter value that means "no budget".
pub(crate) const UNCONSTRAINED: u32 = u32::MAX;

/// The default budget: tokio's.
pub(crate) const DEFAULT: u32 = 128;

thread_local! {
    static BUDGET: Cell<u32> = const { Cell::new(UNCONSTRAINED) };
}

/// Sets the budget for one poll; the previous value comes back when the guard drops.
#[inline]
pub(crate) fn enter(budget: u32) -> BudgetGuard {
    BudgetGuard {
        prev: BUDGET.with(|b| b.replace(budget)),
    }
}

/// Restores the budget of the enclosing poll (see [`enter`]).
pub(crate) struct BudgetGuard {
    prev: u32,
}

impl Drop for BudgetGuard {
    #[inline]
    fn drop(&mut self) {
        let _ = BUDGET.try_with(|b| b.set(self.prev));
    }
}

/// Polls `poll` as one budgeted await: when the budget is spent the task is woken and
/// `Pending` returned without calling `poll`; a `Ready` outcome spends one unit.
#[inline]
pub(crate) fn budgeted<R>(
    cx: &mut Context<'_>,
    poll: impl FnOnce(&mut Context<'_>) -> Poll<R>,
) -> Poll<R> {
    let left = BUDGET.with(Cell::get);
    if left == 0 {
        return yield_spent(cx);
    }
    let out = poll(cx);
    if out.is_ready() && left != UNCONSTRAINED {
        // Re-read: `poll` may have run nested budgeted awaits that spent some already.
        BUDGET.with(|b| b.set(b.get().saturating_sub(1)));
    }
    out
}

#[cold]
#[inline(never)]
fn yield_spent<R>(cx: &mut Context<'_>) -> Poll<R> {
    cx.waker().wake_by_ref();
    Poll::Pending
}

/// Runs `fut` without a cooperative budget (SPEC K7, tokio's `unconstrained`): its
/// awaits never yield because of the budget. Use it for a future that must finish a
/// burst without interruption — at the price that it can delay timers, I/O and every
/// other task of its loop for as long as it keeps completing awaits.
///
/// ```
/// use evloop::sync::Queue;
///
/// evloop::run(async {
///     let queue = Queue::new(0);
///     for i in 0..1_000 {
///         queue.put_nowait(i).unwrap();
///     }
///     // 1 000 ready gets in a row: without `unconstrained` the task would yield
///     // after 128 of them so that the rest of the loop can run.
///     let sum = evloop::task::unconstrained(async {
///         let mut sum = 0;
///         while !queue.empty() {
///             sum += queue.get().await?;
///         }
///         Ok::<_, evloop::Error>(sum)
///     })
///     .await?;
///     assert_eq!(sum, 499_500);
///     Ok::<(), evloop::Error>(())
/// })
/// .unwrap();
/// ```
pub fn unconstrained<F: Future>(fut: F) -> Unconstrained<F> {
    Unconstrained { inner: fut }
}

/// The future of [`unconstrained`].
#[must_use = "futures do nothing unless awaited"]
pub struct Unconstrained<F> {
    inner: F,
}

impl<F: Future> Future for Unconstrained<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: structural pinning of the only field; `Unconstrained` never moves
        // `inner` out and has no `Drop` impl that could.
        let inner = unsafe { self.map_unchecked_mut(|s| &mut s.inner) };
        let _budget = enter(UNCONSTRAINED);
        inner.poll(cx)
    }
}

impl<F> fmt::Debug for Unconstrained<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unconstrained").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn spends_on_ready_only_and_yields_when_spent() {
        let wakes = Arc::new(Count(AtomicUsize::new(0)));
        let waker = std::task::Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        let _g = enter(2);
        assert_eq!(budgeted(&mut cx, |_| Poll::<()>::Pending), Poll::Pending);
        assert_eq!(budgeted(&mut cx, |_| Poll::Ready(1)), Poll::Ready(1));
        assert_eq!(budgeted(&mut cx, |_| Poll::Ready(2)), Poll::Ready(2));
        assert_eq!(
            wakes.0.load(Ordering::SeqCst),
            0,
            "a pending poll spends nothing"
        );
        let mut ran = false;
        assert_eq!(
            budgeted(&mut cx, |_| {
                ran = true;
                Poll::Ready(3)
            }),
            Poll::Pending
        );
        assert!(!ran, "a spent budget does not run the operation");
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1, "and wakes the task");
    }

    #[test]
    fn guard_restores_and_unconstrained_never_spends() {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert_eq!(BUDGET.with(Cell::get), UNCONSTRAINED);
        {
            let _outer = enter(1);
            {
                let _inner = enter(UNCONSTRAINED);
                for _ in 0..1000 {
                    assert!(budgeted(&mut cx, |_| Poll::Ready(())).is_ready());
                }
            }
            assert_eq!(BUDGET.with(Cell::get), 1);
        }
        assert_eq!(BUDGET.with(Cell::get), UNCONSTRAINED);
    }
}
