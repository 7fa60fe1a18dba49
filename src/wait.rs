//! `wait` and `as_completed` (SPEC §14 K3, asyncio's `asyncio.wait` and
//! `asyncio.as_completed`): waiting on several futures without gathering them.
//!
//! Owns: the observer the awaited futures notify ([`Watch`]), the futures' order and
//! the timeout. Must not touch: the futures' state machine — each one is observed
//! through a `Notify` entry in its own registration list (the seam `gather` and
//! `shield` use) and read with its public accessors once done — nor the waiting task's
//! cancellation state beyond `coop::take_cancel` (neither wait is a `CancelHook`:
//! cancelling the waiting task does not cancel the futures waited on, as in asyncio).
//!
//! A completion travels like this: the completing thread (any thread, any loop) calls
//! the `Notify` entry, which pushes the future's index under the watch's lock, takes
//! the waiter's waker out and wakes it after the lock — nothing else, no user code
//! (the dispatch already runs each entry under its own catch). The wait, polled by its
//! task, drains the indices and the waker slot under the same lock (so no completion is
//! lost between the two), then applies the rules. The timeout is a [`Sleep`] polled in
//! the same `poll`. Every registration still in a pending future's list is removed
//! when the wait finishes or is dropped (Q8).

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::future::Future as StdFuture;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::error::{Error, TimeoutError};
use crate::future::{Future, Notify};
use crate::task::coop;
use crate::time::{Sleep, sleep};

/// When [`wait`] returns (asyncio's `FIRST_COMPLETED`, `FIRST_EXCEPTION`,
/// `ALL_COMPLETED`; the default is `AllCompleted`, as asyncio's).
///
/// ```
/// use evloop::{Future, ReturnWhen, wait};
///
/// evloop::run(async {
///     let (ok, failed, slow) = (Future::<u8>::new(), Future::<u8>::new(), Future::<u8>::new());
///     ok.set_result(1).unwrap();
///     failed.set_exception(evloop::Error::msg("boom")).unwrap();
///     let all = [ok.clone(), failed.clone(), slow.clone()];
///     let (done, pending) = wait(all, None, ReturnWhen::FirstException).await?;
///     assert_eq!(done, [ok, failed]);
///     assert_eq!(pending, [slow]);
///     assert_eq!(ReturnWhen::default(), ReturnWhen::AllCompleted);
///     Ok::<(), evloop::Error>(())
/// })
/// .unwrap();
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ReturnWhen {
    /// As soon as any future is done (a result, an exception or cancelled).
    FirstCompleted,
    /// As soon as any future finishes with an exception — a cancelled future does not
    /// count (asyncio: `not f.cancelled() and f.exception() is not None`) — or when all
    /// are done.
    FirstException,
    /// When every future is done.
    #[default]
    AllCompleted,
}

/// Waits for `futs` (`Future<T>`s or `Task<T>`s) until `return_when` is met or
/// `timeout` passes, and returns them split as `(done, pending)` (asyncio's
/// `asyncio.wait`). Nothing is cancelled on timeout: the pending ones are returned.
///
/// Where evloop differs from asyncio:
/// * The output is a `Result`: the await is a cancellation point of the waiting task
///   (T3) and yields `Err(Error::Cancelled)` when it is cancelled (the futures waited
///   on are not cancelled). Otherwise it is `Ok((done, pending))`.
/// * Both vectors keep the input order (asyncio returns sets). A future given twice is
///   waited on once and appears once (asyncio's sets do the same).
/// * An empty input returns `Ok((vec![], vec![]))` at once (asyncio raises
///   `ValueError`).
/// * Futures already done count at once: with every condition already met, the first
///   poll returns without suspending (asyncio always suspends once).
/// * The timeout counts from this call; `Duration::MAX` saturates ("never").
/// * With [`ReturnWhen::FirstException`], looking at a finished future's exception
///   marks it retrieved (F10), as asyncio's `f.exception()` does.
///
/// The futures may belong to other loops and complete on other threads.
///
/// ```
/// use std::time::Duration;
/// use evloop::{Future, ReturnWhen, wait};
///
/// evloop::run(async {
///     let (a, b) = (Future::<u8>::new(), Future::<u8>::new());
///     a.set_result(1).unwrap();
///     let (done, pending) = wait([a.clone(), b.clone()], None, ReturnWhen::FirstCompleted).await?;
///     assert_eq!((done, pending), (vec![a.clone()], vec![b.clone()]));
///
///     // On timeout nothing is cancelled.
///     let (done, pending) = wait([b.clone()], Some(Duration::from_millis(1)), ReturnWhen::AllCompleted).await?;
///     assert!(done.is_empty() && !pending[0].cancelled());
///     Ok::<(), evloop::Error>(())
/// })
/// .unwrap();
/// ```
///
/// # Errors
///
/// `Error::Cancelled` when the waiting task is cancelled.
///
/// # Panics
///
/// With a `timeout`, the returned future panics if it is polled outside a running
/// evloop loop (the timeout is an evloop timer); it also panics if polled again after
/// it completed.
pub fn wait<T, I>(futs: I, timeout: Option<Duration>, return_when: ReturnWhen) -> Wait<T>
where
    T: Send + 'static,
    I: IntoIterator,
    I::Item: Into<Future<T>>,
{
    let watched = Watched::new(futs);
    Wait {
        remaining: watched.futs.len(),
        watched,
        return_when,
        met: false,
        sleep: timeout.map(sleep),
        finished: false,
    }
}

/// The future of [`wait`].
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct Wait<T: Send + 'static> {
    watched: Watched<T>,
    return_when: ReturnWhen,
    /// Futures not yet seen done.
    remaining: usize,
    /// `return_when` is met (the `FirstException` case is latched here).
    met: bool,
    sleep: Option<Sleep>,
    finished: bool,
}

impl<T: Send + 'static> StdFuture for Wait<T> {
    type Output = Result<(Vec<Future<T>>, Vec<Future<T>>), Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        assert!(!this.finished, "evloop::wait polled after it completed");
        if let Some(cancelled) = coop::take_cancel() {
            return Poll::Ready(Err(cancelled));
        }
        let mut completed = std::mem::take(&mut this.watched.scratch);
        this.watched.drain(cx, &mut completed);
        for &index in &completed {
            this.remaining -= 1;
            this.met |= match this.return_when {
                ReturnWhen::FirstCompleted => true,
                ReturnWhen::FirstException => {
                    let fut = &this.watched.futs[index as usize];
                    !fut.cancelled() && matches!(fut.exception(), Ok(Some(_)))
                }
                ReturnWhen::AllCompleted => false,
            };
        }
        completed.clear();
        this.watched.scratch = completed;
        let mut timed_out = || {
            this.sleep
                .as_mut()
                .is_some_and(|sleep| sleep.poll_timer(cx).is_ready())
        };
        if !(this.met || this.remaining == 0 || timed_out()) {
            return Poll::Pending;
        }
        this.finished = true;
        this.sleep = None;
        this.watched.release();
        let futs = std::mem::take(&mut this.watched.futs);
        Poll::Ready(Ok(futs.into_iter().partition(Future::done)))
    }
}

impl<T: Send + 'static> fmt::Debug for Wait<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wait")
            .field("futures", &self.watched.futs.len())
            .field("remaining", &self.remaining)
            .field("return_when", &self.return_when)
            .field("timeout", &self.sleep.as_ref().map(Sleep::deadline))
            .finish()
    }
}

/// Yields the results of `futs` (`Future<T>`s or `Task<T>`s) in the order they complete
/// (asyncio's `asyncio.as_completed`), through [`AsCompleted::next`] or as a
/// [`futures_core::Stream`].
///
/// Each item is the future's outcome, `Ok(value)` or its error (`Error::Cancelled` for
/// a cancelled future). Once `timeout` passes before every future was yielded, the
/// completions already recorded are yielded, then `Err(Error::Timeout)` once, and then
/// the iterator ends (asyncio raises `TimeoutError` from every remaining await
/// instead). Nothing is cancelled on timeout.
///
/// Each `next()` is a cancellation point of the waiting task (T3): a cancelled task
/// gets `Some(Err(Error::Cancelled))` and no item is consumed (its futures are not
/// cancelled). A future given twice is yielded once (asyncio dedups too). The
/// futures are observed from this call on, so futures completing before the first
/// `next()` keep their completion order; the timeout also counts from this call.
///
/// ```
/// use evloop::{Future, as_completed};
///
/// evloop::run(async {
///     let (a, b) = (Future::<&str>::new(), Future::<&str>::new());
///     let mut results = as_completed([a.clone(), b.clone()], None);
///     b.set_result("b").unwrap();
///     a.set_result("a").unwrap();
///     assert_eq!(results.next().await.unwrap()?, "b");
///     assert_eq!(results.next().await.unwrap()?, "a");
///     assert!(results.next().await.is_none());
///     Ok::<(), evloop::Error>(())
/// })
/// .unwrap();
/// ```
///
/// # Errors
///
/// In the items: a future's own error, `Error::Timeout` once after the timeout, and
/// `Error::Cancelled` when the waiting task is cancelled.
///
/// # Panics
///
/// With a `timeout`, polling outside a running evloop loop panics (the timeout is an
/// evloop timer).
pub fn as_completed<T, I>(futs: I, timeout: Option<Duration>) -> AsCompleted<T>
where
    T: Send + Clone + 'static,
    I: IntoIterator,
    I::Item: Into<Future<T>>,
{
    AsCompleted {
        watched: Watched::new(futs),
        ready: VecDeque::new(),
        yielded: 0,
        sleep: timeout.map(sleep),
        ended: false,
    }
}

/// The iterator of [`as_completed`]: `next().await`, or a `futures_core::Stream` (so
/// any stream combinator library drives it).
///
/// ```
/// use futures_util::StreamExt; // or any other `Stream` extension trait
///
/// evloop::run(async {
///     let tasks = [3u64, 1, 2].map(|ms| {
///         evloop::create_task(async move {
///             evloop::time::sleep(std::time::Duration::from_millis(ms)).await?;
///             Ok(ms)
///         })
///     });
///     let firsts: Vec<u64> = evloop::as_completed(tasks, None)
///         .map(|r| r.unwrap())
///         .take(1)
///         .collect()
///         .await;
///     assert_eq!(firsts, [1]);
/// });
/// ```
#[must_use = "an as_completed iterator does nothing unless its items are awaited"]
pub struct AsCompleted<T: Send + 'static> {
    watched: Watched<T>,
    /// Completed, not yet yielded (indices into `watched.futs`).
    ready: VecDeque<u32>,
    yielded: usize,
    sleep: Option<Sleep>,
    /// Every future was yielded, or the timeout was.
    ended: bool,
}

impl<T: Send + Clone + 'static> AsCompleted<T> {
    /// The next result in completion order; `None` once every future was yielded, or
    /// after the timeout's `Err(Error::Timeout)`.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// evloop::run(async {
    ///     let never = evloop::Future::<u8>::new();
    ///     let mut it = evloop::as_completed([never.clone()], Some(Duration::from_millis(1)));
    ///     assert!(it.next().await.unwrap().unwrap_err().is_timeout());
    ///     assert!(it.next().await.is_none());
    ///     assert!(!never.cancelled(), "nothing is cancelled on timeout");
    /// });
    /// ```
    ///
    /// # Errors
    ///
    /// See [`as_completed`].
    #[allow(
        clippy::should_implement_trait,
        reason = "an async next (SPEC K3, asyncio's async iterator); the Stream impl is the trait"
    )]
    pub fn next(&mut self) -> AsCompletedNext<'_, T> {
        AsCompletedNext { iter: self }
    }

    fn poll_item(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, Error>>> {
        // Each item handed out spends the task's cooperative budget (K7): a loop over
        // completions that are all there already still yields to the loop.
        crate::task::budget::budgeted(cx, |cx| self.poll_item_now(cx))
    }

    fn poll_item_now(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, Error>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        if let Some(cancelled) = coop::take_cancel() {
            return Poll::Ready(Some(Err(cancelled)));
        }
        let mut completed = std::mem::take(&mut self.watched.scratch);
        self.watched.drain(cx, &mut completed);
        self.ready.extend(completed.drain(..));
        self.watched.scratch = completed;
        if let Some(index) = self.ready.pop_front() {
            self.yielded += 1;
            if self.yielded == self.watched.futs.len() {
                self.end();
            }
            return Poll::Ready(Some(self.watched.futs[index as usize].result()));
        }
        if self.watched.futs.is_empty() {
            self.end();
            return Poll::Ready(None);
        }
        let timed_out = self
            .sleep
            .as_mut()
            .is_some_and(|sleep| sleep.poll_timer(cx).is_ready());
        if timed_out {
            self.end();
            return Poll::Ready(Some(Err(Error::Timeout(TimeoutError))));
        }
        Poll::Pending
    }

    fn end(&mut self) {
        self.ended = true;
        self.sleep = None;
        self.watched.release();
    }
}

impl<T: Send + Clone + 'static> futures_core::Stream for AsCompleted<T> {
    type Item = Result<T, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_item(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.ended {
            return (0, Some(0));
        }
        // One more for the timeout's error.
        let left = self.watched.futs.len() - self.yielded;
        (0, Some(left + usize::from(self.sleep.is_some())))
    }
}

impl<T: Send + 'static> fmt::Debug for AsCompleted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompleted")
            .field("futures", &self.watched.futs.len())
            .field("yielded", &self.yielded)
            .field("ended", &self.ended)
            .field("timeout", &self.sleep.as_ref().map(Sleep::deadline))
            .finish()
    }
}

/// The future of [`AsCompleted::next`].
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct AsCompletedNext<'a, T: Send + 'static> {
    iter: &'a mut AsCompleted<T>,
}

impl<T: Send + Clone + 'static> StdFuture for AsCompletedNext<'_, T> {
    type Output = Option<Result<T, Error>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().iter.poll_item(cx)
    }
}

impl<T: Send + 'static> fmt::Debug for AsCompletedNext<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AsCompletedNext").field(&self.iter).finish()
    }
}

/// The observer every awaited future notifies: completed indices and the waker.
struct Watch {
    inner: Mutex<WatchInner>,
}

struct WatchInner {
    completed: Vec<u32>,
    waker: Option<Waker>,
}

impl Watch {
    fn lock(&self) -> MutexGuard<'_, WatchInner> {
        // No user code runs under this lock (wakers are cloned there, as the futures'
        // own lists do, and dropped or woken after it).
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Notify for Watch {
    /// On the completing thread: record, and wake the waiter after the lock.
    fn notify(self: Arc<Self>, index: u32) {
        let waker = {
            let mut inner = self.lock();
            inner.completed.push(index);
            inner.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The futures of one wait (deduplicated, in input order) and their registrations.
struct Watched<T: Send + 'static> {
    futs: Vec<Future<T>>,
    watch: Arc<Watch>,
    /// Registrations may remain on pending futures (until `release`).
    registered: bool,
    /// Reused buffer for draining `watch.completed`.
    scratch: Vec<u32>,
}

impl<T: Send + 'static> Watched<T> {
    fn new<I>(futs: I) -> Watched<T>
    where
        I: IntoIterator,
        I::Item: Into<Future<T>>,
    {
        let mut futs: Vec<Future<T>> = futs.into_iter().map(Into::into).collect();
        if futs.len() > 1 {
            let mut seen = HashSet::with_capacity(futs.len());
            futs.retain(|f| seen.insert(f.cell_ptr() as usize));
        }
        assert!(
            u32::try_from(futs.len()).is_ok(),
            "evloop::wait / as_completed: fewer than 2^32 futures"
        );
        let watch = Arc::new(Watch {
            inner: Mutex::new(WatchInner {
                completed: Vec::new(),
                waker: None,
            }),
        });
        for (index, fut) in futs.iter().enumerate() {
            let observer: Weak<dyn Notify> = Arc::downgrade(&watch) as Weak<dyn Notify>;
            // A future already done notifies at once, here.
            fut.add_notify(observer, index as u32);
        }
        Watched {
            registered: !futs.is_empty(),
            futs,
            watch,
            scratch: Vec::new(),
        }
    }

    /// Moves the indices completed since the last call into `into`, and leaves `cx`'s
    /// waker to be woken by the next completion (one lock for both: none is missed).
    fn drain(&self, cx: &mut Context<'_>, into: &mut Vec<u32>) {
        if !self.registered {
            return;
        }
        let replaced = {
            let mut inner = self.watch.lock();
            std::mem::swap(&mut inner.completed, into);
            match &inner.waker {
                Some(w) if w.will_wake(cx.waker()) => None,
                _ => inner.waker.replace(cx.waker().clone()),
            }
        };
        drop(replaced);
    }

    /// Removes every registration still on a pending future (Q8); and the waker.
    fn release(&mut self) {
        if !std::mem::take(&mut self.registered) {
            return;
        }
        let me = Arc::as_ptr(&self.watch) as *const ();
        for (index, fut) in self.futs.iter().enumerate() {
            fut.obj.core().remove_notify(me, index as u32);
        }
        let waker = self.watch.lock().waker.take();
        drop(waker);
    }
}

impl<T: Send + 'static> Drop for Watched<T> {
    fn drop(&mut self) {
        self.release();
    }
}

fn _assert_kinds() {
    fn send_sync_unpin<T: Send + Sync + Unpin>() {}
    send_sync_unpin::<Wait<u8>>();
    send_sync_unpin::<AsCompleted<u8>>();
}
