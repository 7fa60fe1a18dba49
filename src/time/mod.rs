//! Time (SPEC §8): [`sleep`], [`sleep_until`], [`timeout`], [`interval`], and the
//! cancelling deadline [`timeout_scope`] (SPEC §14 K2, in `scope`).
//!
//! Owns: the futures that wait on the loop's timer wheel. Must not touch: the wheel's
//! internals — a [`Sleep`] registers a waker through `core::Local` on its first poll
//! (lazily), keeps the returned key, and unlinks it in O(1) when dropped or reset.
//!
//! Precision (M3): the loop arms a timerfd with nanosecond resolution for the next
//! deadline, so a 1 ms sleep wakes about 1 ms later, not rounded up to 2 ms.
//!
//! ```
//! use std::time::{Duration, Instant};
//!
//! evloop::run(async {
//!     let start = Instant::now();
//!     evloop::time::sleep(Duration::from_millis(2)).await.unwrap();
//!     assert!(start.elapsed() >= Duration::from_millis(2), "never early");
//!
//!     let slow = evloop::time::sleep(Duration::from_secs(3600));
//!     let err = evloop::time::timeout(Duration::from_millis(1), slow).await.unwrap_err();
//!     assert!(err.is_timeout());
//! });
//! ```
//!
//! ## `timeout` or `timeout_scope`?
//!
//! * [`timeout`] / [`timeout_at`] (tokio's `timeout`, drop-based): at the deadline the
//!   wrapped future is *dropped* and the await yields `Err(Error::Timeout)`. Works with
//!   any future, inside a task or not, but the body gets no chance to clean up with
//!   awaits — only its destructors run.
//! * [`timeout_scope`] / [`timeout_scope_at`] / [`timeout_scope_with`] (asyncio's
//!   `asyncio.timeout()`, cancel-based): at the deadline the *task* is cancelled, so
//!   the body's evloop await resolves with `Err(Cancelled)` and the body may clean up,
//!   even asynchronously, before it returns; the scope then reports
//!   `Err(Error::Timeout)`. It needs an evloop task, and a foreign future in the body
//!   (another crate's channel or lock) only sees the cancellation when wrapped in
//!   [`task::cancellable`](crate::task::cancellable). Its [`TimeoutHandle`] moves the
//!   deadline while the body runs.

mod interval;
mod scope;

pub use interval::{Interval, MissedTickBehavior, interval, interval_at};
pub use scope::{TimeoutHandle, TimeoutScope, timeout_scope, timeout_scope_at, timeout_scope_with};

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::context;
use crate::error::{Error, TimeoutError};
use crate::handle::{LoopHandle, deadline_after};
use crate::shared::Remote;
use crate::task::coop;
use crate::wheel::TimerKey;

/// Waits until `duration` has elapsed. Resolves to `Ok(())`; the future is lazy (no
/// timer exists until it is first polled) and cancels its timer when dropped.
///
/// A zero duration still yields to the loop once, like asyncio's `sleep(0)`. Inside a
/// task it is a cancellation point (T3): cancelling the task makes a pending sleep
/// resolve at once to `Err(Error::Cancelled)`.
///
/// # Panics
///
/// The returned future panics if polled outside a running evloop loop.
pub fn sleep(duration: Duration) -> Sleep {
    sleep_until(deadline_after(Instant::now(), duration))
}

/// Waits until `deadline`. A deadline in the past completes in the next iteration.
///
/// # Panics
///
/// The returned future panics if polled outside a running evloop loop.
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline,
        state: State::Idle,
    }
}

enum State {
    /// Not registered with any loop.
    Idle,
    Registered {
        owner: LoopHandle,
        key: TimerKey,
    },
    Fired,
}

/// Future returned by [`sleep`] and [`sleep_until`]. `Send + Sync + Unpin`.
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct Sleep {
    deadline: Instant,
    state: State,
}

impl Sleep {
    /// The instant this sleep completes at.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the deadline has passed.
    pub fn is_elapsed(&self) -> bool {
        matches!(self.state, State::Fired) || Instant::now() >= self.deadline
    }

    /// Moves the deadline. The old timer is unlinked at once; the new one is registered
    /// on the next poll (no allocation: the wheel reuses its slot storage).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    ///
    /// evloop::run(async {
    ///     let mut s = evloop::time::sleep(Duration::from_secs(3600));
    ///     s.reset(Instant::now() + Duration::from_millis(1));
    ///     s.await.unwrap();
    /// });
    /// ```
    pub fn reset(&mut self, deadline: Instant) {
        self.deregister();
        self.deadline = deadline;
        self.state = State::Idle;
    }

    fn deregister(&mut self) {
        if let State::Registered { owner, key } = std::mem::replace(&mut self.state, State::Idle) {
            unlink(&owner, key);
        }
    }
}

/// Unlinks a sleep's timer: directly on its loop thread, by message elsewhere. The
/// waker it held is dropped after the loop's borrows are released.
fn unlink(owner: &LoopHandle, key: TimerKey) {
    let id = owner.shared.id;
    match context::with_local(id, |local| local.remove_timer(key)) {
        Some(waker) => drop(waker),
        None if !owner.is_closed() => owner.shared.push_remote(Remote::CancelTimerKey(key)),
        None => {}
    }
}

impl Sleep {
    /// Polls the timer alone: no cancellation delivery (hyper's `Sleep`, which has no
    /// error to report it with, leaves the cancellation for the connection's next I/O
    /// await).
    ///
    /// # Panics
    ///
    /// Off a loop thread.
    pub(crate) fn poll_timer(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if matches!(self.state, State::Fired) {
            return Poll::Ready(());
        }
        let Some(local) = context::current() else {
            panic!(
                "evloop: a time::Sleep was polled outside a running event loop; timers need \
                 evloop's loop (Runtime::block_on / run_forever) on the polling thread"
            );
        };
        if let State::Registered { owner, key } = &self.state {
            if owner.shared.id == local.id() {
                return if local.update_timer_waker(*key, cx.waker()) {
                    crate::task::waiting_on_sleep(self.deadline);
                    Poll::Pending
                } else {
                    self.state = State::Fired;
                    Poll::Ready(())
                };
            }
            // Moved to another loop: leave the old one, register here.
            self.deregister();
        }
        crate::task::waiting_on_sleep(self.deadline);
        let key = local.insert_timer_waker(self.deadline, cx.waker());
        self.state = State::Registered {
            owner: local.handle.clone(),
            key,
        };
        Poll::Pending
    }
}

impl Future for Sleep {
    type Output = Result<(), Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        crate::task::budget::budgeted(cx, move |cx| {
            // A loop-native await: a pending cancellation of the current task lands here.
            if let Some(cancelled) = coop::take_cancel() {
                return Poll::Ready(Err(cancelled));
            }
            self.poll_timer(cx).map(Ok)
        })
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.deregister();
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Idle => "idle",
            State::Registered { .. } => "registered",
            State::Fired => "fired",
        };
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .field("state", &state)
            .finish()
    }
}

/// Runs `fut` with a time limit: `Ok(output)`, or `Err(Error::Timeout)` if `duration`
/// passes first (the inner future is then dropped). Works with any future (M2).
///
/// # Panics
///
/// The returned future panics if polled outside a running evloop loop.
pub fn timeout<F: IntoFuture>(duration: Duration, fut: F) -> Timeout<F::IntoFuture> {
    timeout_at(deadline_after(Instant::now(), duration), fut)
}

/// Like [`timeout`] with an absolute deadline.
pub fn timeout_at<F: IntoFuture>(deadline: Instant, fut: F) -> Timeout<F::IntoFuture> {
    Timeout {
        fut: fut.into_future(),
        sleep: sleep_until(deadline),
    }
}

/// Future returned by [`timeout`] and [`timeout_at`].
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct Timeout<F> {
    fut: F,
    sleep: Sleep,
}

impl<F> Timeout<F> {
    /// The wrapped future.
    pub fn get_ref(&self) -> &F {
        &self.fut
    }

    /// Unwraps the future (only possible while it is not pinned).
    pub fn into_inner(self) -> F {
        self.fut
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `fut` is structurally pinned: it is never moved out of a pinned
        // `Timeout` (only `into_inner(self)` moves it, which needs an unpinned value)
        // and `Timeout` has no `Drop` impl. `sleep` is `Unpin` and never treated as
        // pinned, so handing out `&mut` to it is fine.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: see above; `this.fut` stays in place until the `Timeout` is dropped.
        let fut = unsafe { Pin::new_unchecked(&mut this.fut) };
        if let Poll::Ready(out) = fut.poll(cx) {
            return Poll::Ready(Ok(out));
        }
        match Pin::new(&mut this.sleep).poll(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Err(Error::Timeout(TimeoutError))),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<F> fmt::Debug for Timeout<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout")
            .field("deadline", &self.sleep.deadline)
            .finish_non_exhaustive()
    }
}

fn _assert_kinds() {
    fn send_sync_unpin<T: Send + Sync + Unpin>() {}
    send_sync_unpin::<Sleep>();
}
