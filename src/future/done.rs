//! Reading a done future's outcome under its lock ([`Done`]).
//!
//! Owns: how an outcome is handed to readers — cloned, moved out (awaiting a task or a
//! job), or just its error. Must not touch: the lock (the caller holds it).

use super::core::{Inner, Outcome};
use crate::error::{Error, InvalidStateError};

/// The locked outcome of a done future, as handed to readers.
pub(crate) struct Done<'a, T> {
    inner: &'a mut Inner<T>,
}

impl<'a, T> Done<'a, T> {
    pub(super) fn new(inner: &'a mut Inner<T>) -> Done<'a, T> {
        Done { inner }
    }
}

impl<T> Done<'_, T> {
    /// F4: the result by clone, or the error.
    pub(crate) fn result_cloned(&self) -> Result<T, Error>
    where
        T: Clone,
    {
        match &self.inner.outcome {
            Some(Outcome::Value(v)) => Ok(v.clone()),
            Some(Outcome::Exception(e)) => Err(e.clone()),
            Some(Outcome::Cancelled(c)) => Err(Error::Cancelled(c.clone())),
            None => Err(taken()),
        }
    }

    /// The result moved out (awaiting a task); a second take is an `InvalidState`.
    pub(crate) fn result_taken(&mut self) -> Result<T, Error> {
        match self.inner.outcome.take() {
            Some(Outcome::Value(v)) => Ok(v),
            Some(other) => {
                let err = match &other {
                    Outcome::Exception(e) => e.clone(),
                    Outcome::Cancelled(c) => Error::Cancelled(c.clone()),
                    Outcome::Value(_) => unreachable!("matched above"),
                };
                self.inner.outcome = Some(other);
                Err(err)
            }
            None => Err(taken()),
        }
    }

    /// The error of an exception or cancellation (never touches a value).
    pub(crate) fn error(&self) -> Result<(), Error> {
        match &self.inner.outcome {
            Some(Outcome::Exception(e)) => Err(e.clone()),
            Some(Outcome::Cancelled(c)) => Err(Error::Cancelled(c.clone())),
            Some(Outcome::Value(_)) | None => Ok(()),
        }
    }

    /// Whether a value was moved out.
    pub(crate) fn is_taken(&self) -> bool {
        self.inner.outcome.is_none()
    }

    /// F5: `Ok(None)` for a result, `Ok(Some(e))` for an exception, `Err` if cancelled.
    pub(crate) fn exception(&self) -> Result<Option<Error>, Error> {
        match &self.inner.outcome {
            Some(Outcome::Exception(e)) => Ok(Some(e.clone())),
            Some(Outcome::Cancelled(c)) => Err(Error::Cancelled(c.clone())),
            Some(Outcome::Value(_)) | None => Ok(None),
        }
    }

    /// A copy of the outcome (for chaining); a taken value copies as the
    /// `InvalidState` error a reader would get.
    pub(crate) fn outcome_cloned(&self) -> Outcome<T>
    where
        T: Clone,
    {
        match &self.inner.outcome {
            Some(Outcome::Value(v)) => Outcome::Value(v.clone()),
            Some(Outcome::Exception(e)) => Outcome::Exception(e.clone()),
            Some(Outcome::Cancelled(c)) => Outcome::Cancelled(c.clone()),
            None => Outcome::Exception(taken()),
        }
    }
}

fn taken() -> Error {
    Error::InvalidState(InvalidStateError::new(
        "the result was already taken by awaiting the task",
    ))
}
