//! A multi-producer, multi-consumer broadcast channel between tasks of any loops and
//! plain threads (SPEC §13 Y7), in tokio's shape: every receiver sees every message
//! sent after it subscribed, in order. The channel keeps the last `capacity`
//! messages; a receiver that falls further behind gets [`RecvError::Lagged`] with the
//! number it missed, then continues from the oldest message still kept.
//!
//! Owns: the ring of messages, the receivers' positions and their waits. Must not
//! touch: the wait-list mechanism (it only uses `WaitList`).
//!
//! The wake protocol: a message is an `Arc<T>` in a ring under one lock, with a count
//! of the receivers that have yet to read it. A `recv` that finds nothing new queues
//! itself with its waker in the same critical section; `send` appends and unlinks
//! every queued receiver under the lock, taking the wakers, and wakes them after it.
//! A receiver clones the `Arc` under the lock and the `T` after it (`T::clone` is user
//! code, rule 1); the last reader takes the `Arc` out of the ring and usually moves
//! the value instead of cloning it. Messages pushed out of the ring, and the ones a
//! dropped receiver will not read, are dropped after the lock.
//!
//! ```
//! use evloop::sync::broadcast;
//!
//! evloop::run(async {
//!     let (tx, mut rx1) = broadcast::channel(16);
//!     let mut rx2 = tx.subscribe();
//!     tx.send("hello").unwrap();
//!     assert_eq!(rx1.recv().await?, "hello");
//!     assert_eq!(rx2.recv().await?, "hello");
//!     Ok::<(), evloop::Error>(())
//! })
//! .unwrap();
//! ```
//!
//! ## Cancellation safety (Y8)
//!
//! | method | dropped or cancelled before it completes |
//! |---|---|
//! | `Receiver::recv` | safe: the receiver's position does not move; the next `recv` gets the message |
//! | `Sender::send`, `Receiver::try_recv` | not futures: they complete at once |

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use crate::loom::sync::Mutex;
use crate::sync::shared::support::{Wakers, block_on, drop_all, lock, take_cancelled};
use crate::sync::wait_list::{WaitList, WaiterId};

mod error;
#[cfg(test)]
mod tests;

pub use error::{RecvError, SendError, TryRecvError};

struct Slot<T> {
    /// `None` once every receiver that was subscribed when it was sent has read it.
    value: Option<Arc<T>>,
    /// Receivers that have yet to read it.
    unread: usize,
}

struct State<T> {
    /// The last `capacity` messages; `ring[0]` has position `head`.
    ring: VecDeque<Slot<T>>,
    head: u64,
    capacity: usize,
    senders: usize,
    receivers: usize,
    /// Receivers waiting for a message.
    waiters: WaitList<()>,
}

impl<T> State<T> {
    fn tail(&self) -> u64 {
        self.head + self.ring.len() as u64
    }

    fn wake_all(&mut self) -> Wakers {
        let mut wakers = Wakers::default();
        while let Some((_, waker)) = self.waiters.pop_front() {
            wakers.extend(waker);
        }
        wakers
    }
}

struct Shared<T> {
    state: Mutex<State<T>>,
}

/// A broadcast channel keeping the last `capacity` messages, with one receiver.
///
/// ```
/// let (tx, mut rx) = evloop::sync::broadcast::channel(2);
/// tx.send(1).unwrap();
/// assert_eq!(rx.try_recv(), Ok(1));
/// ```
///
/// # Panics
///
/// If `capacity` is 0.
#[track_caller]
pub fn channel<T: Clone>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    assert!(
        capacity > 0,
        "evloop::sync::broadcast::channel: capacity must be at least 1 (got 0)"
    );
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            ring: VecDeque::new(),
            head: 0,
            capacity,
            senders: 1,
            receivers: 1,
            waiters: WaitList::default(),
        }),
    });
    let rx = Receiver {
        shared: shared.clone(),
        next: 0,
    };
    (Sender { shared }, rx)
}

/// The sending half of a broadcast [`channel`]; `Clone` adds a sender. The channel is
/// closed for the receivers once every sender is gone.
///
/// ```
/// let (tx, rx) = evloop::sync::broadcast::channel::<u8>(4);
/// assert_eq!(tx.receiver_count(), 1);
/// drop(rx);
/// assert!(tx.send(1).is_err(), "nobody listens");
/// ```
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Sender<T> {
    /// Sends `value` to every current receiver; returns how many there are. Never
    /// waits: when the channel already keeps `capacity` messages, the oldest one is
    /// pushed out (receivers that had not read it will see [`RecvError::Lagged`]).
    ///
    /// ```
    /// let (tx, _rx) = evloop::sync::broadcast::channel(4);
    /// let _rx2 = tx.subscribe();
    /// assert_eq!(tx.send("x").unwrap(), 2);
    /// ```
    ///
    /// # Errors
    ///
    /// [`SendError`], with the value, when there is no receiver.
    pub fn send(&self, value: T) -> Result<usize, SendError<T>> {
        let value = Arc::new(value);
        let mut state = lock(self.shared.state.lock());
        let receivers = state.receivers;
        if receivers == 0 {
            drop(state);
            let value = Arc::try_unwrap(value).unwrap_or_else(|_| unreachable!("never shared"));
            return Err(SendError(value));
        }
        state.ring.push_back(Slot {
            value: Some(value),
            unread: receivers,
        });
        let pushed_out = if state.ring.len() > state.capacity {
            state.head += 1;
            state.ring.pop_front()
        } else {
            None
        };
        let wakers = state.wake_all();
        drop(state);
        wakers.wake();
        drop_all(pushed_out.and_then(|slot| slot.value));
        Ok(receivers)
    }

    /// A new receiver, which sees the messages sent from now on.
    ///
    /// ```
    /// let (tx, _rx) = evloop::sync::broadcast::channel(4);
    /// tx.send(1).unwrap();
    /// let mut late = tx.subscribe();
    /// tx.send(2).unwrap();
    /// assert_eq!(late.try_recv(), Ok(2));
    /// ```
    pub fn subscribe(&self) -> Receiver<T> {
        subscribe(&self.shared)
    }

    /// The number of receivers.
    ///
    /// ```
    /// let (tx, rx) = evloop::sync::broadcast::channel::<()>(1);
    /// let rx2 = rx.resubscribe();
    /// assert_eq!(tx.receiver_count(), 2);
    /// ```
    pub fn receiver_count(&self) -> usize {
        lock(self.shared.state.lock()).receivers
    }
}

fn subscribe<T>(shared: &Arc<Shared<T>>) -> Receiver<T> {
    let mut state = lock(shared.state.lock());
    state.receivers += 1;
    let next = state.tail();
    drop(state);
    Receiver {
        shared: shared.clone(),
        next,
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        lock(self.shared.state.lock()).senders += 1;
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut state = lock(self.shared.state.lock());
        state.senders -= 1;
        let wakers = match state.senders {
            0 => state.wake_all(),
            _ => Wakers::default(),
        };
        drop(state);
        wakers.wake();
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

/// A receiving half of a broadcast [`channel`]; each receiver has its own position.
/// More receivers come from [`Sender::subscribe`] and [`Receiver::resubscribe`].
///
/// ```
/// let (tx, mut rx) = evloop::sync::broadcast::channel(4);
/// tx.send('a').unwrap();
/// drop(tx);
/// assert_eq!(rx.blocking_recv(), Ok('a'));
/// assert_eq!(rx.blocking_recv(), Err(evloop::sync::broadcast::RecvError::Closed));
/// ```
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
    /// Position of the next message to read.
    next: u64,
}

/// What one step of reading found.
enum Step<T> {
    Value(Arc<T>),
    Lagged(u64),
    Closed,
    Empty,
}

impl<T: Clone> Receiver<T> {
    /// Receives the next message, waiting until one is sent.
    ///
    /// Cancellation-safe: a dropped or cancelled `recv` does not move the receiver on.
    ///
    /// ```
    /// evloop::run(async {
    ///     let (tx, mut rx) = evloop::sync::broadcast::channel(4);
    ///     evloop::create_task(async move {
    ///         tx.send(5).unwrap();
    ///         Ok::<(), evloop::Error>(())
    ///     });
    ///     assert_eq!(rx.recv().await?, 5);
    ///     Ok::<(), evloop::Error>(())
    /// })
    /// .unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// [`RecvError::Lagged`]`(n)` when `n` messages were pushed out before this
    /// receiver read them (the next `recv` continues with the oldest kept);
    /// [`RecvError::Closed`] once every sender is gone and every message was read;
    /// [`RecvError::Cancelled`] when the awaiting evloop task is cancelled.
    pub fn recv(&mut self) -> impl Future<Output = Result<T, RecvError>> + '_ {
        Recv {
            rx: self,
            waiter: None,
        }
    }

    /// Receives the next message if there is one now.
    ///
    /// ```
    /// use evloop::sync::broadcast::{self, TryRecvError};
    /// let (tx, mut rx) = broadcast::channel(1);
    /// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    /// tx.send(1).unwrap();
    /// tx.send(2).unwrap();
    /// assert_eq!(rx.try_recv(), Err(TryRecvError::Lagged(1)));
    /// assert_eq!(rx.try_recv(), Ok(2));
    /// ```
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`], [`TryRecvError::Lagged`], [`TryRecvError::Closed`] (see
    /// [`recv`](Self::recv)).
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let mut state = lock(self.shared.state.lock());
        let step = step(&mut self.next, &mut state);
        drop(state);
        match step {
            Step::Value(value) => Ok(unwrap_or_clone(value)),
            Step::Lagged(n) => Err(TryRecvError::Lagged(n)),
            Step::Closed => Err(TryRecvError::Closed),
            Step::Empty => Err(TryRecvError::Empty),
        }
    }

    /// [`recv`](Self::recv) for plain threads: blocks until a message is sent.
    ///
    /// ```
    /// let (tx, mut rx) = evloop::sync::broadcast::channel(1);
    /// std::thread::spawn(move || tx.send(3).unwrap());
    /// assert_eq!(rx.blocking_recv(), Ok(3));
    /// ```
    ///
    /// # Errors
    ///
    /// [`RecvError::Lagged`] and [`RecvError::Closed`], as for `recv`.
    ///
    /// # Panics
    ///
    /// On the thread of an evloop loop: it would block the loop (use
    /// `rx.recv().await`).
    #[track_caller]
    pub fn blocking_recv(&mut self) -> Result<T, RecvError> {
        block_on(
            "broadcast::Receiver::blocking_recv",
            "rx.recv().await",
            self.recv(),
        )
    }
}

impl<T> Receiver<T> {
    /// A new receiver of the same channel, which sees the messages sent from now on.
    ///
    /// ```
    /// let (tx, mut rx) = evloop::sync::broadcast::channel(4);
    /// tx.send(1).unwrap();
    /// let mut rx2 = rx.resubscribe();
    /// tx.send(2).unwrap();
    /// assert_eq!(rx.try_recv(), Ok(1));
    /// assert_eq!(rx2.try_recv(), Ok(2));
    /// ```
    pub fn resubscribe(&self) -> Receiver<T> {
        subscribe(&self.shared)
    }
}

/// Reads one step under the lock for a receiver at `next`: the next message's `Arc`
/// (the `T` is cloned after the lock), a lag, or the end.
fn step<T>(next: &mut u64, state: &mut State<T>) -> Step<T> {
    if *next < state.head {
        let missed = state.head - *next;
        *next = state.head;
        return Step::Lagged(missed);
    }
    if *next < state.tail() {
        let slot = &mut state.ring[(*next - state.head) as usize];
        *next += 1;
        slot.unread -= 1;
        let value = match slot.unread {
            0 => slot.value.take(),
            _ => slot.value.clone(),
        };
        return Step::Value(value.expect("a message is kept until its last reader"));
    }
    if state.senders == 0 {
        Step::Closed
    } else {
        Step::Empty
    }
}

/// The value of a message: moved out when this was the last reference, else cloned.
fn unwrap_or_clone<T: Clone>(value: Arc<T>) -> T {
    Arc::try_unwrap(value).unwrap_or_else(|shared| T::clone(&shared))
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut state = lock(self.shared.state.lock());
        state.receivers -= 1;
        // The messages this receiver will not read: the last reader lets them go.
        let from = self.next.max(state.head);
        let head = state.head;
        let mut unread = Vec::new();
        for slot in state.ring.iter_mut().skip((from - head) as usize) {
            slot.unread -= 1;
            if slot.unread == 0 {
                unread.extend(slot.value.take());
            }
        }
        drop(state);
        drop_all(unread);
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

/// A receive: its registration among the waiters, removed on drop.
struct Recv<'a, T> {
    rx: &'a mut Receiver<T>,
    waiter: Option<WaiterId>,
}

impl<T> Unpin for Recv<'_, T> {}

impl<T: Clone> Future for Recv<'_, T> {
    type Output = Result<T, RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        crate::task::sync_await(cx, "broadcast::Receiver::recv", move |cx| {
            let this = self.get_mut();
            if let Some(cancelled) = take_cancelled() {
                this.leave();
                return Poll::Ready(Err(RecvError::Cancelled(cancelled)));
            }
            let rx = &mut *this.rx;
            // A foreign waker's `clone` is user code: never under the lock (rule 1).
            let mut fresh = Some(cx.waker().clone());
            let mut state = lock(rx.shared.state.lock());
            let step = step(&mut rx.next, &mut state);
            let mut old_waker: Option<Waker> = None;
            if let Step::Empty = step {
                match this.waiter {
                    Some(id) if state.waiters.is_linked(id) => {
                        old_waker = state
                            .waiters
                            .store_waker(id, fresh.take().expect("one registration per poll"));
                    }
                    Some(id) => {
                        old_waker = state.waiters.remove(id).1;
                        this.waiter =
                            Some(state.waiters.push_back_waker(
                                (),
                                fresh.take().expect("one registration per poll"),
                            ));
                    }
                    None => {
                        this.waiter =
                            Some(state.waiters.push_back_waker(
                                (),
                                fresh.take().expect("one registration per poll"),
                            ))
                    }
                }
            } else if let Some(id) = this.waiter.take() {
                old_waker = state.waiters.remove(id).1;
            }
            drop(state);
            drop(fresh);
            drop(old_waker);
            match step {
                Step::Value(value) => Poll::Ready(Ok(unwrap_or_clone(value))),
                Step::Lagged(n) => Poll::Ready(Err(RecvError::Lagged(n))),
                Step::Closed => Poll::Ready(Err(RecvError::Closed)),
                Step::Empty => Poll::Pending,
            }
        })
    }
}

impl<T> Recv<'_, T> {
    fn leave(&mut self) {
        if let Some(id) = self.waiter.take() {
            let (_, waker) = lock(self.rx.shared.state.lock()).waiters.remove(id);
            drop(waker);
        }
    }
}

impl<T> Drop for Recv<'_, T> {
    fn drop(&mut self) {
        self.leave();
    }
}
