//! [`SharedSemaphore`], and the acquire / release protocol over [`Permits`] under a
//! `Mutex` that it shares with `SharedMutex` (one permit).
//!
//! Owns: the [`Acquire`] wait (enqueue, poll, hand a grant on when dropped) and
//! [`release`]. Must not touch: what a permit protects (a `SharedMutex`'s value), nor
//! the permit accounting itself, which is `Permits`'.
//!
//! The wake protocol: an acquirer that cannot take a permit at once queues itself in
//! `Permits` under the lock, with its waker. A release adds the permit and, under the
//! same lock, moves it into the front waiter's node (`Granted`), taking its waker; the
//! waker is woken after the lock is released. The woken waiter's next poll finds the
//! grant and removes its node. A waiter that goes away first (dropped, or cancelled:
//! its poll sees `take_cancel`) removes its node under the lock and releases whatever
//! it had been granted, so the permit passes to the next waiter — never lost.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use super::support::{Wakers, block_on, lock};
use crate::error::Error;
use crate::loom::sync::Mutex;
use crate::sync::permits::Permits;
use crate::sync::wait_list::WaiterId;
use crate::task::coop;

/// Releases `n` permits and hands them to the waiters at the front, waking them after
/// the lock.
pub(crate) fn release(permits: &Mutex<Permits>, n: usize) {
    let mut guard = lock(permits.lock());
    guard.add(n);
    let mut wakers = Wakers::default();
    while let Some(waker) = guard.grant_next() {
        wakers.push(waker);
    }
    drop(guard);
    wakers.wake();
}

/// One acquirer of a single permit: its registration in the FIFO, removed on drop.
pub(crate) struct Acquire<'a> {
    permits: &'a Mutex<Permits>,
    waiter: Option<WaiterId>,
    done: bool,
}

impl<'a> Acquire<'a> {
    pub(crate) fn new(permits: &'a Mutex<Permits>) -> Acquire<'a> {
        Acquire {
            permits,
            waiter: None,
            done: false,
        }
    }

    /// `Ready(Ok)` once the permit is this acquirer's; `Ready(Err(Cancelled))` when the
    /// current task is cancelled (the registration removed, a grant handed on).
    pub(crate) fn poll_acquire(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        assert!(
            !self.done,
            "evloop::sync: acquire future polled after completion"
        );
        if let Some(cancelled) = coop::take_cancel() {
            self.leave();
            self.done = true;
            return Poll::Ready(Err(cancelled));
        }
        // A foreign waker's `clone` is user code: never under the lock (rule 1). It is
        // needed only to queue, or to re-queue with another waker: then the lock is let
        // go, the waker cloned outside it, and the step taken again. (Declared before
        // the guard, so an unused clone is dropped after it.)
        let mut fresh: Option<Waker> = None;
        let (permits, ready, old_waker) = loop {
            let mut permits = lock(self.permits.lock());
            match self.waiter {
                None if permits.try_acquire(1) => break (permits, true, None),
                None => {
                    if let Some(waker) = fresh.take() {
                        self.waiter = Some(permits.enqueue_waker(1, waker));
                        break (permits, false, None);
                    }
                }
                Some(id) if permits.is_granted(id) || permits.waker_is(id, cx.waker()) => {
                    let (poll, waker) = permits.poll_waiter_take(id, cx.waker());
                    if poll.is_ready() {
                        self.waiter = None;
                    }
                    break (permits, poll.is_ready(), waker);
                }
                Some(id) => {
                    if let Some(waker) = fresh.take() {
                        let (poll, waker) = permits.poll_waiter_store(id, waker);
                        break (permits, poll.is_ready(), waker);
                    }
                }
            }
            drop(permits);
            fresh = Some(cx.waker().clone());
        };
        drop(permits);
        drop(old_waker);
        if ready {
            self.done = true;
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }

    /// Leaves the FIFO; a permit granted meanwhile goes to the next waiter.
    fn leave(&mut self) {
        let Some(id) = self.waiter.take() else {
            return;
        };
        let mut permits = lock(self.permits.lock());
        let (granted, waker) = permits.abandon(id);
        let mut wakers = Wakers::default();
        if granted > 0 {
            permits.add(granted);
            while let Some(next) = permits.grant_next() {
                wakers.push(next);
            }
        }
        drop(permits);
        drop(waker);
        wakers.wake();
    }
}

impl Drop for Acquire<'_> {
    fn drop(&mut self) {
        self.leave();
    }
}

/// A counting semaphore shared between threads and loops (SPEC Y7): the thread-safe
/// counterpart of the loop-local `Semaphore`. `Clone` shares it (an `Arc` inside);
/// waiters are served first come, first served, whichever loop or thread they wait on.
///
/// ```
/// use evloop::sync::SharedSemaphore;
///
/// let group = evloop::LoopGroup::new(2)?;
/// let sem = SharedSemaphore::new(1);
/// let results = group.block_on_each({
///     let sem = sem.clone();
///     move |index, _| {
///         let sem = sem.clone();
///         async move {
///             let _permit = sem.acquire().await?;
///             evloop::time::sleep(std::time::Duration::from_millis(1)).await?;
///             Ok::<_, evloop::Error>(index)
///         }
///     }
/// });
/// assert_eq!(results.len(), 2);
/// assert_eq!(sem.available(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct SharedSemaphore {
    permits: Arc<Mutex<Permits>>,
}

impl SharedSemaphore {
    /// A semaphore with `permits` free permits.
    ///
    /// ```
    /// let sem = evloop::sync::SharedSemaphore::new(3);
    /// assert_eq!(sem.available(), 3);
    /// ```
    pub fn new(permits: usize) -> SharedSemaphore {
        SharedSemaphore {
            permits: Arc::new(Mutex::new(Permits::new(permits))),
        }
    }

    /// Waits for a permit (FIFO among waiters). A free permit with nobody waiting is
    /// taken without suspending.
    ///
    /// Cancellation-safe: a waiter that is dropped or cancelled takes nothing, and a
    /// permit handed to it before it ran passes to the next waiter.
    ///
    /// ```
    /// evloop::run(async {
    ///     let sem = evloop::sync::SharedSemaphore::new(1);
    ///     let permit = sem.acquire().await?;
    ///     assert_eq!(sem.available(), 0);
    ///     drop(permit);
    ///     assert_eq!(sem.available(), 1);
    ///     Ok::<(), evloop::Error>(())
    /// })
    /// .unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// `Err(Error::Cancelled)` when the awaiting evloop task is cancelled.
    pub fn acquire(
        &self,
    ) -> impl Future<Output = Result<SharedSemaphorePermit<'_>, Error>> + Send + '_ {
        AcquirePermit {
            sem: self,
            acquire: Acquire::new(&self.permits),
        }
    }

    /// [`acquire`](Self::acquire) for plain threads: blocks until a permit is free.
    ///
    /// ```
    /// let sem = evloop::sync::SharedSemaphore::new(0);
    /// let releaser = {
    ///     let sem = sem.clone();
    ///     std::thread::spawn(move || sem.release())
    /// };
    /// let permit = sem.blocking_acquire();
    /// permit.forget();
    /// releaser.join().unwrap();
    /// assert_eq!(sem.available(), 0);
    /// ```
    ///
    /// # Panics
    ///
    /// On the thread of an evloop loop: it would block the loop (use
    /// `acquire().await`).
    #[track_caller]
    pub fn blocking_acquire(&self) -> SharedSemaphorePermit<'_> {
        let acquired = block_on(
            "SharedSemaphore::blocking_acquire",
            "sem.acquire().await",
            self.acquire(),
        );
        acquired.expect("a plain thread's wait is never cancelled")
    }

    /// Takes a permit if one is free and nobody waits.
    ///
    /// ```
    /// let sem = evloop::sync::SharedSemaphore::new(1);
    /// let permit = sem.try_acquire().unwrap();
    /// assert!(sem.try_acquire().is_none());
    /// drop(permit);
    /// assert!(sem.try_acquire().is_some());
    /// ```
    pub fn try_acquire(&self) -> Option<SharedSemaphorePermit<'_>> {
        // The permit is made only once taken: dropping one releases.
        let acquired = lock(self.permits.lock()).try_acquire(1);
        acquired.then(|| SharedSemaphorePermit { sem: self })
    }

    /// Adds one permit (asyncio style, not paired with an acquire), waking the first
    /// waiter.
    ///
    /// ```
    /// let sem = evloop::sync::SharedSemaphore::new(0);
    /// sem.release();
    /// assert_eq!(sem.available(), 1);
    /// ```
    pub fn release(&self) {
        release(&self.permits, 1);
    }

    /// The number of free permits.
    ///
    /// ```
    /// let sem = evloop::sync::SharedSemaphore::new(2);
    /// let _p = sem.try_acquire();
    /// assert_eq!(sem.available(), 1);
    /// ```
    pub fn available(&self) -> usize {
        lock(self.permits.lock()).available()
    }

    /// Whether an acquire would not succeed at once: no free permit, or waiters.
    ///
    /// ```
    /// let sem = evloop::sync::SharedSemaphore::new(1);
    /// let p = sem.try_acquire();
    /// assert!(sem.locked());
    /// drop(p);
    /// assert!(!sem.locked());
    /// ```
    pub fn locked(&self) -> bool {
        let mut permits = lock(self.permits.lock());
        permits.available() == 0 || permits.has_waiters()
    }
}

impl fmt::Debug for SharedSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let permits = lock(self.permits.lock());
        let (available, waiting) = (permits.available(), permits.waiting());
        drop(permits);
        f.debug_struct("SharedSemaphore")
            .field("available", &available)
            .field("waiting", &waiting)
            .finish()
    }
}

/// The future of [`SharedSemaphore::acquire`].
struct AcquirePermit<'a> {
    sem: &'a SharedSemaphore,
    acquire: Acquire<'a>,
}

impl<'a> Future for AcquirePermit<'a> {
    type Output = Result<SharedSemaphorePermit<'a>, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        crate::task::sync_await(cx, "SharedSemaphore::acquire", move |cx| {
            let sem = self.sem;
            self.acquire
                .poll_acquire(cx)
                .map_ok(|()| SharedSemaphorePermit { sem })
        })
    }
}

/// A permit of a [`SharedSemaphore`]: released when dropped.
///
/// ```
/// let sem = evloop::sync::SharedSemaphore::new(1);
/// let permit = sem.try_acquire().unwrap();
/// drop(permit);
/// assert_eq!(sem.available(), 1);
/// ```
#[must_use = "the permit is released at once if not kept"]
pub struct SharedSemaphorePermit<'a> {
    sem: &'a SharedSemaphore,
}

impl SharedSemaphorePermit<'_> {
    /// Consumes the permit without releasing it: the semaphore has one permit less.
    ///
    /// ```
    /// let sem = evloop::sync::SharedSemaphore::new(1);
    /// sem.try_acquire().unwrap().forget();
    /// assert_eq!(sem.available(), 0);
    /// ```
    pub fn forget(self) {
        std::mem::forget(self);
    }
}

impl Drop for SharedSemaphorePermit<'_> {
    fn drop(&mut self) {
        self.sem.release();
    }
}

impl fmt::Debug for SharedSemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedSemaphorePermit")
            .finish_non_exhaustive()
    }
}
