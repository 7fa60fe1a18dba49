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

struct JobCell<T, F> {
    f: F,
    result: Future<T>,
}

impl<T, F> Job for JobCell<T, F>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    fn run(self: Box<Self>) {
        let JobCell { f, result } = *self;
        if result.done() {
            return; // cancelled before it started (E2)
        }
        let outcome = catch_unwind(AssertUnwindSafe(f));
        // A future cancelled meanwhile refuses the outcome: it is dropped.
        let _ = match outcome {
            Ok(value) => result.set_result(value),
            Err(payload) => result.set_exception(Error::from_panic(payload)),
        };
    }

    fn fail(self: Box<Self>, error: Error) {
        let JobCell { f, result } = *self;
        // The job never runs, but dropping it runs its captures' destructors: user
        // code, which must not unwind into the shutdown (R5, L9).
        if let Err(error) = drop_catching(f) {
            result.get_loop().call_exception_handler(
                ExceptionContext::new("Exception while dropping an executor job that never ran")
                    .with_exception(error),
            );
        }
        let _ = result.set_exception(error);
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

    /// Runs `f` on the pool; the returned future is bound to the current loop (E2).
    ///
    /// # Panics
    ///
    /// Off a loop thread (use [`submit_to`](Self::submit_to) there).
    #[track_caller]
    pub fn submit<T, F>(&self, f: F) -> Future<T>
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

    /// Runs `f` on the pool with a future bound to `owner`; callable from any thread
    /// (E2). A panic in `f` becomes the future's exception; cancelling the future
    /// before `f` starts means `f` never runs. After [`shutdown`](Self::shutdown) the
    /// future already holds `Error::InvalidState("executor shut down")` (E3). If
    /// `owner` is closed, `f` is dropped without running and the future is already
    /// cancelled (L14).
    #[track_caller]
    pub fn submit_to<T, F>(&self, owner: &LoopHandle, f: F) -> Future<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        if owner.is_closed() {
            log::debug!(target: "evloop", "job submitted to closed loop #{}: dropped", owner.id());
            return crate::handle::closed_future(owner);
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
        fut
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
/// `loop.run_in_executor(None, f)`). Await it with `.await` (`T: Clone`) or move the
/// value out with [`Future::take`].
///
/// ```
/// let text = evloop::run(async {
///     evloop::spawn_blocking(|| std::fs::read_to_string("Cargo.toml")).take().await
/// });
/// assert!(text.unwrap().unwrap().contains("[package]"));
/// ```
///
/// # Panics
///
/// Off a loop thread (use [`LoopHandle::run_in_executor`] with a handle there).
#[track_caller]
pub fn spawn_blocking<T, F>(f: F) -> Future<T>
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
