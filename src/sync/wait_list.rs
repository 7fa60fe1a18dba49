//! The one wait list under every primitive of `evloop::sync`: a FIFO of waiters, each
//! carrying a waker and a little primitive-specific state, removable in O(1).
//!
//! Owns: the nodes (in a slab, linked by index into a doubly linked FIFO) and their
//! wakers. Must not touch: interior mutability, locking or waking — it is a plain data
//! structure. The loop-local primitives keep it in a `RefCell`, the thread-safe ones in
//! a `Mutex`; both take the wakers out of it ([`WaitList::take_waker`]) and wake them
//! after the borrow or the lock is released (rule 1 of ARCHITECTURE.md).
//!
//! A waiter has two phases. *Linked*: it is in the FIFO, waiting. *Unlinked*: the
//! primitive took it off the FIFO and wrote its outcome into the node's data (a permit,
//! an item, a flag) — the node stays in the slab, so its id stays valid, until the
//! waiter itself calls [`WaitList::remove`] (when it is polled and sees the outcome, or
//! when its future is dropped: then it hands back whatever was written for it). Only
//! the waiter removes its node, so an id is never reused while its waiter holds it.
//!
//! No allocation per wait once the slab has grown to the peak number of waiters; an
//! empty list with a large slab gives the memory back ([`WaitList::remove`]).

use std::task::Waker;

use slab::Slab;

use crate::task::coop::WaiterTask;

const NIL: u32 = u32::MAX;

/// Capacity above which an emptied list frees its slab.
const KEEP: usize = 64;

/// A waiter's handle on its node, issued by one list and only meaningful there: the
/// primitive that issued it keeps it inside its own wait future.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WaiterId(u32);

struct Node<D> {
    prev: u32,
    next: u32,
    linked: bool,
    /// Unlinked by [`WaitList::settle`] (its task has a cancel pending), its data still
    /// the waiting state.
    skipped: bool,
    /// The task that queued it (lists that skip cancelled waiters only).
    task: Option<WaiterTask>,
    waker: Option<Waker>,
    data: D,
}

/// A FIFO of waiters with per-waiter data `D`.
pub(crate) struct WaitList<D> {
    nodes: Slab<Node<D>>,
    head: u32,
    tail: u32,
    linked: usize,
    skip_cancelled: bool,
}

impl<D> Default for WaitList<D> {
    fn default() -> Self {
        WaitList {
            nodes: Slab::new(),
            head: NIL,
            tail: NIL,
            linked: 0,
            skip_cancelled: false,
        }
    }
}

impl<D> WaitList<D> {
    /// A list that passes over waiters whose task has a cancel request pending (the
    /// loop-local primitives): what is handed over goes to the next live waiter at
    /// once, as asyncio skips a waiter future that `Task.cancel` cancelled. The skipped
    /// waiter's task resumes with `Err(Cancelled)` and removes its node; if the request
    /// was withdrawn meanwhile (`uncancel`), the waiter finds itself
    /// [skipped](Self::is_skipped) and queues again.
    pub(crate) fn skipping_cancelled() -> Self {
        WaitList {
            skip_cancelled: true,
            ..WaitList::default()
        }
    }

    /// Unlinks the waiters at the front whose task has a cancel pending.
    #[inline]
    pub(crate) fn settle(&mut self) {
        if !self.skip_cancelled {
            return;
        }
        while self.head != NIL {
            let head = self.head;
            let pending = match self.nodes[head as usize].task.as_mut() {
                Some(task) => task.cancel_pending(),
                None => false,
            };
            if !pending {
                break;
            }
            self.skip(WaiterId(head));
        }
    }

    /// Whether the task of waiter `id` (linked or not) has a cancel pending.
    pub(crate) fn cancel_pending(&mut self, id: WaiterId) -> bool {
        match self.nodes[id.0 as usize].task.as_mut() {
            Some(task) => task.cancel_pending(),
            None => false,
        }
    }

    /// Marks waiter `id` passed over: unlinked (if it was not), its data reset to the
    /// waiting state by the caller, so that it starts over if it polls uncancelled.
    pub(crate) fn mark_skipped(&mut self, id: WaiterId) {
        self.skip(id);
    }

    fn skip(&mut self, id: WaiterId) {
        let waker = self.unlink(id);
        let node = &mut self.nodes[id.0 as usize];
        node.waker = waker;
        node.skipped = true;
    }

    /// Whether `id` was passed over by [`settle`](Self::settle): unlinked with its data
    /// still the waiting state. A waiter that polls and finds this (its cancel was
    /// withdrawn) removes its node and starts over.
    #[inline]
    pub(crate) fn is_skipped(&self, id: WaiterId) -> bool {
        self.nodes[id.0 as usize].skipped
    }

    /// Whether no waiter is linked (waiting).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.linked == 0
    }

    /// The number of linked (waiting) waiters.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.linked
    }

    /// Appends a waiter at the back of the FIFO.
    #[inline]
    pub(crate) fn push_back(&mut self, data: D, waker: &Waker) -> WaiterId {
        let task = if self.skip_cancelled {
            WaiterTask::current()
        } else {
            None
        };
        self.push_back_for(data, waker, task)
    }

    /// Appends a waiter with a waker cloned by the caller (the thread-safe primitives
    /// clone before they lock: a foreign waker's `clone` is user code, rule 1).
    pub(crate) fn push_back_waker(&mut self, data: D, waker: Waker) -> WaiterId {
        self.push_back_for_owned(data, waker, None)
    }

    /// Appends a waiter that is never passed over, whatever its task's cancel state
    /// (`Condition::wait` re-acquiring its lock: asyncio keeps its turn).
    pub(crate) fn push_back_unskippable(&mut self, data: D, waker: &Waker) -> WaiterId {
        self.push_back_for(data, waker, None)
    }

    fn push_back_for(&mut self, data: D, waker: &Waker, task: Option<WaiterTask>) -> WaiterId {
        self.push_back_for_owned(data, waker.clone(), task)
    }

    #[inline]
    fn push_back_for_owned(&mut self, data: D, waker: Waker, task: Option<WaiterTask>) -> WaiterId {
        let index = self.nodes.insert(Node {
            prev: self.tail,
            next: NIL,
            linked: true,
            skipped: false,
            task,
            waker: Some(waker),
            data,
        });
        let index = u32::try_from(index).expect("evloop::sync: more than 2^32 waiters");
        assert!(index != NIL, "evloop::sync: more than 2^32 waiters");
        match self.tail {
            NIL => self.head = index,
            tail => self.nodes[tail as usize].next = index,
        }
        self.tail = index;
        self.linked += 1;
        WaiterId(index)
    }

    /// The waiter at the front of the FIFO.
    #[inline]
    pub(crate) fn front(&mut self) -> Option<WaiterId> {
        self.settle();
        (self.head != NIL).then_some(WaiterId(self.head))
    }

    /// The data of the front waiter.
    #[inline]
    pub(crate) fn front_data(&mut self) -> Option<&mut D> {
        self.settle();
        match self.head {
            NIL => None,
            head => Some(&mut self.nodes[head as usize].data),
        }
    }

    /// Takes `id` off the FIFO (its outcome is being written); the node stays until the
    /// waiter removes it. Returns its waker, to wake after the borrow / lock.
    #[inline]
    pub(crate) fn unlink(&mut self, id: WaiterId) -> Option<Waker> {
        let node = &mut self.nodes[id.0 as usize];
        if !node.linked {
            return node.waker.take();
        }
        node.linked = false;
        let (prev, next) = (node.prev, node.next);
        let waker = node.waker.take();
        match prev {
            NIL => self.head = next,
            p => self.nodes[p as usize].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.nodes[n as usize].prev = prev,
        }
        self.linked -= 1;
        waker
    }

    /// Unlinks the front waiter, returning its id (for the caller to write its outcome
    /// through [`WaitList::data`]) and its waker.
    #[inline]
    pub(crate) fn pop_front(&mut self) -> Option<(WaiterId, Option<Waker>)> {
        let id = self.front()?;
        let waker = self.unlink(id);
        Some((id, waker))
    }

    /// Whether `id` is still waiting in the FIFO.
    pub(crate) fn is_linked(&self, id: WaiterId) -> bool {
        self.nodes[id.0 as usize].linked
    }

    /// The data of waiter `id`.
    #[inline]
    pub(crate) fn data(&mut self, id: WaiterId) -> &mut D {
        &mut self.nodes[id.0 as usize].data
    }

    /// Stores the waker the waiter was last polled with (no clone if it would wake the
    /// same task), handing the replaced one back for the caller to drop after its lock
    /// or borrow (a foreign waker's drop is user code: rule 1).
    #[inline]
    pub(crate) fn replace_waker(&mut self, id: WaiterId, waker: &Waker) -> Option<Waker> {
        let slot = &mut self.nodes[id.0 as usize].waker;
        match slot {
            Some(old) if old.will_wake(waker) => None,
            _ => slot.replace(waker.clone()),
        }
    }

    /// Whether waiter `id` holds a waker that wakes like `waker` (`will_wake`: no user
    /// code runs).
    pub(crate) fn waker_is(&self, id: WaiterId, waker: &Waker) -> bool {
        self.nodes[id.0 as usize]
            .waker
            .as_ref()
            .is_some_and(|w| w.will_wake(waker))
    }

    /// [`replace_waker`](Self::replace_waker) with a waker the caller cloned outside
    /// its lock: hands back the waker to drop after it (the old one, or `waker` itself
    /// when the old one would wake the same task).
    pub(crate) fn store_waker(&mut self, id: WaiterId, waker: Waker) -> Option<Waker> {
        let slot = &mut self.nodes[id.0 as usize].waker;
        match slot {
            Some(old) if old.will_wake(&waker) => Some(waker),
            _ => slot.replace(waker),
        }
    }

    /// Removes the node of `id` (unlinking it if it still waits), returning its data and
    /// its waker for the caller to drop after the borrow / lock. Called by the waiter
    /// itself only.
    #[inline]
    pub(crate) fn remove(&mut self, id: WaiterId) -> (D, Option<Waker>) {
        let waker = self.unlink(id);
        let node = self.nodes.remove(id.0 as usize);
        if self.nodes.is_empty() && self.nodes.capacity() > KEEP {
            self.nodes = Slab::new();
        }
        (node.data, waker.or(node.waker))
    }

    /// Ids of the linked waiters, front to back (allocates; for tests and dumps).
    #[cfg(test)]
    pub(crate) fn ids(&self) -> Vec<WaiterId> {
        let mut out = Vec::new();
        let mut at = self.head;
        while at != NIL {
            out.push(WaiterId(at));
            at = self.nodes[at as usize].next;
        }
        out
    }
}

impl<D> std::fmt::Debug for WaitList<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitList")
            .field("waiting", &self.linked)
            .field("nodes", &self.nodes.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop() -> Waker {
        Waker::noop().clone()
    }

    #[test]
    fn fifo_order_and_o1_removal_in_the_middle() {
        let mut list = WaitList::default();
        let w = noop();
        let a = list.push_back('a', &w);
        let b = list.push_back('b', &w);
        let c = list.push_back('c', &w);
        assert_eq!(list.ids(), vec![a, b, c]);
        list.remove(b);
        assert_eq!(list.ids(), vec![a, c]);
        assert_eq!(list.len(), 2);
        let (front, waker) = list.pop_front().unwrap();
        assert_eq!(front, a);
        assert!(waker.is_some());
        assert!(!list.is_linked(a));
        assert_eq!(
            *list.data(a),
            'a',
            "an unlinked node keeps its data until removed"
        );
        assert_eq!(list.ids(), vec![c]);
        list.remove(a);
        list.remove(c);
        assert!(list.is_empty());
        assert_eq!(list.front(), None);
    }

    #[test]
    fn removing_head_and_tail_relinks() {
        let mut list = WaitList::default();
        let w = noop();
        let ids: Vec<_> = (0..5).map(|i| list.push_back(i, &w)).collect();
        list.remove(ids[0]);
        list.remove(ids[4]);
        assert_eq!(list.ids(), ids[1..4].to_vec());
        let d = list.push_back(9, &w);
        assert_eq!(*list.front_data().unwrap(), 1);
        assert_eq!(list.ids().last(), Some(&d));
    }

    #[test]
    fn an_emptied_large_list_frees_its_slab() {
        let mut list = WaitList::default();
        let w = noop();
        let ids: Vec<_> = (0..1000).map(|i| list.push_back(i, &w)).collect();
        for id in ids {
            list.remove(id);
        }
        assert_eq!(list.nodes.capacity(), 0);
    }
}
