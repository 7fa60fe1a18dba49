//! `timeout_scope` / `timeout_scope_at` (SPEC §14 K2, asyncio's `asyncio.timeout()`):
//! a deadline for a piece of a task that *cancels the task* when it passes, so the
//! body sees `Err(Cancelled)` at its evloop awaits and may clean up, and turns that
//! cancellation into `Err(Error::Timeout)` when the body returns.
//!
//! Owns: the scope's state (deadline, timer, entry count, expiry) shared with its
//! [`TimeoutHandle`]s. Must not touch: the task's cancellation state beyond the public
//! task API — `cancel` at the deadline, `cancelling` at entry and `uncancel` at exit —
//! nor the timer wheel (the deadline is a plain `LoopHandle::call_at` timer).
//!
//! The state sits behind a `Mutex` (the handle is `Send + Sync`, so a scope works in
//! `LoopHandle::spawn` coroutines and may be rescheduled from another thread). No user
//! code runs under it: a replaced timer is cancelled, and the task cancelled, after it
//! is released. Every timer carries the scope's generation when it was armed, so a
//! timer that fires after a `reschedule` (on another thread) or after the exit does
//! nothing.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::callback::{Handle, TimerHandle};
use crate::error::{Error, TimeoutError};
use crate::handle::{LoopHandle, deadline_after};
use crate::task::{TaskRef, current_task};

/// Runs `body` in the current task with a deadline `delay` from now (K2, asyncio's
/// `async with asyncio.timeout(delay)`).
///
/// At the deadline the task is cancelled (T3): the body's pending evloop await (a
/// `Future`, `sleep`, a socket, an `evloop::sync` wait, …) resolves with
/// `Err(Error::Cancelled)`. The body may handle it — clean up, even with more awaits,
/// since the request is consumed by the await that saw it — and then return. When the
/// body returns `Err(Cancelled)` and the cancellation came from this scope, the scope
/// yields `Err(Error::Timeout)` instead (and withdraws its request with `uncancel`);
/// a cancellation from elsewhere (another `cancel()`, an outer scope) stays
/// `Err(Cancelled)`. Any other output of the body is returned unchanged.
///
/// The body is polled inline by the awaiting task: no task is created. A foreign
/// future in the body (another crate's channel, lock or timer) does not see the
/// cancellation unless it is wrapped in [`task::cancellable`](crate::task::cancellable);
/// [`time::timeout`](super::timeout) drops its future at the deadline instead.
///
/// The deadline saturates: `Duration::MAX` means "never" (no panic).
///
/// ```
/// use std::time::Duration;
/// use evloop::time::{sleep, timeout_scope};
///
/// evloop::run(async {
///     let task = evloop::create_task(async {
///         let out = timeout_scope(Duration::from_millis(5), async {
///             match sleep(Duration::from_secs(3600)).await {
///                 // The deadline cancelled the sleep: clean up (awaits work again)...
///                 Err(cancelled) if cancelled.is_cancelled() => {
///                     evloop::yield_now().await?;
///                     Err(cancelled) // ...and let the scope see the cancellation.
///                 }
///                 other => other.map(|()| "slept"),
///             }
///         })
///         .await;
///         assert!(out.unwrap_err().is_timeout());
///         Ok(())
///     });
///     task.await
/// })
/// .unwrap();
/// ```
///
/// # Errors
///
/// The body's own output; `Err(Error::Timeout)` in place of a body's `Err(Cancelled)`
/// caused by this scope's deadline.
///
/// # Panics
///
/// The returned future panics when it is polled outside an evloop task (for example
/// directly as `block_on`'s future, which is not a task: there is no task to cancel).
/// Wrap the code in [`create_task`](crate::create_task), or use
/// [`time::timeout`](super::timeout).
pub fn timeout_scope<F>(delay: Duration, body: F) -> TimeoutScope<F> {
    timeout_scope_at(deadline_after(Instant::now(), delay), body)
}

/// Like [`timeout_scope`] with an absolute deadline (asyncio's `timeout_at`). A
/// deadline in the past expires at the next loop iteration after the scope is entered.
/// A scope without a deadline: [`TimeoutHandle::reschedule`]`(None)` before awaiting.
///
/// ```
/// use std::time::{Duration, Instant};
/// use evloop::time::{sleep, timeout_scope_at};
///
/// evloop::run(async { evloop::create_task(async {
///     let deadline = Instant::now() + Duration::from_millis(2);
///     let scope = timeout_scope_at(deadline, async {
///         sleep(Duration::from_secs(3600)).await?;
///         Ok(())
///     });
///     let handle = scope.handle();
///     assert_eq!(handle.when(), Some(deadline));
///     assert!(scope.await.unwrap_err().is_timeout());
///     assert!(handle.expired());
///     Ok(())
/// }).await })
/// .unwrap();
/// ```
///
/// # Errors
///
/// As [`timeout_scope`].
///
/// # Panics
///
/// As [`timeout_scope`]: polled outside an evloop task.
pub fn timeout_scope_at<F>(when: Instant, body: F) -> TimeoutScope<F> {
    TimeoutScope {
        body,
        guard: Guard {
            scope: new_scope(when),
        },
    }
}

/// [`timeout_scope`] with the scope's [`TimeoutHandle`] passed to the code that builds
/// the body, so the body can move its own deadline (asyncio's `async with
/// asyncio.timeout(d) as cm:` with `cm` used inside the block).
///
/// ```
/// use std::time::Duration;
///
/// evloop::run(async { evloop::create_task(async {
///     let out = evloop::time::timeout_scope_with(Duration::from_secs(3600), |scope| async move {
///         scope.reschedule(None); // no deadline after all
///         Ok(scope.when())
///     })
///     .await;
///     assert_eq!(out?, None);
///     Ok(())
/// }).await })
/// .unwrap();
/// ```
///
/// # Errors
///
/// As [`timeout_scope`].
///
/// # Panics
///
/// As [`timeout_scope`]: polled outside an evloop task.
pub fn timeout_scope_with<F, B>(delay: Duration, body: B) -> TimeoutScope<F>
where
    B: FnOnce(TimeoutHandle) -> F,
{
    let scope = new_scope(deadline_after(Instant::now(), delay));
    let handle = TimeoutHandle {
        scope: scope.clone(),
    };
    TimeoutScope {
        body: body(handle),
        guard: Guard { scope },
    }
}

fn new_scope(when: Instant) -> Arc<Scope> {
    Arc::new(Scope {
        state: Mutex::new(State {
            phase: Phase::Created,
            expired: false,
            when: Some(when),
            generation: 0,
            timer: None,
            task: None,
            owner: None,
            cancelling_at_entry: 0,
        }),
    })
}

/// The future of [`timeout_scope`] / [`timeout_scope_at`]: the body with its deadline.
/// `Send` when the body is.
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct TimeoutScope<F> {
    /// Structurally pinned (see `poll`).
    body: F,
    guard: Guard,
}

impl<F> TimeoutScope<F> {
    /// A handle to the scope's deadline, usable before, during (inside the body, or
    /// from another thread) and after the await.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// evloop::run(async {
    ///     evloop::create_task(async {
    ///         let scope = evloop::time::timeout_scope(Duration::from_secs(60), async { Ok(()) });
    ///         let handle = scope.handle();
    ///         scope.await?;
    ///         assert!(!handle.expired());
    ///         Ok(())
    ///     })
    ///     .await
    /// })
    /// .unwrap();
    /// ```
    pub fn handle(&self) -> TimeoutHandle {
        TimeoutHandle {
            scope: self.guard.scope.clone(),
        }
    }
}

impl<F, T> Future for TimeoutScope<F>
where
    F: Future<Output = Result<T, Error>>,
{
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `body` is structurally pinned: it is never moved out of a pinned
        // `TimeoutScope` (no method moves it) and `TimeoutScope` has no `Drop` impl (the
        // clean-up on drop is `Guard`'s, which does not touch `body`). `guard` is never
        // treated as pinned, so handing out `&mut` to it is fine.
        let this = unsafe { self.get_unchecked_mut() };
        this.guard.enter_once();
        // SAFETY: see above; `this.body` stays in place until the scope is dropped.
        let body = unsafe { Pin::new_unchecked(&mut this.body) };
        match body.poll(cx) {
            Poll::Ready(out) => Poll::Ready(this.guard.exit(out)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<F> fmt::Debug for TimeoutScope<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeoutScope")
            .field("handle", &self.handle())
            .finish_non_exhaustive()
    }
}

/// A handle to a [`TimeoutScope`]'s deadline (asyncio's `Timeout` object): `Clone`,
/// `Send + Sync`, and it does not borrow the scope, so the body may hold one — get it
/// with [`TimeoutScope::handle`] before awaiting, or have it passed to the body by
/// [`timeout_scope_with`].
///
/// ```
/// use std::time::{Duration, Instant};
/// use evloop::time::{sleep, timeout_scope_with};
///
/// evloop::run(async { evloop::create_task(async {
///     let out = timeout_scope_with(Duration::from_millis(1), |scope| async move {
///         // More time for this part.
///         scope.reschedule(Some(Instant::now() + Duration::from_secs(3600)));
///         sleep(Duration::from_millis(5)).await?; // outlives the first deadline
///         Ok(scope.expired())
///     })
///     .await;
///     assert_eq!(out?, false);
///     Ok(())
/// }).await })
/// .unwrap();
/// ```
#[derive(Clone)]
pub struct TimeoutHandle {
    scope: Arc<Scope>,
}

impl TimeoutHandle {
    /// Moves the deadline (`None`: no deadline). While the scope runs, the timer is
    /// re-armed at once (a deadline in the past expires at the next loop iteration, as
    /// asyncio's); before the scope is first polled the new deadline is just recorded.
    /// Callable from any thread.
    ///
    /// Once the scope has expired or exited this does nothing (asyncio raises
    /// `RuntimeError` there): an expired scope has already requested the cancellation,
    /// and a finished one has no timer left. [`when`](Self::when) then keeps the last
    /// deadline.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    ///
    /// evloop::run(async { evloop::create_task(async {
    ///     let scope = evloop::time::timeout_scope(Duration::from_secs(3600), async { Ok(1) });
    ///     let handle = scope.handle();
    ///     let sooner = Instant::now() + Duration::from_secs(60);
    ///     handle.reschedule(Some(sooner));
    ///     assert_eq!(handle.when(), Some(sooner));
    ///     assert_eq!(scope.await?, 1);
    ///     handle.reschedule(None); // finished: ignored
    ///     assert_eq!(handle.when(), Some(sooner));
    ///     Ok(())
    /// }).await })
    /// .unwrap();
    /// ```
    pub fn reschedule(&self, when: Option<Instant>) {
        let replaced = {
            let mut state = self.scope.lock();
            match state.phase {
                Phase::Created => {
                    state.when = when;
                    None
                }
                Phase::Entered if !state.expired => {
                    state.when = when;
                    state.arm(&self.scope)
                }
                Phase::Entered | Phase::Exited => None,
            }
        };
        // After the lock: the old timer's closure is dropped by its cancel.
        if let Some(timer) = replaced {
            timer.cancel();
        }
    }

    /// The current deadline (`None`: none).
    pub fn when(&self) -> Option<Instant> {
        self.scope.lock().when
    }

    /// Whether the deadline passed while the scope ran (the scope requested the task's
    /// cancellation), whatever the body did with it. Stays `true` after the exit.
    pub fn expired(&self) -> bool {
        self.scope.lock().expired
    }
}

impl fmt::Debug for TimeoutHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.scope.lock();
        let phase = match (state.phase, state.expired) {
            (Phase::Created, _) => "created",
            (Phase::Entered, false) => "active",
            (Phase::Entered, true) => "expiring",
            (Phase::Exited, true) => "expired",
            (Phase::Exited, false) => "finished",
        };
        f.debug_struct("TimeoutHandle")
            .field("state", &phase)
            .field("when", &state.when)
            .finish()
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    /// Not polled yet: no task, no timer.
    Created,
    /// The body runs in `task`; `timer` is armed for `when` (unless expired).
    Entered,
    /// The body returned, or the scope was dropped.
    Exited,
}

struct Scope {
    state: Mutex<State>,
}

impl Scope {
    fn lock(&self) -> MutexGuard<'_, State> {
        // No user code runs under this lock, so a poisoned one still holds consistent
        // state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

struct State {
    phase: Phase,
    expired: bool,
    when: Option<Instant>,
    /// Bumped whenever the timer is replaced or the scope exits: a timer armed under
    /// another generation does nothing when it fires.
    generation: u64,
    timer: Option<Armed>,
    /// The task the body runs in (while entered).
    task: Option<TaskRef>,
    /// The task's loop, where the timer runs (while entered).
    owner: Option<LoopHandle>,
    /// `task.cancelling()` when the scope was entered (asyncio's rule at exit).
    cancelling_at_entry: usize,
}

impl State {
    /// Arms a timer for `when` (none for `None`) in place of the current one, which is
    /// returned for the caller to cancel after the lock. (`call_at` runs no user code:
    /// it links the timer, or queues it to the loop.)
    fn arm(&mut self, scope: &Arc<Scope>) -> Option<Armed> {
        self.generation = self.generation.wrapping_add(1);
        let replaced = self.timer.take();
        if let (Some(when), Some(owner)) = (self.when, &self.owner) {
            let weak = Arc::downgrade(scope);
            let generation = self.generation;
            let fire = move || fire(&weak, generation);
            // As asyncio: a deadline already passed expires through the ready queue, so
            // it comes before a `sleep(0)` (a timer) the body starts after it.
            self.timer = Some(if when <= Instant::now() {
                Armed::Soon(owner.call_soon(fire))
            } else {
                Armed::Timer(owner.call_at(when, fire))
            });
        }
        replaced
    }
}

/// The scope's pending expiry: a timer, or a callback already queued for a deadline
/// that had passed when it was armed.
enum Armed {
    Timer(TimerHandle),
    Soon(Handle),
}

impl Armed {
    fn cancel(&self) {
        match self {
            Armed::Timer(timer) => {
                timer.cancel();
            }
            Armed::Soon(handle) => {
                handle.cancel();
            }
        }
    }
}

/// The deadline passed (on the task's loop): mark the scope expired and cancel the
/// task — unless the timer is stale, or the scope is gone.
fn fire(scope: &Weak<Scope>, generation: u64) {
    let Some(scope) = scope.upgrade() else {
        return;
    };
    let (task, timer) = {
        let mut state = scope.lock();
        if state.phase != Phase::Entered || state.generation != generation || state.expired {
            return;
        }
        state.expired = true;
        (state.task.clone(), state.timer.take())
    };
    drop(timer);
    if let Some(task) = task {
        task.cancel();
    }
}

/// The scope's side of `TimeoutScope`: enters on the first poll, exits when the body
/// returns, and cleans up when dropped before that.
struct Guard {
    scope: Arc<Scope>,
}

/// What the exit found.
struct Exit {
    expired: bool,
    task: Option<TaskRef>,
    cancelling_at_entry: usize,
}

impl Guard {
    /// First poll: bind to the current task and arm the timer.
    fn enter_once(&mut self) {
        let replaced = {
            let mut state = self.scope.lock();
            match state.phase {
                Phase::Entered => return,
                Phase::Exited => {
                    drop(state);
                    panic!("evloop::time::TimeoutScope polled after it completed");
                }
                Phase::Created => {}
            }
            let Some(task) = current_task() else {
                drop(state);
                panic!(
                    "evloop::time::timeout_scope must be awaited inside an evloop task \
                     (create_task / LoopHandle::spawn): at the deadline it cancels the task, \
                     and block_on's own future is not a task; wrap the code in a task, or \
                     use time::timeout, which drops its future at the deadline instead"
                );
            };
            state.phase = Phase::Entered;
            state.cancelling_at_entry = task.cancelling();
            state.owner = Some(task.get_loop());
            state.task = Some(task);
            state.arm(&self.scope)
        };
        if let Some(timer) = replaced {
            timer.cancel();
        }
    }

    /// Leaves the scope: the timer is cancelled and, if the scope expired, its request
    /// withdrawn. Everything is taken out under the lock and handled after it.
    fn leave(&self) -> Option<Exit> {
        let (exit, timer) = {
            let mut state = self.scope.lock();
            let was = std::mem::replace(&mut state.phase, Phase::Exited);
            if was != Phase::Entered {
                return None;
            }
            state.generation = state.generation.wrapping_add(1);
            state.owner = None;
            let exit = Exit {
                expired: state.expired,
                task: state.task.take(),
                cancelling_at_entry: state.cancelling_at_entry,
            };
            (exit, state.timer.take())
        };
        if let Some(timer) = timer {
            timer.cancel();
        }
        Some(exit)
    }

    /// The body returned `out`: asyncio's `__aexit__`.
    fn exit<T>(&self, out: Result<T, Error>) -> Result<T, Error> {
        let Some(exit) = self.leave() else {
            return out;
        };
        let Some(task) = exit.task.filter(|_| exit.expired) else {
            return out;
        };
        // The scope's request is withdrawn whatever the body did with it (a body that
        // swallowed the cancellation, or finished before seeing it, leaves the task
        // as it found it). Only if no other request arrived meanwhile was the
        // cancellation this scope's own (asyncio ≥ 3.11).
        let remaining = task.uncancel();
        match out {
            Err(Error::Cancelled(_)) if remaining <= exit.cancelling_at_entry => {
                Err(Error::Timeout(TimeoutError))
            }
            out => out,
        }
    }
}

impl Drop for Guard {
    /// Dropped before the body returned (the task was aborted, or an enclosing
    /// combinator dropped the scope): no timer may outlive it, and an expired scope's
    /// request is withdrawn, so it cannot cancel the task's later awaits.
    fn drop(&mut self) {
        if let Some(Exit {
            expired: true,
            task: Some(task),
            ..
        }) = self.leave()
        {
            task.uncancel();
        }
    }
}

fn _assert_kinds() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<TimeoutHandle>();
    send_sync::<TimeoutScope<std::future::Ready<Result<(), Error>>>>();
}
