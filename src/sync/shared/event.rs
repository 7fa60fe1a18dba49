//! [`SharedEvent`]: asyncio's `Event` for tasks of any loop and plain threads.
//!
//! Owns: the flag and its waiters (a [`WaitList`] under a `Mutex`). Must not touch:
//! anything else.
//!
//! The wake protocol: `wait` checks the flag and, if it is clear, queues itself with its
//! waker — both under the lock, so a `set` either happened before (the wait returns at
//! once) or finds it queued. `set` raises the flag and unlinks every waiter under the
//! lock, taking their wakers, and wakes them after it. An unlinked waiter's next poll
//! returns `Ok` even if `clear` came in between (asyncio's semantics), and removes its
//! node; a dropped or cancelled waiter removes its node too.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use super::support::{Wakers, block_on, lock};
use crate::error::Error;
use crate::loom::sync::Mutex;
use crate::sync::wait_list::{WaitList, WaiterId};
use crate::task::coop;

#[derive(Default)]
struct State {
    set: bool,
    waiters: WaitList<()>,
}

/// An event flag shared between threads and loops (SPEC Y7): the thread-safe
/// counterpart of the loop-local `Event`. `set` wakes every waiter, on whichever loop
/// or thread it waits; `Clone` shares the event (an `Arc` inside).
///
/// ```
/// use evloop::sync::SharedEvent;
///
/// let group = evloop::LoopGroup::new(2)?;
/// let ready = SharedEvent::new();
/// let setter = {
///     let ready = ready.clone();
///     std::thread::spawn(move || ready.set())
/// };
/// let results = group.block_on_each({
///     let ready = ready.clone();
///     move |_, _| {
///         let ready = ready.clone();
///         async move { ready.wait().await }
///     }
/// });
/// setter.join().unwrap();
/// assert!(results.iter().all(|r| r.is_ok()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
pub struct SharedEvent {
    state: Arc<Mutex<State>>,
}

impl SharedEvent {
    /// A clear event.
    ///
    /// ```
    /// assert!(!evloop::sync::SharedEvent::new().is_set());
    /// ```
    pub fn new() -> SharedEvent {
        SharedEvent::default()
    }

    /// Sets the flag and wakes every waiter. Waits started while it is set return at
    /// once.
    ///
    /// ```
    /// let e = evloop::sync::SharedEvent::new();
    /// e.set();
    /// assert!(e.is_set());
    /// ```
    pub fn set(&self) {
        let mut state = lock(self.state.lock());
        state.set = true;
        let mut wakers = Wakers::default();
        while let Some((_, waker)) = state.waiters.pop_front() {
            wakers.extend(waker);
        }
        drop(state);
        wakers.wake();
    }

    /// Clears the flag. Waiters already woken by a `set` still return `Ok`.
    ///
    /// ```
    /// let e = evloop::sync::SharedEvent::new();
    /// e.set();
    /// e.clear();
    /// assert!(!e.is_set());
    /// ```
    pub fn clear(&self) {
        lock(self.state.lock()).set = false;
    }

    /// Whether the flag is set.
    ///
    /// ```
    /// let e = evloop::sync::SharedEvent::new();
    /// assert!(!e.is_set());
    /// ```
    pub fn is_set(&self) -> bool {
        lock(self.state.lock()).set
    }

    /// Waits until the flag is set; returns at once if it is. Cancellation-safe (a
    /// dropped or cancelled wait leaves nothing behind).
    ///
    /// ```
    /// evloop::run(async {
    ///     let e = evloop::sync::SharedEvent::new();
    ///     let waiter = evloop::create_task({
    ///         let e = e.clone();
    ///         async move { e.wait().await }
    ///     });
    ///     evloop::yield_now().await?;
    ///     e.set();
    ///     waiter.await
    /// })
    /// .unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// `Err(Error::Cancelled)` when the awaiting evloop task is cancelled.
    pub fn wait(&self) -> impl Future<Output = Result<(), Error>> + Send + '_ {
        Wait {
            event: self,
            waiter: None,
            done: false,
        }
    }

    /// [`wait`](Self::wait) for plain threads: blocks until the flag is set.
    ///
    /// ```
    /// let e = evloop::sync::SharedEvent::new();
    /// let t = {
    ///     let e = e.clone();
    ///     std::thread::spawn(move || e.blocking_wait())
    /// };
    /// e.set();
    /// t.join().unwrap();
    /// ```
    ///
    /// # Panics
    ///
    /// On the thread of an evloop loop: it would block the loop (use `wait().await`).
    #[track_caller]
    pub fn blocking_wait(&self) {
        block_on(
            "SharedEvent::blocking_wait",
            "event.wait().await",
            self.wait(),
        )
        .expect("a plain thread's wait is never cancelled");
    }
}

impl fmt::Debug for SharedEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(self.state.lock());
        let (set, waiting) = (state.set, state.waiters.len());
        drop(state);
        f.debug_struct("SharedEvent")
            .field("set", &set)
            .field("waiting", &waiting)
            .finish()
    }
}

/// The future of [`SharedEvent::wait`].
struct Wait<'a> {
    event: &'a SharedEvent,
    waiter: Option<WaiterId>,
    done: bool,
}

impl Future for Wait<'_> {
    type Output = Result<(), Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        crate::task::sync_await(cx, "SharedEvent::wait", move |cx| {
            assert!(
                !self.done,
                "evloop::sync: SharedEvent::wait polled after completion"
            );
            if let Some(cancelled) = coop::take_cancel() {
                self.leave();
                self.done = true;
                return Poll::Ready(Err(cancelled));
            }
            // A foreign waker's `clone` is user code: never under the lock (rule 1). It is
            // needed only to queue, or to re-queue with another waker: then the lock is let
            // go, the waker cloned outside it, and the step taken again. (Declared before
            // the guard, so an unused clone is dropped after it.)
            let mut unused: Option<Waker> = None;
            let (state, ready, old_waker) = loop {
                let mut state = lock(self.event.state.lock());
                match self.waiter {
                    Some(id) if !state.waiters.is_linked(id) => {
                        self.waiter = None;
                        let removed = state.waiters.remove(id).1;
                        break (state, true, removed);
                    }
                    Some(id) if state.waiters.waker_is(id, cx.waker()) => {
                        break (state, false, None);
                    }
                    Some(id) => {
                        if let Some(waker) = unused.take() {
                            let old = state.waiters.store_waker(id, waker);
                            break (state, false, old);
                        }
                    }
                    None if state.set => break (state, true, None),
                    None => {
                        if let Some(waker) = unused.take() {
                            self.waiter = Some(state.waiters.push_back_waker((), waker));
                            break (state, false, None);
                        }
                    }
                }
                drop(state);
                unused = Some(cx.waker().clone());
            };
            drop(state);
            drop(old_waker);
            drop(unused);
            if ready {
                self.done = true;
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            }
        })
    }
}

impl Wait<'_> {
    fn leave(&mut self) {
        if let Some(id) = self.waiter.take() {
            let (_, waker) = lock(self.event.state.lock()).waiters.remove(id);
            drop(waker);
        }
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        self.leave();
    }
}
