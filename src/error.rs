//! The error types of SPEC §3: [`Error`] and the concrete errors it carries.
//!
//! Owns: how errors are classified, converted (`?` from any `std::error::Error`,
//! `CancelledError` inside an `io::Error`), displayed and downcast. Must not touch:
//! the loop — errors are plain values that cross threads freely.

use std::any::Any;
use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::sync::Arc;

use crate::exception_group::ExceptionGroup;

/// The error of a future, task, timer or loop operation (asyncio's exceptions).
///
/// `Error` is cheap to clone (every variant is reference counted or small), `Send` and
/// `Sync`. It deliberately does **not** implement [`std::error::Error`], so that
/// `From<E> for Error` can exist for every `E: std::error::Error` and `?` works inside
/// tasks; convert it with `Box::<dyn std::error::Error + Send + Sync>::from(err)` or
/// `io::Error::from(err)` when a standard error is needed.
///
/// ```
/// use evloop::{CancelledError, Error};
///
/// fn parse(s: &str) -> Result<i32, Error> {
///     Ok(s.parse::<i32>()?) // any std error converts with `?`
/// }
/// let err = parse("x").unwrap_err();
/// assert!(err.downcast_ref::<std::num::ParseIntError>().is_some());
///
/// // A CancelledError, also one wrapped in an io::Error, becomes Error::Cancelled.
/// let io = std::io::Error::other(CancelledError::new(Some("bye".into())));
/// let err = Error::from(io);
/// assert!(err.is_cancelled());
/// assert_eq!(err.to_string(), "cancelled: bye");
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub enum Error {
    /// The future or task was cancelled (asyncio's `CancelledError`).
    Cancelled(CancelledError),
    /// An operation was not valid in the current state (asyncio's `InvalidStateError`).
    InvalidState(InvalidStateError),
    /// Any other error, shared and downcastable.
    Exception(Exception),
    /// A panic caught in user code (a callback, task or executor job).
    Panic(PanicError),
    /// A `wait_for` / `timeout` deadline passed (asyncio's `TimeoutError`).
    Timeout(TimeoutError),
    /// Several errors together: the children of a [`TaskGroup`](crate::TaskGroup) that
    /// failed (Python's `ExceptionGroup`).
    Group(ExceptionGroup),
}

impl Error {
    /// Wraps any error. Recognises evloop's own errors (also inside an `io::Error`), so
    /// `Error::new(CancelledError::new(None))` is `Error::Cancelled`. A cancellation
    /// anywhere in the error's `source()` chain — a library that wrapped the `io::Error`
    /// of a cancelled socket await, as hyper does — also gives `Error::Cancelled`, so a
    /// cancelled task ends cancelled rather than failed.
    ///
    /// ```
    /// use evloop::{CancelledError, Error};
    ///
    /// #[derive(Debug)]
    /// struct Wrapper(std::io::Error);
    /// impl std::fmt::Display for Wrapper {
    ///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    ///         f.write_str("connection error")
    ///     }
    /// }
    /// impl std::error::Error for Wrapper {
    ///     fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
    ///         Some(&self.0)
    ///     }
    /// }
    /// let io = std::io::Error::other(CancelledError::new(None));
    /// assert!(Error::new(Wrapper(io)).is_cancelled());
    /// ```
    pub fn new<E: StdError + Send + Sync + 'static>(err: E) -> Error {
        Error::from_boxed(Box::new(err))
    }

    /// An `Error::Exception` carrying only a message.
    ///
    /// ```
    /// let err = evloop::Error::msg("disk full");
    /// assert_eq!(err.to_string(), "disk full");
    /// ```
    pub fn msg(message: impl fmt::Display) -> Error {
        Error::Exception(Exception::new(Message(message.to_string())))
    }

    /// Classifies a boxed error, unwrapping evloop's own error types.
    pub fn from_boxed(err: Box<dyn StdError + Send + Sync + 'static>) -> Error {
        let err = match err.downcast::<CancelledError>() {
            Ok(e) => return Error::Cancelled(*e),
            Err(err) => err,
        };
        let err = match err.downcast::<InvalidStateError>() {
            Ok(e) => return Error::InvalidState(*e),
            Err(err) => err,
        };
        let err = match err.downcast::<TimeoutError>() {
            Ok(e) => return Error::Timeout(*e),
            Err(err) => err,
        };
        let err = match err.downcast::<PanicError>() {
            Ok(e) => return Error::Panic(*e),
            Err(err) => err,
        };
        let err = match err.downcast::<ExceptionGroup>() {
            Ok(e) => return Error::Group(*e),
            Err(err) => err,
        };
        let err = match err.downcast::<ErrorBox>() {
            Ok(e) => return e.0,
            Err(err) => err,
        };
        match err.downcast::<io::Error>() {
            Ok(io) if wraps_evloop_error(&io) => {
                let inner = io.into_inner().expect("checked by wraps_evloop_error");
                Error::from_boxed(inner)
            }
            Ok(io) => Error::Exception(Exception(Arc::new(*io))),
            Err(err) => match cancellation_in_chain(&*err) {
                Some(cancelled) => Error::Cancelled(cancelled),
                None => Error::Exception(Exception(Arc::from(err))),
            },
        }
    }

    /// An error carrying the message of a caught panic payload.
    pub fn from_panic(payload: Box<dyn Any + Send>) -> Error {
        Error::Panic(PanicError::from_payload(payload.as_ref()))
    }

    /// `true` for [`Error::Cancelled`].
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Error::Cancelled(_))
    }

    /// `true` for [`Error::InvalidState`].
    pub fn is_invalid_state(&self) -> bool {
        matches!(self, Error::InvalidState(_))
    }

    /// `true` for [`Error::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout(_))
    }

    /// `true` for [`Error::Panic`].
    pub fn is_panic(&self) -> bool {
        matches!(self, Error::Panic(_))
    }

    /// `true` for [`Error::Group`].
    pub fn is_group(&self) -> bool {
        matches!(self, Error::Group(_))
    }

    /// The [`ExceptionGroup`] of an [`Error::Group`].
    pub fn as_group(&self) -> Option<&ExceptionGroup> {
        match self {
            Error::Group(group) => Some(group),
            _ => None,
        }
    }

    /// The underlying error as a `std::error::Error`.
    pub fn as_std(&self) -> &(dyn StdError + Send + Sync + 'static) {
        match self {
            Error::Cancelled(e) => e,
            Error::InvalidState(e) => e,
            Error::Exception(e) => e.0.as_ref(),
            Error::Panic(e) => e,
            Error::Timeout(e) => e,
            Error::Group(e) => e,
        }
    }

    /// Downcasts to a concrete error type: the wrapped error of an `Exception`, or
    /// evloop's own error of the other variants.
    pub fn downcast_ref<E: StdError + 'static>(&self) -> Option<&E> {
        self.as_std().downcast_ref::<E>()
    }
}

fn wraps_evloop_error(io: &io::Error) -> bool {
    io.get_ref().is_some_and(|inner| {
        inner.is::<CancelledError>()
            || inner.is::<InvalidStateError>()
            || inner.is::<TimeoutError>()
            || inner.is::<PanicError>()
            || inner.is::<ExceptionGroup>()
            || inner.is::<ErrorBox>()
    })
}

/// The first `CancelledError` in `err`'s source chain (below `err` itself, which
/// `from_boxed` has already checked), looking inside `io::Error`s too: their `source()`
/// skips the error they wrap.
fn cancellation_in_chain(err: &(dyn StdError + 'static)) -> Option<CancelledError> {
    let mut next = err.source();
    while let Some(e) = next {
        let inner = e.downcast_ref::<io::Error>().and_then(|io| io.get_ref());
        let found = e
            .downcast_ref::<CancelledError>()
            .or_else(|| inner.and_then(|i| i.downcast_ref::<CancelledError>()));
        if let Some(cancelled) = found {
            return Some(cancelled.clone());
        }
        next = e.source();
    }
    None
}

impl<E: StdError + Send + Sync + 'static> From<E> for Error {
    fn from(err: E) -> Error {
        Error::new(err)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_std(), f)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Cancelled(e) => f.debug_tuple("Cancelled").field(e).finish(),
            Error::InvalidState(e) => f.debug_tuple("InvalidState").field(e).finish(),
            Error::Exception(e) => f.debug_tuple("Exception").field(e).finish(),
            Error::Panic(e) => f.debug_tuple("Panic").field(e).finish(),
            Error::Timeout(e) => f.debug_tuple("Timeout").field(e).finish(),
            Error::Group(e) => f.debug_tuple("Group").field(e).finish(),
        }
    }
}

/// `Error` as a standard error, for `Box<dyn Error>` and `io::Error` conversions.
struct ErrorBox(Error);

impl fmt::Debug for ErrorBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for ErrorBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl StdError for ErrorBox {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match &self.0 {
            Error::Exception(e) => Some(e.0.as_ref()),
            _ => None,
        }
    }
}

impl From<Error> for Box<dyn StdError + Send + Sync + 'static> {
    fn from(err: Error) -> Self {
        Box::new(ErrorBox(err))
    }
}

impl From<Error> for io::Error {
    /// A cancellation becomes an `io::Error` (kind `Other`) wrapping the
    /// [`CancelledError`] itself; a timeout has kind `TimedOut`; converting back with
    /// `Error::from` restores the original error.
    fn from(err: Error) -> io::Error {
        match err {
            Error::Cancelled(c) => io::Error::other(c),
            Error::Timeout(t) => io::Error::new(io::ErrorKind::TimedOut, t),
            Error::Exception(e) => {
                let kind = e
                    .downcast_ref::<io::Error>()
                    .map_or(io::ErrorKind::Other, io::Error::kind);
                io::Error::new(kind, ErrorBox(Error::Exception(e)))
            }
            other => io::Error::other(ErrorBox(other)),
        }
    }
}

/// The future or task was cancelled, optionally with a message (`cancel_with`).
///
/// ```
/// let c = evloop::CancelledError::new(Some("shutting down".to_string()));
/// assert_eq!(c.message(), Some("shutting down"));
/// assert_eq!(c.to_string(), "cancelled: shutting down");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CancelledError {
    message: Option<Arc<str>>,
}

impl CancelledError {
    /// A cancellation with an optional message.
    pub fn new(message: Option<String>) -> CancelledError {
        CancelledError {
            message: message.map(Arc::from),
        }
    }

    /// The message given to `cancel_with`, if any.
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    pub(crate) fn from_arc(message: Option<Arc<str>>) -> CancelledError {
        CancelledError { message }
    }
}

impl fmt::Display for CancelledError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.message {
            Some(m) => write!(f, "cancelled: {m}"),
            None => f.write_str("cancelled"),
        }
    }
}

impl StdError for CancelledError {}

/// An operation is not valid in the current state, e.g. `set_result` on a done future.
///
/// ```
/// let e = evloop::InvalidStateError::new("result is not set");
/// assert_eq!(e.message(), "result is not set");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidStateError {
    /// Shared (two words, where a `Cow` takes three), so an [`Error`] stays three words.
    message: Arc<str>,
}

impl InvalidStateError {
    /// An invalid-state error with its explanation.
    pub fn new(message: impl Into<Cow<'static, str>>) -> InvalidStateError {
        let message: Cow<'static, str> = message.into();
        InvalidStateError {
            message: Arc::from(message),
        }
    }

    /// What was invalid.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for InvalidStateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid state: {}", self.message)
    }
}

impl StdError for InvalidStateError {}

/// A deadline passed before the operation completed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeoutError;

impl fmt::Display for TimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl StdError for TimeoutError {}

/// A panic caught in user code; `Display` includes the panic message.
///
/// ```
/// let payload = std::panic::catch_unwind(|| panic!("boom")).unwrap_err();
/// let err = evloop::Error::from_panic(payload);
/// assert!(err.is_panic());
/// assert_eq!(err.to_string(), "panicked: boom");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PanicError {
    message: Arc<str>,
}

impl PanicError {
    /// Extracts the message of a panic payload (`&str` or `String`).
    pub fn from_payload(payload: &(dyn Any + Send)) -> PanicError {
        let message: Arc<str> = if let Some(s) = payload.downcast_ref::<&'static str>() {
            Arc::from(*s)
        } else if let Some(s) = payload.downcast_ref::<String>() {
            Arc::from(s.as_str())
        } else {
            Arc::from("Box<dyn Any>")
        };
        PanicError { message }
    }

    /// The panic message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for PanicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "panicked: {}", self.message)
    }
}

impl StdError for PanicError {}

/// Any error, shared: `Arc<dyn std::error::Error + Send + Sync>`.
#[derive(Clone)]
pub struct Exception(Arc<dyn StdError + Send + Sync + 'static>);

impl Exception {
    /// Wraps an error.
    pub fn new<E: StdError + Send + Sync + 'static>(err: E) -> Exception {
        Exception(Arc::new(err))
    }

    /// The wrapped error.
    pub fn get_ref(&self) -> &(dyn StdError + Send + Sync + 'static) {
        self.0.as_ref()
    }

    /// Downcasts the wrapped error.
    pub fn downcast_ref<E: StdError + 'static>(&self) -> Option<&E> {
        self.0.downcast_ref::<E>()
    }
}

impl fmt::Debug for Exception {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Exception {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// The error behind [`Error::msg`]; its `Debug` is the quoted message.
struct Message(String);

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for Message {}

#[cfg(test)]
mod tests {
    use super::*;

    fn _assert_kinds() {
        fn send_sync_clone<T: Send + Sync + Clone + 'static>() {}
        send_sync_clone::<Error>();
    }

    #[test]
    fn question_mark_wraps_and_downcasts() {
        fn f() -> Result<(), Error> {
            Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset"))?;
            Ok(())
        }
        let err = f().unwrap_err();
        assert_eq!(
            err.downcast_ref::<io::Error>().map(io::Error::kind),
            Some(io::ErrorKind::ConnectionReset)
        );
        assert_eq!(err.to_string(), "reset");
    }

    #[test]
    fn own_errors_are_recognised_through_every_wrapper() {
        assert!(Error::from(CancelledError::new(None)).is_cancelled());
        assert!(Error::from(InvalidStateError::new("x")).is_invalid_state());
        assert!(Error::from(TimeoutError).is_timeout());
        let io = io::Error::other(CancelledError::new(Some("m".into())));
        match Error::from(io) {
            Error::Cancelled(c) => assert_eq!(c.message(), Some("m")),
            other => panic!("expected Cancelled, got {other:?}"),
        }
    }

    #[test]
    fn round_trips_through_io_error_and_box() {
        let timeout = io::Error::from(Error::Timeout(TimeoutError));
        assert_eq!(timeout.kind(), io::ErrorKind::TimedOut);
        assert!(Error::from(timeout).is_timeout());

        let panic = Error::from_panic(Box::new(String::from("oops")));
        let io = io::Error::from(panic);
        match Error::from(io) {
            Error::Panic(p) => assert_eq!(p.message(), "oops"),
            other => panic!("expected Panic, got {other:?}"),
        }

        let boxed: Box<dyn StdError + Send + Sync> = Error::msg("hello").into();
        assert_eq!(boxed.to_string(), "hello");
        assert_eq!(Error::from_boxed(boxed).to_string(), "hello");

        let reset = io::Error::new(io::ErrorKind::ConnectionReset, "r");
        let back = io::Error::from(Error::from(reset));
        assert_eq!(back.kind(), io::ErrorKind::ConnectionReset);
    }

    #[test]
    fn a_group_is_recognised_and_round_trips() {
        let group = ExceptionGroup::new("m", vec![Error::msg("a")]);
        assert!(Error::new(group.clone()).is_group());
        let err = Error::Group(group);
        assert_eq!(err.to_string(), "m (1 sub-exception): [a]");
        assert!(Error::from(io::Error::from(err.clone())).is_group());
        let boxed: Box<dyn StdError + Send + Sync> = err.into();
        let back = Error::from_boxed(boxed);
        assert_eq!(back.as_group().map(|g| g.errors().len()), Some(1));
    }

    #[test]
    fn display_texts() {
        assert_eq!(
            Error::Cancelled(CancelledError::new(None)).to_string(),
            "cancelled"
        );
        assert_eq!(
            Error::InvalidState(InvalidStateError::new("not done")).to_string(),
            "invalid state: not done"
        );
        assert_eq!(
            Error::Timeout(TimeoutError).to_string(),
            "deadline has elapsed"
        );
        let payload: Box<dyn Any + Send> = Box::new(42u8);
        assert_eq!(
            Error::from_panic(payload).to_string(),
            "panicked: Box<dyn Any>"
        );
    }
}
