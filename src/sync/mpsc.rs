//! Multi-producer, single-consumer channels between tasks of any loops and plain
//! threads (SPEC §13 Y7), in tokio's shape: [`channel`] (bounded) and
//! [`unbounded_channel`].
//!
//! Every item is delivered exactly once, in the order each sender sent them. Senders
//! are `Clone + Send + Sync`; the receiver is `Send`. `recv().await` gives `Ok(None)`
//! once every sender is gone (or the receiver closed the channel) and every item was
//! received. Waits are loop-native: a task cancelled while it waits resumes with
//! `Err(Error::Cancelled)` at once and loses nothing. The `blocking_*` methods are for
//! plain threads (executor workers, `std::thread`s) and panic on a loop thread.
//!
//! ```
//! use evloop::sync::mpsc;
//!
//! let (tx, mut rx) = mpsc::channel::<u64>(16);
//! let producer = std::thread::spawn(move || {
//!     for i in 0..100 {
//!         tx.blocking_send(i).unwrap();
//!     }
//! });
//! let sum = evloop::run(async move {
//!     let mut sum = 0;
//!     while let Some(i) = rx.recv().await? {
//!         sum += i;
//!     }
//!     Ok::<_, evloop::Error>(sum)
//! })?;
//! producer.join().unwrap();
//! assert_eq!(sum, 4950);
//! # Ok::<(), evloop::Error>(())
//! ```
//!
//! ## Cancellation safety (Y8)
//!
//! | method | dropped or cancelled before it completes |
//! |---|---|
//! | `Receiver::recv`, `UnboundedReceiver::recv` | safe: no item is taken; the next `recv` gets it |
//! | `Sender::send` | safe: nothing is sent (a cancelled send returns the value in `SendError::Cancelled`); a slot handed to it passes to the next sender. Its place in the senders' queue is lost. |
//! | `UnboundedSender::send`, `try_send`, `try_recv` | not futures: they complete at once |
//!
//! How it works: one queue under one lock; the receiver takes the whole queue at once
//! and serves the batch without the lock; a sender touches the receiver's waker only
//! when the receiver waits. A bounded channel's capacity is counted in slots (permits,
//! FIFO among waiting senders) held by each item until it is received.

mod chan;
mod error;
#[cfg(test)]
mod tests;

use std::fmt;
use std::future::Future;

pub use error::{SendError, TryRecvError, TrySendError};

use crate::error::Error;
use crate::sync::shared::support::block_on;
use chan::{Rx, Tx};

/// A bounded channel holding at most `capacity` items: [`Sender::send`] waits while it
/// is full.
///
/// ```
/// let (tx, mut rx) = evloop::sync::mpsc::channel(2);
/// tx.try_send('a').unwrap();
/// tx.try_send('b').unwrap();
/// assert!(tx.try_send('c').unwrap_err().is_full());
/// assert_eq!(rx.try_recv(), Ok('a'));
/// tx.try_send('c').unwrap();
/// ```
///
/// # Panics
///
/// If `capacity` is 0 (a rendezvous channel is not supported; use 1).
#[track_caller]
pub fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    assert!(
        capacity > 0,
        "evloop::sync::mpsc::channel: capacity must be at least 1 (got 0)"
    );
    let (tx, rx) = chan::new(Some(capacity));
    (Sender { tx }, Receiver { rx })
}

/// An unbounded channel: [`UnboundedSender::send`] never waits.
///
/// ```
/// let (tx, mut rx) = evloop::sync::mpsc::unbounded_channel();
/// for i in 0..3 {
///     tx.send(i).unwrap();
/// }
/// assert_eq!(rx.try_recv(), Ok(0));
/// ```
pub fn unbounded_channel<T>() -> (UnboundedSender<T>, UnboundedReceiver<T>) {
    let (tx, rx) = chan::new(None);
    (UnboundedSender { tx }, UnboundedReceiver { rx })
}

/// The sending half of a bounded [`channel`]. Clones send into the same channel; the
/// channel is disconnected when the last one is dropped.
///
/// ```
/// let (tx, mut rx) = evloop::sync::mpsc::channel(4);
/// let tx2 = tx.clone();
/// tx.try_send(1).unwrap();
/// tx2.try_send(2).unwrap();
/// drop((tx, tx2));
/// assert_eq!(rx.blocking_recv(), Some(1));
/// assert_eq!(rx.blocking_recv(), Some(2));
/// assert_eq!(rx.blocking_recv(), None);
/// ```
pub struct Sender<T> {
    tx: Tx<T>,
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Sender {
            tx: self.tx.clone(),
        }
    }
}

impl<T> Sender<T> {
    /// Sends `value`, waiting while the channel is full (senders are served first come,
    /// first served). Returns at once when there is room.
    ///
    /// ```
    /// evloop::run(async {
    ///     let (tx, mut rx) = evloop::sync::mpsc::channel(1);
    ///     tx.send("hi").await.unwrap();
    ///     assert_eq!(rx.recv().await?, Some("hi"));
    ///     Ok::<(), evloop::Error>(())
    /// })
    /// .unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// [`SendError::Closed`] if the receiver is gone or closed the channel;
    /// [`SendError::Cancelled`] if the sending evloop task is cancelled while it waits.
    /// Either way the value comes back and nothing was sent.
    pub fn send(&self, value: T) -> impl Future<Output = Result<(), SendError<T>>> + '_ {
        self.tx.send(value)
    }

    /// Sends `value` if there is room now.
    ///
    /// ```
    /// let (tx, _rx) = evloop::sync::mpsc::channel(1);
    /// assert!(tx.try_send(1).is_ok());
    /// assert_eq!(tx.try_send(2).unwrap_err().into_inner(), 2);
    /// ```
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] when the channel holds `capacity` items or other senders
    /// wait for room; [`TrySendError::Closed`] when the receiver is gone or closed it.
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        self.tx.try_send(value)
    }

    /// [`send`](Self::send) for plain threads: blocks while the channel is full.
    ///
    /// ```
    /// let (tx, mut rx) = evloop::sync::mpsc::channel(1);
    /// std::thread::spawn(move || tx.blocking_send(5)).join().unwrap().unwrap();
    /// assert_eq!(rx.try_recv(), Ok(5));
    /// ```
    ///
    /// # Errors
    ///
    /// [`SendError::Closed`] if the receiver is gone or closed the channel.
    ///
    /// # Panics
    ///
    /// On the thread of an evloop loop: it would block the loop (use
    /// `tx.send(v).await`).
    #[track_caller]
    pub fn blocking_send(&self, value: T) -> Result<(), SendError<T>> {
        block_on(
            "mpsc::Sender::blocking_send",
            "tx.send(v).await",
            self.tx.send(value),
        )
    }

    /// Whether the receiver is gone or closed the channel.
    ///
    /// ```
    /// let (tx, rx) = evloop::sync::mpsc::channel::<()>(1);
    /// assert!(!tx.is_closed());
    /// drop(rx);
    /// assert!(tx.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("capacity", &self.tx.bound())
            .finish_non_exhaustive()
    }
}

/// The sending half of an [`unbounded_channel`]. Clones send into the same channel;
/// the channel is disconnected when the last one is dropped.
///
/// ```
/// let (tx, mut rx) = evloop::sync::mpsc::unbounded_channel();
/// std::thread::spawn(move || tx.send(1).unwrap()).join().unwrap();
/// assert_eq!(rx.blocking_recv(), Some(1));
/// assert_eq!(rx.blocking_recv(), None);
/// ```
pub struct UnboundedSender<T> {
    tx: Tx<T>,
}

impl<T> Clone for UnboundedSender<T> {
    fn clone(&self) -> Self {
        UnboundedSender {
            tx: self.tx.clone(),
        }
    }
}

impl<T> UnboundedSender<T> {
    /// Sends `value` (never waits).
    ///
    /// ```
    /// let (tx, mut rx) = evloop::sync::mpsc::unbounded_channel();
    /// tx.send("a").unwrap();
    /// assert_eq!(rx.try_recv(), Ok("a"));
    /// ```
    ///
    /// # Errors
    ///
    /// [`SendError::Closed`], with the value, if the receiver is gone or closed the
    /// channel.
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        self.tx.push(value)
    }

    /// Whether the receiver is gone or closed the channel.
    ///
    /// ```
    /// let (tx, mut rx) = evloop::sync::mpsc::unbounded_channel::<()>();
    /// rx.close();
    /// assert!(tx.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

impl<T> fmt::Debug for UnboundedSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnboundedSender").finish_non_exhaustive()
    }
}

/// The receiving half of a bounded [`channel`].
///
/// Dropping it closes the channel; items still in it are dropped.
///
/// ```
/// evloop::run(async {
///     let (tx, mut rx) = evloop::sync::mpsc::channel(8);
///     evloop::create_task(async move {
///         for i in 0..3 {
///             tx.send(i).await.ok();
///         }
///         Ok::<(), evloop::Error>(())
///     });
///     let mut got = Vec::new();
///     while let Some(i) = rx.recv().await? {
///         got.push(i);
///     }
///     assert_eq!(got, [0, 1, 2]);
///     Ok::<(), evloop::Error>(())
/// })
/// .unwrap();
/// ```
pub struct Receiver<T> {
    rx: Rx<T>,
}

/// The receiving half of an [`unbounded_channel`].
///
/// Dropping it closes the channel; items still in it are dropped.
///
/// ```
/// let (tx, mut rx) = evloop::sync::mpsc::unbounded_channel();
/// tx.send(1).unwrap();
/// drop(tx);
/// assert_eq!(rx.blocking_recv(), Some(1));
/// assert_eq!(rx.blocking_recv(), None);
/// ```
pub struct UnboundedReceiver<T> {
    rx: Rx<T>,
}

/// The receiving methods, the same on both receivers.
macro_rules! receiver_methods {
    ($name:literal, $new:literal) => {
        /// Receives the next item, waiting until one arrives. Returns at once when one
        /// is there.
        ///
        /// Cancellation-safe: a dropped or cancelled `recv` takes no item.
        ///
        /// ```
        /// evloop::run(async {
        #[doc = concat!("    let (tx, mut rx) = ", $new, ";")]
        ///     drop(tx);
        ///     assert_eq!(rx.recv().await?, None::<u8>);
        ///     Ok::<(), evloop::Error>(())
        /// })
        /// .unwrap();
        /// ```
        ///
        /// # Errors
        ///
        /// `Ok(None)` is the end of the channel: every sender is gone (or the channel
        /// was closed) and every item received. `Err(Error::Cancelled)` when the
        /// awaiting evloop task is cancelled; the item it would have received stays in
        /// the channel.
        pub fn recv(&mut self) -> impl Future<Output = Result<Option<T>, Error>> + '_ {
            self.rx.recv()
        }

        /// Receives an item if one is there now.
        ///
        /// ```
        /// use evloop::sync::mpsc::TryRecvError;
        #[doc = concat!("let (tx, mut rx) = ", $new, ";")]
        /// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        /// drop(tx);
        /// assert_eq!(rx.try_recv(), Err::<u8, _>(TryRecvError::Disconnected));
        /// ```
        ///
        /// # Errors
        ///
        /// [`TryRecvError::Empty`] while senders are left, [`TryRecvError::Disconnected`]
        /// once none are (or the channel was closed) and it is empty.
        pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
            self.rx.try_recv()
        }

        /// [`recv`](Self::recv) for plain threads: blocks until an item arrives;
        /// `None` at the end of the channel.
        ///
        /// ```
        #[doc = concat!("let (tx, mut rx) = ", $new, ";")]
        /// drop(tx);
        /// assert_eq!(rx.blocking_recv(), None::<u8>);
        /// ```
        ///
        /// # Panics
        ///
        /// On the thread of an evloop loop: it would block the loop (use
        /// `rx.recv().await`).
        #[track_caller]
        pub fn blocking_recv(&mut self) -> Option<T> {
            let what = concat!("mpsc::", $name, "::blocking_recv");
            block_on(what, "rx.recv().await", self.rx.recv())
                .expect("a plain thread's wait is never cancelled")
        }

        /// Closes the channel: sends fail from now on (senders waiting for room are
        /// woken and fail); the items already sent can still be received, then
        /// `recv` gives `Ok(None)`.
        ///
        /// ```
        #[doc = concat!("let (tx, mut rx) = ", $new, ";")]
        /// assert!(!tx.is_closed());
        /// rx.close();
        /// assert!(tx.is_closed());
        /// assert_eq!(rx.blocking_recv(), None::<u8>);
        /// ```
        pub fn close(&mut self) {
            self.rx.close();
        }
    };
}

impl<T> Receiver<T> {
    receiver_methods!("Receiver", "evloop::sync::mpsc::channel(4)");
}

impl<T> UnboundedReceiver<T> {
    receiver_methods!(
        "UnboundedReceiver",
        "evloop::sync::mpsc::unbounded_channel()"
    );
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("capacity", &self.rx.bound())
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for UnboundedReceiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnboundedReceiver").finish_non_exhaustive()
    }
}
