//! Loop-local `Event` (Y2): a flag that tasks wait to become set.
//!
//! Owns: the flag and the FIFO of waiters (each node's data: "woken by a set").
//! Must not touch: anything else. `set` marks every waiter woken under one borrow,
//! then wakes them after it (rule 1).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::bound::LoopBound;
use super::catch::wake_all;
use super::wait_list::{WaitList, WaiterId};
use crate::error::Error;
use crate::task::coop;

struct Inner {
    set: Cell<bool>,
    waiters: RefCell<WaitList<bool>>,
    bound: LoopBound,
}

/// An asyncio event (Y2): `set()` wakes every waiter, `wait()` on a set event returns
/// at once.
///
/// Loop-local: `!Send`, and `Clone` shares the same flag. For tasks of different loops
/// or plain threads use [`SharedEvent`](crate::sync::SharedEvent).
///
/// ```
/// use evloop::sync::Event;
///
/// evloop::run(async {
///     let ready = Event::new();
///     let waiter = evloop::create_task({
///         let ready = ready.clone();
///         async move { ready.wait().await }
///     });
///     evloop::yield_now().await?;
///     assert!(!waiter.done());
///     ready.set();
///     waiter.await?;
///     Ok::<(), evloop::Error>(())
/// })
/// .unwrap();
/// ```
#[derive(Clone)]
pub struct Event {
    inner: Rc<Inner>,
}

impl Default for Event {
    fn default() -> Self {
        Event::new()
    }
}

impl Event {
    /// An event, not set.
    pub fn new() -> Event {
        Event {
            inner: Rc::new(Inner {
                set: Cell::new(false),
                waiters: RefCell::new(WaitList::skipping_cancelled()),
                bound: LoopBound::default(),
            }),
        }
    }

    /// Sets the flag and wakes every waiter. Waiters woken return `Ok` even if the
    /// event is cleared again before they run.
    pub fn set(&self) {
        if self.inner.set.replace(true) {
            return;
        }
        let wakers = {
            let mut waiters = self.inner.waiters.borrow_mut();
            let mut wakers = Vec::with_capacity(waiters.len());
            while let Some((id, waker)) = waiters.pop_front() {
                *waiters.data(id) = true;
                wakers.extend(waker);
            }
            wakers
        };
        wake_all(wakers);
    }

    /// Clears the flag: later waits suspend until the next `set`.
    pub fn clear(&self) {
        self.inner.set.set(false);
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.inner.set.get()
    }

    /// Waits until the flag is set; returns at once if it is.
    ///
    /// # Errors
    ///
    /// `Err(Error::Cancelled)` when the awaiting task is cancelled.
    ///
    /// # Panics
    ///
    /// When it has to wait on another loop than the first one that waited on this
    /// event (use `SharedEvent` across loops).
    pub fn wait(&self) -> EventWait<'_> {
        EventWait {
            event: self,
            waiter: None,
        }
    }
}

/// The future of [`Event::wait`], leaving the event's waiters when dropped.
#[must_use = "futures do nothing unless awaited"]
pub struct EventWait<'a> {
    event: &'a Event,
    waiter: Option<WaiterId>,
}

impl EventWait<'_> {
    fn leave(&mut self) {
        if let Some(id) = self.waiter.take() {
            let removed = self.event.inner.waiters.borrow_mut().remove(id);
            drop(removed);
        }
    }
}

impl Future for EventWait<'_> {
    type Output = Result<(), Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        crate::task::budget::budgeted(cx, move |cx| {
            let this = self.get_mut();
            if let Some(cancelled) = coop::take_cancel() {
                this.leave();
                return Poll::Ready(Err(cancelled));
            }
            let inner = &this.event.inner;
            if let Some(id) = this.waiter {
                if inner.waiters.borrow().is_skipped(id) {
                    // Passed over by a `set` while a cancel was pending, then the cancel
                    // was withdrawn: wait again (or return, if the event is set).
                    this.leave();
                }
            }
            match this.waiter {
                None => {
                    if inner.set.get() {
                        return Poll::Ready(Ok(()));
                    }
                    inner.bound.check("Event", "evloop::sync::SharedEvent");
                    this.waiter = Some(inner.waiters.borrow_mut().push_back(false, cx.waker()));
                    Poll::Pending
                }
                Some(id) => {
                    let mut waiters = inner.waiters.borrow_mut();
                    if *waiters.data(id) {
                        let removed = waiters.remove(id);
                        drop(waiters);
                        drop(removed);
                        this.waiter = None;
                        Poll::Ready(Ok(()))
                    } else {
                        let old = waiters.replace_waker(id, cx.waker());
                        drop(waiters);
                        drop(old); // a foreign waker's drop: after the borrow
                        Poll::Pending
                    }
                }
            }
        })
    }
}

impl Drop for EventWait<'_> {
    fn drop(&mut self) {
        self.leave();
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let waiting = self.inner.waiters.try_borrow().map(|w| w.len()).ok();
        f.debug_struct("Event")
            .field("set", &self.is_set())
            .field("waiting", &waiting)
            .finish()
    }
}

impl fmt::Debug for EventWait<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventWait")
            .field("queued", &self.waiter.is_some())
            .finish()
    }
}
