//! The core of the loop-local queues (Y6): a buffer between two wait lists.
//!
//! Owns: the buffer, the getters' and putters' FIFOs, the count of unfinished items
//! and `join`'s waiters, the shutdown flag — all in one `RefCell`. Must not touch: the
//! order of the buffer (a [`Buffer`] decides it: FIFO, LIFO or priority) and anything
//! outside `sync`.
//!
//! How an item travels: a `put` while a `get` waits writes the item straight into that
//! getter's node and wakes it; the item is *reserved* for that getter — it counts in
//! `qsize` and against `maxsize` until the getter runs (as in asyncio, where it sits in
//! the buffer meanwhile), but no other `get` can take it. Otherwise the item goes into
//! the buffer. When room is made — a `get` takes from the buffer, or a getter takes its
//! reserved item — the first waiting put's value (kept in its node) moves in, to a
//! waiting getter or the buffer, and that putter is woken. So "getters wait ⇒ the
//! buffer is empty" and "putters wait ⇒ the queue is full" always hold. A getter that
//! was handed an item and is cancelled or dropped before it ran gives the item back: to
//! the next getter, or to the front of the buffer ([`Buffer::unget`]) — an item is never
//! lost, and the queue never holds more than `maxsize`. User values (items) are only
//! dropped after the borrow ends (rule 1).

use std::cell::{RefCell, RefMut};
use std::collections::VecDeque;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::task::{Context, Poll, Waker};

use super::bound::LoopBound;
use super::queue_kinds::{QueueEmpty, QueueFull, QueueShutDown};
use super::wait_list::{WaitList, WaiterId, wake_all, wake_one, wake_two};
use crate::error::{Error, InvalidStateError};
use crate::task::coop;

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

/// The order of a queue: where `put` stores, what `get` takes, where a returned item
/// goes.
pub(crate) trait Buffer<T>: Default {
    fn push(&mut self, item: T);
    fn pop(&mut self) -> Option<T>;
    /// Puts back an item that `pop` handed out (it is again the next to be taken).
    fn unget(&mut self, item: T);
    /// Puts back several items `pop` handed out, oldest first, so that they come out
    /// as they would have (FIFO: the oldest next; LIFO overrides: the newest next).
    fn unget_oldest_first(&mut self, items: Vec<T>) {
        for item in items.into_iter().rev() {
            self.unget(item);
        }
    }
    fn len(&self) -> usize;
}

enum Get<T> {
    Waiting,
    Item(T),
    ShutDown,
}

enum Put<T> {
    Waiting(T),
    Done,
    ShutDown,
}

struct State<T, B> {
    buf: B,
    getters: WaitList<Get<T>>,
    putters: WaitList<Put<T>>,
    joiners: WaitList<bool>,
    /// Items handed to getters that have not run yet: they count in `qsize` (as in
    /// asyncio, where they are still in the buffer) and against `maxsize`.
    reserved: usize,
    /// The getters holding those items, oldest item first.
    handed: VecDeque<WaiterId>,
    unfinished: usize,
    shut_down: bool,
}

pub(crate) struct Core<T, B> {
    state: RefCell<State<T, B>>,
    maxsize: usize,
    bound: LoopBound,
    name: &'static str,
}

/// Up to two wakers to wake after the borrow (a `get` can free room for a putter whose
/// value goes straight to a waiting getter).
type Wake2 = [Option<Waker>; 2];

impl<T, B: Buffer<T>> State<T, B> {
    /// Items in the queue: buffered, plus those handed to getters that have not run.
    #[inline]
    fn size(&self) -> usize {
        self.buf.len() + self.reserved
    }

    #[inline]
    fn is_full(&self, maxsize: usize) -> bool {
        maxsize > 0 && self.size() >= maxsize
    }

    /// Stores an item that has room: to the first waiting getter, else the buffer.
    #[inline]
    fn deliver(&mut self, item: T) -> Option<Waker> {
        self.unfinished += 1;
        self.hand_to_getter(item)
    }

    #[inline]
    fn hand_to_getter(&mut self, item: T) -> Option<Waker> {
        match self.getters.pop_front() {
            Some((id, waker)) => {
                *self.getters.data(id) = Get::Item(item);
                self.reserved += 1;
                self.handed.push_back(id);
                waker
            }
            None => {
                self.buf.push(item);
                None
            }
        }
    }

    /// Room was made: the first waiting put's value moves in (to a waiting getter, or
    /// the buffer) and that putter is woken.
    #[inline]
    fn refill(&mut self, maxsize: usize) -> Wake2 {
        if self.putters.is_empty() || self.is_full(maxsize) {
            return [None, None];
        }
        // (Every waiting putter may have a cancel pending: then nobody moves in.)
        let Some((id, putter)) = self.putters.pop_front() else {
            return [None, None];
        };
        let Put::Waiting(value) = std::mem::replace(self.putters.data(id), Put::Done) else {
            unreachable!("a linked putter still holds its value")
        };
        [putter, self.deliver(value)]
    }

    /// A getter takes (or gives up) its reserved item.
    fn unreserve(&mut self, id: WaiterId) {
        self.reserved -= 1;
        if let Some(at) = self.handed.iter().position(|h| *h == id) {
            self.handed.remove(at);
        }
    }

    /// Items handed to getters whose task has since been cancelled (before it ran) go
    /// back into the queue, in their order, and on to the next live getters — as in
    /// asyncio, where they never left the buffer. Returns the wakers of those getters.
    fn reclaim(&mut self) -> Vec<Waker> {
        if self.reserved == 0 {
            return Vec::new();
        }
        let mut back = Vec::new();
        let mut at = 0;
        while at < self.handed.len() {
            let id = self.handed[at];
            if !self.getters.cancel_pending(id) {
                at += 1;
                continue;
            }
            let Get::Item(item) = std::mem::replace(self.getters.data(id), Get::Waiting) else {
                unreachable!("a handed getter holds its item")
            };
            self.getters.mark_skipped(id);
            self.handed.remove(at);
            self.reserved -= 1;
            back.push(item);
        }
        if back.is_empty() {
            return Vec::new();
        }
        self.buf.unget_oldest_first(back);
        let mut wakers = Vec::new();
        while self.buf.len() > 0 {
            let Some((id, waker)) = self.getters.pop_front() else {
                break;
            };
            let item = self.buf.pop().expect("checked above");
            *self.getters.data(id) = Get::Item(item);
            self.reserved += 1;
            self.handed.push_back(id);
            wakers.extend(waker);
        }
        wakers
    }

    /// Takes the next buffered item; the room it makes goes to the first waiting put.
    #[inline]
    fn take(&mut self, maxsize: usize) -> Option<(T, Wake2)> {
        let item = self.buf.pop()?;
        Some((item, self.refill(maxsize)))
    }
}

impl<T, B: Buffer<T>> Core<T, B> {
    pub(crate) fn new(maxsize: usize, name: &'static str) -> Core<T, B> {
        Core {
            state: RefCell::new(State {
                buf: B::default(),
                getters: WaitList::skipping_cancelled(),
                putters: WaitList::skipping_cancelled(),
                joiners: WaitList::skipping_cancelled(),
                reserved: 0,
                handed: VecDeque::new(),
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
        let outcome = match slot {
            Get::Item(item) => {
                state.unreserve(id);
                Ok(item)
            }
            Get::ShutDown => Err(Error::new(QueueShutDown)),
            Get::Waiting => unreachable!("checked above"),
        };
        // The reserved item is taken: its room goes to the first waiting put.
        let wakers = state.refill(self.maxsize);
        drop(state);
        drop(old_waker);
        wake_two(wakers);
        Poll::Ready(outcome)
    }

    /// A `get` goes away: an item handed to it goes to the next getter or back into
    /// the buffer.
    pub(crate) fn abandon_get(&self, waiter: &mut Option<WaiterId>) {
        let Some(id) = waiter.take() else {
            return;
        };
        let mut state = self.state.borrow_mut();
        let (slot, old_waker) = state.getters.remove(id);
        let waker = match slot {
            Get::Item(item) => match state.getters.pop_front() {
                Some((next, waker)) => {
                    // The item keeps its place among the reserved ones.
                    *state.getters.data(next) = Get::Item(item);
                    if let Some(at) = state.handed.iter().position(|h| *h == id) {
                        state.handed[at] = next;
                    }
                    waker
                }
                None => {
                    // Still counted in `reserved` until here: the size is unchanged.
                    state.unreserve(id);
                    state.buf.unget(item);
                    None
                }
            },
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
                while let Some(item) = state.buf.pop() {
                    dropped.push(item);
                }
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

/// Drops its items one by one, each under its own catch, when dropped (so a panic in
/// one item's destructor neither loses the others nor aborts an unwinding thread).
struct DropAfter<T>(Vec<T>);

impl<T> Drop for DropAfter<T> {
    fn drop(&mut self) {
        let mut first = None;
        for item in self.0.drain(..) {
            if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(item))) {
                first.get_or_insert(payload);
            }
        }
        if let Some(payload) = first {
            if !std::thread::panicking() {
                resume_unwind(payload);
            }
        }
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
