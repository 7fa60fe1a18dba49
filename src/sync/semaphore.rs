//! Loop-local `Semaphore` and `BoundedSemaphore` (Y4), and the acquire machinery the
//! loop-local `Mutex` shares.
//!
//! Owns: [`Sem`] — the [`Permits`] of one primitive in a `RefCell`, its loop binding —
//! and the acquire state of a waiting future. Must not touch: the loop's internals; the
//! only seam used is `coop::take_cancel` (T3). No `RefCell` borrow is held while a
//! waker is woken or dropped (rule 1).

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::bound::LoopBound;
use super::catch::wake_each;
use super::permits::Permits;
use super::wait_list::WaiterId;
use crate::error::{Error, InvalidStateError};
use crate::task::coop;

/// Permits in a `RefCell`, the state under every loop-local semaphore and mutex.
pub(crate) struct Sem {
    permits: RefCell<Permits>,
    bound: LoopBound,
    /// The type name and its thread-safe counterpart, for the wrong-loop panic.
    names: (&'static str, &'static str),
}

impl Sem {
    pub(crate) fn new(permits: usize, names: (&'static str, &'static str)) -> Sem {
        Sem {
            permits: RefCell::new(Permits::local(permits)),
            bound: LoopBound::default(),
            names,
        }
    }

    pub(crate) fn available(&self) -> usize {
        self.permits.borrow().available()
    }

    /// Whether an acquire would not succeed at once.
    pub(crate) fn locked(&self) -> bool {
        let mut p = self.permits.borrow_mut();
        p.available() == 0 || p.has_waiters()
    }

    pub(crate) fn try_acquire(&self) -> bool {
        self.permits.borrow_mut().try_acquire(1)
    }

    /// Returns `n` permits; they pass to the waiters at the front that they satisfy.
    pub(crate) fn release(&self, n: usize) {
        let mut permits = self.permits.borrow_mut();
        permits.add(n);
        if !permits.has_linked() {
            return; // nobody waits: the usual uncontended release
        }
        drop(permits);
        self.wake_granted();
    }

    fn wake_granted(&self) {
        wake_each(|| self.permits.borrow_mut().grant_next());
    }

    /// One poll of an acquire of one permit; `waiter` is the future's queue position.
    /// With `cancellable`, an undelivered cancel of the current task ends the wait
    /// (handing back a permit granted meanwhile) — `Condition` re-acquires without.
    pub(crate) fn poll_acquire(
        &self,
        waiter: &mut Option<WaiterId>,
        cx: &mut Context<'_>,
        cancellable: bool,
    ) -> Poll<Result<(), Error>> {
        if cancellable {
            if let Some(cancelled) = coop::take_cancel() {
                self.abandon(waiter);
                return Poll::Ready(Err(cancelled));
            }
        }
        let mut permits = self.permits.borrow_mut();
        let mut stale = None;
        if let Some(id) = *waiter {
            if permits.is_skipped(id) {
                // Passed over while a cancel was pending, and the cancel was withdrawn:
                // start over (nothing was granted to it).
                stale = permits.abandon(id).1;
                *waiter = None;
            }
        }
        let polled = match *waiter {
            None => {
                if permits.try_acquire(1) {
                    Poll::Ready(Ok(()))
                } else {
                    self.bound.check(self.names.0, self.names.1);
                    *waiter = Some(if cancellable {
                        permits.enqueue(1, cx.waker())
                    } else {
                        permits.enqueue_unskippable(1, cx.waker())
                    });
                    Poll::Pending
                }
            }
            Some(id) => {
                // The replaced or removed waker is dropped after the borrow (rule 1).
                let (polled, old_waker) = permits.poll_waiter_take(id, cx.waker());
                stale = stale.or(old_waker);
                if polled.is_ready() {
                    *waiter = None;
                }
                polled.map(Ok)
            }
        };
        drop(permits);
        drop(stale);
        polled
    }

    /// The acquiring future goes away: leave the queue, and pass on a permit that was
    /// already handed to it.
    pub(crate) fn abandon(&self, waiter: &mut Option<WaiterId>) {
        let Some(id) = waiter.take() else {
            return;
        };
        let (back, waker) = self.permits.borrow_mut().abandon(id);
        drop(waker);
        if back > 0 {
            self.release(back);
        }
    }
}

/// An asyncio semaphore: a count of permits, acquired FIFO (Y4).
///
/// Loop-local: `!Send`, and `Clone` shares the same permits. For tasks of different
/// loops or plain threads use [`SharedSemaphore`](crate::sync::SharedSemaphore).
///
/// ```
/// use evloop::sync::Semaphore;
///
/// evloop::run(async {
///     let sem = Semaphore::new(2);
///     let a = sem.acquire().await?;
///     let _b = sem.try_acquire().expect("one permit left");
///     assert!(sem.try_acquire().is_none());
///     drop(a);
///     assert_eq!(sem.available(), 1);
///     Ok::<(), evloop::Error>(())
/// })
/// .unwrap();
/// ```
#[derive(Clone)]
pub struct Semaphore {
    sem: Rc<Sem>,
}

impl Semaphore {
    /// A semaphore with `permits` permits.
    pub fn new(permits: usize) -> Semaphore {
        Semaphore {
            sem: Rc::new(Sem::new(
                permits,
                ("Semaphore", "evloop::sync::SharedSemaphore"),
            )),
        }
    }

    /// Waits for a permit (FIFO). A free permit with nobody waiting is taken without
    /// suspending.
    ///
    /// # Errors
    ///
    /// `Err(Error::Cancelled)` when the awaiting task is cancelled; a permit handed to
    /// it meanwhile passes to the next waiter.
    ///
    /// # Panics
    ///
    /// When it has to wait on another loop than the first one that waited on this
    /// semaphore (use `SharedSemaphore` across loops).
    pub fn acquire(&self) -> Acquire<'_> {
        Acquire {
            sem: &self.sem,
            waiter: None,
        }
    }

    /// Takes a permit if one is free and nobody waits.
    pub fn try_acquire(&self) -> Option<SemaphorePermit<'_>> {
        self.sem
            .try_acquire()
            .then(|| SemaphorePermit { sem: &self.sem })
    }

    /// Adds a permit, asyncio style (not paired with an acquire): the first waiter gets
    /// it.
    pub fn release(&self) {
        self.sem.release(1);
    }

    /// The number of free permits.
    pub fn available(&self) -> usize {
        self.sem.available()
    }

    /// Whether an acquire would have to wait (no permit free, or others waiting).
    pub fn locked(&self) -> bool {
        self.sem.locked()
    }
}

/// A semaphore whose `release` may not raise the count above its initial value (Y4).
///
/// ```
/// use evloop::sync::BoundedSemaphore;
///
/// let sem = BoundedSemaphore::new(1);
/// assert!(sem.release().unwrap_err().is_invalid_state());
/// ```
#[derive(Clone)]
pub struct BoundedSemaphore {
    inner: Semaphore,
    limit: usize,
}

impl BoundedSemaphore {
    /// A semaphore with `permits` permits, never more.
    pub fn new(permits: usize) -> BoundedSemaphore {
        BoundedSemaphore {
            inner: Semaphore {
                sem: Rc::new(Sem::new(
                    permits,
                    ("BoundedSemaphore", "evloop::sync::SharedSemaphore"),
                )),
            },
            limit: permits,
        }
    }

    /// As [`Semaphore::acquire`].
    ///
    /// # Errors
    ///
    /// `Err(Error::Cancelled)` when the awaiting task is cancelled.
    pub fn acquire(&self) -> Acquire<'_> {
        self.inner.acquire()
    }

    /// As [`Semaphore::try_acquire`].
    pub fn try_acquire(&self) -> Option<SemaphorePermit<'_>> {
        self.inner.try_acquire()
    }

    /// Adds a permit back.
    ///
    /// # Errors
    ///
    /// `Err(Error::InvalidState)` ("BoundedSemaphore released too many times") when
    /// the count is already at its initial value.
    pub fn release(&self) -> Result<(), Error> {
        if self.inner.available() >= self.limit {
            return Err(Error::InvalidState(InvalidStateError::new(
                "BoundedSemaphore released too many times",
            )));
        }
        self.inner.release();
        Ok(())
    }

    /// The number of free permits.
    pub fn available(&self) -> usize {
        self.inner.available()
    }

    /// Whether an acquire would have to wait.
    pub fn locked(&self) -> bool {
        self.inner.locked()
    }
}

/// The future of [`Semaphore::acquire`]: a place in the semaphore's FIFO, left when it
/// is dropped.
#[must_use = "futures do nothing unless awaited"]
pub struct Acquire<'a> {
    sem: &'a Sem,
    waiter: Option<WaiterId>,
}

impl<'a> Future for Acquire<'a> {
    type Output = Result<SemaphorePermit<'a>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        crate::task::budget::budgeted(cx, move |cx| {
            let this = self.get_mut();
            let sem = this.sem;
            sem.poll_acquire(&mut this.waiter, cx, true)
                .map(|r| r.map(|()| SemaphorePermit { sem }))
        })
    }
}

impl Drop for Acquire<'_> {
    fn drop(&mut self) {
        self.sem.abandon(&mut self.waiter);
    }
}

/// One permit of a [`Semaphore`], given back when dropped.
#[must_use = "the permit is released at once when dropped"]
pub struct SemaphorePermit<'a> {
    sem: &'a Sem,
}

impl SemaphorePermit<'_> {
    /// Consumes the permit without giving it back (the semaphore has one less).
    pub fn forget(self) {
        std::mem::forget(self);
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        self.sem.release(1);
    }
}

impl fmt::Debug for Sem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.permits.try_borrow() {
            Ok(p) => f
                .debug_struct(self.names.0)
                .field("available", &p.available())
                .field("waiting", &p.waiting())
                .finish(),
            Err(_) => f.debug_struct(self.names.0).finish_non_exhaustive(),
        }
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.sem.fmt(f)
    }
}

impl fmt::Debug for BoundedSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.sem.fmt(f)
    }
}

impl fmt::Debug for Acquire<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acquire")
            .field("queued", &self.waiter.is_some())
            .finish()
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit").finish_non_exhaustive()
    }
}
