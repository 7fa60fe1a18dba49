//! The errors of `evloop::sync::mpsc`.
//!
//! Owns: [`SendError`], [`TrySendError`], [`TryRecvError`] and how they display.
//! Must not touch: the channel. `Debug` never needs `T: Debug` (the value prints as
//! `..`, as tokio does); every error is a `std::error::Error`, so `?` turns it into an
//! `evloop::Error` — a [`SendError::Cancelled`] into `Error::Cancelled` (its
//! `source()` is the `CancelledError`).

use std::error::Error as StdError;
use std::fmt;

use crate::error::CancelledError;

/// A send that did not happen; the value comes back.
///
/// ```
/// let (tx, rx) = evloop::sync::mpsc::unbounded_channel::<u32>();
/// drop(rx);
/// let err = tx.send(7).unwrap_err();
/// assert!(err.is_closed());
/// assert_eq!(err.to_string(), "channel closed");
/// assert_eq!(err.into_inner(), 7);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub enum SendError<T> {
    /// The receiver is gone or closed the channel.
    Closed(T),
    /// The sending task was cancelled while it waited for room (bounded channels):
    /// nothing was sent. Converted to an `evloop::Error` it is `Error::Cancelled`.
    Cancelled(T, CancelledError),
}

impl<T> SendError<T> {
    /// The value that was not sent.
    ///
    /// ```
    /// let err = evloop::sync::mpsc::SendError::Closed("hi");
    /// assert_eq!(err.into_inner(), "hi");
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            SendError::Closed(value) | SendError::Cancelled(value, _) => value,
        }
    }

    /// Whether the channel was closed.
    ///
    /// ```
    /// assert!(evloop::sync::mpsc::SendError::Closed(()).is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        matches!(self, SendError::Closed(_))
    }

    /// Whether the sending task was cancelled.
    ///
    /// ```
    /// use evloop::sync::mpsc::SendError;
    /// let err = SendError::Cancelled((), evloop::CancelledError::new(None));
    /// assert!(err.is_cancelled());
    /// assert!(evloop::Error::from(err).is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        matches!(self, SendError::Cancelled(..))
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Closed(_) => f.write_str("Closed(..)"),
            SendError::Cancelled(_, cancelled) => write!(f, "Cancelled(.., {cancelled:?})"),
        }
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Closed(_) => f.write_str("channel closed"),
            SendError::Cancelled(_, cancelled) => write!(f, "send {cancelled}"),
        }
    }
}

impl<T> StdError for SendError<T> {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            SendError::Closed(_) => None,
            SendError::Cancelled(_, cancelled) => Some(cancelled),
        }
    }
}

/// A [`Sender::try_send`](super::Sender::try_send) that did not happen; the value
/// comes back.
///
/// ```
/// use evloop::sync::mpsc::{self, TrySendError};
/// let (tx, _rx) = mpsc::channel(1);
/// tx.try_send(1).unwrap();
/// let err = tx.try_send(2).unwrap_err();
/// assert!(matches!(err, TrySendError::Full(2)));
/// assert_eq!(format!("{err:?} / {err}"), "Full(..) / no available capacity");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub enum TrySendError<T> {
    /// The channel holds `capacity` items (or senders wait before this one).
    Full(T),
    /// The receiver is gone or closed the channel.
    Closed(T),
}

impl<T> TrySendError<T> {
    /// The value that was not sent.
    ///
    /// ```
    /// let err = evloop::sync::mpsc::TrySendError::Full(3);
    /// assert_eq!(err.into_inner(), 3);
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(value) | TrySendError::Closed(value) => value,
        }
    }

    /// Whether the channel was full.
    ///
    /// ```
    /// assert!(evloop::sync::mpsc::TrySendError::Full(()).is_full());
    /// ```
    pub fn is_full(&self) -> bool {
        matches!(self, TrySendError::Full(_))
    }

    /// Whether the channel was closed.
    ///
    /// ```
    /// assert!(evloop::sync::mpsc::TrySendError::Closed(()).is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        matches!(self, TrySendError::Closed(_))
    }
}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("Full(..)"),
            TrySendError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("no available capacity"),
            TrySendError::Closed(_) => f.write_str("channel closed"),
        }
    }
}

impl<T> StdError for TrySendError<T> {}

/// Why a `try_recv` returned no item.
///
/// ```
/// use evloop::sync::mpsc::{self, TryRecvError};
/// let (tx, mut rx) = mpsc::unbounded_channel::<()>();
/// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
/// drop(tx);
/// assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
/// assert_eq!(TryRecvError::Empty.to_string(), "receiving on an empty channel");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TryRecvError {
    /// No item now; senders are left.
    Empty,
    /// No item, and none will come: every sender is gone, or the channel was closed.
    Disconnected,
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("receiving on an empty channel"),
            TryRecvError::Disconnected => f.write_str("receiving on a closed channel"),
        }
    }
}

impl StdError for TryRecvError {}
