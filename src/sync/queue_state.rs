//! The state of a loop-local queue (Y6) and its hand-over steps: the buffer, the
//! getters and putters, the items reserved for getters that have not run, and the
//! counts `join` and `shutdown` use.
//!
//! Owns: those fields and the pure steps between them (`deliver`, `take`, `refill`,
//! `reclaim`); every step returns the wakers it took out, for the caller to wake after
//! its borrow. Must not touch: the `RefCell` it lives in, waking, or the futures
//! (that is `queue`).

use std::collections::VecDeque;
use std::task::Waker;

use super::wait_list::{WaitList, WaiterId};
use crate::task::coop;

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

pub(crate) enum Get<T> {
    Waiting,
    Item(T),
    ShutDown,
}

pub(crate) enum Put<T> {
    Waiting(T),
    Done,
    ShutDown,
}

pub(crate) struct State<T, B> {
    pub(crate) buf: B,
    pub(crate) getters: WaitList<Get<T>>,
    pub(crate) putters: WaitList<Put<T>>,
    pub(crate) joiners: WaitList<bool>,
    /// Items handed to getters that have not run yet: they count in `qsize` (as in
    /// asyncio, where they are still in the buffer) and against `maxsize`.
    pub(crate) reserved: usize,
    /// The getters holding those items, oldest item first.
    pub(crate) handed: VecDeque<WaiterId>,
    /// The cancel epoch (`coop::cancel_epoch`) of the last [`State::reclaim`] scan:
    /// while it has not moved, no holder of a reserved item can have been cancelled.
    pub(crate) reclaim_epoch: u64,
    pub(crate) unfinished: usize,
    pub(crate) shut_down: bool,
}

/// Up to two wakers to wake after the borrow (a `get` can free room for a putter whose
/// value goes straight to a waiting getter).
pub(crate) type Wake2 = [Option<Waker>; 2];

impl<T, B: Buffer<T>> State<T, B> {
    /// Items in the queue: buffered, plus those handed to getters that have not run.
    #[inline]
    pub(crate) fn size(&self) -> usize {
        self.buf.len() + self.reserved
    }

    #[inline]
    pub(crate) fn is_full(&self, maxsize: usize) -> bool {
        maxsize > 0 && self.size() >= maxsize
    }

    /// Stores an item that has room: to the first waiting getter, else the buffer.
    #[inline]
    pub(crate) fn deliver(&mut self, item: T) -> Option<Waker> {
        self.unfinished += 1;
        self.hand_to_getter(item)
    }

    #[inline]
    pub(crate) fn hand_to_getter(&mut self, item: T) -> Option<Waker> {
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
    pub(crate) fn refill(&mut self, maxsize: usize) -> Wake2 {
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
    pub(crate) fn unreserve(&mut self, id: WaiterId) {
        self.reserved -= 1;
        // Getters usually run in the order they were handed their items.
        if self.handed.front() == Some(&id) {
            self.handed.pop_front();
        } else if let Some(at) = self.handed.iter().position(|h| *h == id) {
            self.handed.remove(at);
        }
    }

    /// Items handed to getters whose task has since been cancelled (before it ran) go
    /// back into the queue, in their order, and on to the next live getters — as in
    /// asyncio, where they never left the buffer. Returns the wakers of those getters.
    pub(crate) fn reclaim(&mut self) -> Vec<Waker> {
        if self.reserved == 0 {
            return Vec::new();
        }
        let epoch = coop::cancel_epoch();
        if epoch == self.reclaim_epoch {
            return Vec::new();
        }
        self.reclaim_epoch = epoch;
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
    pub(crate) fn take(&mut self, maxsize: usize) -> Option<(T, Wake2)> {
        let item = self.buf.pop()?;
        Some((item, self.refill(maxsize)))
    }
}
