//! Counted permits over a [`WaitList`]: the semaphore under `Semaphore`,
//! `BoundedSemaphore`, `Mutex` (one permit) and their thread-safe counterparts, in the
//! spirit of tokio's batch semaphore.
//!
//! Owns: the count of free permits and the FIFO of acquirers. Must not touch: interior
//! mutability, locking or waking — the caller keeps a `Permits` in a `RefCell` (loop
//! local) or a `Mutex` (shared) and wakes what [`Permits::grant_next`] hands out after
//! releasing it.
//!
//! How a permit travels: a release adds to `available`, then, while the front waiter
//! wants no more than is free, moves its share out of `available` into the waiter's
//! node (`Wait::Granted`) and unlinks it — the permit now belongs to that waiter even
//! though it has not run. When it is polled it takes the grant and removes its node. If
//! it is dropped or cancelled first, [`Permits::abandon`] gives the grant back, and the
//! caller releases it again: the next waiter gets it. A newcomer never overtakes a
//! waiter: `try_acquire` fails while anyone waits (FIFO fairness).

use std::task::{Poll, Waker};

use super::wait_list::{WaitList, WaiterId};

/// What a waiter's node holds.
#[derive(Debug)]
pub(crate) enum Wait {
    /// Waiting for this many permits.
    Waiting(usize),
    /// This many permits were handed over.
    Granted(usize),
}

/// Free permits and the acquirers waiting for them.
#[derive(Debug, Default)]
pub(crate) struct Permits {
    available: usize,
    waiters: WaitList<Wait>,
}

impl Permits {
    pub(crate) fn new(available: usize) -> Permits {
        Permits {
            available,
            waiters: WaitList::default(),
        }
    }

    /// Permits for the tasks of one loop: waiters whose task has a cancel pending are
    /// passed over (see [`WaitList::skipping_cancelled`]).
    pub(crate) fn local(available: usize) -> Permits {
        Permits {
            available,
            waiters: WaitList::skipping_cancelled(),
        }
    }

    #[inline]
    pub(crate) fn available(&self) -> usize {
        self.available
    }

    /// Whether anyone waits.
    pub(crate) fn has_waiters(&mut self) -> bool {
        self.waiters.settle();
        !self.waiters.is_empty()
    }

    /// Whether any acquirer is queued, cancelled ones included (no cancel check: the
    /// fast path of a release).
    #[inline]
    pub(crate) fn has_linked(&self) -> bool {
        !self.waiters.is_empty()
    }

    /// The number of acquirers waiting.
    pub(crate) fn waiting(&self) -> usize {
        self.waiters.len()
    }

    /// Takes `n` permits at once if they are free and nobody waits.
    #[inline]
    pub(crate) fn try_acquire(&mut self, n: usize) -> bool {
        if self.available < n {
            return false;
        }
        self.waiters.settle();
        if self.waiters.is_empty() {
            self.available -= n;
            true
        } else {
            false
        }
    }

    /// Queues an acquirer of `n` permits.
    #[inline]
    pub(crate) fn enqueue(&mut self, n: usize, waker: &Waker) -> WaiterId {
        self.waiters.push_back(Wait::Waiting(n), waker)
    }

    /// Whether queued acquirer `id` has been handed its permits.
    pub(crate) fn is_granted(&mut self, id: WaiterId) -> bool {
        matches!(self.waiters.data(id), Wait::Granted(_))
    }

    /// Whether queued acquirer `id` already holds a waker that wakes like `waker` (so a
    /// poll needs no new clone).
    pub(crate) fn waker_is(&self, id: WaiterId, waker: &Waker) -> bool {
        self.waiters.waker_is(id, waker)
    }

    /// Queues an acquirer with a waker the caller cloned outside its lock.
    pub(crate) fn enqueue_waker(&mut self, n: usize, waker: Waker) -> WaiterId {
        self.waiters.push_back_waker(Wait::Waiting(n), waker)
    }

    /// [`poll_waiter_take`](Self::poll_waiter_take) with a waker the caller cloned
    /// outside its lock.
    pub(crate) fn poll_waiter_store(
        &mut self,
        id: WaiterId,
        waker: Waker,
    ) -> (Poll<()>, Option<Waker>) {
        match self.waiters.data(id) {
            Wait::Granted(_) => (Poll::Ready(()), self.waiters.remove(id).1),
            Wait::Waiting(_) => (Poll::Pending, self.waiters.store_waker(id, waker)),
        }
    }

    /// Queues an acquirer that keeps its turn even if its task is cancelled.
    pub(crate) fn enqueue_unskippable(&mut self, n: usize, waker: &Waker) -> WaiterId {
        self.waiters.push_back_unskippable(Wait::Waiting(n), waker)
    }

    /// Whether a queued acquirer was passed over (its cancel was then withdrawn): it
    /// must leave ([`abandon`](Self::abandon)) and acquire again.
    pub(crate) fn is_skipped(&self, id: WaiterId) -> bool {
        self.waiters.is_skipped(id)
    }

    /// A queued acquirer's poll: `Ready` (its node removed) once its permits were
    /// handed over. The waker handed back — the removed node's when `Ready`, the
    /// replaced one when `Pending` — is the caller's to drop after its borrow or lock
    /// (rule 1).
    #[inline]
    pub(crate) fn poll_waiter_take(
        &mut self,
        id: WaiterId,
        waker: &Waker,
    ) -> (Poll<()>, Option<Waker>) {
        match self.waiters.data(id) {
            Wait::Granted(_) => (Poll::Ready(()), self.waiters.remove(id).1),
            Wait::Waiting(_) => (Poll::Pending, self.waiters.replace_waker(id, waker)),
        }
    }

    /// A queued acquirer goes away (dropped or cancelled): its node is removed. Returns
    /// the permits that had been handed to it — the caller must [`release`](Self::add)
    /// them again so they pass to the next waiter — and its waker, to drop after the
    /// borrow.
    #[inline]
    pub(crate) fn abandon(&mut self, id: WaiterId) -> (usize, Option<Waker>) {
        match self.waiters.remove(id) {
            (Wait::Granted(n), waker) => (n, waker),
            (Wait::Waiting(_), waker) => (0, waker),
        }
    }

    /// Adds `n` free permits (saturating). Follow with [`grant_next`](Self::grant_next)
    /// until it returns `None`.
    #[inline]
    pub(crate) fn add(&mut self, n: usize) {
        self.available = self.available.saturating_add(n);
    }

    /// Hands permits to the front waiter if enough are free, returning its waker (to
    /// wake after the borrow); `None` when the front waiter (if any) must wait on.
    #[inline]
    pub(crate) fn grant_next(&mut self) -> Option<Waker> {
        let want = match self.waiters.front_data()? {
            Wait::Waiting(want) => *want,
            Wait::Granted(_) => unreachable!("a granted waiter is unlinked"),
        };
        if want > self.available {
            return None;
        }
        self.available -= want;
        let id = self.waiters.front().expect("checked above");
        *self.waiters.data(id) = Wait::Granted(want);
        self.waiters
            .unlink(id)
            .or_else(|| Some(Waker::noop().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop() -> Waker {
        Waker::noop().clone()
    }

    #[test]
    fn fifo_grants_and_no_overtaking() {
        let mut p = Permits::new(1);
        assert!(p.try_acquire(1));
        let w = noop();
        let a = p.enqueue(1, &w);
        let b = p.enqueue(1, &w);
        assert!(p.poll_waiter_take(a, &w).0.is_pending());
        p.add(1);
        assert!(p.grant_next().is_some());
        assert!(p.grant_next().is_none(), "b must wait: no permit left");
        assert!(!p.try_acquire(1), "b waits: a newcomer cannot overtake");
        assert!(p.poll_waiter_take(a, &w).0.is_ready());
        p.add(1);
        assert!(p.grant_next().is_some());
        assert!(p.poll_waiter_take(b, &w).0.is_ready());
        assert_eq!(p.available(), 0);
    }

    #[test]
    fn an_abandoned_grant_comes_back_for_the_next_waiter() {
        let mut p = Permits::new(0);
        let w = noop();
        let a = p.enqueue(2, &w);
        let b = p.enqueue(2, &w);
        p.add(2);
        assert!(p.grant_next().is_some());
        let (back, _) = p.abandon(a);
        assert_eq!(back, 2);
        p.add(back);
        assert!(p.grant_next().is_some());
        assert!(p.poll_waiter_take(b, &w).0.is_ready());
        assert_eq!(p.available(), 0);
    }

    #[test]
    fn a_large_request_blocks_the_ones_behind_it() {
        let mut p = Permits::new(0);
        let w = noop();
        let big = p.enqueue(3, &w);
        let small = p.enqueue(1, &w);
        p.add(2);
        assert!(
            p.grant_next().is_none(),
            "strict FIFO: the big request is first"
        );
        assert!(p.poll_waiter_take(small, &w).0.is_pending());
        p.add(1);
        assert!(p.grant_next().is_some());
        assert!(p.poll_waiter_take(big, &w).0.is_ready());
        let (back, _) = p.abandon(small);
        assert_eq!(back, 0);
    }
}
