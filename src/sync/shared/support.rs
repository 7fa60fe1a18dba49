//! What every thread-safe primitive of `evloop::sync` shares: the parker of the
//! `blocking_*` waits (and the refusal to block a loop thread), poison-free locking,
//! wakers carried out of a lock, and dropping a batch of user values one by one.
//!
//! Owns: the per-thread parker and these helpers. Must not touch: any primitive's
//! state — the primitives call in with what they took out of their lock.

use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LockResult, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;

use crate::context;
use crate::error::{CancelledError, Error};
pub(crate) use crate::sync::catch::drop_all;
use crate::sync::catch::wake_all;
use crate::task::coop;

/// Takes a lock, ignoring poisoning: evloop runs no user code under its locks, so a
/// poisoned lock can only come from a bug in evloop itself, which must not turn every
/// later operation into a panic.
pub(crate) fn lock<G>(result: LockResult<G>) -> G {
    result.unwrap_or_else(PoisonError::into_inner)
}

/// [`coop::take_cancel`] for the waits whose error type carries a bare
/// [`CancelledError`] (a send's value, a broadcast or watch `RecvError`).
pub(crate) fn take_cancelled() -> Option<CancelledError> {
    coop::take_cancel().map(|err| match err {
        Error::Cancelled(cancelled) => cancelled,
        // `take_cancel` only ever hands out cancellations.
        _ => CancelledError::new(None),
    })
}

/// Wakers taken out under a lock, to wake once it is released (rule 1); the first one
/// inline, since one is the usual number.
#[derive(Default)]
pub(crate) struct Wakers {
    first: Option<Waker>,
    rest: Vec<Waker>,
}

impl Wakers {
    pub(crate) fn push(&mut self, waker: Waker) {
        if self.first.is_none() {
            self.first = Some(waker);
        } else {
            self.rest.push(waker);
        }
    }

    pub(crate) fn extend(&mut self, wakers: impl IntoIterator<Item = Waker>) {
        for waker in wakers {
            self.push(waker);
        }
    }

    /// Wakes each under its own catch (rule 2, see [`wake_all`]).
    pub(crate) fn wake(self) {
        if self.first.is_some() {
            wake_all(self.first.into_iter().chain(self.rest));
        }
    }
}

/// Panics if the calling thread runs an evloop loop: a blocking wait there would stall
/// that loop (and every task on it, possibly the one that would end the wait).
#[track_caller]
pub(crate) fn assert_off_loop(what: &str, instead: &str) {
    let running = context::current_id();
    if running != 0 {
        panic!(
            "evloop::sync: {what} called on the thread of event loop #{running}: it would block \
             that loop; use `{instead}` instead"
        );
    }
}

/// A thread's parker: the waker of a blocking wait sets `notified` and unparks it.
struct Parker {
    thread: Thread,
    notified: AtomicBool,
}

impl Wake for Parker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.notified.swap(true, Ordering::Release) {
            self.thread.unpark();
        }
    }
}

impl Parker {
    fn park(&self) {
        while !self.notified.swap(false, Ordering::Acquire) {
            std::thread::park();
        }
    }
}

thread_local! {
    /// This thread's parker and its waker, made once (a blocking wait allocates nothing).
    static PARKER: (Arc<Parker>, Waker) = {
        let parker = Arc::new(Parker {
            thread: std::thread::current(),
            notified: AtomicBool::new(false),
        });
        let waker = Waker::from(parker.clone());
        (parker, waker)
    };
    /// The cached parker is in use (a waker woken by the wait itself blocked again).
    static PARKING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `fut` to completion on this plain thread, parking between polls. A stale
/// notification left by an earlier wait only costs one extra poll.
///
/// # Panics
///
/// On a thread running an evloop loop (see [`assert_off_loop`]).
#[track_caller]
pub(crate) fn block_on<F: Future>(what: &str, instead: &str, fut: F) -> F::Output {
    assert_off_loop(what, instead);
    let claimed = PARKING
        .try_with(|busy| !busy.replace(true))
        .unwrap_or(false);
    let _release = claimed.then(|| Release);
    let cached = match claimed {
        true => PARKER.try_with(|(p, w)| (p.clone(), w.clone())).ok(),
        false => None,
    };
    let (parker, waker) = cached.unwrap_or_else(|| {
        let parker = Arc::new(Parker {
            thread: std::thread::current(),
            notified: AtomicBool::new(false),
        });
        (parker.clone(), Waker::from(parker))
    });
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        parker.park();
    }
}

/// Marks the cached parker free again (also when the wait unwinds).
struct Release;

impl Drop for Release {
    fn drop(&mut self) {
        let _ = PARKING.try_with(|busy| busy.set(false));
    }
}
