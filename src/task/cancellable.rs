//! `task::cancellable` (K4): a foreign future made a loop-native await, so cancelling
//! the task resolves it with `Err(Cancelled)` at once.
//!
//! Owns: the wrapper. Must not touch: the task's cancellation state beyond the one
//! seam every loop-native await uses (`coop::take_cancel`).
//!
//! `Task::cancel` of a task that waits on anything records the request and wakes the
//! task (T3). An evloop awaitable then takes the request in its `poll` and resolves
//! with `Err(Cancelled)`; a foreign future (another crate's channel, lock or timer)
//! does not know about it, so the request waits for the task's next evloop await.
//! Wrapped in [`cancellable`], the foreign future is polled through a check of that
//! request first: the woken task resumes from it at once, and the foreign future is
//! dropped.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::coop;
use crate::error::Error;

/// Makes `fut` cancellable by evloop's task cancellation (SPEC K4): when the task
/// awaiting it is cancelled, the await resolves with `Err(Error::Cancelled)` at once
/// and `fut` is dropped (whatever it held is released then).
///
/// Without it, a task waiting on a foreign future is still cancelled, but only at its
/// next evloop await (`Future`, `Task`, `sleep`, a socket, an `evloop::sync` wait, …):
/// the foreign future keeps the task until it completes on its own.
///
/// ```
/// use std::time::Duration;
///
/// evloop::run(async {
///     // A future from another crate that never completes.
///     let foreign = std::future::pending::<u32>();
///     let task = evloop::create_task(async move {
///         let got = evloop::task::cancellable(foreign).await?; // resolves on cancel
///         Ok(got)
///     });
///     evloop::time::sleep(Duration::from_millis(1)).await?;
///     task.cancel();
///     assert!(task.await.unwrap_err().is_cancelled());
///     Ok::<(), evloop::Error>(())
/// })
/// .unwrap();
/// ```
pub fn cancellable<F: Future>(fut: F) -> Cancellable<F> {
    Cancellable { inner: Some(fut) }
}

/// The future of [`cancellable`].
#[must_use = "futures do nothing unless awaited"]
pub struct Cancellable<F> {
    /// `None` once cancelled (the foreign future dropped) or finished.
    inner: Option<F>,
}

impl<F: Future> Future for Cancellable<F> {
    type Output = Result<F::Output, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `inner` is structurally pinned: it is never moved out while it is
        // `Some` — it is only polled in place or dropped in place (`set(None)`), and
        // `Cancellable` has no `Drop` impl that could move it.
        let mut inner = unsafe { self.map_unchecked_mut(|this| &mut this.inner) };
        if inner.is_none() {
            panic!("evloop::task::cancellable polled after it completed");
        }
        if let Some(cancelled) = coop::take_cancel() {
            inner.set(None);
            return Poll::Ready(Err(cancelled));
        }
        let polled = inner.as_mut().as_pin_mut().expect("checked above").poll(cx);
        match polled {
            Poll::Ready(out) => {
                inner.set(None);
                Poll::Ready(Ok(out))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<F> fmt::Debug for Cancellable<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cancellable")
            .field("done", &self.inner.is_none())
            .finish()
    }
}
