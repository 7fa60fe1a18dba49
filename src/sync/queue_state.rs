//! The state of a loop-local queue (Y6) and its hand-over steps: the buffer, the
//! getters and putters, the *claims* of getters that were woken for an item and have
//! not run yet, and the counts `join` and `shutdown` use.
//!
//! Owns: those fields and the pure steps between them (`deliver`, `take`,
//! `take_claimed`, `refill`, `reclaim`); every step returns the wakers it took out, for
//! the caller to wake after its borrow. Must not touch: the `RefCell` it lives in,
//! waking, or the futures (that is `queue`).
//!
//! A claim, not an item, travels to a waiting getter: the item stays in the buffer (as
//! in asyncio) and the getter takes whatever is next — the oldest, the newest or the
//! smallest — when it runs; claimed items are just not available to anyone else.

use std::collections::VecDeque;
use std::task::Waker;

use super::wait_list::{WaitList, WaiterId};
use crate::task::coop;

/// The order of a queue: where `put` stores and what `get` takes.
pub(crate) trait Buffer<T>: Default {
    fn push(&mut self, item: T);
    fn pop(&mut self) -> Option<T>;
    fn len(&self) -> usize;
}

pub(crate) enum Get {
    Waiting,
    /// Woken for an item: one of the buffer's items is kept for it.
    Claimed,
    ShutDown,
}

pub(crate) enum Put<T> {
    Waiting(T),
    Done,
    ShutDown,
}

pub(crate) struct State<T, B> {
    pub(crate) buf: B,
    pub(crate) getters: WaitList<Get>,
    pub(crate) putters: WaitList<Put<T>>,
    pub(crate) joiners: WaitList<bool>,
    /// Items of the buffer kept for getters that were woken and have not run yet: no
    /// one else can take them.
    pub(crate) claims: usize,
    /// The getters holding those claims, in the order they got them.
    pub(crate) claimed: VecDeque<WaiterId>,
    /// The cancel epoch (`coop::cancel_epoch`) of the last [`State::reclaim`] scan:
    /// while it has not moved, no claim holder can have been cancelled.
    pub(crate) reclaim_epoch: u64,
    pub(crate) unfinished: usize,
    pub(crate) shut_down: bool,
}

/// Up to two wakers to wake after the borrow (a `get` can free room for a putter whose
/// value then gives a claim to a waiting getter).
pub(crate) type Wake2 = [Option<Waker>; 2];

impl<T, B: Buffer<T>> State<T, B> {
    /// Items in the queue (claimed ones included, as asyncio counts them).
    #[inline]
    pub(crate) fn size(&self) -> usize {
        self.buf.len()
    }

    #[inline]
    pub(crate) fn is_full(&self, maxsize: usize) -> bool {
        maxsize > 0 && self.size() >= maxsize
    }

    /// Items nobody has a claim on.
    #[inline]
    fn unclaimed(&self) -> usize {
        self.buf.len() - self.claims
    }

    /// Stores an item that has room, and wakes the first waiting getter for it.
    #[inline]
    pub(crate) fn deliver(&mut self, item: T) -> Option<Waker> {
        self.unfinished += 1;
        self.buf.push(item);
        self.claim_for_next()
    }

    /// Gives an unclaimed item's claim to the first live waiting getter.
    #[inline]
    fn claim_for_next(&mut self) -> Option<Waker> {
        let (id, waker) = self.getters.pop_front()?;
        *self.getters.data(id) = Get::Claimed;
        self.claims += 1;
        self.claimed.push_back(id);
        waker
    }

    /// Room was made: the first waiting put's value moves in and that putter is woken
    /// (and a waiting getter, if the value gives it a claim).
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

    /// Takes the next unclaimed item (a `get_nowait`, or a `get` that did not wait);
    /// the room it makes goes to the first waiting put.
    #[inline]
    pub(crate) fn take(&mut self, maxsize: usize) -> Option<(T, Wake2)> {
        if self.unclaimed() == 0 {
            return None;
        }
        // The next item in order, as in asyncio (items leave in the order of the
        // queue); a woken getter is owed an item, not a particular one.
        let item = self.buf.pop()?;
        Some((item, self.refill(maxsize)))
    }

    /// A getter woken for an item runs: it takes the next item with its claim.
    pub(crate) fn take_claimed(&mut self, id: WaiterId, maxsize: usize) -> (T, Wake2) {
        self.drop_claim(id);
        let item = self
            .buf
            .pop()
            .expect("a claim is backed by a buffered item");
        (item, self.refill(maxsize))
    }

    /// Getter `id` gives up its claim (it is cancelled or dropped): the claim passes to
    /// the next live getter, whose waker is returned.
    pub(crate) fn pass_claim(&mut self, id: WaiterId) -> Option<Waker> {
        self.drop_claim(id);
        self.claim_for_next()
    }

    fn drop_claim(&mut self, id: WaiterId) {
        self.claims -= 1;
        // Getters usually run in the order they were woken.
        if self.claimed.front() == Some(&id) {
            self.claimed.pop_front();
        } else if let Some(at) = self.claimed.iter().position(|h| *h == id) {
            self.claimed.remove(at);
        }
    }

    /// Claims of getters whose task has since been cancelled (before it ran) pass to
    /// the next live getters — as in asyncio, where the cancelled getter's wake-up is
    /// passed on. Returns the wakers of those getters.
    pub(crate) fn reclaim(&mut self) -> Vec<Waker> {
        if self.claims == 0 {
            return Vec::new();
        }
        let epoch = coop::cancel_epoch();
        if epoch == self.reclaim_epoch {
            return Vec::new();
        }
        self.reclaim_epoch = epoch;
        let mut wakers = Vec::new();
        let mut at = 0;
        while at < self.claimed.len() {
            let id = self.claimed[at];
            if !self.getters.cancel_pending(id) {
                at += 1;
                continue;
            }
            // It starts over if its cancel is withdrawn before it runs.
            *self.getters.data(id) = Get::Waiting;
            self.getters.mark_skipped(id);
            self.claimed.remove(at);
            self.claims -= 1;
        }
        while self.unclaimed() > 0 {
            let Some((id, waker)) = self.getters.pop_front() else {
                break;
            };
            *self.getters.data(id) = Get::Claimed;
            self.claims += 1;
            self.claimed.push_back(id);
            wakers.extend(waker);
        }
        wakers
    }

    /// Drops every buffered item (claimed ones too: their getters find the queue shut
    /// down, as in asyncio), returning them for the caller to drop after its borrow.
    pub(crate) fn drain(&mut self) -> Vec<T> {
        let mut items = Vec::with_capacity(self.buf.len());
        while let Some(item) = self.buf.pop() {
            items.push(item);
        }
        self.claims = 0;
        for id in self.claimed.drain(..) {
            *self.getters.data(id) = Get::ShutDown;
        }
        items
    }
}
