//! Helpers for the tests of loop-local code (`evloop::sync`): everything runs on one
//! loop thread, so the ordered log of events is an `Rc<RefCell<Vec<String>>>` (the
//! `Arc<Mutex<…>>` [`Log`](super::Log) is for tests with several threads). Awaiting a
//! task through [`Finish`] turns a task that never finishes into a failure naming the
//! line, instead of the watchdog ending the whole test binary.

use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;

/// An ordered log of what the tasks of one loop observed.
pub type Log = Rc<RefCell<Vec<String>>>;

pub fn new_log() -> Log {
    Rc::new(RefCell::new(Vec::new()))
}

pub fn push(log: &Log, entry: impl Into<String>) {
    log.borrow_mut().push(entry.into());
}

pub fn entries(log: &Log) -> Vec<String> {
    log.borrow().clone()
}

/// `["a", "b"]` as owned strings, to compare with [`entries`].
pub fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_string()).collect()
}

/// Waits (a hang guard, not a timing assertion) until `entry` is in the log. A task that
/// logs "… waiting" right before it first polls a wait is registered once the entry is
/// there: the caller only runs again after that poll.
pub async fn until_logged(log: &Log, entry: &str) {
    let what = format!("the log contains {entry:?}");
    super::eventually(&what, || log.borrow().iter().any(|e| e == entry)).await;
}

/// Lets the loop run 50 iterations: long enough for every hand-over chain of the sync
/// tests to finish, so that "it did not happen" can be asserted afterwards.
pub async fn settle() {
    super::yield_times(50).await;
}

/// Yields `n` times, passing a cancellation on as `Err` (`yield_times` panics on one).
pub async fn yields(n: usize) -> Result<(), evloop::Error> {
    for _ in 0..n {
        evloop::yield_now().await?;
    }
    Ok(())
}

/// Polls `fut` once with the current task's context.
pub async fn poll_once<F: std::future::Future>(mut fut: Pin<&mut F>) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await
}

/// Awaiting a task (or its future) under a hang guard: `t.finish().await` first waits
/// until `t` is done — failing the test, with the caller's line, if it is not after
/// 10 s — then awaits it.
pub trait Finish: std::future::Future + Sized {
    fn is_done(&self) -> bool;

    #[track_caller]
    fn finish(self) -> impl std::future::Future<Output = Self::Output> {
        let at = std::panic::Location::caller();
        async move {
            let what = format!("the task awaited at {at} finished");
            super::eventually(&what, || self.is_done()).await;
            self.await
        }
    }
}

impl<T: Send + 'static> Finish for evloop::Task<T> {
    fn is_done(&self) -> bool {
        self.done()
    }
}

impl<T: Clone + Send + 'static> Finish for evloop::Future<T> {
    fn is_done(&self) -> bool {
        self.done()
    }
}
