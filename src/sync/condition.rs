//! Loop-local `Condition` (Y3): waiters released by `notify`, over a [`Mutex`].
//!
//! Owns: the FIFO of waiters (each node's data: "notified") and the wait's state
//! machine — release the lock, wait for a notification, re-acquire the lock (also when
//! cancelled, as asyncio does). Must not touch: the lock's internals (it uses the
//! uncancellable lock future of [`Mutex`]).

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::bound::LoopBound;
use super::catch::wake_all;
use super::mutex::{LockFuture, Mutex, MutexGuard};
use super::wait_list::{WaitList, WaiterId};
use crate::error::{Error, InvalidStateError};
use crate::task::coop;

struct Inner<T> {
    lock: Mutex<T>,
    waiters: RefCell<WaitList<bool>>,
    bound: LoopBound,
}

/// An asyncio condition variable (Y3) over a [`Mutex<T>`] (a [`Lock`](super::Lock) by
/// default).
///
/// `wait(guard)` releases the lock, waits for [`notify`](Self::notify), and re-acquires
/// the lock before it returns — also when the task is cancelled while waiting: it then
/// takes its turn for the lock, and returns `Err(Cancelled)`, dropping (releasing) the
/// re-acquired guard, as asyncio's `async with` would.
///
/// ```
/// use evloop::sync::{Condition, Mutex};
///
/// evloop::run(async {
///     let cond = Condition::with_lock(Mutex::new(Vec::new()));
///     let consumer = evloop::create_task({
///         let cond = cond.clone();
///         async move {
///             let guard = cond.acquire().await?;
///             let mut items = cond.wait_for(guard, |items| !items.is_empty()).await?;
///             Ok(items.pop())
///         }
///     });
///     evloop::yield_now().await?;
///     let mut items = cond.acquire().await?;
///     items.push(42);
///     cond.notify(1)?;
///     drop(items);
///     assert_eq!(consumer.await?, Some(42));
///     Ok::<(), evloop::Error>(())
/// })
/// .unwrap();
/// ```
pub struct Condition<T = ()> {
    inner: Rc<Inner<T>>,
}

impl<T> Clone for Condition<T> {
    fn clone(&self) -> Self {
        Condition {
            inner: self.inner.clone(),
        }
    }
}

impl Default for Condition<()> {
    fn default() -> Self {
        Condition::new()
    }
}

impl Condition<()> {
    /// A condition with a lock of its own.
    pub fn new() -> Condition<()> {
        Condition::with_lock(Mutex::new(()))
    }
}

impl<T> Condition<T> {
    /// A condition over `lock` (shared with whoever else holds a clone of it).
    pub fn with_lock(lock: Mutex<T>) -> Condition<T> {
        Condition {
            inner: Rc::new(Inner {
                lock,
                waiters: RefCell::new(WaitList::skipping_cancelled()),
                bound: LoopBound::default(),
            }),
        }
    }

    /// The condition's lock.
    pub fn lock(&self) -> &Mutex<T> {
        &self.inner.lock
    }

    /// Acquires the condition's lock (as `self.lock().lock()`).
    ///
    /// # Errors
    ///
    /// `Err(Error::Cancelled)` when the awaiting task is cancelled.
    pub fn acquire(&self) -> LockFuture<'_, T> {
        self.inner.lock.lock()
    }

    /// Releases the lock held by `guard`, waits for a notification, and re-acquires
    /// the lock.
    ///
    /// # Errors
    ///
    /// `Err(Error::Cancelled)` when the task is cancelled; the lock has been
    /// re-acquired (and is released with the error). A notification that had reached
    /// the cancelled waiter passes to the next waiter.
    ///
    /// # Panics
    ///
    /// If `guard` holds another lock than this condition's.
    pub fn wait<'a>(&'a self, guard: MutexGuard<'a, T>) -> CondWait<'a, T> {
        assert!(
            guard.mutex().same_as(&self.inner.lock),
            "evloop::sync::Condition::wait: the guard is of another Mutex than the condition's lock"
        );
        CondWait {
            cond: self,
            state: State::Start(Some(guard)),
            cancelled: None,
            notified: false,
        }
    }

    /// Waits until `predicate` holds on the guarded value, checking it first and after
    /// every notification.
    ///
    /// # Errors
    ///
    /// As [`wait`](Self::wait).
    pub async fn wait_for<'a, F>(
        &'a self,
        mut guard: MutexGuard<'a, T>,
        mut predicate: F,
    ) -> Result<MutexGuard<'a, T>, Error>
    where
        F: FnMut(&mut T) -> bool,
    {
        loop {
            if predicate(&mut guard) {
                return Ok(guard);
            }
            guard = self.wait(guard).await?;
        }
    }

    /// Wakes up to `n` waiters (FIFO).
    ///
    /// # Errors
    ///
    /// `Err(Error::InvalidState)` if the lock is not held (asyncio's `RuntimeError`).
    pub fn notify(&self, n: usize) -> Result<(), Error> {
        if !self.inner.lock.locked() {
            return Err(Error::InvalidState(InvalidStateError::new(
                "cannot notify on an un-acquired lock",
            )));
        }
        self.notify_unchecked(n);
        Ok(())
    }

    /// Wakes every waiter.
    ///
    /// # Errors
    ///
    /// `Err(Error::InvalidState)` if the lock is not held.
    pub fn notify_all(&self) -> Result<(), Error> {
        self.notify(usize::MAX)
    }

    fn notify_unchecked(&self, n: usize) {
        let wakers = {
            let mut waiters = self.inner.waiters.borrow_mut();
            let mut wakers = Vec::with_capacity(waiters.len().min(n));
            while wakers.len() < n {
                let Some((id, waker)) = waiters.pop_front() else {
                    break;
                };
                *waiters.data(id) = true;
                wakers.extend(waker);
            }
            wakers
        };
        wake_all(wakers);
    }

    /// A waiter leaves: its node goes; a notification it had got passes on.
    fn leave(&self, id: WaiterId) {
        let (notified, waker) = self.inner.waiters.borrow_mut().remove(id);
        drop(waker);
        if notified {
            self.notify_unchecked(1);
        }
    }
}

enum State<'a, T> {
    Start(Option<MutexGuard<'a, T>>),
    Waiting(WaiterId),
    Reacquire(LockFuture<'a, T>),
    Done,
}

/// The future of [`Condition::wait`].
#[must_use = "futures do nothing unless awaited"]
pub struct CondWait<'a, T> {
    cond: &'a Condition<T>,
    state: State<'a, T>,
    cancelled: Option<Error>,
    /// Woken by a notification (not by a cancel): passed on if cancelled afterwards.
    notified: bool,
}

impl<'a, T> Future for CondWait<'a, T> {
    type Output = Result<MutexGuard<'a, T>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Budgeted (K7) by the lock re-acquire it awaits: the start always suspends.
        let this = self.get_mut();
        let cond = this.cond;
        loop {
            match &mut this.state {
                State::Start(guard) => {
                    if let Some(cancelled) = coop::take_cancel() {
                        // Never released: the guard goes with the error.
                        this.state = State::Done;
                        return Poll::Ready(Err(cancelled));
                    }
                    cond.inner
                        .bound
                        .check("Condition", "evloop::sync::SharedMutex with a SharedEvent");
                    let id = cond.inner.waiters.borrow_mut().push_back(false, cx.waker());
                    let guard = guard.take();
                    this.state = State::Waiting(id);
                    drop(guard); // releases the lock (wakes the next holder)
                    return Poll::Pending;
                }
                State::Waiting(id) => {
                    let id = *id;
                    if let Some(cancelled) = coop::take_cancel() {
                        cond.leave(id);
                        this.cancelled = Some(cancelled);
                    } else {
                        let mut waiters = cond.inner.waiters.borrow_mut();
                        if waiters.is_skipped(id) {
                            // Passed over by a notify while a cancel was pending, then
                            // the cancel was withdrawn: queue again, at the back.
                            let (_, stale) = waiters.remove(id);
                            let id = waiters.push_back(false, cx.waker());
                            drop(waiters);
                            drop(stale);
                            this.state = State::Waiting(id);
                            return Poll::Pending;
                        }
                        if !*waiters.data(id) {
                            let old = waiters.replace_waker(id, cx.waker());
                            drop(waiters);
                            drop(old); // a foreign waker's drop: after the borrow
                            return Poll::Pending;
                        }
                        let removed = waiters.remove(id);
                        drop(waiters);
                        drop(removed);
                        this.notified = true;
                    }
                    this.state = State::Reacquire(cond.inner.lock.lock_uncancellable());
                }
                State::Reacquire(lock) => {
                    // Cancelled while re-taking the lock: keep waiting for it (asyncio
                    // re-acquires whatever happens), then report the cancel. The
                    // notification this waiter consumed passes to the next one.
                    if let Some(cancelled) = coop::take_cancel() {
                        if this.cancelled.is_none() {
                            this.cancelled = Some(cancelled);
                            if std::mem::take(&mut this.notified) {
                                cond.notify_unchecked(1);
                            }
                        }
                    }
                    let guard = match Pin::new(lock).poll(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(guard) => guard,
                    };
                    this.state = State::Done;
                    return Poll::Ready(match this.cancelled.take() {
                        Some(cancelled) => {
                            drop(guard);
                            Err(cancelled)
                        }
                        None => guard,
                    });
                }
                State::Done => panic!("evloop::sync::CondWait polled after it completed"),
            }
        }
    }
}

impl<T> Drop for CondWait<'_, T> {
    fn drop(&mut self) {
        match self.state {
            State::Waiting(id) => {
                self.state = State::Done;
                self.cond.leave(id);
            }
            // Dropped while re-taking the lock after a notification: the notification
            // passes on (asyncio 3.13 notifies another waiter on any exit by error).
            State::Reacquire(_) if std::mem::take(&mut self.notified) => {
                self.state = State::Done;
                self.cond.notify_unchecked(1);
            }
            _ => {}
        }
    }
}

impl<T> fmt::Debug for Condition<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let waiting = self.inner.waiters.try_borrow().map(|w| w.len()).ok();
        f.debug_struct("Condition")
            .field("locked", &self.inner.lock.locked())
            .field("waiting", &waiting)
            .finish()
    }
}

impl<T> fmt::Debug for CondWait<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Start(_) => "start",
            State::Waiting(_) => "waiting",
            State::Reacquire(_) => "reacquiring",
            State::Done => "done",
        };
        f.debug_struct("CondWait").field("state", &state).finish()
    }
}
