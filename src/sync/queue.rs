//! The core of the loop-local queues (Y6): a buffer between two wait lists.
//!
//! Owns: the `RefCell` around a queue's [`State`] (`queue_state`), the polls of `get`,
//! `put` and `join`, `task_done` and `shutdown`, and waking what the state's steps hand
//! out once the borrow is released. Must not touch: the order of the buffer (a
//! [`Buffer`] decides it: FIFO, LIFO or priority) and anything outside `sync`.
//!
//! How an item travels: a `put` stores the item in the buffer; if a `get` waits, the
//! first one is woken with a *claim* (`Get::Claimed`) — one buffered item is kept for
//! it, so no newcomer can take it, and when it runs it takes whatever is next in the
//! queue's order (the oldest, newest or smallest), as asyncio's woken getter does. When
//! room is made — a `get` takes an item — the first waiting put's value (kept in its
//! node) moves into the buffer and that putter is woken. So "getters wait ⇒ every
//! buffered item is claimed" and "putters wait ⇒ the queue is full" always hold. A
//! claim whose getter is cancelled or dropped before it ran passes to the next waiting
//! getter (or lapses, leaving the item free): an item is never lost. A getter whose
//! task is cancelled after it got a claim gives it up at the next queue operation
//! (`State::reclaim`), before the task runs. User values (items) are only dropped after
//! the borrow ends (rule 1); a `PriorityQueue`'s `Ord` is called under it (see its
//! docs).

use std::cell::{RefCell, RefMut};
use std::collections::VecDeque;
use std::fmt;
use std::task::{Context, Poll, Waker};

use super::bound::LoopBound;
use super::catch::{drop_all, wake_all, wake_one, wake_two};
use super::queue_kinds::{QueueEmpty, QueueFull, QueueShutDown};
use super::queue_state::{Get, Put, State};
use super::wait_list::{WaitList, WaiterId};
use crate::error::{Error, InvalidStateError};
use crate::task::coop;

pub(crate) use super::queue_state::Buffer;

/// The waits of a queue, as the public futures see them (one future type for the
/// three orders).
pub(crate) trait QueueOps<T> {
    fn poll_get(
        &self,
        waiter: &mut Option<WaiterId>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<T, Error>>;
    fn abandon_get(&self, waiter: &mut Option<WaiterId>);
    fn poll_put(
        &self,
        value: &mut Option<T>,
        waiter: &mut Option<WaiterId>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Error>>;
    fn abandon_put(&self, waiter: &mut Option<WaiterId>);
    fn poll_join(
        &self,
        waiter: &mut Option<WaiterId>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Error>>;
    fn abandon_join(&self, waiter: &mut Option<WaiterId>);
}

pub(crate) struct Core<T, B> {
    state: RefCell<State<T, B>>,
    maxsize: usize,
    bound: LoopBound,
    name: &'static str,
}

impl<T, B: Buffer<T>> Core<T, B> {
    pub(crate) fn new(maxsize: usize, name: &'static str) -> Core<T, B> {
        Core {
            state: RefCell::new(State {
                buf: B::default(),
                getters: WaitList::skipping_cancelled(),
                putters: WaitList::skipping_cancelled(),
                joiners: WaitList::skipping_cancelled(),
                claims: 0,
                claimed: VecDeque::new(),
                reclaim_epoch: crate::task::coop::cancel_epoch(),
                unfinished: 0,
                shut_down: false,
            }),
            maxsize,
            bound: LoopBound::default(),
            name,
        }
    }

    pub(crate) fn maxsize(&self) -> usize {
        self.maxsize
    }

    pub(crate) fn qsize(&self) -> usize {
        self.state.borrow().size()
    }

    pub(crate) fn full(&self) -> bool {
        self.state.borrow().is_full(self.maxsize)
    }

    /// The state, after [`State::reclaim`] (whose getters are woken at once: a wake
    /// only schedules a task, so the borrow can be taken again).
    fn reclaimed(&self) -> RefMut<'_, State<T, B>> {
        let mut state = self.state.borrow_mut();
        let wakers = state.reclaim();
        if !wakers.is_empty() {
            drop(state);
            wake_all(wakers);
            state = self.state.borrow_mut();
        }
        state
    }

    pub(crate) fn put_nowait(&self, item: T) -> Result<(), QueueFull<T>> {
        let mut state = self.reclaimed();
        if state.shut_down {
            return Err(QueueFull::new(item, true));
        }
        if state.is_full(self.maxsize) {
            return Err(QueueFull::new(item, false));
        }
        let waker = state.deliver(item);
        drop(state);
        wake_one(waker);
        Ok(())
    }

    pub(crate) fn get_nowait(&self) -> Result<T, QueueEmpty> {
        let mut state = self.reclaimed();
        match state.take(self.maxsize) {
            Some((item, wakers)) => {
                drop(state);
                wake_two(wakers);
                Ok(item)
            }
            None => Err(QueueEmpty::new(state.shut_down)),
        }
    }

    /// One poll of a `get`; `waiter` is its place among the getters.
    pub(crate) fn poll_get(
        &self,
        waiter: &mut Option<WaiterId>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<T, Error>> {
        if let Some(cancelled) = coop::take_cancel() {
            self.abandon_get(waiter);
            return Poll::Ready(Err(cancelled));
        }
        let mut state = self.reclaimed();
        let mut stale = None;
        if let Some(id) = *waiter {
            if state.getters.is_skipped(id) {
                // Passed over while a cancel was pending, then the cancel was
                // withdrawn: start over (no item was handed to it).
                stale = state.getters.remove(id).1;
                *waiter = None;
            }
        }
        let Some(id) = *waiter else {
            if let Some((item, wakers)) = state.take(self.maxsize) {
                drop(state);
                drop(stale);
                wake_two(wakers);
                return Poll::Ready(Ok(item));
            }
            if state.shut_down {
                drop(state);
                drop(stale);
                return Poll::Ready(Err(Error::new(QueueShutDown)));
            }
            self.bound.check(self.name, "evloop::sync::mpsc");
            *waiter = Some(state.getters.push_back(Get::Waiting, cx.waker()));
            drop(state);
            drop(stale);
            return Poll::Pending;
        };
        if let Get::Waiting = state.getters.data(id) {
            let old = state.getters.replace_waker(id, cx.waker());
            drop(state);
            drop(old); // a foreign waker's drop: after the borrow
            return Poll::Pending;
        }
        let (slot, old_waker) = state.getters.remove(id);
        *waiter = None;
        let (outcome, wakers) = match slot {
            // Woken for an item: take the next one (its room goes to a waiting put).
            Get::Claimed => {
                let (item, wakers) = state.take_claimed(id, self.maxsize);
                (Ok(item), wakers)
            }
            Get::ShutDown => (Err(Error::new(QueueShutDown)), [None, None]),
            Get::Waiting => unreachable!("checked above"),
        };
        drop(state);
        drop(old_waker);
        wake_two(wakers);
        Poll::Ready(outcome)
    }

    /// A `get` goes away: a claim it was given passes to the next getter.
    pub(crate) fn abandon_get(&self, waiter: &mut Option<WaiterId>) {
        let Some(id) = waiter.take() else {
            return;
        };
        let mut state = self.state.borrow_mut();
        let (slot, old_waker) = state.getters.remove(id);
        let waker = match slot {
            Get::Claimed => state.pass_claim(id),
            Get::Waiting | Get::ShutDown => None,
        };
        drop(state);
        drop(old_waker);
        wake_one(waker);
    }

    /// One poll of a `put`; `value` is the item until it is stored or handed to the
    /// queue's putters list, `waiter` its place there.
    pub(crate) fn poll_put(
        &self,
        value: &mut Option<T>,
        waiter: &mut Option<WaiterId>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Error>> {
        let mut state = self.state.borrow_mut();
        if let Some(id) = *waiter {
            // Stored before the cancel was seen: the put happened (the cancel is
            // delivered at the task's next await).
            if let Put::Done = state.putters.data(id) {
                let removed = state.putters.remove(id);
                drop(state);
                drop(removed);
                *waiter = None;
                return Poll::Ready(Ok(()));
            }
        }
        drop(state);
        if let Some(cancelled) = coop::take_cancel() {
            self.abandon_put(waiter);
            return Poll::Ready(Err(cancelled));
        }
        let mut state = self.reclaimed();
        if let Some(id) = *waiter {
            if state.putters.is_skipped(id) {
                // Passed over while a cancel was pending, then the cancel was
                // withdrawn: take the value back and start over.
                let (slot, stale) = state.putters.remove(id);
                *waiter = None;
                if let Put::Waiting(item) = slot {
                    *value = Some(item);
                }
                drop(state);
                drop(stale);
                state = self.state.borrow_mut();
            }
        }
        let Some(id) = *waiter else {
            if state.shut_down {
                return Poll::Ready(Err(Error::new(QueueShutDown)));
            }
            let item = value
                .take()
                .expect("evloop::sync: a put future polled after it completed");
            if !state.is_full(self.maxsize) {
                let waker = state.deliver(item);
                drop(state);
                wake_one(waker);
                return Poll::Ready(Ok(()));
            }
            self.bound.check(self.name, "evloop::sync::mpsc");
            *waiter = Some(state.putters.push_back(Put::Waiting(item), cx.waker()));
            return Poll::Pending;
        };
        match state.putters.data(id) {
            Put::Waiting(_) => {
                let old = state.putters.replace_waker(id, cx.waker());
                drop(state);
                drop(old);
                Poll::Pending
            }
            Put::ShutDown => {
                let removed = state.putters.remove(id);
                drop(state);
                drop(removed);
                *waiter = None;
                Poll::Ready(Err(Error::new(QueueShutDown)))
            }
            Put::Done => unreachable!("handled above"),
        }
    }

    /// A `put` goes away: a value still waiting is dropped (after the borrow).
    pub(crate) fn abandon_put(&self, waiter: &mut Option<WaiterId>) {
        if let Some(id) = waiter.take() {
            let removed = self.state.borrow_mut().putters.remove(id);
            drop(removed);
        }
    }

    pub(crate) fn task_done(&self) -> Result<(), Error> {
        let wakers = {
            let mut state = self.state.borrow_mut();
            if state.unfinished == 0 {
                return Err(Error::InvalidState(InvalidStateError::new(
                    "task_done() called too many times",
                )));
            }
            state.unfinished -= 1;
            if state.unfinished > 0 {
                return Ok(());
            }
            release_joiners(&mut state.joiners)
        };
        wake_all(wakers);
        Ok(())
    }

    pub(crate) fn poll_join(
        &self,
        waiter: &mut Option<WaiterId>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Error>> {
        if let Some(cancelled) = coop::take_cancel() {
            self.abandon_join(waiter);
            return Poll::Ready(Err(cancelled));
        }
        let mut state = self.state.borrow_mut();
        if let Some(id) = *waiter {
            if state.joiners.is_skipped(id) {
                let removed = state.joiners.remove(id);
                *waiter = None;
                drop(state);
                drop(removed);
                state = self.state.borrow_mut();
            }
        }
        match *waiter {
            None if state.unfinished == 0 => Poll::Ready(Ok(())),
            None => {
                self.bound.check(self.name, "evloop::sync::mpsc");
                *waiter = Some(state.joiners.push_back(false, cx.waker()));
                Poll::Pending
            }
            Some(id) if *state.joiners.data(id) => {
                let removed = state.joiners.remove(id);
                drop(state);
                drop(removed);
                *waiter = None;
                Poll::Ready(Ok(()))
            }
            Some(id) => {
                let old = state.joiners.replace_waker(id, cx.waker());
                drop(state);
                drop(old);
                Poll::Pending
            }
        }
    }

    pub(crate) fn abandon_join(&self, waiter: &mut Option<WaiterId>) {
        if let Some(id) = waiter.take() {
            let removed = self.state.borrow_mut().joiners.remove(id);
            drop(removed);
        }
    }

    /// Python 3.13's `Queue.shutdown`.
    pub(crate) fn shutdown(&self, immediate: bool) {
        let mut dropped = Vec::new();
        let mut wakers = Vec::new();
        {
            let mut state = self.reclaimed();
            state.shut_down = true;
            if immediate {
                // Claimed items too: their getters, woken already, find `ShutDown`.
                dropped = state.drain();
                state.unfinished = state.unfinished.saturating_sub(dropped.len());
                if state.unfinished == 0 {
                    wakers.extend(release_joiners(&mut state.joiners));
                }
            }
            while let Some((id, waker)) = state.getters.pop_front() {
                *state.getters.data(id) = Get::ShutDown;
                wakers.extend(waker);
            }
            while let Some((id, waker)) = state.putters.pop_front() {
                let old = std::mem::replace(state.putters.data(id), Put::ShutDown);
                if let Put::Waiting(value) = old {
                    dropped.push(value);
                }
                wakers.extend(waker);
            }
        }
        // Wake first: a panicking item destructor must not keep a waiter asleep.
        let guard = DropAfter(dropped);
        wake_all(wakers);
        drop(guard);
    }
}

impl<T, B: Buffer<T>> QueueOps<T> for Core<T, B> {
    fn poll_get(
        &self,
        waiter: &mut Option<WaiterId>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<T, Error>> {
        Core::poll_get(self, waiter, cx)
    }
    fn abandon_get(&self, waiter: &mut Option<WaiterId>) {
        Core::abandon_get(self, waiter)
    }
    fn poll_put(
        &self,
        value: &mut Option<T>,
        waiter: &mut Option<WaiterId>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Error>> {
        Core::poll_put(self, value, waiter, cx)
    }
    fn abandon_put(&self, waiter: &mut Option<WaiterId>) {
        Core::abandon_put(self, waiter)
    }
    fn poll_join(
        &self,
        waiter: &mut Option<WaiterId>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Error>> {
        Core::poll_join(self, waiter, cx)
    }
    fn abandon_join(&self, waiter: &mut Option<WaiterId>) {
        Core::abandon_join(self, waiter)
    }
}

/// Drops its items when dropped — after the wakes, or while a panicking wake unwinds —
/// one by one under their own catch (`catch::drop_all`).
struct DropAfter<T>(Vec<T>);

impl<T> Drop for DropAfter<T> {
    fn drop(&mut self) {
        drop_all(std::mem::take(&mut self.0));
    }
}

fn release_joiners(joiners: &mut WaitList<bool>) -> Vec<Waker> {
    let mut wakers = Vec::with_capacity(joiners.len());
    while let Some((id, waker)) = joiners.pop_front() {
        *joiners.data(id) = true;
        wakers.extend(waker);
    }
    wakers
}

impl<T, B: Buffer<T>> fmt::Debug for Core<T, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.state.try_borrow() {
            Ok(state) => f
                .debug_struct(self.name)
                .field("maxsize", &self.maxsize)
                .field("qsize", &state.size())
                .field("getters", &state.getters.len())
                .field("putters", &state.putters.len())
                .field("unfinished", &state.unfinished)
                .field("shut_down", &state.shut_down)
                .finish(),
            Err(_) => f.debug_struct(self.name).finish_non_exhaustive(),
        }
    }
}
