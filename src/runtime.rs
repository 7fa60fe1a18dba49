//! [`Runtime`], its [`Builder`] and [`run`]: the entry points (R1–R5).
//!
//! Owns: creating a loop, entering it on the calling thread (`block_on`,
//! `run_forever`, `run_until_complete`), and the order of shutdown. Must not touch:
//! mio or the wheel — the iteration itself lives in `core`.

use std::future::{Future, IntoFuture};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;
use std::{fmt, io};

use crate::context::{self, EnterGuard};
use crate::core::{CoreConfig, Local};
use crate::error::{Error, InvalidStateError};
use crate::handle::LoopHandle;
use crate::shared::ExecutorConfig;

/// Configures a [`Runtime`] (R1).
///
/// ```
/// use std::time::Duration;
///
/// let rt = evloop::Runtime::builder()
///     .event_capacity(256)
///     .debug(true)
///     .slow_callback_duration(Duration::from_millis(50))
///     .shutdown_timeout(Duration::from_millis(500))
///     .build()?;
/// assert_eq!(rt.block_on(async { 1 + 1 }), 2);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Builder {
    blocking_threads: usize,
    thread_keep_alive: Duration,
    event_capacity: usize,
    debug: Option<bool>,
    slow_callback_duration: Duration,
    shutdown_timeout: Duration,
    coop_budget: u32,
    eager_tasks: bool,
}

impl Default for Builder {
    fn default() -> Builder {
        Builder {
            blocking_threads: 512,
            thread_keep_alive: Duration::from_secs(10),
            event_capacity: 1024,
            debug: None,
            slow_callback_duration: Duration::from_millis(100),
            shutdown_timeout: Duration::from_secs(1),
            coop_budget: crate::task::budget::DEFAULT,
            eager_tasks: false,
        }
    }
}

impl Builder {
    /// The default configuration.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Maximum threads of the default blocking executor (default 512, started lazily).
    pub fn blocking_threads(mut self, n: usize) -> Builder {
        self.blocking_threads = n.max(1);
        self
    }

    /// How long an idle executor thread waits for work before exiting (default 10 s).
    pub fn thread_keep_alive(mut self, d: Duration) -> Builder {
        self.thread_keep_alive = d;
        self
    }

    /// Events collected per reactor poll (default 1024).
    pub fn event_capacity(mut self, n: usize) -> Builder {
        self.event_capacity = n.max(1);
        self
    }

    /// Debug mode (L10): warn about slow callbacks and polls. Default: off, unless the
    /// environment variable `EVLOOP_DEBUG=1` is set.
    pub fn debug(mut self, on: bool) -> Builder {
        self.debug = Some(on);
        self
    }

    /// In debug mode, callbacks and polls taking at least this long are logged with
    /// `log::warn!` (default 100 ms).
    pub fn slow_callback_duration(mut self, d: Duration) -> Builder {
        self.slow_callback_duration = d;
        self
    }

    /// How long shutdown waits for cancelled tasks and running executor jobs
    /// (default 1 s).
    pub fn shutdown_timeout(mut self, d: Duration) -> Builder {
        self.shutdown_timeout = d;
        self
    }

    /// The cooperative budget (SPEC K7): how many awaits a task (or the `block_on`
    /// future) may complete in one poll without suspending — socket reads and writes,
    /// `evloop::sync` operations, ready futures, elapsed sleeps — before it is made to
    /// yield, so that one busy task cannot starve timers, I/O and the other tasks.
    /// Default `Some(128)`, tokio's. `None` disables it for the whole loop (for
    /// measurements; per future, use [`task::unconstrained`](crate::task::unconstrained)).
    /// `Some(0)` is taken as `Some(1)`: every task may complete at least one await.
    ///
    /// ```
    /// let rt = evloop::Runtime::builder().coop_budget(Some(32)).build()?;
    /// assert_eq!(rt.block_on(async { 1 }), 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn coop_budget(mut self, budget: Option<u32>) -> Builder {
        self.coop_budget = match budget {
            None => crate::task::budget::UNCONSTRAINED,
            Some(n) => n.clamp(1, crate::task::budget::UNCONSTRAINED - 1),
        };
        self
    }

    /// Eager task start (default off; asyncio 3.12's `eager_task_factory`): a task created
    /// with [`create_task`](crate::create_task) on the loop's thread runs its coroutine
    /// at once, inside `create_task`, until the coroutine first suspends. A task that
    /// finishes without suspending is returned done, and never goes through the ready
    /// queue: for tasks that usually complete at once (a cache hit, a ready reply) that
    /// saves a loop iteration, a queue entry and a later poll each.
    ///
    /// It changes T1 ("a task never starts synchronously") for this loop, which is why
    /// it is opt-in: code that spawns and then sets up what the child needs (a callback,
    /// a shared value) must do that before `create_task`. Spawns from other threads
    /// ([`LoopHandle::spawn`](crate::LoopHandle::spawn)) and `LoopHandle::create_task`
    /// called off the loop's thread start lazily as always. Nesting is bounded: a task
    /// created eagerly inside 16 eager first polls starts lazily, so a chain of tasks
    /// each spawning the next never deepens the stack with the chain.
    ///
    /// ```
    /// let rt = evloop::Runtime::builder().eager_tasks(true).build()?;
    /// rt.block_on(async {
    ///     let task = evloop::create_task(async { Ok::<_, evloop::Error>(7) });
    ///     assert!(task.done(), "ran to completion inside create_task");
    ///     assert_eq!(task.await.unwrap(), 7);
    /// });
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn eager_tasks(mut self, eager: bool) -> Builder {
        self.eager_tasks = eager;
        self
    }

    /// Creates the runtime: its reactor (epoll), wake-up eventfd and precision timer.
    ///
    /// # Errors
    ///
    /// The operating system's error if one of those cannot be created (for example
    /// when the process is out of file descriptors).
    pub fn build(self) -> io::Result<Runtime> {
        let debug = self
            .debug
            .unwrap_or_else(|| std::env::var_os("EVLOOP_DEBUG").is_some_and(|v| v == "1"));
        let local = Local::new(CoreConfig {
            executor: ExecutorConfig {
                max_threads: self.blocking_threads,
                keep_alive: self.thread_keep_alive,
            },
            event_capacity: self.event_capacity,
            debug,
            slow_callback_duration: self.slow_callback_duration,
            coop_budget: self.coop_budget,
            eager_tasks: self.eager_tasks,
        })?;
        Ok(Runtime {
            handle: local.handle.clone(),
            local,
            config: self,
        })
    }
}

impl Builder {
    /// Starts a [`LoopGroup`](crate::LoopGroup) of `n` loops, each built with this
    /// configuration on its own thread (S1).
    ///
    /// ```
    /// let group = evloop::Runtime::builder().event_capacity(256).build_group(2)?;
    /// assert_eq!(group.len(), 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// `InvalidInput` for `n == 0`; the OS error if a thread or a loop cannot be created
    /// (the loops already started are shut down).
    pub fn build_group(self, n: usize) -> io::Result<crate::LoopGroup> {
        crate::group::LoopGroup::start(self, n)
    }
}

/// An event loop owned by the current thread (R1–R5).
///
/// A `Runtime` is `!Send`: the loop lives on the thread that created it, which is what
/// lets futures and tasks created on it skip the `Send` bound. Other threads talk to
/// it through a [`LoopHandle`]. Dropping it shuts the loop down (R5) and closes it
/// (L14).
///
/// ```
/// let rt = evloop::Runtime::new()?;
/// let answer = rt.block_on(async {
///     evloop::time::sleep(std::time::Duration::from_millis(1)).await?;
///     Ok::<_, evloop::Error>(42)
/// });
/// assert_eq!(answer.unwrap(), 42);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Runtime {
    local: Rc<Local>,
    handle: LoopHandle,
    config: Builder,
}

/// Why driving the loop ended without the future's output.
struct Stopped;

impl Runtime {
    /// The loop's core (unit tests of `context`).
    #[cfg(test)]
    pub(crate) fn local_for_tests(&self) -> Rc<Local> {
        self.local.clone()
    }

    /// A runtime with the default configuration.
    ///
    /// # Errors
    ///
    /// As [`Builder::build`].
    pub fn new() -> io::Result<Runtime> {
        Builder::default().build()
    }

    /// A [`Builder`] to configure a runtime.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// A handle to this runtime's loop (R4).
    pub fn handle(&self) -> LoopHandle {
        self.handle.clone()
    }

    /// Runs the loop on this thread until `fut` completes and returns its output (R2).
    /// `fut` needs no `Send` bound.
    ///
    /// # Panics
    ///
    /// * When called while a loop is already running on this thread (inside a
    ///   callback or a future on a loop): await the future instead.
    /// * When [`LoopHandle::stop`] stops the loop before `fut` completed; use
    ///   [`run_until_complete`](Self::run_until_complete) to get that as an error.
    /// * When `fut` panics (the panic is propagated).
    pub fn block_on<F: Future>(&self, fut: F) -> F::Output {
        match self.drive(fut, "block_on") {
            Ok(out) => out,
            Err(Stopped) => panic!(
                "evloop: the loop was stopped (LoopHandle::stop) before the future passed to \
                 Runtime::block_on completed; use Runtime::run_until_complete to receive this \
                 as Error::InvalidState instead"
            ),
        }
    }

    /// asyncio's `run_until_complete`: like [`block_on`](Self::block_on) for a future
    /// yielding `Result<T, Error>`, but a [`LoopHandle::stop`] before it completes
    /// returns `Err(Error::InvalidState("loop stopped before future completed"))` (L8).
    ///
    /// ```
    /// let rt = evloop::Runtime::new()?;
    /// let err = rt
    ///     .run_until_complete(async {
    ///         evloop::LoopHandle::current().stop();
    ///         evloop::time::sleep(std::time::Duration::from_secs(3600)).await?;
    ///         Ok(())
    ///     })
    ///     .unwrap_err();
    /// assert!(err.is_invalid_state());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The future's own error, or `InvalidState` when the loop was stopped first.
    ///
    /// # Panics
    ///
    /// As `block_on`, except for the stop case.
    pub fn run_until_complete<F, T>(&self, fut: F) -> Result<T, Error>
    where
        F: IntoFuture<Output = Result<T, Error>>,
    {
        match self.drive(fut.into_future(), "run_until_complete") {
            Ok(out) => out,
            Err(Stopped) => Err(Error::InvalidState(InvalidStateError::new(
                "loop stopped before future completed",
            ))),
        }
    }

    /// Runs the loop until [`LoopHandle::stop`] is called (L8). Can be called again
    /// after it returned.
    ///
    /// # Panics
    ///
    /// When called while a loop is already running on this thread.
    pub fn run_forever(&self) {
        let _running = self.enter("run_forever");
        loop {
            self.local.run_once(None);
            if self.handle.shared.take_stop() {
                return;
            }
        }
    }

    fn drive<F: Future>(&self, fut: F, what: &str) -> Result<F::Output, Stopped> {
        let _running = self.enter(what);
        let mut fut = pin!(fut);
        let waker = self.local.root_waker().clone();
        let mut cx = Context::from_waker(&waker);
        let mut out = None;
        self.local.schedule_root();
        loop {
            self.local.run_once(Some(&mut || {
                if out.is_none() {
                    if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                        out = Some(v);
                    }
                }
            }));
            if let Some(v) = out.take() {
                return Ok(v);
            }
            if self.handle.shared.take_stop() {
                return Err(Stopped);
            }
        }
    }

    fn enter(&self, what: &str) -> Running<'_> {
        match context::enter(self.local.clone()) {
            Ok(guard) => {
                self.handle.shared.running.store(true, Ordering::Release);
                Running {
                    rt: self,
                    _guard: guard,
                }
            }
            Err(running) => panic!(
                "evloop: Runtime::{what} cannot be called while an event loop is running on this \
                 thread (loop #{running}): it would block that loop; await the future instead"
            ),
        }
    }
}

/// Marks the loop running while it is entered; restores everything on exit or panic.
struct Running<'a> {
    rt: &'a Runtime,
    _guard: EnterGuard,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let shared = &self.rt.handle.shared;
        shared.running.store(false, Ordering::Release);
        shared.clear_stop();
    }
}

impl Drop for Runtime {
    /// Shuts the loop down (R5) and closes it (L14): every pending task is cancelled
    /// and the loop runs until they finish, for at most `shutdown_timeout`; tasks still
    /// alive then are aborted. Then the default executor is shut down: queued jobs are
    /// dropped (their futures fail), running jobs are waited for up to the same
    /// timeout, then detached. Never panics, never hangs.
    fn drop(&mut self) {
        let _entered = context::enter_for_shutdown(self.local.clone());
        // While this thread is already unwinding, a second panic in user code would
        // abort the process even under `catch_unwind`: only abort the tasks then.
        if !std::thread::panicking() {
            let timeout = self.config.shutdown_timeout;
            let graceful = catch_unwind(AssertUnwindSafe(|| self.local.shutdown_tasks(timeout)));
            if graceful.is_err() {
                log::error!(target: "evloop", "loop #{}: shutdown of its tasks panicked", self.handle.id());
            }
        }
        if let Some(exec) = self.handle.shared.take_default_executor() {
            if !exec.shutdown_now(self.config.shutdown_timeout) {
                log::warn!(
                    target: "evloop",
                    "loop #{}: blocking jobs still running after the shutdown timeout were detached",
                    self.handle.id()
                );
            }
        }
        self.local.close();
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("handle", &self.handle)
            .field("config", &self.config)
            .finish()
    }
}

/// asyncio's `asyncio.run`: creates a runtime, runs `fut` to completion on this
/// thread, shuts the runtime down, and returns the output (R3).
///
/// ```
/// let n = evloop::run(async { 6 * 7 });
/// assert_eq!(n, 42);
/// ```
///
/// # Panics
///
/// If the runtime cannot be created (the OS refused an epoll or eventfd descriptor),
/// and in the cases of [`Runtime::block_on`].
pub fn run<F: Future>(fut: F) -> F::Output {
    let rt =
        Runtime::new().unwrap_or_else(|e| panic!("evloop::run: cannot create the runtime: {e}"));
    rt.block_on(fut)
}

fn _assert_kinds() {
    // `Runtime` must be `!Send`: resolving `some_item` is ambiguous (a compile error)
    // if it implements `Send`.
    trait AmbiguousIfSend<A> {
        fn some_item() {}
    }
    impl<T: ?Sized> AmbiguousIfSend<()> for T {}
    impl<T: ?Sized + Send> AmbiguousIfSend<u8> for T {}
    <Runtime as AmbiguousIfSend<_>>::some_item();
}
