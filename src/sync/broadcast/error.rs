//! The errors of `evloop::sync::broadcast`.
//!
//! Owns: the error types and how they display. Must not touch: the channel. Every
//! error is a `std::error::Error`, so `?` turns it into an `evloop::Error`; a
//! `RecvError::Cancelled` becomes `Error::Cancelled` (its `source()` is the
//! `CancelledError`).

use std::error::Error as StdError;
use std::fmt;

use crate::error::CancelledError;

/// A [`Sender::send`](super::Sender::send) with no receiver; the value comes back.
///
/// ```
/// let (tx, rx) = evloop::sync::broadcast::channel(1);
/// drop(rx);
/// let err = tx.send(9).unwrap_err();
/// assert_eq!(err.0, 9);
/// assert_eq!(format!("{err:?}: {err}"), "SendError(..): channel closed");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct SendError<T>(pub T);

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("channel closed")
    }
}

impl<T> StdError for SendError<T> {}

/// Why a [`Receiver::recv`](super::Receiver::recv) returned no message.
///
/// `From<RecvError> for evloop::Error` (the `?` operator) gives `Error::Cancelled` for
/// [`RecvError::Cancelled`] — its `source()` is the `CancelledError` — and an
/// `Error::Exception` holding the `RecvError` (downcastable) otherwise.
///
/// ```
/// use evloop::sync::broadcast::RecvError;
/// let err = evloop::Error::from(RecvError::Cancelled(evloop::CancelledError::new(None)));
/// assert!(err.is_cancelled());
/// let err = evloop::Error::from(RecvError::Lagged(3));
/// assert_eq!(err.downcast_ref::<RecvError>(), Some(&RecvError::Lagged(3)));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecvError {
    /// Every sender is gone and every message was read.
    Closed,
    /// This many messages were pushed out before the receiver read them; it continues
    /// with the oldest message kept.
    Lagged(u64),
    /// The awaiting evloop task was cancelled; the receiver did not move on.
    Cancelled(CancelledError),
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::Closed => f.write_str("channel closed"),
            RecvError::Lagged(n) => write!(f, "channel lagged by {n}"),
            RecvError::Cancelled(cancelled) => write!(f, "receive {cancelled}"),
        }
    }
}

impl StdError for RecvError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            RecvError::Cancelled(cancelled) => Some(cancelled),
            _ => None,
        }
    }
}

/// Why a [`Receiver::try_recv`](super::Receiver::try_recv) returned no message.
///
/// ```
/// let e = evloop::sync::broadcast::TryRecvError::Lagged(2);
/// assert_eq!(e.to_string(), "channel lagged by 2");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TryRecvError {
    /// No new message now; senders are left.
    Empty,
    /// Every sender is gone and every message was read.
    Closed,
    /// This many messages were pushed out before the receiver read them.
    Lagged(u64),
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("channel empty"),
            TryRecvError::Closed => f.write_str("channel closed"),
            TryRecvError::Lagged(n) => write!(f, "channel lagged by {n}"),
        }
    }
}

impl StdError for TryRecvError {}
