//! The channel under `mpsc`'s bounded and unbounded halves: one queue under one lock,
//! the receiver's wait, the senders' slots (bounded) and count.
//!
//! Owns: the shared state ([`Chan`]), the sending ([`Tx`], [`SendFut`]) and receiving
//! ([`Rx`], [`Recv`]) protocols. Must not touch: the public types' shapes and docs
//! (`mpsc.rs`) and the wait-list mechanism (`WaitList`, `Permits`), which it only uses.
//!
//! The wake protocol. A send pushes its item and, only if the receiver is queued in
//! `rx` (it found the queue empty), unlinks it and takes its waker — all under the
//! lock — then wakes it after. The receiver takes items in batches: its local `buf`
//! is served without the lock; when it runs dry the receiver swaps the whole shared
//! queue into it under one lock, and only if that queue is empty (and a sender is
//! left) does it queue itself, in that same critical section, so a send either came
//! before (its item is swapped in) or finds it queued. The last sender leaving wakes a
//! queued receiver the same way.
//!
//! Bounded channels: each item holds one slot of `slots` (a [`Permits`] of
//! `capacity`) from its send until the receiver hands it out, so at most `capacity`
//! items are in the channel, counting the receiver's `buf`. A send without a free slot
//! queues in `slots` (FIFO among senders); handing an item out releases its slot, which
//! goes to the first queued sender (its waker taken under the lock, woken after). A
//! queued send that is dropped or cancelled gives back a slot handed to it meanwhile:
//! the next sender gets it. Closing grants every queued sender, which then sees
//! `closed` and fails with its value.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use super::error::{SendError, TryRecvError, TrySendError};
use crate::error::Error;
use crate::loom::sync::Mutex;
use crate::sync::catch::wake_all;
use crate::sync::permits::Permits;
use crate::sync::shared::support::{Wakers, drop_all, lock, take_cancelled};
use crate::sync::wait_list::{WaitList, WaiterId};
use crate::task::coop;

/// A receiver's buffer above this capacity is not handed back to the senders once
/// drained (the channel's memory follows its load down).
const KEEP_CAPACITY: usize = 4096;

pub(crate) struct Chan<T> {
    state: Mutex<State<T>>,
    /// `Some(capacity)` for a bounded channel.
    bound: Option<usize>,
}

struct State<T> {
    queue: VecDeque<T>,
    /// The receiver, when it waits for an item (at most one node).
    rx: WaitList<()>,
    /// Free slots of a bounded channel, and the senders waiting for one.
    slots: Permits,
    senders: usize,
    /// The receiver closed the channel (`close`, or dropped): sends fail.
    closed: bool,
}

impl<T> State<T> {
    /// Queues `value` and takes the receiver's waker if it waits.
    fn deliver(&mut self, value: T) -> Option<Waker> {
        self.queue.push_back(value);
        if self.rx.is_empty() {
            None
        } else {
            self.rx.pop_front().and_then(|(_, waker)| waker)
        }
    }

    /// Whether no item will ever arrive again.
    fn finished(&self) -> bool {
        self.closed || self.senders == 0
    }

    /// Releases `n` slots, taking the wakers of the senders they go to.
    fn release(&mut self, n: usize, wakers: &mut Wakers) {
        self.slots.add(n);
        while let Some(waker) = self.slots.grant_next() {
            wakers.push(waker);
        }
    }

    /// Swaps the queue into the receiver's (empty) `buf` and hands out its first item;
    /// `None` if the queue is empty.
    fn take_batch(
        &mut self,
        buf: &mut VecDeque<T>,
        bounded: bool,
        wakers: &mut Wakers,
    ) -> Option<T> {
        if self.queue.is_empty() {
            return None;
        }
        std::mem::swap(&mut self.queue, buf);
        let value = buf.pop_front();
        if bounded {
            self.release(1, wakers);
        }
        value
    }

    fn close(&mut self, wakers: &mut Wakers) {
        if !self.closed {
            self.closed = true;
            // Every queued sender is granted a slot, wakes, sees `closed` and fails.
            self.release(usize::MAX, wakers);
        }
    }
}

pub(crate) fn new<T>(bound: Option<usize>) -> (Tx<T>, Rx<T>) {
    let chan = Arc::new(Chan {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            rx: WaitList::default(),
            slots: Permits::new(bound.unwrap_or(0)),
            senders: 1,
            closed: false,
        }),
        bound,
    });
    (
        Tx { chan: chan.clone() },
        Rx {
            chan,
            buf: VecDeque::new(),
        },
    )
}

/// A sending handle; counted while it lives.
pub(crate) struct Tx<T> {
    chan: Arc<Chan<T>>,
}

impl<T> Clone for Tx<T> {
    fn clone(&self) -> Self {
        lock(self.chan.state.lock()).senders += 1;
        Tx {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Drop for Tx<T> {
    fn drop(&mut self) {
        let mut state = lock(self.chan.state.lock());
        state.senders -= 1;
        let waker = match state.senders {
            0 => state.rx.pop_front().and_then(|(_, waker)| waker),
            _ => None,
        };
        drop(state);
        wake_all(waker);
    }
}

impl<T> Tx<T> {
    pub(crate) fn bound(&self) -> Option<usize> {
        self.chan.bound
    }

    pub(crate) fn is_closed(&self) -> bool {
        lock(self.chan.state.lock()).closed
    }

    /// An unbounded send.
    pub(crate) fn push(&self, value: T) -> Result<(), SendError<T>> {
        let mut state = lock(self.chan.state.lock());
        if state.closed {
            drop(state);
            return Err(SendError::Closed(value));
        }
        let waker = state.deliver(value);
        drop(state);
        wake_all(waker);
        Ok(())
    }

    /// A bounded send that does not wait.
    pub(crate) fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let mut state = lock(self.chan.state.lock());
        if state.closed {
            drop(state);
            return Err(TrySendError::Closed(value));
        }
        if !state.slots.try_acquire(1) {
            drop(state);
            return Err(TrySendError::Full(value));
        }
        let waker = state.deliver(value);
        drop(state);
        wake_all(waker);
        Ok(())
    }

    /// A bounded send that waits for a slot.
    pub(crate) fn send(&self, value: T) -> SendFut<'_, T> {
        SendFut {
            chan: &self.chan,
            value: Some(value),
            waiter: None,
        }
    }
}

/// A bounded send waiting for a slot: its registration in `slots`, removed on drop.
pub(crate) struct SendFut<'a, T> {
    chan: &'a Chan<T>,
    value: Option<T>,
    waiter: Option<WaiterId>,
}

impl<T> SendFut<'_, T> {
    /// Leaves the senders' FIFO under `state`; a slot granted meanwhile goes on.
    fn leave(&mut self, state: &mut State<T>, wakers: &mut Wakers) -> Option<Waker> {
        let id = self.waiter.take()?;
        let (granted, waker) = state.slots.abandon(id);
        if granted > 0 {
            state.release(granted, wakers);
        }
        waker
    }

    fn leave_now(&mut self) {
        if self.waiter.is_none() {
            return;
        }
        let mut wakers = Wakers::default();
        let mut state = lock(self.chan.state.lock());
        let waker = self.leave(&mut state, &mut wakers);
        drop(state);
        drop(waker);
        wakers.wake();
    }
}

impl<T> std::future::Future for SendFut<'_, T> {
    type Output = Result<(), SendError<T>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        crate::task::sync_await(cx, "mpsc::Sender::send", move |cx| {
            let this = self.get_mut();
            assert!(
                this.value.is_some(),
                "evloop::sync::mpsc: send future polled after completion"
            );
            if let Some(cancelled) = take_cancelled() {
                this.leave_now();
                let value = this.value.take().expect("checked above");
                return Poll::Ready(Err(SendError::Cancelled(value, cancelled)));
            }
            let mut wakers = Wakers::default();
            // A foreign waker's `clone` is user code: never under the lock (rule 1). It is
            // only needed to queue (or re-queue with another waker): then the lock is let go,
            // the waker cloned, and the step taken again. (Declared before the guard, so it
            // is dropped after it on every path.)
            let mut fresh: Option<Waker> = None;
            let (mut state, granted, old_waker) = loop {
                let mut state = lock(this.chan.state.lock());
                if state.closed {
                    let waker = this.leave(&mut state, &mut wakers);
                    drop(state);
                    drop(waker);
                    wakers.wake();
                    let value = this.value.take().expect("checked above");
                    return Poll::Ready(Err(SendError::Closed(value)));
                }
                match this.waiter {
                    None if state.slots.try_acquire(1) => break (state, true, None),
                    None => {
                        if let Some(waker) = fresh.take() {
                            this.waiter = Some(state.slots.enqueue_waker(1, waker));
                            break (state, false, None);
                        }
                    }
                    Some(id)
                        if state.slots.is_granted(id) || state.slots.waker_is(id, cx.waker()) =>
                    {
                        let (poll, waker) = state.slots.poll_waiter_take(id, cx.waker());
                        if poll.is_ready() {
                            this.waiter = None;
                        }
                        break (state, poll.is_ready(), waker);
                    }
                    Some(id) => {
                        if let Some(waker) = fresh.take() {
                            let (poll, waker) = state.slots.poll_waiter_store(id, waker);
                            break (state, poll.is_ready(), waker);
                        }
                    }
                }
                drop(state);
                fresh = Some(cx.waker().clone());
            };
            let rx_waker = match granted {
                true => state.deliver(this.value.take().expect("checked above")),
                false => None,
            };
            drop(state);
            drop(old_waker);
            wake_all(rx_waker);
            if granted {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            }
        })
    }
}

impl<T> Drop for SendFut<'_, T> {
    fn drop(&mut self) {
        self.leave_now();
        // `value`, if still here, is dropped after this, outside the lock.
    }
}

// Neither future pins a field (`T` is only moved out by value), so both are `Unpin`
// whatever `T` is.
impl<T> Unpin for SendFut<'_, T> {}
impl<T> Unpin for Recv<'_, T> {}

/// The receiving half; `buf` is the batch taken from the shared queue, served without
/// the lock.
pub(crate) struct Rx<T> {
    chan: Arc<Chan<T>>,
    buf: VecDeque<T>,
}

impl<T> Rx<T> {
    /// An item handed out of `buf`: a bounded channel releases its slot.
    fn handed_out(&self) {
        if self.chan.bound.is_some() {
            let mut wakers = Wakers::default();
            lock(self.chan.state.lock()).release(1, &mut wakers);
            wakers.wake();
        }
    }

    fn prepare_refill(&mut self) {
        debug_assert!(self.buf.is_empty());
        if self.buf.capacity() > KEEP_CAPACITY {
            self.buf = VecDeque::new();
        }
    }

    pub(crate) fn try_recv(&mut self) -> Result<T, TryRecvError> {
        if let Some(value) = self.buf.pop_front() {
            self.handed_out();
            return Ok(value);
        }
        self.prepare_refill();
        let mut wakers = Wakers::default();
        let mut state = lock(self.chan.state.lock());
        let out = match state.take_batch(&mut self.buf, self.chan.bound.is_some(), &mut wakers) {
            Some(value) => Ok(value),
            None if state.finished() => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        };
        drop(state);
        wakers.wake();
        out
    }

    /// The receive step of [`Recv`]: `waiter` is its registration.
    fn poll_recv(&mut self, waiter: &mut Option<WaiterId>, waker: &Waker) -> Poll<Option<T>> {
        if let Some(value) = self.buf.pop_front() {
            debug_assert!(waiter.is_none(), "registered only with an empty buffer");
            self.handed_out();
            return Poll::Ready(Some(value));
        }
        self.prepare_refill();
        let mut wakers = Wakers::default();
        // A foreign waker's `clone` is user code: never under the lock (rule 1).
        let mut fresh = Some(waker.clone());
        let mut state = lock(self.chan.state.lock());
        let mut old_waker = None;
        let out =
            match state.take_batch(&mut self.buf, self.chan.bound.is_some(), &mut wakers) {
                Some(value) => Poll::Ready(Some(value)),
                None if state.finished() => Poll::Ready(None),
                None => {
                    match *waiter {
                        Some(id) if state.rx.is_linked(id) => {
                            old_waker = state
                                .rx
                                .store_waker(id, fresh.take().expect("one registration per poll"));
                        }
                        // Woken, but the queue is empty again: queue afresh.
                        Some(id) => {
                            old_waker = state.rx.remove(id).1;
                            *waiter = Some(state.rx.push_back_waker(
                                (),
                                fresh.take().expect("one registration per poll"),
                            ));
                        }
                        None => {
                            *waiter = Some(state.rx.push_back_waker(
                                (),
                                fresh.take().expect("one registration per poll"),
                            ))
                        }
                    }
                    Poll::Pending
                }
            };
        if out.is_ready() {
            if let Some(id) = waiter.take() {
                old_waker = state.rx.remove(id).1;
            }
        }
        drop(state);
        drop(fresh);
        drop(old_waker);
        wakers.wake();
        out
    }

    /// Removes the registration of a [`Recv`] that goes away.
    fn leave(&self, waiter: &mut Option<WaiterId>) {
        if let Some(id) = waiter.take() {
            let (_, waker) = lock(self.chan.state.lock()).rx.remove(id);
            drop(waker);
        }
    }

    pub(crate) fn recv(&mut self) -> Recv<'_, T> {
        Recv {
            rx: self,
            waiter: None,
        }
    }

    pub(crate) fn close(&mut self) {
        let mut wakers = Wakers::default();
        lock(self.chan.state.lock()).close(&mut wakers);
        wakers.wake();
    }

    pub(crate) fn bound(&self) -> Option<usize> {
        self.chan.bound
    }

    /// (waiting receivers, waiting senders), for the registration tests (Q8).
    #[cfg(test)]
    pub(crate) fn registrations(&self) -> (usize, usize) {
        let state = lock(self.chan.state.lock());
        (state.rx.len(), state.slots.waiting())
    }
}

impl<T> Drop for Rx<T> {
    fn drop(&mut self) {
        let mut wakers = Wakers::default();
        let mut state = lock(self.chan.state.lock());
        state.close(&mut wakers);
        let queued = std::mem::take(&mut state.queue);
        drop(state);
        wakers.wake();
        // The items nobody will receive: user values, dropped outside the lock, each
        // under its own catch.
        drop_all(std::mem::take(&mut self.buf));
        drop_all(queued);
    }
}

/// A receive: its registration in `rx`, removed on drop.
pub(crate) struct Recv<'a, T> {
    rx: &'a mut Rx<T>,
    waiter: Option<WaiterId>,
}

impl<T> std::future::Future for Recv<'_, T> {
    type Output = Result<Option<T>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        crate::task::sync_await(cx, "mpsc::Receiver::recv", move |cx| {
            let this = self.get_mut();
            if let Some(cancelled) = coop::take_cancel() {
                this.rx.leave(&mut this.waiter);
                return Poll::Ready(Err(cancelled));
            }
            this.rx.poll_recv(&mut this.waiter, cx.waker()).map(Ok)
        })
    }
}

impl<T> Drop for Recv<'_, T> {
    fn drop(&mut self) {
        self.rx.leave(&mut self.waiter);
    }
}
