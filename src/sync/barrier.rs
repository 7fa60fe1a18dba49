//! Loop-local `Barrier` (Y5): `parties` tasks wait until all have arrived.
//!
//! Owns: the FIFO of the current round's waiters (each node's data: waiting, released
//! with an index, or broken) and the broken flag. Must not touch: anything else. The
//! arrival that completes a round hands every waiter its index under one borrow and
//! wakes them after it, so the next round can begin at once.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::bound::LoopBound;
use super::catch::wake_all;
use super::wait_list::{WaitList, WaiterId};
use crate::error::Error;
use crate::task::coop;

/// The error of a wait on a reset or aborted [`Barrier`] (asyncio's
/// `BrokenBarrierError`), inside an [`Error`]: `err.downcast_ref::<BrokenBarrierError>()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenBarrierError;

impl fmt::Display for BrokenBarrierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the barrier is broken (it was reset or aborted)")
    }
}

impl std::error::Error for BrokenBarrierError {}

#[derive(Debug)]
enum Slot {
    Waiting,
    Released(usize),
    Broken,
}

struct State {
    waiters: WaitList<Slot>,
    broken: bool,
}

struct Inner {
    parties: usize,
    state: RefCell<State>,
    bound: LoopBound,
}

/// An asyncio barrier (Y5): each round, `parties` tasks call [`wait`](Self::wait); the
/// last to arrive releases them all. Each gets its arrival index in the round,
/// `0..parties` (the last arrival `parties - 1`); the barrier is then ready for the
/// next round.
///
/// ```
/// use evloop::sync::Barrier;
///
/// evloop::run(async {
///     let barrier = Barrier::new(3);
///     let tasks: Vec<_> = (0..3)
///         .map(|_| {
///             let barrier = barrier.clone();
///             evloop::create_task(async move { barrier.wait().await })
///         })
///         .collect();
///     let mut indices = Vec::new();
///     for t in tasks {
///         indices.push(t.await?);
///     }
///     indices.sort();
///     assert_eq!(indices, [0, 1, 2]);
///     Ok::<(), evloop::Error>(())
/// })
/// .unwrap();
/// ```
#[derive(Clone)]
pub struct Barrier {
    inner: Rc<Inner>,
}

fn broken() -> Error {
    Error::new(BrokenBarrierError)
}

impl Barrier {
    /// A barrier for `parties` tasks.
    ///
    /// # Panics
    ///
    /// If `parties` is 0.
    pub fn new(parties: usize) -> Barrier {
        assert!(
            parties > 0,
            "evloop::sync::Barrier::new: parties must be at least 1"
        );
        Barrier {
            inner: Rc::new(Inner {
                parties,
                // Not skipping cancelled waiters: asyncio counts a party whose task has
                // a cancel pending until that task runs (its `finally` leaves).
                state: RefCell::new(State {
                    waiters: WaitList::default(),
                    broken: false,
                }),
                bound: LoopBound::default(),
            }),
        }
    }

    /// Waits until `parties` tasks are waiting; returns this task's arrival index.
    ///
    /// # Errors
    ///
    /// An error holding [`BrokenBarrierError`] if the barrier is broken or is reset or
    /// aborted while waiting; `Err(Error::Cancelled)` when the task is cancelled. A
    /// cancelled party counts in the round until its task runs (as in asyncio), then
    /// leaves it: [`n_waiting`](Self::n_waiting) drops by one; if the round tripped
    /// first, it still ends cancelled. A dropped wait leaves at once.
    pub fn wait(&self) -> BarrierWait<'_> {
        BarrierWait {
            barrier: self,
            waiter: None,
        }
    }

    /// Breaks the current round (its waiters get [`BrokenBarrierError`]) and makes the
    /// barrier usable again, empty.
    pub fn reset(&self) {
        self.break_waiters(false);
    }

    /// Breaks the barrier: waiters, and every wait until [`reset`](Self::reset), get
    /// [`BrokenBarrierError`].
    pub fn abort(&self) {
        self.break_waiters(true);
    }

    fn break_waiters(&self, broken: bool) {
        let wakers = {
            let mut state = self.inner.state.borrow_mut();
            state.broken = broken;
            let mut wakers = Vec::with_capacity(state.waiters.len());
            while let Some((id, waker)) = state.waiters.pop_front() {
                *state.waiters.data(id) = Slot::Broken;
                wakers.extend(waker);
            }
            wakers
        };
        wake_all(wakers);
    }

    /// Whether the barrier is broken (aborted and not reset).
    pub fn broken(&self) -> bool {
        self.inner.state.borrow().broken
    }

    /// The number of tasks waiting in the current round.
    pub fn n_waiting(&self) -> usize {
        self.inner.state.borrow().waiters.len()
    }

    /// The number of tasks a round needs.
    pub fn parties(&self) -> usize {
        self.inner.parties
    }
}

/// The future of [`Barrier::wait`]; dropping it leaves the round.
#[must_use = "futures do nothing unless awaited"]
pub struct BarrierWait<'a> {
    barrier: &'a Barrier,
    waiter: Option<WaiterId>,
}

impl BarrierWait<'_> {
    fn leave(&mut self) {
        if let Some(id) = self.waiter.take() {
            let removed = self.barrier.inner.state.borrow_mut().waiters.remove(id);
            drop(removed);
        }
    }
}

impl Future for BarrierWait<'_> {
    type Output = Result<usize, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        crate::task::budget::budgeted(cx, move |cx| {
            let this = self.get_mut();
            if let Some(cancelled) = coop::take_cancel() {
                this.leave();
                return Poll::Ready(Err(cancelled));
            }
            let inner = &this.barrier.inner;
            let mut state = inner.state.borrow_mut();
            match this.waiter {
                None => {
                    if state.broken {
                        return Poll::Ready(Err(broken()));
                    }
                    if state.waiters.len() + 1 < inner.parties {
                        inner
                            .bound
                            .check("Barrier", "a SharedMutex-guarded count with a SharedEvent");
                        this.waiter = Some(state.waiters.push_back(Slot::Waiting, cx.waker()));
                        return Poll::Pending;
                    }
                    // The last arrival: release the round in arrival order.
                    let mut wakers = Vec::with_capacity(state.waiters.len());
                    let mut index = 0;
                    while let Some((id, waker)) = state.waiters.pop_front() {
                        *state.waiters.data(id) = Slot::Released(index);
                        index += 1;
                        wakers.extend(waker);
                    }
                    drop(state);
                    wake_all(wakers);
                    Poll::Ready(Ok(inner.parties - 1))
                }
                Some(id) => {
                    let outcome = match state.waiters.data(id) {
                        Slot::Waiting => {
                            let old = state.waiters.replace_waker(id, cx.waker());
                            drop(state);
                            drop(old); // a foreign waker's drop: after the borrow
                            return Poll::Pending;
                        }
                        Slot::Released(index) => Ok(*index),
                        Slot::Broken => Err(broken()),
                    };
                    let removed = state.waiters.remove(id);
                    drop(state);
                    drop(removed);
                    this.waiter = None;
                    Poll::Ready(outcome)
                }
            }
        })
    }
}

impl Drop for BarrierWait<'_> {
    fn drop(&mut self) {
        self.leave();
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.inner.state.try_borrow() {
            Ok(state) => f
                .debug_struct("Barrier")
                .field("parties", &self.inner.parties)
                .field("waiting", &state.waiters.len())
                .field("broken", &state.broken)
                .finish(),
            Err(_) => f.debug_struct("Barrier").finish_non_exhaustive(),
        }
    }
}

impl fmt::Debug for BarrierWait<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BarrierWait")
            .field("queued", &self.waiter.is_some())
            .finish()
    }
}
