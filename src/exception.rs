//! The loop's exception handler (L9): [`ExceptionContext`] and dispatch.
//!
//! Owns: what is reported (message, error, source), the default handler (which logs
//! with `log::error!`, or writes to stderr when no logger takes the record), and the rule that a panicking custom handler is itself reported
//! by the default handler as "Unhandled error in exception handler". Must not touch:
//! loop scheduling — handlers run synchronously on the reporting thread (the loop
//! thread, for everything the loop reports itself).

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, PoisonError};

use crate::error::Error;
use crate::handle::LoopHandle;

/// A custom exception handler, as installed by
/// [`LoopHandle::set_exception_handler`].
pub(crate) type HandlerFn = dyn Fn(&LoopHandle, &ExceptionContext) + Send + Sync + 'static;

/// What produced a reported exception.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExceptionSource {
    /// A callback (`call_soon`, `call_later`, a done-callback).
    Callback,
    /// A task, by id and name.
    #[non_exhaustive]
    Task {
        /// The task's id.
        id: u64,
        /// The task's name, if set.
        name: Option<String>,
    },
    /// A future whose exception was never retrieved.
    Future,
    /// A `Waker` that panicked when evloop woke it (a future's completion, a timer, I/O
    /// readiness, a signal); the other wake-ups of the same batch still happened.
    Waker,
    /// A custom exception handler that panicked.
    Handler,
    /// Reported by user code through [`LoopHandle::call_exception_handler`].
    Other,
}

/// What the exception handler receives (asyncio's context dict).
///
/// ```
/// use evloop::{Error, ExceptionContext, ExceptionSource};
///
/// let ctx = ExceptionContext::new("connection lost")
///     .with_exception(Error::msg("peer reset"));
/// assert_eq!(ctx.source, ExceptionSource::Other);
/// assert_eq!(ctx.to_string(), "connection lost: peer reset");
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ExceptionContext {
    /// What happened, e.g. "Exception in callback".
    pub message: String,
    /// The error, if any (a caught panic is an [`Error::Panic`]).
    pub exception: Option<Error>,
    /// What produced it.
    pub source: ExceptionSource,
}

impl ExceptionContext {
    /// A context with a message, no exception, and source [`ExceptionSource::Other`].
    pub fn new(message: impl Into<String>) -> ExceptionContext {
        ExceptionContext {
            message: message.into(),
            exception: None,
            source: ExceptionSource::Other,
        }
    }

    /// Sets the exception.
    pub fn with_exception(mut self, exception: Error) -> ExceptionContext {
        self.exception = Some(exception);
        self
    }

    /// Sets the source.
    pub fn with_source(mut self, source: ExceptionSource) -> ExceptionContext {
        self.source = source;
        self
    }
}

impl fmt::Display for ExceptionContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(e) = &self.exception {
            write!(f, ": {e}")?;
        }
        match &self.source {
            ExceptionSource::Task { id, name } => match name {
                Some(name) => write!(f, " (task {id} {name:?})"),
                None => write!(f, " (task {id})"),
            },
            _ => Ok(()),
        }
    }
}

/// Drops `value` (user code: its destructors) and hands back a panic from them as an
/// `Error` to report, so it never unwinds into the loop or a shutdown (L9).
pub(crate) fn drop_catching<T>(value: T) -> Result<(), Error> {
    catch_unwind(AssertUnwindSafe(move || drop(value))).map_err(Error::from_panic)
}

/// Runs `f` on every item, each under its own `catch_unwind` (rules 2 and 7 of
/// ARCHITECTURE.md): a panic — in `f` or in the drop of the item — is reported to
/// `loop_`'s exception handler as `what` (with `source`), and the remaining items are
/// still processed. Nothing unwinds out of it, so a batch is never cut short and no
/// second panic can happen while a first one unwinds (which would abort the process).
pub(crate) fn for_each_catching<I: IntoIterator>(
    loop_: &LoopHandle,
    what: &str,
    source: ExceptionSource,
    items: I,
    mut f: impl FnMut(I::Item),
) {
    for item in items {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| f(item))) {
            loop_.call_exception_handler(
                ExceptionContext::new(what)
                    .with_exception(Error::from_panic(payload))
                    .with_source(source.clone()),
            );
        }
    }
}

/// Drops every item under its own catch (see [`for_each_catching`]).
pub(crate) fn drop_each_catching<I: IntoIterator>(loop_: &LoopHandle, what: &str, items: I) {
    for_each_catching(loop_, what, ExceptionSource::Other, items, drop);
}

/// The default handler (L9, U1): one `log::error!` line — or, when no `log` logger
/// would take it (none is installed, or error records of target `evloop` are
/// disabled), one line on stderr, as asyncio's last-resort handler does: an unhandled
/// task error or a panicking callback is never silent.
///
/// It never panics: the installed logger is user code, and a report is made from inside
/// batches that must finish (rule 2), so a panicking logger (or a broken stderr pipe,
/// which makes `eprintln!` panic) is caught and the report dropped.
pub(crate) fn default_handler(ctx: &ExceptionContext) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let metadata = log::Metadata::builder()
            .level(log::Level::Error)
            .target("evloop")
            .build();
        if log::max_level() >= log::Level::Error && log::logger().enabled(&metadata) {
            log::error!(target: "evloop", "{ctx}");
        } else {
            eprintln!("evloop: {ctx}");
        }
    }));
}

/// Calls the loop's handler (or the default one); a panicking handler is reported by
/// the default handler and never unwinds into the caller.
pub(crate) fn dispatch(
    loop_: &LoopHandle,
    handler: Option<Arc<HandlerFn>>,
    ctx: &ExceptionContext,
) {
    let Some(handler) = handler else {
        default_handler(ctx);
        return;
    };
    if let Err(payload) = catch_unwind(AssertUnwindSafe(|| handler(loop_, ctx))) {
        let failure = ExceptionContext::new("Unhandled error in exception handler")
            .with_exception(Error::from_panic(payload))
            .with_source(ExceptionSource::Handler);
        default_handler(&failure);
        default_handler(ctx);
    }
}

/// Reads the installed handler out of its mutex (poison is ignored: a handler is
/// replaced whole, never left half-written).
pub(crate) fn current_handler(
    slot: &std::sync::Mutex<Option<Arc<HandlerFn>>>,
) -> Option<Arc<HandlerFn>> {
    slot.lock().unwrap_or_else(PoisonError::into_inner).clone()
}
