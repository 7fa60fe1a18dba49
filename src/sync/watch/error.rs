//! The errors of `evloop::sync::watch`.
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
/// let (tx, rx) = evloop::sync::watch::channel(0);
/// drop(rx);
/// assert_eq!(tx.send(4).unwrap_err().0, 4);
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

/// Why a [`Receiver::changed`](super::Receiver::changed) returned no change.
///
/// `From<RecvError> for evloop::Error` (the `?` operator) gives `Error::Cancelled` for
/// [`RecvError::Cancelled`] — its `source()` is the `CancelledError` — and an
/// `Error::Exception` holding the `RecvError` otherwise.
///
/// ```
/// use evloop::sync::watch::RecvError;
/// let err = evloop::Error::from(RecvError::Cancelled(evloop::CancelledError::new(None)));
/// assert!(err.is_cancelled());
/// assert_eq!(RecvError::Closed.to_string(), "channel closed");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecvError {
    /// Every sender is gone (and the latest value was seen, for `changed`).
    Closed,
    /// The awaiting evloop task was cancelled; nothing was marked seen.
    Cancelled(CancelledError),
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::Closed => f.write_str("channel closed"),
            RecvError::Cancelled(cancelled) => write!(f, "wait for a change {cancelled}"),
        }
    }
}

impl StdError for RecvError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            RecvError::Closed => None,
            RecvError::Cancelled(cancelled) => Some(cancelled),
        }
    }
}
