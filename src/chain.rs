//! Future chaining and the Tornado / plumpy helpers (SPEC §5 C1–C8).
//!
//! Owns: copying outcomes between futures and the "unless cancelled" setters. Must not
//! touch: the future state machine — everything here goes through `Future`'s own
//! methods (and `Outcome` copies under its lock).

use std::any::Any;
use std::future::Future as StdFuture;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::error::{Error, InvalidStateError};
use crate::future::{Future, Outcome};
use crate::handle::deadline_after;
use crate::time::{Sleep, sleep_until};

/// Copies a done `source`'s outcome into `target`: a value or exception is set, a
/// cancellation cancels (with its message). Nothing if `target` is done.
fn copy_done<T: Send + Clone + 'static>(source: &Future<T>, target: &Future<T>) {
    if target.done() {
        return;
    }
    match source.read_done(|done| done.outcome_cloned()) {
        Some(Outcome::Value(v)) => {
            let _ = target.set_result(v);
        }
        Some(Outcome::Exception(e)) => {
            let _ = target.set_exception(e);
        }
        Some(Outcome::Cancelled(c)) => {
            match c.message() {
                Some(message) => target.cancel_with(message),
                None => target.cancel(),
            };
        }
        None => {}
    }
}

/// Tornado's `chain_future` (C1): when `a` completes, its outcome is copied into `b`
/// unless `b` is already done. If `a` is already done the copy happens now,
/// synchronously. Cancelling `b` does not touch `a`; a cancelled `a` cancels `b`
/// (Tornado leaves `b` pending there — see the README's table).
///
/// ```
/// evloop::run(async {
///     let (a, b) = (evloop::Future::new(), evloop::Future::new());
///     a.set_result(5).unwrap();
///     evloop::chain_future(&a, &b);
///     assert_eq!(b.result().unwrap(), 5, "copied synchronously");
/// });
/// ```
pub fn chain_future<T: Send + Clone + 'static>(a: &Future<T>, b: &Future<T>) {
    let target = b.clone();
    future_add_done_callback(a, move |a| copy_done(a, &target));
}

/// plumpy's `chain` (C2): like [`chain_future`] but always through `a`'s done-callback,
/// so the copy happens in a later loop iteration even when `a` is already done.
pub fn chain<T: Send + Clone + 'static>(a: &Future<T>, b: &Future<T>) {
    let target = b.clone();
    a.add_done_callback(move |a| copy_done(a, &target));
}

/// asyncio's `_copy_future_state` / plumpy's `copy_future` (C3): nothing if `target`
/// is done; a cancelled `source` cancels `target`; a pending `source` gives `target` an
/// `InvalidState` exception; otherwise the result or exception is copied.
///
/// ```
/// evloop::run(async {
///     let (source, target) = (evloop::Future::<u8>::new(), evloop::Future::new());
///     evloop::copy_future(&source, &target);
///     assert!(target.exception().unwrap().unwrap().is_invalid_state());
/// });
/// ```
pub fn copy_future<T: Send + Clone + 'static>(source: &Future<T>, target: &Future<T>) {
    if target.done() {
        return;
    }
    if !source.done() {
        let _ = target.set_exception(Error::InvalidState(InvalidStateError::new(
            "copy_future: the source future is not done",
        )));
        return;
    }
    copy_done(source, target);
}

/// Tornado's `future_set_result_unless_cancelled` (C4): a no-op on a cancelled
/// future, otherwise `set_result`.
///
/// # Errors
///
/// `set_result`'s error when the future finished otherwise.
pub fn future_set_result_unless_cancelled<T: Send + 'static>(
    fut: &Future<T>,
    value: T,
) -> Result<(), InvalidStateError> {
    if fut.cancelled() {
        return Ok(());
    }
    fut.set_result(value)
}

/// Tornado's `future_set_exception_unless_cancelled` (C5): on a cancelled future the
/// error is logged (`log::error!`, "Exception after Future was cancelled") instead of
/// being lost silently; otherwise `set_exception`.
///
/// # Errors
///
/// `set_exception`'s error when the future finished otherwise.
pub fn future_set_exception_unless_cancelled<T: Send + 'static>(
    fut: &Future<T>,
    error: impl Into<Error>,
) -> Result<(), InvalidStateError> {
    let error = error.into();
    if fut.cancelled() {
        log::error!(target: "evloop", "Exception after Future was cancelled: {error}");
        return Ok(());
    }
    fut.set_exception(error)
}

/// Tornado's `future_set_exc_info` for Rust (C6): stores a caught panic's payload as
/// the future's exception (`Error::Panic`, whose message is the panic's).
///
/// ```
/// evloop::run(async {
///     let fut = evloop::Future::<()>::new();
///     let payload = std::panic::catch_unwind(|| panic!("worker died")).unwrap_err();
///     evloop::future_set_panic(&fut, payload).unwrap();
///     assert_eq!(fut.result().unwrap_err().to_string(), "panicked: worker died");
/// });
/// ```
///
/// # Errors
///
/// `set_exception`'s error when the future is already done.
pub fn future_set_panic<T: Send + 'static>(
    fut: &Future<T>,
    payload: Box<dyn Any + Send>,
) -> Result<(), InvalidStateError> {
    fut.set_exception(Error::from_panic(payload))
}

/// Tornado's `future_add_done_callback` (C7): if `fut` is done, `callback` runs now,
/// synchronously; otherwise it is registered with `add_done_callback` (and runs on the
/// loop later).
pub fn future_add_done_callback<T, F>(fut: &Future<T>, callback: F)
where
    T: Send + 'static,
    F: FnOnce(&Future<T>) + Send + 'static,
{
    if fut.done() {
        callback(fut);
    } else {
        fut.add_done_callback(callback);
    }
}

/// asyncio's `wait_for` (C8): awaits `fut` for at most `timeout`. On timeout `fut` is
/// cancelled and, as in asyncio, waited for until it has finished: if it swallowed the
/// cancellation and produced a value, that value is returned; if it ended cancelled,
/// the result is `Err(Error::Timeout)`; another error is returned as is. Cancelling the
/// awaiting task cancels `fut` too (T3).
///
/// For futures that are not evloop futures, use [`time::timeout`](crate::time::timeout).
///
/// ```
/// use std::time::Duration;
///
/// evloop::run(async {
///     let never = evloop::Future::<u8>::new();
///     let err = evloop::wait_for(never.clone(), Duration::from_millis(1)).await.unwrap_err();
///     assert!(err.is_timeout());
///     assert!(never.cancelled(), "the inner future was cancelled");
/// });
/// ```
///
/// # Errors
///
/// `Error::Timeout`, or `fut`'s own error.
pub fn wait_for<T, F>(fut: F, timeout: Duration) -> WaitFor<T>
where
    T: Send + Clone + 'static,
    F: Into<Future<T>>,
{
    WaitFor {
        fut: fut.into(),
        sleep: Some(sleep_until(deadline_after(Instant::now(), timeout))),
        timed_out: false,
    }
}

/// Future returned by [`wait_for`].
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct WaitFor<T> {
    fut: Future<T>,
    sleep: Option<Sleep>,
    timed_out: bool,
}

impl<T: Send + 'static> std::fmt::Debug for WaitFor<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitFor")
            .field("fut", &self.fut)
            .field("timed_out", &self.timed_out)
            .finish_non_exhaustive()
    }
}

impl<T: Send + Clone + 'static> StdFuture for WaitFor<T> {
    type Output = Result<T, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        match Pin::new(&mut this.fut).poll(cx) {
            Poll::Ready(Err(e)) if this.timed_out && e.is_cancelled() => {
                return Poll::Ready(Err(Error::Timeout(crate::error::TimeoutError)));
            }
            // The awaiting task's cancellation was delivered here: the inner future
            // must not keep running on its own (asyncio cancels it too).
            Poll::Ready(Err(e)) if e.is_cancelled() && !this.fut.done() => {
                this.fut.cancel();
                return Poll::Ready(Err(e));
            }
            Poll::Ready(out) => return Poll::Ready(out),
            Poll::Pending => {}
        }
        if let Some(sleep) = &mut this.sleep {
            if let Poll::Ready(fired) = Pin::new(sleep).poll(cx) {
                this.sleep = None;
                match fired {
                    Ok(()) => {
                        this.timed_out = true;
                        this.fut.cancel();
                        // Wait for it to finish cancelling, as asyncio does.
                        return Pin::new(this).poll(cx);
                    }
                    // The awaiting task was cancelled while the sleep was its await:
                    // cancel the inner future and report the cancellation.
                    Err(cancelled) => {
                        this.fut.cancel();
                        return Poll::Ready(Err(cancelled));
                    }
                }
            }
        }
        Poll::Pending
    }
}
