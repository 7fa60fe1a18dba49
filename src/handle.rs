//! [`LoopHandle`]: the public, thread-safe face of a loop (what `Future::get_loop`
//! returns).
//!
//! Owns: the user-facing scheduling API (L1–L9, L13–L15). Must not touch: loop-thread
//! state directly — on the loop thread it goes through the current `core::Local`, from
//! other threads through `Shared`'s cross-thread queue.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use crate::callback::{Handle, TimerHandle, cancelled_callback, new_callback};
use crate::context;
use crate::core;
use crate::error::{Error, InvalidStateError};
use crate::exception::{self, ExceptionContext};
use crate::executor::{Executor, JobHandle};
use crate::future::Future;
use crate::loop_ref::LoopRef;
use crate::shared::Remote;
use crate::stats::LoopStats;

/// A handle to an event loop: `Clone + Send + Sync`, usable from any thread.
///
/// Equal handles name the same loop. Everything scheduled through a handle runs on the
/// loop's own thread.
///
/// ```
/// use std::time::Duration;
///
/// let rt = evloop::Runtime::new()?;
/// let loop_ = rt.handle();
/// let worker = {
///     let loop_ = loop_.clone();
///     std::thread::spawn(move || {
///         // From another thread: runs on the loop, wakes it if it sleeps.
///         loop_.call_soon_threadsafe(move || evloop::LoopHandle::current().stop());
///     })
/// };
/// rt.run_forever(); // returns once the worker's callback called stop()
/// worker.join().unwrap();
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct LoopHandle {
    pub(crate) shared: LoopRef,
}

impl LoopHandle {
    /// The loop running on this thread (asyncio's `get_running_loop()`).
    ///
    /// # Panics
    ///
    /// Panics with "no running event loop" when called outside `Runtime::block_on` /
    /// `run_forever` (for instance from a worker thread). Use
    /// [`try_current`](Self::try_current) to test, or hand a `LoopHandle` to the thread.
    #[track_caller]
    pub fn current() -> LoopHandle {
        match LoopHandle::try_current() {
            Some(handle) => handle,
            None => panic!(
                "evloop: no running event loop on this thread: LoopHandle::current() only works \
                 inside Runtime::block_on / run_forever on the loop's thread; use \
                 LoopHandle::try_current() to check, or pass a LoopHandle (rt.handle()) to \
                 other threads"
            ),
        }
    }

    /// The loop running on this thread, if any.
    ///
    /// ```
    /// assert!(evloop::LoopHandle::try_current().is_none());
    /// evloop::run(async {
    ///     assert!(evloop::LoopHandle::try_current().is_some());
    /// });
    /// ```
    pub fn try_current() -> Option<LoopHandle> {
        context::current().map(|local| local.handle.clone())
    }

    /// A number identifying this loop within the process (for logs).
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// Schedules `f` to run on the loop in a later iteration, FIFO with other
    /// `call_soon`s (L2). From another thread this is
    /// [`call_soon_threadsafe`](Self::call_soon_threadsafe). On a closed loop the
    /// closure is dropped and the returned handle is already cancelled.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    ///
    /// let order = Arc::new(Mutex::new(Vec::new()));
    /// evloop::run({
    ///     let order = order.clone();
    ///     async move {
    ///         let loop_ = evloop::LoopHandle::current();
    ///         for i in 0..3 {
    ///             let order = order.clone();
    ///             loop_.call_soon(move || order.lock().unwrap().push(i));
    ///         }
    ///         evloop::time::sleep(std::time::Duration::ZERO).await.unwrap();
    ///     }
    /// });
    /// assert_eq!(*order.lock().unwrap(), [0, 1, 2]);
    /// ```
    pub fn call_soon<F: FnOnce() + Send + 'static>(&self, f: F) -> Handle {
        if self.is_closed() {
            return self.closed_handle("call_soon");
        }
        let cell = new_callback(f);
        let handle = Handle { cell: cell.clone() };
        if context::with_local(self.shared.id, |local| local.push_callback(cell.clone())).is_none()
        {
            self.shared.push_remote(Remote::Callback(cell));
        }
        handle
    }

    /// Schedules `f` from any thread, waking the loop if it is blocked (L3). Wake-ups
    /// are coalesced: while the loop is awake this makes no system call, and one
    /// eventfd write serves every producer until the loop blocks again.
    pub fn call_soon_threadsafe<F: FnOnce() + Send + 'static>(&self, f: F) -> Handle {
        self.call_soon(f)
    }

    /// Schedules `f` to run once `delay` has passed (L4). Never fires early; a zero
    /// delay fires in the next iteration.
    pub fn call_later<F: FnOnce() + Send + 'static>(&self, delay: Duration, f: F) -> TimerHandle {
        self.call_at(deadline_after(Instant::now(), delay), f)
    }

    /// Schedules `f` to run at `when` (L4). Timers fire in `(deadline, insertion
    /// order)` order; a deadline in the past fires in the next iteration.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Duration;
    ///
    /// let rt = evloop::Runtime::new()?;
    /// let loop_ = rt.handle();
    /// let fired = Arc::new(Mutex::new(Vec::new()));
    /// let now = loop_.time();
    /// for (name, ms) in [("b", 2), ("a", 1), ("c", 2)] {
    ///     let fired = fired.clone();
    ///     loop_.call_at(now + Duration::from_millis(ms), move || fired.lock().unwrap().push(name));
    /// }
    /// rt.block_on(evloop::time::sleep(Duration::from_millis(5))).unwrap();
    /// assert_eq!(*fired.lock().unwrap(), ["a", "b", "c"]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn call_at<F: FnOnce() + Send + 'static>(&self, when: Instant, f: F) -> TimerHandle {
        let cell = if self.is_closed() {
            log::debug!(target: "evloop", "call_at on closed loop #{}: dropped", self.shared.id);
            cancelled_callback()
        } else {
            core::schedule_timer(self, when, f)
        };
        TimerHandle {
            cell,
            when,
            owner: self.clone(),
        }
    }

    /// The loop's clock (L5): the monotonic time timers are measured against.
    pub fn time(&self) -> Instant {
        Instant::now()
    }

    /// Asks the loop to stop (L8): the current iteration finishes, then `run_forever`
    /// returns. Callable from any thread; wakes a blocked loop. If the loop is not
    /// running, the next `run_forever` runs one iteration and returns.
    pub fn stop(&self) {
        self.shared.request_stop();
    }

    /// Whether the loop is inside `block_on` / `run_forever` right now (L15).
    pub fn is_running(&self) -> bool {
        self.shared
            .running
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Whether the caller is running on this loop's thread, inside the loop (L15).
    pub fn is_current(&self) -> bool {
        context::current_id() == self.shared.id
    }

    /// Whether the loop is closed (its `Runtime` was dropped, L14).
    pub fn is_closed(&self) -> bool {
        self.shared.park.is_closed()
    }

    /// Installs (`Some`) or removes (`None`) the exception handler (L9). It receives
    /// panics caught in callbacks and everything else the loop reports; a panic inside
    /// the handler is caught and logged by the default handler.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    ///
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// evloop::run({
    ///     let seen = seen.clone();
    ///     async move {
    ///         let loop_ = evloop::LoopHandle::current();
    ///         loop_.set_exception_handler(Some(move |_: &evloop::LoopHandle, ctx: &evloop::ExceptionContext| {
    ///             seen.lock().unwrap().push(ctx.to_string());
    ///         }));
    ///         loop_.call_soon(|| panic!("boom"));
    ///         evloop::time::sleep(std::time::Duration::ZERO).await.unwrap();
    ///     }
    /// });
    /// assert_eq!(*seen.lock().unwrap(), ["Exception in callback: panicked: boom"]);
    /// ```
    pub fn set_exception_handler<H>(&self, handler: Option<H>)
    where
        H: Fn(&LoopHandle, &ExceptionContext) + Send + Sync + 'static,
    {
        let handler = handler.map(|h| Arc::new(h) as Arc<exception::HandlerFn>);
        self.replace_exception_handler(handler);
    }

    /// Removes the custom exception handler (same as `set_exception_handler(None)`).
    pub fn clear_exception_handler(&self) {
        self.replace_exception_handler(None);
    }

    fn replace_exception_handler(&self, handler: Option<Arc<exception::HandlerFn>>) {
        let replaced = std::mem::replace(
            &mut *self
                .shared
                .handler
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
            handler,
        );
        // The old handler's drop is user code (it may report an exception itself): it
        // runs after the lock is released (rule 1).
        drop(replaced);
    }

    /// Reports `ctx` to the exception handler, synchronously on the calling thread.
    pub fn call_exception_handler(&self, ctx: ExceptionContext) {
        let handler = exception::current_handler(&self.shared.handler);
        exception::dispatch(self, handler, &ctx);
    }

    /// The default exception handler: logs `ctx` with `log::error!`, or writes it to
    /// stderr when no `log` logger takes error records of target `evloop` (U1).
    pub fn default_exception_handler(&self, ctx: &ExceptionContext) {
        exception::default_handler(ctx);
    }

    /// A snapshot of the loop's statistics (L13). On the loop thread the gauges are
    /// live; elsewhere they are as of the end of the last iteration.
    pub fn stats(&self) -> LoopStats {
        let mut stats = self.shared.stats.snapshot();
        if let Some(exec) = self.shared.running_default_executor() {
            stats.executor_threads = exec.threads() as u64;
            stats.executor_queued_jobs = exec.queued_jobs() as u64;
        }
        context::with_local(self.shared.id, |local| {
            (stats.ready_len, stats.timers_pending, stats.live_tasks) = local.gauges();
        });
        stats
    }

    /// Runs `f` on a thread pool (E4, asyncio's `run_in_executor`): `None` for the
    /// loop's default executor (started on first use with the runtime's
    /// `blocking_threads` and `thread_keep_alive`), or `Some(&executor)`. The future is
    /// bound to this loop; callable from any thread.
    ///
    /// After [`shutdown_default_executor`](Self::shutdown_default_executor),
    /// `run_in_executor(None, f)` returns a future that already failed with
    /// `Error::InvalidState("executor shut down")` (E3). On a closed loop `f` is dropped
    /// without running and the future is already cancelled (L14), whichever executor.
    ///
    /// ```
    /// evloop::run(async {
    ///     let loop_ = evloop::LoopHandle::current();
    ///     let name = loop_
    ///         .run_in_executor(None, || std::thread::current().name().map(String::from))
    ///         .await
    ///         .unwrap();
    ///     assert!(name.unwrap().starts_with("evloop-blocking-"));
    /// });
    /// ```
    #[track_caller]
    pub fn run_in_executor<T, F>(&self, executor: Option<&Executor>, f: F) -> JobHandle<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        if self.is_closed() {
            log::debug!(target: "evloop", "run_in_executor on closed loop #{}: job dropped", self.shared.id);
            return closed_future(self).into();
        }
        match executor {
            Some(exec) => exec.submit_to(self, f),
            None => match self.shared.default_executor() {
                Some(exec) => exec.submit_to(self, f),
                None => {
                    let fut = Future::with_loop(self);
                    let _ = fut.set_exception(Error::InvalidState(InvalidStateError::new(
                        "executor shut down",
                    )));
                    fut.into()
                }
            },
        }
    }

    /// Shuts the default executor down (asyncio's `shutdown_default_executor`): it takes
    /// no more jobs, and the returned future completes once its queued and running jobs
    /// have finished and its threads have exited (waiting happens off the loop).
    /// Afterwards `run_in_executor(None, …)` fails as after
    /// [`Executor::shutdown`]; explicit executors are unaffected.
    ///
    /// # Errors
    ///
    /// Only when the awaiting task is cancelled.
    pub fn shutdown_default_executor(
        &self,
    ) -> impl std::future::Future<Output = Result<(), Error>> + use<> {
        let done = Future::with_loop(self);
        match self.shared.take_default_executor() {
            Some(exec) => {
                let signal = done.clone();
                let joined = std::thread::Builder::new()
                    .name("evloop-executor-shutdown".into())
                    .spawn(move || {
                        exec.shutdown(true);
                        let _ = signal.set_result(());
                    });
                if let Err(e) = joined {
                    let _ = done.set_exception(Error::new(e));
                }
            }
            None => {
                let _ = done.set_result(());
            }
        }
        done
    }

    fn closed_handle(&self, what: &str) -> Handle {
        log::debug!(target: "evloop", "{what} on closed loop #{}: callback dropped", self.shared.id);
        Handle {
            cell: cancelled_callback(),
        }
    }
}

/// A future bound to a closed loop, already cancelled (L14).
pub(crate) fn closed_future<T: Send + 'static>(owner: &LoopHandle) -> Future<T> {
    let fut = Future::with_loop(owner);
    fut.cancel();
    fut
}

/// `now + delay`, saturating to a deadline that is never reached in practice.
pub(crate) fn deadline_after(now: Instant, delay: Duration) -> Instant {
    now.checked_add(delay)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)))
        .unwrap_or(now)
}

impl PartialEq for LoopHandle {
    fn eq(&self, other: &LoopHandle) -> bool {
        self.shared.id == other.shared.id
    }
}

impl Eq for LoopHandle {}

impl Hash for LoopHandle {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.shared.id.hash(state);
    }
}

impl fmt::Debug for LoopHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopHandle")
            .field("id", &self.shared.id)
            .field("running", &self.is_running())
            .field("closed", &self.is_closed())
            .finish()
    }
}

fn _assert_kinds() {
    fn kinds<T: Clone + Send + Sync + Eq + Hash + fmt::Debug>() {}
    kinds::<LoopHandle>();
}
