//! Running user code of a batch one item at a time, each under its own
//! `catch_unwind` (rule 2 of ARCHITECTURE.md): waking the wakers a primitive took out of
//! its borrow or lock, and dropping the user values it took out.
//!
//! Owns: those loops and what happens to a caught panic — the first one is resumed
//! once the whole batch ran, unless the thread is already unwinding (a guard dropped
//! by a panic), where a second panic would abort: then it is logged. Must not touch:
//! any primitive's state (the callers hold no borrow or lock when they call in).

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::task::Waker;

type Payload = Box<dyn Any + Send>;

#[inline]
fn wake_caught(waker: Waker) -> Option<Payload> {
    catch_unwind(AssertUnwindSafe(|| waker.wake())).err()
}

#[cold]
fn rethrow(payload: Payload, what: &str) {
    if std::thread::panicking() {
        log::error!(target: "evloop", "{what} panicked in evloop::sync during unwinding");
    } else {
        resume_unwind(payload);
    }
}

/// Wakes every waker, each under its own catch.
pub(crate) fn wake_all(wakers: impl IntoIterator<Item = Waker>) {
    let mut wakers = wakers.into_iter();
    wake_each(|| wakers.next());
}

/// Wakes what `next` hands out until it returns `None`, each under its own catch.
/// `next` may borrow the primitive's state for one step at a time, so every grant is
/// complete before its waker runs.
pub(crate) fn wake_each(mut next: impl FnMut() -> Option<Waker>) {
    let mut first = None;
    while let Some(waker) = next() {
        if let Some(payload) = wake_caught(waker) {
            first.get_or_insert(payload);
        }
    }
    if let Some(payload) = first {
        rethrow(payload, "a waker");
    }
}

/// Wakes one waker if there is one (the common case of a hand-over), without an
/// iterator's bookkeeping.
#[inline]
pub(crate) fn wake_one(waker: Option<Waker>) {
    if let Some(payload) = waker.and_then(wake_caught) {
        rethrow(payload, "a waker");
    }
}

/// Wakes up to two wakers, each under its own catch.
#[inline]
pub(crate) fn wake_two([a, b]: [Option<Waker>; 2]) {
    let first = a.and_then(wake_caught);
    let second = b.and_then(wake_caught);
    if let Some(payload) = first.or(second) {
        rethrow(payload, "a waker");
    }
}

/// Drops user values one by one, each under its own catch: a destructor that panics
/// does not leak the rest.
pub(crate) fn drop_all<I: IntoIterator>(items: I) {
    if !std::mem::needs_drop::<I::Item>() {
        return drop(items);
    }
    let mut first = None;
    for item in items {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(item))) {
            first.get_or_insert(payload);
        }
    }
    if let Some(payload) = first {
        rethrow(payload, "a value's destructor");
    }
}
