//! A single-value channel between tasks of any loops and plain threads (SPEC §13 Y7),
//! in tokio's shape: receivers see the latest value and wait for changes.
//!
//! Owns: the value (under an `RwLock`), its version and the receivers' waits (under a
//! `Mutex`). Must not touch: the wait-list mechanism (it only uses `WaitList`).
//!
//! Versions are tokio's: every send bumps the channel's version; a receiver remembers
//! the version it last saw (the one current when it was made, or copied when cloned)
//! and `changed` returns once they differ, marking the new one seen.
//!
//! The wake protocol: a send replaces the value and bumps the version while it holds
//! the value's write lock and then the state lock (always in that order), and unlinks
//! every queued receiver under the state lock, taking the wakers; it wakes them after
//! both locks, and drops the old value last. `changed` compares versions and, if
//! nothing changed, queues itself with its waker in the same critical section of the
//! state lock, so a send either came before (the version differs) or finds it queued.
//! The last sender leaving wakes every queued receiver the same way.
//!
//! ```
//! use evloop::sync::watch;
//!
//! evloop::run(async {
//!     let (tx, mut rx) = watch::channel("starting");
//!     evloop::create_task(async move {
//!         tx.send("ready").unwrap();
//!         Ok::<(), evloop::Error>(())
//!     });
//!     rx.changed().await?;
//!     assert_eq!(*rx.borrow(), "ready");
//!     Ok::<(), evloop::Error>(())
//! })
//! .unwrap();
//! ```
//!
//! ## Cancellation safety (Y8)
//!
//! | method | dropped or cancelled before it completes |
//! |---|---|
//! | `Receiver::changed` | safe: the change stays unseen; the next `changed` returns at once |
//! | `Sender::send`, `send_replace`, `borrow`, `borrow_and_update` | not futures: they complete at once |

use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use crate::loom::sync::{Mutex, RwLock, RwLockReadGuard};
use crate::sync::shared::support::{Wakers, block_on, lock, take_cancelled};
use crate::sync::wait_list::{WaitList, WaiterId};

mod error;
#[cfg(test)]
mod tests;

pub use error::{RecvError, SendError};

struct State {
    version: u64,
    senders: usize,
    receivers: usize,
    waiters: WaitList<()>,
}

impl State {
    fn wake_all(&mut self) -> Wakers {
        let mut wakers = Wakers::default();
        while let Some((_, waker)) = self.waiters.pop_front() {
            wakers.extend(waker);
        }
        wakers
    }
}

struct Shared<T> {
    /// Locked before `state` whenever both are.
    value: RwLock<T>,
    state: Mutex<State>,
}

/// A watch channel holding `init`, with one receiver (which has seen `init`).
///
/// ```
/// let (tx, rx) = evloop::sync::watch::channel(1);
/// assert_eq!(*rx.borrow(), 1);
/// tx.send(2).unwrap();
/// assert_eq!(*rx.borrow(), 2);
/// ```
pub fn channel<T>(init: T) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        value: RwLock::new(init),
        state: Mutex::new(State {
            version: 0,
            senders: 1,
            receivers: 1,
            waiters: WaitList::default(),
        }),
    });
    let rx = Receiver {
        shared: shared.clone(),
        seen: 0,
    };
    (Sender { shared }, rx)
}

/// The sending half of a watch [`channel`]; `Clone` adds a sender. The channel is
/// closed for the receivers once every sender is gone.
///
/// ```
/// let (tx, rx) = evloop::sync::watch::channel(0);
/// let tx2 = tx.clone();
/// drop(tx);
/// tx2.send(5).unwrap();
/// assert_eq!(*rx.borrow(), 5);
/// drop(tx2);
/// assert!(rx.has_changed().is_err(), "closed");
/// ```
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Sender<T> {
    /// Replaces the value and notifies every receiver.
    ///
    /// ```
    /// let (tx, mut rx) = evloop::sync::watch::channel("a");
    /// tx.send("b").unwrap();
    /// assert!(rx.has_changed().unwrap());
    /// assert_eq!(*rx.borrow_and_update(), "b");
    /// ```
    ///
    /// # Errors
    ///
    /// [`SendError`], with the value, when there is no receiver (the value is not
    /// stored).
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        self.replace(value, true).map(drop).map_err(SendError)
    }

    /// Replaces the value — also when there is no receiver — notifies every receiver,
    /// and returns the old value.
    ///
    /// ```
    /// let (tx, rx) = evloop::sync::watch::channel(1);
    /// drop(rx);
    /// assert_eq!(tx.send_replace(2), 1);
    /// assert_eq!(*tx.borrow(), 2);
    /// ```
    pub fn send_replace(&self, value: T) -> T {
        match self.replace(value, false) {
            Ok(old) => old,
            Err(_) => unreachable!("only refused when asked to"),
        }
    }

    /// The replacement under both locks; `Err(value)` when `need_receiver` and there
    /// is none. The old value is the caller's to drop (after the locks).
    fn replace(&self, value: T, need_receiver: bool) -> Result<T, T> {
        let mut current = lock(self.shared.value.write());
        let mut state = lock(self.shared.state.lock());
        if need_receiver && state.receivers == 0 {
            drop(state);
            drop(current);
            return Err(value);
        }
        let old = std::mem::replace(&mut *current, value);
        state.version += 1;
        let wakers = state.wake_all();
        drop(state);
        drop(current);
        wakers.wake();
        Ok(old)
    }

    /// Reads the current value (a read lock: keep it short, and never across an
    /// `.await`).
    ///
    /// ```
    /// let (tx, _rx) = evloop::sync::watch::channel(String::from("x"));
    /// assert_eq!(tx.borrow().len(), 1);
    /// ```
    pub fn borrow(&self) -> Ref<'_, T> {
        Ref {
            guard: lock(self.shared.value.read()),
            has_changed: false,
        }
    }

    /// A new receiver; it has seen the current value.
    ///
    /// ```
    /// let (tx, rx) = evloop::sync::watch::channel(0);
    /// drop(rx);
    /// let rx = tx.subscribe();
    /// tx.send(1).unwrap();
    /// assert!(rx.has_changed().unwrap());
    /// ```
    pub fn subscribe(&self) -> Receiver<T> {
        let mut state = lock(self.shared.state.lock());
        state.receivers += 1;
        let seen = state.version;
        drop(state);
        Receiver {
            shared: self.shared.clone(),
            seen,
        }
    }

    /// The number of receivers.
    ///
    /// ```
    /// let (tx, rx) = evloop::sync::watch::channel(());
    /// let _rx2 = rx.clone();
    /// assert_eq!(tx.receiver_count(), 2);
    /// ```
    pub fn receiver_count(&self) -> usize {
        lock(self.shared.state.lock()).receivers
    }

    /// Whether every receiver is gone.
    ///
    /// ```
    /// let (tx, rx) = evloop::sync::watch::channel(());
    /// drop(rx);
    /// assert!(tx.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.receiver_count() == 0
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

/// A receiving half of a watch [`channel`]. `Clone` gives another receiver that has
/// seen what this one has.
///
/// ```
/// let (tx, rx) = evloop::sync::watch::channel(0);
/// let rx2 = rx.clone();
/// tx.send(1).unwrap();
/// assert!(rx.has_changed().unwrap() && rx2.has_changed().unwrap());
/// ```
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
    /// The version this receiver has seen.
    seen: u64,
}

impl<T> Receiver<T> {
    /// Reads the current value without marking it seen (a read lock: keep it short,
    /// and never across an `.await`).
    ///
    /// ```
    /// let (tx, rx) = evloop::sync::watch::channel(1);
    /// tx.send(2).unwrap();
    /// assert_eq!(*rx.borrow(), 2);
    /// assert!(rx.has_changed().unwrap(), "borrow does not mark it seen");
    /// ```
    pub fn borrow(&self) -> Ref<'_, T> {
        let guard = lock(self.shared.value.read());
        let version = lock(self.shared.state.lock()).version;
        Ref {
            guard,
            has_changed: version != self.seen,
        }
    }

    /// Reads the current value and marks it seen.
    ///
    /// ```
    /// let (tx, mut rx) = evloop::sync::watch::channel(1);
    /// tx.send(2).unwrap();
    /// assert_eq!(*rx.borrow_and_update(), 2);
    /// assert!(!rx.has_changed().unwrap());
    /// ```
    pub fn borrow_and_update(&mut self) -> Ref<'_, T> {
        let guard = lock(self.shared.value.read());
        let version = lock(self.shared.state.lock()).version;
        let has_changed = version != self.seen;
        self.seen = version;
        Ref { guard, has_changed }
    }

    /// Whether a value was sent that this receiver has not seen.
    ///
    /// ```
    /// let (tx, rx) = evloop::sync::watch::channel(1);
    /// assert!(!rx.has_changed().unwrap());
    /// tx.send(1).unwrap();
    /// assert!(rx.has_changed().unwrap());
    /// drop(tx);
    /// assert!(rx.has_changed().is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// [`RecvError::Closed`] once every sender is gone.
    pub fn has_changed(&self) -> Result<bool, RecvError> {
        let state = lock(self.shared.state.lock());
        if state.senders == 0 {
            return Err(RecvError::Closed);
        }
        Ok(state.version != self.seen)
    }

    /// Waits for a value this receiver has not seen, and marks it seen; returns at
    /// once if there is one already.
    ///
    /// Cancellation-safe: a dropped or cancelled `changed` marks nothing seen.
    ///
    /// ```
    /// let (tx, mut rx) = evloop::sync::watch::channel(0);
    /// std::thread::spawn(move || tx.send(1).unwrap());
    /// rx.blocking_changed().unwrap();
    /// assert_eq!(*rx.borrow(), 1);
    /// ```
    ///
    /// # Errors
    ///
    /// [`RecvError::Closed`] when every sender is gone and the value was seen;
    /// [`RecvError::Cancelled`] when the awaiting evloop task is cancelled.
    pub fn changed(&mut self) -> impl Future<Output = Result<(), RecvError>> + '_ {
        Changed {
            rx: self,
            waiter: None,
        }
    }

    /// [`changed`](Self::changed) for plain threads: blocks until a new value is sent.
    ///
    /// ```
    /// let (tx, mut rx) = evloop::sync::watch::channel(0);
    /// drop(tx);
    /// assert!(rx.blocking_changed().is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// [`RecvError::Closed`] when every sender is gone and the value was seen.
    ///
    /// # Panics
    ///
    /// On the thread of an evloop loop: it would block the loop (use
    /// `rx.changed().await`).
    #[track_caller]
    pub fn blocking_changed(&mut self) -> Result<(), RecvError> {
        block_on(
            "watch::Receiver::blocking_changed",
            "rx.changed().await",
            self.changed(),
        )
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        lock(self.shared.state.lock()).receivers += 1;
        Receiver {
            shared: self.shared.clone(),
            seen: self.seen,
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        lock(self.shared.state.lock()).receivers -= 1;
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("seen", &self.seen)
            .finish_non_exhaustive()
    }
}

/// A `changed` wait: its registration among the waiters, removed on drop.
struct Changed<'a, T> {
    rx: &'a mut Receiver<T>,
    waiter: Option<WaiterId>,
}

impl<T> Unpin for Changed<'_, T> {}

impl<T> Future for Changed<'_, T> {
    type Output = Result<(), RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        crate::task::sync_await(cx, "watch::Receiver::changed", move |cx| {
            let this = self.get_mut();
            if let Some(cancelled) = take_cancelled() {
                this.leave();
                return Poll::Ready(Err(RecvError::Cancelled(cancelled)));
            }
            // A foreign waker's `clone` is user code: never under the lock (rule 1).
            let mut fresh = Some(cx.waker().clone());
            let mut state = lock(this.rx.shared.state.lock());
            let out = if state.version != this.rx.seen {
                this.rx.seen = state.version;
                Poll::Ready(Ok(()))
            } else if state.senders == 0 {
                Poll::Ready(Err(RecvError::Closed))
            } else {
                Poll::Pending
            };
            let mut old_waker: Option<Waker> = None;
            match (out.is_ready(), this.waiter) {
                (true, Some(id)) => {
                    this.waiter = None;
                    old_waker = state.waiters.remove(id).1;
                }
                (true, None) => {}
                (false, Some(id)) if state.waiters.is_linked(id) => {
                    old_waker = state
                        .waiters
                        .store_waker(id, fresh.take().expect("one registration per poll"));
                }
                (false, Some(id)) => {
                    old_waker = state.waiters.remove(id).1;
                    this.waiter = Some(
                        state
                            .waiters
                            .push_back_waker((), fresh.take().expect("one registration per poll")),
                    );
                }
                (false, None) => {
                    this.waiter = Some(
                        state
                            .waiters
                            .push_back_waker((), fresh.take().expect("one registration per poll")),
                    )
                }
            }
            drop(state);
            drop(fresh);
            drop(old_waker);
            out
        })
    }
}

impl<T> Changed<'_, T> {
    fn leave(&mut self) {
        if let Some(id) = self.waiter.take() {
            let (_, waker) = lock(self.rx.shared.state.lock()).waiters.remove(id);
            drop(waker);
        }
    }
}

impl<T> Drop for Changed<'_, T> {
    fn drop(&mut self) {
        self.leave();
    }
}

/// A read of a watch channel's value: derefs to it, holds a read lock until dropped.
///
/// ```
/// let (tx, rx) = evloop::sync::watch::channel(vec![1]);
/// tx.send(vec![1, 2]).unwrap();
/// let value = rx.borrow();
/// assert!(value.has_changed());
/// assert_eq!(value.len(), 2);
/// ```
pub struct Ref<'a, T> {
    guard: RwLockReadGuard<'a, T>,
    has_changed: bool,
}

impl<T> Ref<'_, T> {
    /// Whether this value was unseen by the receiver when it was borrowed (always
    /// `false` for [`Sender::borrow`]).
    ///
    /// ```
    /// let (tx, mut rx) = evloop::sync::watch::channel(0);
    /// assert!(!rx.borrow_and_update().has_changed());
    /// ```
    pub fn has_changed(&self) -> bool {
        self.has_changed
    }
}

impl<T> Deref for Ref<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T: fmt::Debug> fmt::Debug for Ref<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
