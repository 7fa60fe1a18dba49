//! The runtime's default executor (SPEC E4, R1, R5, L13, L14) and executor futures under
//! cooperative cancellation (T3): `LoopHandle::run_in_executor(None | Some(&exec), f)`,
//! `evloop::spawn_blocking`, the builder's `blocking_threads` / `thread_keep_alive` /
//! `shutdown_timeout`, `shutdown_default_executor`, and what dropping the runtime does
//! to queued and running jobs.
//!
//! Jobs that must stay "running" block on a channel or a `Barrier` that the test
//! releases; nothing here depends on how long anything takes.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex, Once};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use common::{DropSpy, Watchdog, entries, new_log, push};
use evloop::JobHandle;
use evloop::{Error, Executor, Future, LoopHandle, Runtime};

fn flag() -> Arc<AtomicBool> {
    Arc::new(AtomicBool::new(false))
}

fn whoami() -> (String, ThreadId) {
    let me = thread::current();
    (me.name().unwrap_or("<unnamed>").to_string(), me.id())
}

fn assert_pool_thread_name(name: &str) {
    let n = name
        .strip_prefix("evloop-blocking-")
        .unwrap_or_else(|| panic!("pool thread named {name:?}, expected evloop-blocking-N"));
    assert!(
        n.parse::<u64>().is_ok_and(|n| n >= 1),
        "pool thread named {name:?}"
    );
}

/// The message of an `Error::InvalidState`; panics on any other error.
fn invalid_state_message(err: &Error) -> String {
    match err {
        Error::InvalidState(e) => e.message().to_string(),
        other => panic!("expected Error::InvalidState, got {other:?}"),
    }
}

fn describe<T: std::fmt::Debug>(r: &Result<T, Error>) -> String {
    match r {
        Ok(v) => format!("ok {v:?}"),
        Err(Error::Cancelled(c)) => format!("cancelled {:?}", c.message()),
        Err(e) => format!("error {e}"),
    }
}

use common::eventually;

/// Blocks the calling (non-loop) thread until `cond` holds; fails after 10 s.
fn eventually_blocking(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "still not true after 10 s: {what}"
        );
        thread::sleep(Duration::from_millis(1));
    }
}

/// A job that reports it started, then blocks until released: holds one pool thread.
struct Blocker {
    started: mpsc::Receiver<()>,
    release: mpsc::Sender<()>,
}

impl Blocker {
    fn new() -> (
        impl FnOnce() -> (String, ThreadId) + Send + 'static,
        Blocker,
    ) {
        let (started_tx, started) = mpsc::channel();
        let (release, release_rx) = mpsc::channel::<()>();
        let job = move || {
            started_tx.send(()).unwrap();
            release_rx.recv().unwrap();
            whoami()
        };
        (job, Blocker { started, release })
    }

    fn wait_started(&self) {
        self.started
            .recv_timeout(Duration::from_secs(10))
            .expect("the blocking job never started");
    }

    fn release(&self) {
        self.release.send(()).unwrap();
    }
}

/// Panics seen on any thread of this binary, as (thread, message). The previous hook
/// still prints them.
static PANICS: Mutex<Vec<(ThreadId, String)>> = Mutex::new(Vec::new());

fn record_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = common::panic_message(info.payload());
            PANICS
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push((thread::current().id(), msg));
            previous(info);
        }));
    });
}

fn panics_on(thread: ThreadId) -> Vec<String> {
    PANICS
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, _)| *t == thread)
        .map(|(_, m)| m.clone())
        .collect()
}

// ---------------------------------------------------------------------------------
// E4: the three ways in
// ---------------------------------------------------------------------------------

#[test]
fn run_in_executor_none_runs_on_the_default_pool_bound_to_the_loop() {
    let rt = Runtime::new().unwrap();
    let handle = rt.handle();
    rt.block_on(async {
        let loop_ = LoopHandle::current();
        assert_eq!(loop_.stats().executor_threads, 0, "started on first use");
        let fut = loop_.run_in_executor(None, whoami);
        assert_eq!(fut.get_loop(), loop_);
        let (name, id) = fut.await.unwrap();
        assert_pool_thread_name(&name);
        assert_ne!(id, thread::current().id());
        assert_eq!(loop_.stats().executor_threads, 1);
    });

    // From another thread, with the loop running meanwhile.
    let h = handle.clone();
    let fut = thread::spawn(move || h.run_in_executor(None, || whoami().0))
        .join()
        .unwrap();
    assert_eq!(fut.get_loop(), handle);
    assert_pool_thread_name(&rt.block_on(fut).unwrap());
}

#[test]
fn spawn_blocking_uses_the_default_executor_of_the_current_loop() {
    let rt = Runtime::builder().blocking_threads(1).build().unwrap();
    rt.block_on(async {
        let loop_ = LoopHandle::current();
        let via_handle = loop_.run_in_executor(None, whoami).await.unwrap();
        let fut = evloop::spawn_blocking(whoami);
        assert_eq!(fut.get_loop(), loop_);
        let via_spawn = fut.await.unwrap();
        // One default pool of one thread: both ran on the same thread.
        assert_eq!(via_spawn, via_handle);
        assert_eq!(loop_.stats().executor_threads, 1);
    });
}

#[test]
fn spawn_blocking_off_a_loop_thread_panics_with_a_clear_message() {
    let ran = flag();
    let r = ran.clone();
    let payload = std::panic::catch_unwind(move || {
        evloop::spawn_blocking(move || r.store(true, Ordering::SeqCst))
    })
    .expect_err("spawn_blocking without a running loop must panic");
    let msg = common::panic_message(payload.as_ref());
    assert!(msg.contains("no running event loop"), "message: {msg}");
    assert!(
        msg.contains("run_in_executor"),
        "the message names the fix: {msg}"
    );
    assert!(!ran.load(Ordering::SeqCst));
}

#[test]
fn run_in_executor_some_uses_that_executor_and_not_the_default_one() {
    let exec = Executor::new(1);
    let e = exec.clone();
    common::run_guarded(async move {
        let loop_ = LoopHandle::current();
        let fut = loop_.run_in_executor(Some(&e), whoami);
        assert_eq!(fut.get_loop(), loop_);
        let (name, _) = fut.await.unwrap();
        assert_pool_thread_name(&name);
        assert_eq!(e.threads(), 1, "the explicit executor ran it");
        let s = loop_.stats();
        assert_eq!(
            (s.executor_threads, s.executor_queued_jobs),
            (0, 0),
            "the default executor was not started"
        );
    });
    exec.shutdown(true);
}

// ---------------------------------------------------------------------------------
// R1: the builder's options reach the default executor
// ---------------------------------------------------------------------------------

#[test]
fn the_default_executor_honours_blocking_threads() {
    const MAX: usize = 2;
    const JOBS: usize = 40;
    let rt = Runtime::builder().blocking_threads(MAX).build().unwrap();
    let running = Arc::new(AtomicUsize::new(0));
    let max_running = Arc::new(AtomicUsize::new(0));
    let max_threads_seen = Arc::new(AtomicUsize::new(0));
    let (mr, mts) = (max_running.clone(), max_threads_seen.clone());
    rt.block_on(async move {
        let loop_ = LoopHandle::current();
        // The first MAX jobs hold every thread until the loop thread has looked.
        let arrived = Arc::new(Barrier::new(MAX + 1));
        let leave = Arc::new(Barrier::new(MAX + 1));
        let jobs: Vec<JobHandle<usize>> = (0..JOBS)
            .map(|i| {
                let (running, mr, mts, h) =
                    (running.clone(), mr.clone(), mts.clone(), loop_.clone());
                let barriers = (i < MAX).then(|| (arrived.clone(), leave.clone()));
                loop_.run_in_executor(None, move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    mr.fetch_max(now, Ordering::SeqCst);
                    mts.fetch_max(h.stats().executor_threads as usize, Ordering::SeqCst);
                    if let Some((arrived, leave)) = barriers {
                        arrived.wait();
                        leave.wait();
                    } else {
                        thread::yield_now();
                    }
                    running.fetch_sub(1, Ordering::SeqCst);
                    i
                })
            })
            .collect();
        arrived.wait();
        let at_cap = loop_.stats();
        leave.wait();
        assert_eq!(at_cap.executor_threads, MAX as u64);
        assert_eq!(at_cap.executor_queued_jobs, (JOBS - MAX) as u64);
        mts.fetch_max(at_cap.executor_threads as usize, Ordering::SeqCst);
        assert_eq!(
            evloop::gather(jobs).await.unwrap(),
            (0..JOBS).collect::<Vec<_>>()
        );
        mts.fetch_max(loop_.stats().executor_threads as usize, Ordering::SeqCst);
    });
    assert_eq!(max_running.load(Ordering::SeqCst), MAX);
    assert!(max_threads_seen.load(Ordering::SeqCst) <= MAX);
}

#[test]
fn the_default_executor_honours_thread_keep_alive() {
    let rt = Runtime::builder()
        .blocking_threads(4)
        .thread_keep_alive(Duration::from_millis(50))
        .build()
        .unwrap();
    rt.block_on(async {
        let loop_ = LoopHandle::current();
        let barrier = Arc::new(Barrier::new(2));
        let jobs: Vec<JobHandle<ThreadId>> = (0..2)
            .map(|_| {
                let b = barrier.clone();
                loop_.run_in_executor(None, move || {
                    b.wait();
                    thread::current().id()
                })
            })
            .collect();
        let ids = evloop::gather(jobs).await.unwrap();
        assert_ne!(ids[0], ids[1], "two threads ran at once");
        eventually("the idle default-pool threads exited after 50 ms", || {
            loop_.stats().executor_threads == 0
        })
        .await;
        // It is not shut down: the next job starts a thread again.
        assert_eq!(loop_.run_in_executor(None, || 1).await.unwrap(), 1);
    });
}

// ---------------------------------------------------------------------------------
// E4: shutdown_default_executor
// ---------------------------------------------------------------------------------

#[test]
fn after_shutdown_default_executor_run_in_executor_none_fails_but_explicit_executors_work() {
    let exec = Executor::new(1);
    let e = exec.clone();
    let ran = flag();
    let r = ran.clone();
    let (spy, probe) = DropSpy::new();
    common::run_guarded(async move {
        let loop_ = LoopHandle::current();
        assert_eq!(loop_.run_in_executor(None, || 1).await.unwrap(), 1);
        loop_.shutdown_default_executor().await.unwrap();
        assert_eq!(loop_.stats().executor_threads, 0);

        let r2 = r.clone();
        let fut: JobHandle<i32> = loop_.run_in_executor(None, move || {
            let _keep = &spy;
            r2.store(true, Ordering::SeqCst);
            2
        });
        assert!(fut.done(), "already failed when returned");
        assert_eq!(
            invalid_state_message(&fut.clone().await.unwrap_err()),
            "executor shut down"
        );
        let fut = evloop::spawn_blocking(move || r.store(true, Ordering::SeqCst));
        assert!(fut.done());
        assert_eq!(
            invalid_state_message(&fut.result().unwrap_err()),
            "executor shut down"
        );

        // Explicit executors are unaffected.
        assert_eq!(loop_.run_in_executor(Some(&e), || 3).await.unwrap(), 3);
        // A second shutdown is harmless.
        loop_.shutdown_default_executor().await.unwrap();
    });
    assert!(!ran.load(Ordering::SeqCst), "a refused job ran");
    assert_eq!(probe.drops(), 1, "the refused closure was dropped");
    exec.shutdown(true);
}

#[test]
fn shutdown_default_executor_before_first_use_also_refuses_later_jobs() {
    common::run_guarded(async {
        let loop_ = LoopHandle::current();
        loop_.shutdown_default_executor().await.unwrap();
        let fut = loop_.run_in_executor(None, || 1);
        assert!(fut.done());
        assert_eq!(
            invalid_state_message(&fut.result().unwrap_err()),
            "executor shut down"
        );
        let s = loop_.stats();
        assert_eq!((s.executor_threads, s.executor_queued_jobs), (0, 0));
    });
}

#[test]
fn shutdown_default_executor_waits_for_running_and_queued_jobs() {
    let rt = Runtime::builder().blocking_threads(1).build().unwrap();
    let queued_ran = flag();
    let q = queued_ran.clone();
    rt.block_on(async move {
        let loop_ = LoopHandle::current();
        let (job, blocker) = Blocker::new();
        let busy = loop_.run_in_executor(None, job);
        blocker.wait_started();
        let queued = loop_.run_in_executor(None, move || q.store(true, Ordering::SeqCst));

        let shut_down = flag();
        let s = shut_down.clone();
        let shutdown = loop_.shutdown_default_executor();
        let waiter = evloop::create_task(async move {
            shutdown.await?;
            s.store(true, Ordering::SeqCst);
            Ok::<_, Error>(())
        });
        // New jobs are refused at once.
        assert!(loop_.run_in_executor(None, || ()).done());

        // It cannot complete while the running job is blocked.
        common::yield_times(20).await;
        evloop::time::sleep(Duration::from_millis(20))
            .await
            .unwrap();
        assert!(
            !shut_down.load(Ordering::SeqCst),
            "completed before the running job"
        );
        assert!(!waiter.done());

        blocker.release();
        waiter.await.unwrap();
        assert!(busy.done(), "the running job finished first");
        busy.await.unwrap();
        assert!(queued.done(), "the queued job finished first");
        queued.await.unwrap();
        assert_eq!(loop_.stats().executor_threads, 0);
    });
    assert!(queued_ran.load(Ordering::SeqCst));
}

// ---------------------------------------------------------------------------------
// T3: a task suspended on an executor future
// ---------------------------------------------------------------------------------

#[test]
fn cancelling_a_task_awaiting_a_queued_job_resumes_it_at_once_and_skips_the_job() {
    let rt = Runtime::builder().blocking_threads(1).build().unwrap();
    let log = new_log();
    let l = log.clone();
    let ran = flag();
    let r = ran.clone();
    rt.block_on(async move {
        let loop_ = LoopHandle::current();
        let (job, blocker) = Blocker::new();
        let busy = loop_.run_in_executor(None, job);
        blocker.wait_started(); // the only thread is held

        let awaited: Arc<Mutex<Option<Future<u32>>>> = Arc::new(Mutex::new(None));
        let task = {
            let (awaited, l, r, h) = (awaited.clone(), l.clone(), r.clone(), loop_.clone());
            evloop::create_task(async move {
                let fut = h.run_in_executor(None, move || {
                    r.store(true, Ordering::SeqCst);
                    5
                });
                *awaited.lock().unwrap() = Some(fut.clone());
                let res = fut.await;
                push(&l, describe(&res));
                res?;
                push(&l, "unreachable");
                Ok::<_, Error>(())
            })
        };
        eventually("the task awaits the job", || {
            awaited.lock().unwrap().is_some()
        })
        .await;
        let fut = awaited.lock().unwrap().clone().unwrap();
        assert!(task.cancel_with("enough"));
        assert!(fut.cancelled(), "the executor future is cancelled at once");

        let err = task.future().await.unwrap_err();
        assert!(err.is_cancelled());
        assert!(task.cancelled());
        assert!(
            !busy.done(),
            "the task resumed while the pool was still busy: it did not wait for it"
        );

        blocker.release();
        busy.await.unwrap();
        // FIFO on one thread: the cancelled job's turn has passed.
        assert_eq!(loop_.run_in_executor(None, || 7).await.unwrap(), 7);
    });
    assert_eq!(entries(&log), ["cancelled Some(\"enough\")"]);
    assert!(!ran.load(Ordering::SeqCst), "the skipped job ran");
}

#[test]
fn cancelling_a_task_awaiting_a_running_job_resumes_it_at_once_and_the_job_finishes() {
    let rt = Runtime::builder().blocking_threads(1).build().unwrap();
    let log = new_log();
    let l = log.clone();
    let finished = flag();
    let f = finished.clone();
    rt.block_on(async move {
        let loop_ = LoopHandle::current();
        let (started_tx, started_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let fut: JobHandle<u32> = loop_.run_in_executor(None, move || {
            started_tx.send(()).unwrap();
            release_rx.recv().unwrap();
            f.store(true, Ordering::SeqCst);
            9
        });
        started_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        let task = {
            let (fut, l) = (fut.clone(), l.clone());
            evloop::create_task(async move {
                let res = fut.await;
                push(&l, describe(&res));
                res
            })
        };
        common::yield_times(3).await; // the task is suspended on the job's future
        assert!(!task.done());
        assert!(task.cancel());
        assert!(fut.cancelled());
        assert!(task.future().await.unwrap_err().is_cancelled());
        assert!(
            !finished.load(Ordering::SeqCst),
            "resumed before the job ended"
        );

        release_tx.send(()).unwrap();
        eventually("the running job finished", || {
            finished.load(Ordering::SeqCst)
        })
        .await;
        assert_eq!(loop_.run_in_executor(None, || 1).await.unwrap(), 1);
        assert!(fut.cancelled(), "its result was dropped");
    });
    assert_eq!(entries(&log), ["cancelled None"]);
}

// ---------------------------------------------------------------------------------
// R5 / L14: dropping the runtime
// ---------------------------------------------------------------------------------

/// Pins R5 and L14: a job still running when its runtime is dropped is detached after
/// `shutdown_timeout` (the drop returns), then finishes on its thread after the loop
/// closed — completing its future there does not panic, its done callback never runs,
/// and its closure, result and callback are all dropped.
#[test]
fn a_job_outliving_its_runtime_finishes_safely_after_the_loop_closed() {
    record_panics();
    let (closure_spy, closure_probe) = DropSpy::new();
    let (result_spy, result_probe) = DropSpy::new();
    let (callback_spy, callback_probe) = DropSpy::new();
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let finished = flag();
    let callback_ran = flag();
    let job_thread = Arc::new(Mutex::new(None));

    let rt = Runtime::builder()
        .shutdown_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let handle = rt.handle();
    {
        let (f, jt, cr) = (finished.clone(), job_thread.clone(), callback_ran.clone());
        rt.block_on(async move {
            let fut = LoopHandle::current().run_in_executor(None, move || {
                let _keep = &closure_spy;
                *jt.lock().unwrap() = Some(thread::current().id());
                started_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                f.store(true, Ordering::SeqCst);
                result_spy
            });
            fut.add_done_callback(move |_| {
                let _keep = &callback_spy;
                cr.store(true, Ordering::SeqCst);
            });
            started_rx.recv_timeout(Duration::from_secs(10)).unwrap();
            // No handle of `fut` is kept: only the job holds it now.
        });
    }
    {
        let _watchdog = Watchdog::new(
            "dropping a runtime with a blocked job",
            Duration::from_secs(10),
        );
        drop(rt);
    }
    assert!(handle.is_closed());
    assert!(!finished.load(Ordering::SeqCst), "the job is still blocked");
    assert_eq!(closure_probe.drops(), 0);

    release_tx.send(()).unwrap();
    eventually_blocking("the detached job finished and dropped its result", || {
        finished.load(Ordering::SeqCst) && result_probe.drops() == 1
    });
    eventually_blocking("the done callback was dropped", || {
        callback_probe.drops() == 1
    });
    assert_eq!(closure_probe.drops(), 1);
    assert!(
        !callback_ran.load(Ordering::SeqCst),
        "a callback ran on a closed loop"
    );
    let job_thread = job_thread
        .lock()
        .unwrap()
        .expect("the job recorded its thread");
    assert_eq!(
        panics_on(job_thread),
        Vec::<String>::new(),
        "the pool thread panicked"
    );
}

/// Pins R5: at drop, queued jobs never run and their futures fail with
/// `InvalidState("executor shut down")`; a running job that ends within
/// `shutdown_timeout` has ended by the time the drop returns.
#[test]
fn dropping_the_runtime_fails_queued_jobs_and_waits_for_running_ones() {
    let rt = Runtime::builder()
        .blocking_threads(1)
        .shutdown_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let finished = flag();
    let ran: Vec<Arc<AtomicBool>> = (0..3).map(|_| flag()).collect();
    let spies: Vec<_> = (0..3).map(|_| DropSpy::new()).collect();
    let probes: Vec<_> = spies.iter().map(|(_, p)| p.clone()).collect();
    let (release_tx, release_rx) = mpsc::channel::<()>();

    let (running, queued) = {
        let (f, ran) = (finished.clone(), ran.clone());
        rt.block_on(async move {
            let loop_ = LoopHandle::current();
            let (started_tx, started_rx) = mpsc::channel();
            let running: JobHandle<&str> = loop_.run_in_executor(None, move || {
                started_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                // Still busy for a while after the release, so a drop that does not
                // wait for it returns first.
                thread::sleep(Duration::from_millis(50));
                f.store(true, Ordering::SeqCst);
                "finished"
            });
            started_rx.recv_timeout(Duration::from_secs(10)).unwrap();
            let queued: Vec<JobHandle<usize>> = spies
                .into_iter()
                .zip(ran)
                .enumerate()
                .map(|(i, ((spy, _), ran))| {
                    loop_.run_in_executor(None, move || {
                        let _keep = &spy;
                        ran.store(true, Ordering::SeqCst);
                        i
                    })
                })
                .collect();
            assert_eq!(loop_.stats().executor_queued_jobs, 3);
            (running, queued)
        })
    };

    // Release the running job only once the drop has failed the queued ones: had they
    // not been dropped, the freed thread would run them.
    let watched: Vec<Future<usize>> = queued.iter().map(JobHandle::future).collect();
    let releaser = thread::spawn(move || {
        eventually_blocking("the drop failed the queued jobs", || {
            watched.iter().all(Future::done)
        });
        release_tx.send(()).unwrap();
    });
    {
        let _watchdog = Watchdog::new(
            "dropping a runtime with queued jobs",
            Duration::from_secs(30),
        );
        drop(rt);
    }
    assert!(
        finished.load(Ordering::SeqCst),
        "the drop returned before the running job (which ended within the timeout) ended"
    );
    releaser.join().unwrap();

    assert!(running.done());
    assert_eq!(running.result().unwrap(), "finished");
    for (i, fut) in queued.iter().enumerate() {
        assert!(fut.done(), "queued job {i}: its future is done");
        assert!(!fut.cancelled());
        assert_eq!(
            invalid_state_message(&fut.result().unwrap_err()),
            "executor shut down"
        );
        assert!(!ran[i].load(Ordering::SeqCst), "queued job {i} ran");
        assert_eq!(
            probes[i].drops(),
            1,
            "queued job {i}: its closure was dropped"
        );
    }
}

/// Pins L14: on a closed loop `run_in_executor` never runs the closure — neither on
/// the default executor nor on an explicit one ("Scheduling on a closed loop (`call_*`,
/// `spawn`, `run_in_executor`) never panics and never runs the callback").
///
/// Regression pin — FAILS at the time of writing: `run_in_executor(Some(&exec), f)`
/// only checks `is_closed()` on the `None` path, so `f` is submitted to `exec` and runs.
#[test]
fn run_in_executor_on_a_closed_loop_never_runs_the_closure() {
    let exec = Executor::new(1);
    let rt = Runtime::new().unwrap();
    let handle = rt.handle();
    rt.block_on(async { LoopHandle::current().run_in_executor(None, || ()).await })
        .unwrap();
    drop(rt);
    assert!(handle.is_closed());

    let ran_default = flag();
    let r = ran_default.clone();
    let fut = handle.run_in_executor(None, move || r.store(true, Ordering::SeqCst));
    assert!(fut.done(), "already done (L14)");

    let ran_explicit = flag();
    let r = ran_explicit.clone();
    let fut = handle.run_in_executor(Some(&exec), move || r.store(true, Ordering::SeqCst));
    exec.shutdown(true); // every job the executor accepted has run now
    assert!(
        !ran_default.load(Ordering::SeqCst),
        "ran on the default executor of a closed loop"
    );
    assert!(
        !ran_explicit.load(Ordering::SeqCst),
        "L14: run_in_executor(Some(&exec), f) on a closed loop ran f"
    );
    assert!(fut.done(), "already done (L14)");
}

/// Pins L14's wording: scheduling on a closed loop "returns a handle that is already
/// cancelled (or a future already cancelled) and logs at debug level" — as `spawn`
/// does with its task.
///
/// Regression pin — FAILS at the time of writing: `run_in_executor(None, f)` on a
/// closed loop returns a future holding `Error::InvalidState("executor shut down")`
/// (not cancelled) and logs nothing.
#[test]
fn run_in_executor_on_a_closed_loop_returns_a_cancelled_future() {
    common::init_logger();
    let rt = Runtime::new().unwrap();
    let handle = rt.handle();
    drop(rt);
    let marker = format!("closed loop #{}", handle.id());

    let fut = handle.run_in_executor(None, || ());
    let logged: Vec<String> = common::logs_containing(&marker)
        .into_iter()
        .filter(|line| line.starts_with("DEBUG"))
        .collect();
    assert!(fut.done());
    assert!(
        fut.cancelled(),
        "run_in_executor(None, f) on a closed loop: expected a cancelled future (L14), got {:?}",
        fut.result()
    );
    assert!(
        !logged.is_empty(),
        "run_in_executor on a closed loop logged nothing at debug level"
    );

    // The reference behaviour, for comparison.
    let task = handle.spawn(async { Ok::<_, Error>(()) });
    assert!(task.cancelled(), "spawn on a closed loop: a cancelled task");
}
