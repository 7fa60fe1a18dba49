//! The blocking thread pool (SPEC §6): [`Executor`], `run_in_executor`,
//! [`spawn_blocking`] and the runtime's default executor.
//!
//! Owns: pool threads, the job queue and job bookkeeping. Must not touch: the loop —
//! a job hands its result over with `Future::set_result` (thread-safe), which wakes the
//! awaiting task through the loop's cross-thread queue with its wake-up coalescing.
//!
//! Threads start lazily, one per job that finds no idle thread, up to `max_threads`;
//! an idle thread exits after `keep_alive`. The queue is unbounded. No lock is held
//! while a job runs. A job whose future was cancelled before it started is skipped;
//! one cancelled while running finishes and its result is dropped.

use std::collections::VecDeque;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Error, InvalidStateError};
use crate::exception::{ExceptionContext, drop_catching};
use crate::future::Future;
use crate::handle::LoopHandle;

/// A queued job: one allocation holding the closure and its future.
trait Job: Send {
    /// Runs the closure (unless its future was cancelled) and hands over the outcome.
    fn run(self: Box<Self>);
    /// The job will never run: finish its future with `error` so awaiters wake.
    fn fail(self: Box<Self>, error: Error);
}

/// `f` returns the job's outcome: `Err` becomes the future's exception (a plain job's
/// closure is wrapped in `Ok`).
struct JobCell<T, F> {
    f: F,
    result: Future<T>,
}

impl<T, F> Job for JobCell<T, F>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, Error> + Send + 'static,
{
    fn run(self: Box<Self>) {
        let JobCell { f, result } = *self;
        if result.done() {
            // Cancelled before it started (E2): the closure is dropped unrun.
            report_drop(&result, drop_catching(f), "an executor job that never ran");
            return;
        }
        let outcome = catch_unwind(AssertUnwindSafe(f));
        // A future cancelled meanwhile refuses the outcome: it is dropped (user code).
        let handed_over = catch_unwind(AssertUnwindSafe(|| {
            let _ = match outcome {
                Ok(Ok(value)) => result.set_result(value),
                Ok(Err(error)) => result.set_exception(error),
                Err(payload) => result.set_exception(Error::from_panic(payload)),
            };
        }));
        let what = "the result of an executor job whose future was cancelled";
        report_drop(&result, handed_over.map_err(Error::from_panic), what);
    }

    fn fail(self: Box<Self>, error: Error) {
        let JobCell { f, result } = *self;
        // The job never runs, but dropping it runs its captures' destructors: user
        // code, which must not unwind into the shutdown (R5, L9).
        report_drop(&result, drop_catching(f), "an executor job that never ran");
        let _ = result.set_exception(error);
    }
}

/// Reports a panic from dropping `what` (user code) to the job's loop.
fn report_drop<T: Send + 'static>(result: &Future<T>, dropped: Result<(), Error>, what: &str) {
    if let Err(error) = dropped {
        result.get_loop().call_exception_handler(
            ExceptionContext::new(format!("Exception while dropping {what}")).with_exception(error),
        );
    }
}

type BoxedJob = Box<dyn Job>;

struct State {
    queue: VecDeque<BoxedJob>,
    /// Threads alive.
    threads: usize,
    /// Threads waiting for a job.
    idle: usize,
    /// Idle threads told to take a job (so two submissions do not wake the same one).
    notified: usize,
    shutdown: bool,
    handles: Vec<JoinHandle<()>>,
}

struct Pool {
    state: Mutex<State>,
    job_ready: Condvar,
    all_exited: Condvar,
    max_threads: usize,
    keep_alive: Duration,
    spawned: AtomicUsize,
}

/// A pool of threads for blocking work (Tornado's / asyncio's executor). `Clone`: every
/// clone is a handle to the same pool.
///
/// ```
/// let exec = evloop::Executor::new(4);
/// let total = evloop::run(async {
///     let jobs: Vec<_> = (1..=4u64).map(|n| exec.submit(move || (1..=n * 1000).sum::<u64>())).collect();
///     evloop::gather(jobs).await
/// });
/// assert_eq!(total.unwrap(), [500_500, 2_001_000, 4_501_500, 8_002_000]);
/// exec.shutdown(true);
/// ```
#[derive(Clone)]
pub struct Executor {
    pool: Arc<Pool>,
}

impl Executor {
    /// A pool of at most `max_threads` threads (at least 1), started lazily, named
    /// `evloop-blocking-N`, each exiting after 10 s idle.
    pub fn new(max_threads: usize) -> Executor {
        Executor::with_keep_alive(max_threads, Duration::from_secs(10))
    }

    /// As [`new`](Self::new), with the idle time after which a thread exits.
    pub fn with_keep_alive(max_threads: usize, keep_alive: Duration) -> Executor {
        Executor {
            pool: Arc::new(Pool {
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    threads: 0,
                    idle: 0,
                    notified: 0,
                    shutdown: false,
                    handles: Vec::new(),
                }),
                job_ready: Condvar::new(),
                all_exited: Condvar::new(),
                max_threads: max_threads.max(1),
                keep_alive,
                spawned: AtomicUsize::new(0),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.pool
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the pool; the returned job is bound to the current loop (E2).
    /// Awaiting the [`JobHandle`] moves the result out (no `T: Clone` needed).
    ///
    /// ```
    /// let exec = evloop::Executor::new(1);
    /// let out = evloop::run(async {
    ///     exec.submit(|| std::process::Command::new("true").output()).await
    /// });
    /// assert!(out.unwrap().unwrap().status.success());
    /// exec.shutdown(true);
    /// ```
    ///
    /// # Panics
    ///
    /// Off a loop thread (use [`submit_to`](Self::submit_to) there).
    #[track_caller]
    pub fn submit<T, F>(&self, f: F) -> JobHandle<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let owner = LoopHandle::try_current().unwrap_or_else(|| {
            panic!(
                "evloop: Executor::submit: no running event loop on this thread; use \
                 Executor::submit_to(&handle, f) from other threads"
            )
        });
        self.submit_to(&owner, f)
    }

    /// Runs `f` on the pool with a job bound to `owner`; callable from any thread
    /// (E2). A panic in `f` becomes the job's exception; cancelling the job before `f`
    /// starts means `f` never runs. After [`shutdown`](Self::shutdown) the job already
    /// holds `Error::InvalidState("executor shut down")` (E3). If `owner` is closed,
    /// `f` is dropped without running and the job is already cancelled (L14).
    #[track_caller]
    pub fn submit_to<T, F>(&self, owner: &LoopHandle, f: F) -> JobHandle<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        self.submit_fallible(owner, move || Ok(f()))
    }

    /// The job behind every `submit`: `f`'s `Err` becomes the future's exception.
    #[track_caller]
    pub(crate) fn submit_fallible<T, F>(&self, owner: &LoopHandle, f: F) -> JobHandle<T>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, Error> + Send + 'static,
    {
        if owner.is_closed() {
            log::debug!(target: "evloop", "job submitted to closed loop #{}: dropped", owner.id());
            return JobHandle::from(crate::handle::closed_future(owner));
        }
        let fut = Future::with_loop(owner);
        let job: BoxedJob = Box::new(JobCell {
            f,
            result: fut.clone(),
        });
        if let Err(job) = self.push(job) {
            job.fail(Error::InvalidState(InvalidStateError::new(
                "executor shut down",
            )));
        }
        JobHandle::from(fut)
    }

    /// Queues a job, waking an idle thread or starting one. `Err` after shutdown.
    fn push(&self, job: BoxedJob) -> Result<(), BoxedJob> {
        let mut state = self.lock();
        if state.shutdown {
            return Err(job);
        }
        state.queue.push_back(job);
        if state.idle > state.notified {
            state.notified += 1;
            drop(state);
            self.pool.job_ready.notify_one();
        } else if state.threads < self.pool.max_threads {
            state.threads += 1;
            let n = self.pool.spawned.fetch_add(1, Ordering::Relaxed) + 1;
            let pool = self.pool.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("evloop-blocking-{n}"))
                .spawn(move || worker(pool));
            match spawned {
                Ok(handle) => state.handles.push(handle),
                Err(e) => {
                    state.threads -= 1;
                    log::error!(target: "evloop", "cannot start a blocking-pool thread: {e}");
                    if state.threads == 0 {
                        // Nobody would ever run it: fail it now rather than hang.
                        if let Some(job) = state.queue.pop_back() {
                            drop(state);
                            job.fail(Error::new(e));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Stops accepting jobs (E3). Queued jobs still run; with `wait`, returns once every
    /// thread has exited. Idempotent.
    pub fn shutdown(&self, wait: bool) {
        let handles = {
            let mut state = self.lock();
            state.shutdown = true;
            std::mem::take(&mut state.handles)
        };
        self.pool.job_ready.notify_all();
        if wait {
            for handle in handles {
                let _ = handle.join();
            }
        }
    }

    /// Stops accepting jobs, drops the queued ones (their futures fail with
    /// `InvalidState("executor shut down")`, so nothing waits for them) and waits up to
    /// `timeout` for running ones; threads still busy then are detached (R5). Returns
    /// whether every thread exited in time.
    pub(crate) fn shutdown_now(&self, timeout: Duration) -> bool {
        let dropped = {
            let mut state = self.lock();
            state.shutdown = true;
            std::mem::take(&mut state.queue)
        };
        self.pool.job_ready.notify_all();
        for job in dropped {
            job.fail(Error::InvalidState(InvalidStateError::new(
                "executor shut down",
            )));
        }
        let deadline = crate::handle::deadline_after(Instant::now(), timeout);
        let mut state = self.lock();
        while state.threads > 0 {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = self
                .pool
                .all_exited
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    /// Whether [`shutdown`](Self::shutdown) was called.
    pub fn is_shutdown(&self) -> bool {
        self.lock().shutdown
    }

    /// Threads alive in the pool.
    pub fn threads(&self) -> usize {
        self.lock().threads
    }

    /// Jobs queued and not started.
    pub fn queued_jobs(&self) -> usize {
        self.lock().queue.len()
    }

    /// The maximum number of threads.
    pub fn max_threads(&self) -> usize {
        self.pool.max_threads
    }
}

/// Runs `f` on the current loop's default executor (tokio's `spawn_blocking`, asyncio's
/// `loop.run_in_executor(None, f)`). Awaiting the [`JobHandle`] moves the value out,
/// so `T` need not be `Clone` (an `io::Result<Output>`, a `File`);
/// [`JobHandle::future`] gives a shareable `Future<T>` view.
///
/// ```
/// let text = evloop::run(async {
///     evloop::spawn_blocking(|| std::fs::read_to_string("Cargo.toml")).await
/// });
/// assert!(text.unwrap().unwrap().contains("[package]"));
/// ```
///
/// # Panics
///
/// Off a loop thread (use [`LoopHandle::run_in_executor`] with a handle there).
#[track_caller]
pub fn spawn_blocking<T, F>(f: F) -> JobHandle<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let owner = LoopHandle::try_current().unwrap_or_else(|| {
        panic!(
            "evloop::spawn_blocking: no running event loop on this thread; use \
             LoopHandle::run_in_executor from other threads"
        )
    });
    owner.run_in_executor(None, f)
}

/// A job on a blocking executor ([`spawn_blocking`], [`Executor::submit`],
/// [`LoopHandle::run_in_executor`]): like [`Task<T>`](crate::Task), awaiting it yields
/// `Result<T, Error>` and *moves* the value out, so `T` need not be `Clone`. It derefs
/// to its [`Future<T>`] (`done`, `cancel` — which keeps a job that has not started
/// from running —, `add_done_callback`, …); [`future`](Self::future) gives a cloneable
/// view to share the result (then `T: Clone` to await it). Dropping the handle does
/// not cancel the job.
///
/// ```
/// evloop::run(async {
///     let job = evloop::spawn_blocking(|| std::fs::File::open("Cargo.toml"));
///     let view = job.future();
///     let file = job.await.unwrap().unwrap(); // moved out: `File` is not `Clone`
///     drop(file);
///     assert!(view.result_is_taken());
/// });
/// ```
pub struct JobHandle<T> {
    fut: Future<T>,
}

impl<T: Send + 'static> JobHandle<T> {
    /// A cloneable `Future<T>` view of the job.
    pub fn future(&self) -> Future<T> {
        self.fut.clone()
    }
}

impl<T> From<Future<T>> for JobHandle<T> {
    fn from(fut: Future<T>) -> JobHandle<T> {
        JobHandle { fut }
    }
}

impl<T: Send + 'static> From<JobHandle<T>> for Future<T> {
    fn from(job: JobHandle<T>) -> Future<T> {
        job.fut
    }
}

impl<T: Send + 'static> std::ops::Deref for JobHandle<T> {
    type Target = Future<T>;

    fn deref(&self) -> &Future<T> {
        &self.fut
    }
}

impl<T: Send + 'static> std::future::Future for JobHandle<T> {
    type Output = Result<T, Error>;

    /// The job's result, moved out. A loop-native await (T3): cancelling the awaiting
    /// task cancels the job (which then never starts, if it had not).
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        // (Budgeted by `poll_outcome`, as every future await.)
        self.fut.poll_outcome(cx, |done| done.result_taken())
    }
}

impl<T: Send + 'static> fmt::Debug for JobHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("JobHandle").field(&self.fut).finish()
    }
}

/// Support for `#[run_on_executor]`; not a public API.
#[doc(hidden)]
pub mod __private {
    use super::{Executor, Future, LoopHandle};
    use crate::error::Error;

    fn owner(method: &str) -> LoopHandle {
        LoopHandle::try_current().unwrap_or_else(|| {
            panic!(
                "evloop: the #[run_on_executor] method `{method}` was called with no running \
                 event loop on this thread; its future is bound to the calling loop: call it \
                 from a task or callback running on an evloop loop"
            )
        })
    }

    /// A method whose body returns `R`: `Future<R>`.
    #[track_caller]
    pub fn submit<R, F>(executor: &Executor, method: &str, f: F) -> Future<R>
    where
        R: Send + 'static,
        F: FnOnce() -> R + Send + 'static,
    {
        executor.submit_to(&owner(method), f).into()
    }

    /// A method whose body returns `Result<T, E>`: `Future<T>`, with the `Err` as the
    /// future's exception (Tornado's `run_on_executor`).
    #[track_caller]
    pub fn submit_result<T, E, F>(executor: &Executor, method: &str, f: F) -> Future<T>
    where
        T: Send + 'static,
        E: Into<Error>,
        F: FnOnce() -> Result<T, E> + Send + 'static,
    {
        executor
            .submit_fallible(&owner(method), move || f().map_err(Into::into))
            .into()
    }
}

fn worker(pool: Arc<Pool>) {
    let mut state = pool.state.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        if let Some(job) = state.queue.pop_front() {
            drop(state);
            // A job catches its own panics; this guards the thread against a panicking
            // destructor of a skipped job's closure.
            let _ = catch_unwind(AssertUnwindSafe(|| job.run()));
            state = pool.state.lock().unwrap_or_else(PoisonError::into_inner);
            continue;
        }
        if state.shutdown {
            break;
        }
        state.idle += 1;
        let (next, timeout) = pool
            .job_ready
            .wait_timeout(state, pool.keep_alive)
            .unwrap_or_else(PoisonError::into_inner);
        state = next;
        state.idle -= 1;
        if state.notified > 0 {
            state.notified -= 1;
        } else if timeout.timed_out() && state.queue.is_empty() {
            break;
        }
    }
    state.threads -= 1;
    if state.threads == 0 {
        pool.all_exited.notify_all();
    }
}

impl fmt::Debug for Executor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("Executor")
            .field("max_threads", &self.pool.max_threads)
            .field("threads", &state.threads)
            .field("queued_jobs", &state.queue.len())
            .field("shutdown", &state.shutdown)
            .finish()
    }
}

fn _assert_kinds() {
    fn kinds<T: Send + Sync + Clone>() {}
    kinds::<Executor>();
}
