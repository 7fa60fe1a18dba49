//! The blocking thread pool on its own (SPEC E1–E3): `Executor::new` /
//! `with_keep_alive`, `submit` / `submit_to`, panics, cancellation before and during a
//! job, `shutdown`, lazy start and keep-alive exit of threads, the `max_threads` cap,
//! `Future::take` of non-`Clone` results, and the default executor's gauges in
//! `LoopHandle::stats` (L13).
//!
//! Jobs that must stay "running" block on a channel or a `Barrier` that the test
//! releases; nothing here depends on how long anything takes.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::thread::{self, ThreadId};
use std::time::Duration;

use common::{DropSpy, SplitMix64, entries, new_log, push};
use evloop::JobHandle;
use evloop::{Error, Executor, LoopHandle, Runtime};

fn flag() -> Arc<AtomicBool> {
    Arc::new(AtomicBool::new(false))
}

/// The calling thread's name and id (what a job reports about where it ran).
fn whoami() -> (String, ThreadId) {
    let me = thread::current();
    (me.name().unwrap_or("<unnamed>").to_string(), me.id())
}

/// `evloop-blocking-N` with a positive number `N`.
fn assert_pool_thread_name(name: &str) {
    let n = name
        .strip_prefix("evloop-blocking-")
        .unwrap_or_else(|| panic!("pool thread named {name:?}, expected evloop-blocking-N"));
    let n: u64 = n
        .parse()
        .unwrap_or_else(|_| panic!("pool thread named {name:?}: N is not a number"));
    assert!(n >= 1, "pool thread numbers start at 1, got {name:?}");
}

/// The message of an `Error::InvalidState`; panics on any other error.
fn invalid_state_message(err: &Error) -> String {
    match err {
        Error::InvalidState(e) => e.message().to_string(),
        other => panic!("expected Error::InvalidState, got {other:?}"),
    }
}

/// The message of an `Error::Panic`; panics on any other error.
fn panic_error_message(err: &Error) -> String {
    match err {
        Error::Panic(p) => p.message().to_string(),
        other => panic!("expected Error::Panic, got {other:?}"),
    }
}

use common::eventually;

/// A job that reports it started, then blocks until released: holds one pool thread.
struct Blocker {
    started: mpsc::Receiver<()>,
    release: mpsc::Sender<()>,
}

impl Blocker {
    /// The job to submit and the handle that controls it.
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

    /// Blocks the calling thread until the job runs on a pool thread.
    fn wait_started(&self) {
        self.started
            .recv_timeout(Duration::from_secs(10))
            .expect("the blocking job never started");
    }

    fn release(&self) {
        self.release.send(()).unwrap();
    }
}

// ---------------------------------------------------------------------------------
// E2: submit, submit_to, where the result is produced and delivered
// ---------------------------------------------------------------------------------

#[test]
fn result_is_computed_on_a_named_pool_thread_and_delivered_on_the_loop_thread() {
    let exec = Executor::new(2);
    let e = exec.clone();
    common::run_guarded(async move {
        let loop_thread = thread::current().id();
        let fut = e.submit(whoami);
        assert_eq!(
            fut.get_loop(),
            LoopHandle::current(),
            "bound to the current loop"
        );
        let callback_thread = Arc::new(Mutex::new(None));
        let c = callback_thread.clone();
        fut.add_done_callback(move |_| *c.lock().unwrap() = Some(thread::current().id()));
        let (name, id) = fut.clone().await.unwrap();
        assert_pool_thread_name(&name);
        assert_ne!(id, loop_thread, "the job ran off the loop thread");
        eventually("the done callback ran", || {
            callback_thread.lock().unwrap().is_some()
        })
        .await;
        assert_eq!(
            *callback_thread.lock().unwrap(),
            Some(loop_thread),
            "the outcome is delivered on the loop thread"
        );
        assert_eq!(thread::current().id(), loop_thread);
    });
    exec.shutdown(true);
}

#[test]
fn submit_off_a_loop_thread_panics_with_a_clear_message() {
    let exec = Executor::new(1);
    let ran = flag();
    let r = ran.clone();
    let payload = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        exec.submit(move || r.store(true, Ordering::SeqCst))
    }))
    .expect_err("submit without a running loop must panic");
    let msg = common::panic_message(payload.as_ref());
    assert!(msg.contains("no running event loop"), "message: {msg}");
    assert!(
        msg.contains("submit_to"),
        "the message names the fix: {msg}"
    );
    assert_eq!(exec.threads(), 0, "nothing was started");
    assert_eq!(exec.queued_jobs(), 0, "nothing was queued");
    exec.shutdown(true);
    assert!(!ran.load(Ordering::SeqCst));
}

#[test]
fn submit_to_works_from_another_thread() {
    let rt = Runtime::new().unwrap();
    let handle = rt.handle();
    let exec = Executor::new(2);
    let (h, e) = (handle.clone(), exec.clone());
    let submitter = thread::spawn(move || {
        assert!(LoopHandle::try_current().is_none());
        e.submit_to(&h, || whoami().0)
    });
    let fut: JobHandle<String> = submitter.join().unwrap();
    assert_eq!(fut.get_loop(), handle);
    let name = rt.block_on(fut).unwrap();
    assert_pool_thread_name(&name);
    exec.shutdown(true);
}

#[test]
fn two_hundred_jobs_gathered_return_in_submission_order() {
    let exec = Executor::new(8);
    let e = exec.clone();
    let results = common::run_guarded(async move {
        let mut rng = SplitMix64::new(0xE2);
        let jobs: Vec<JobHandle<u64>> = (0..200u64)
            .map(|i| {
                // Uneven work, so completion order differs from submission order.
                let pause = Duration::from_micros(rng.below(300));
                e.submit(move || {
                    thread::sleep(pause);
                    i * i
                })
            })
            .collect();
        evloop::gather(jobs).await
    });
    let expected: Vec<u64> = (0..200u64).map(|i| i * i).collect();
    assert_eq!(results.unwrap(), expected);
    exec.shutdown(true);
}

// ---------------------------------------------------------------------------------
// E2: panics
// ---------------------------------------------------------------------------------

#[test]
fn a_panicking_job_fails_its_future_and_the_same_thread_serves_the_next_job() {
    let exec = Executor::new(1);
    let e = exec.clone();
    common::run_guarded(async move {
        let before = e.submit(whoami).await.unwrap();

        let boom: JobHandle<u32> = e.submit(|| panic!("job exploded {}", 7));
        let err = boom.clone().await.unwrap_err();
        assert!(err.is_panic());
        assert_eq!(panic_error_message(&err), "job exploded 7");
        assert!(err.to_string().contains("job exploded 7"), "{err}");
        assert_eq!(
            panic_error_message(&boom.exception().unwrap().unwrap()),
            "job exploded 7"
        );

        let literal: JobHandle<()> = e.submit(|| panic!("static message"));
        let err = literal.await.unwrap_err();
        assert_eq!(panic_error_message(&err), "static message");

        // The pool still works, on the very same thread (max_threads = 1, long
        // keep-alive): the panic did not kill it.
        let after = e.submit(whoami).await.unwrap();
        assert_eq!(
            after, before,
            "the thread survived the panics and was reused"
        );
        assert_eq!(e.threads(), 1);
    });
    exec.shutdown(true);
}

#[test]
fn a_job_panicking_with_a_non_string_payload_fails_its_future() {
    let exec = Executor::new(1);
    let e = exec.clone();
    common::run_guarded(async move {
        let fut: JobHandle<u8> = e.submit(|| std::panic::panic_any(42_i32));
        let err = fut.await.unwrap_err();
        assert!(err.is_panic(), "{err:?}");
        assert_eq!(e.submit(|| 5u8).await.unwrap(), 5, "the pool still works");
    });
    exec.shutdown(true);
}

// ---------------------------------------------------------------------------------
// E2: cancellation
// ---------------------------------------------------------------------------------

#[test]
fn a_job_cancelled_before_it_starts_never_runs() {
    let exec = Executor::new(1);
    let e = exec.clone();
    let ran = flag();
    let r = ran.clone();
    let (spy, probe) = DropSpy::new();
    common::run_guarded(async move {
        let (job, blocker) = Blocker::new();
        let busy = e.submit(job);
        blocker.wait_started(); // the only thread is now held by `busy`

        let skipped: JobHandle<u32> = e.submit(move || {
            let _keep = &spy;
            r.store(true, Ordering::SeqCst);
            1
        });
        assert_eq!(e.queued_jobs(), 1);
        assert!(skipped.cancel_with("not needed"));
        blocker.release();
        busy.await.unwrap();
        // The queue is FIFO on one thread: once this later job ran, the cancelled one
        // was taken from the queue (and skipped).
        assert_eq!(e.submit(|| 2u32).await.unwrap(), 2);

        assert!(skipped.cancelled());
        match skipped.result() {
            Err(Error::Cancelled(c)) => assert_eq!(c.message(), Some("not needed")),
            other => panic!("expected Cancelled, got {other:?}"),
        }
    });
    assert!(
        !ran.load(Ordering::SeqCst),
        "the cancelled job's closure ran"
    );
    assert_eq!(probe.drops(), 1, "the skipped closure was dropped");
    exec.shutdown(true);
}

#[test]
fn a_job_cancelled_while_running_finishes_and_its_result_is_dropped() {
    let exec = Executor::new(1);
    let e = exec.clone();
    let finished = flag();
    common::run_guarded(async move {
        let (result_spy, result_probe) = DropSpy::new();
        let (started_tx, started_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let f = finished.clone();
        let fut: JobHandle<Arc<DropSpy>> = e.submit(move || {
            started_tx.send(()).unwrap();
            release_rx.recv().unwrap();
            f.store(true, Ordering::SeqCst);
            Arc::new(result_spy)
        });
        started_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(fut.cancel(), "a running job's future can be cancelled");
        assert!(fut.cancelled());
        release_tx.send(()).unwrap();

        eventually("the running job finished", || {
            finished.load(Ordering::SeqCst)
        })
        .await;
        eventually("the refused result was dropped", || {
            result_probe.drops() == 1
        })
        .await;
        assert!(fut.cancelled(), "the future stays cancelled");
        assert!(fut.result().unwrap_err().is_cancelled());
        assert!(fut.exception().unwrap_err().is_cancelled());
        assert_eq!(e.submit(|| 3u8).await.unwrap(), 3, "the pool still works");
    });
    exec.shutdown(true);
}

// ---------------------------------------------------------------------------------
// E3: shutdown
// ---------------------------------------------------------------------------------

#[test]
fn shutdown_with_wait_runs_the_queued_jobs_first() {
    let exec = Executor::new(1);
    let e = exec.clone();
    let log = new_log();
    let l = log.clone();
    common::run_guarded(async move {
        let futs: Vec<JobHandle<usize>> = (0..5)
            .map(|i| {
                let l = l.clone();
                e.submit(move || {
                    thread::sleep(Duration::from_millis(1));
                    push(&l, format!("job {i}"));
                    i
                })
            })
            .collect();
        e.shutdown(true);
        assert_eq!(
            entries(&l),
            ["job 0", "job 1", "job 2", "job 3", "job 4"],
            "shutdown(true) returned before its queued jobs ran"
        );
        assert!(e.is_shutdown());
        assert_eq!(e.threads(), 0, "every thread exited");
        assert_eq!(e.queued_jobs(), 0);
        assert_eq!(evloop::gather(futs).await.unwrap(), [0, 1, 2, 3, 4]);
    });
    assert_eq!(entries(&log).len(), 5);
}

#[test]
fn shutdown_without_wait_returns_at_once_and_queued_jobs_still_run() {
    let exec = Executor::new(1);
    let e = exec.clone();
    common::run_guarded(async move {
        let (job, blocker) = Blocker::new();
        let busy = e.submit(job);
        blocker.wait_started();
        let queued = e.submit(|| "queued ran");
        // Returns although the running job cannot finish yet.
        e.shutdown(false);
        assert!(e.is_shutdown());
        assert!(!busy.done() && !queued.done());
        blocker.release();
        busy.await.unwrap();
        assert_eq!(queued.await.unwrap(), "queued ran");
        eventually("the pool's thread exited", || e.threads() == 0).await;
    });
}

#[test]
fn submit_after_shutdown_returns_a_future_already_failed_with_invalid_state() {
    let exec = Executor::new(2);
    let e = exec.clone();
    let ran = flag();
    let r = ran.clone();
    let (spy, probe) = DropSpy::new();
    common::run_guarded(async move {
        assert_eq!(e.submit(|| 1).await.unwrap(), 1);
        e.shutdown(true);
        e.shutdown(true); // idempotent
        let fut: JobHandle<i32> = e.submit(move || {
            let _keep = &spy;
            r.store(true, Ordering::SeqCst);
            2
        });
        assert!(fut.done(), "already done when submit returns");
        assert!(!fut.cancelled());
        let err = fut
            .exception()
            .unwrap()
            .expect("an exception, not a result");
        assert_eq!(invalid_state_message(&err), "executor shut down");
        let err = fut.await.unwrap_err();
        assert_eq!(invalid_state_message(&err), "executor shut down");

        // submit_to behaves the same.
        let fut = e.submit_to(&LoopHandle::current(), || 3);
        assert!(fut.done());
        assert_eq!(
            invalid_state_message(&fut.result().unwrap_err()),
            "executor shut down"
        );
        assert_eq!(e.threads(), 0, "no thread was started for them");
    });
    assert!(
        !ran.load(Ordering::SeqCst),
        "a job submitted after shutdown ran"
    );
    assert_eq!(probe.drops(), 1, "its closure was dropped");
}

// ---------------------------------------------------------------------------------
// E1: threads — lazy start, keep-alive exit, the max_threads cap
// ---------------------------------------------------------------------------------

#[test]
fn threads_start_lazily_one_per_job_that_finds_none_idle() {
    let exec = Executor::new(8);
    assert_eq!(exec.max_threads(), 8);
    assert_eq!(exec.threads(), 0, "a fresh executor has no thread");
    assert_eq!(exec.queued_jobs(), 0);
    let e = exec.clone();
    common::run_guarded(async move {
        e.submit(|| ()).await.unwrap();
        assert_eq!(e.threads(), 1, "one job starts exactly one thread");
    });
    assert_eq!(Executor::new(0).max_threads(), 1, "at least one thread");
    exec.shutdown(true);
    assert_eq!(exec.threads(), 0);
}

#[test]
fn idle_threads_exit_after_the_keep_alive() {
    let exec = Executor::with_keep_alive(3, Duration::from_millis(50));
    let e = exec.clone();
    common::run_guarded(async move {
        // Three jobs meeting at a barrier must run on three threads at once.
        let barrier = Arc::new(Barrier::new(3));
        let jobs: Vec<JobHandle<ThreadId>> = (0..3)
            .map(|_| {
                let b = barrier.clone();
                e.submit(move || {
                    b.wait();
                    thread::current().id()
                })
            })
            .collect();
        let ids = evloop::gather(jobs).await.unwrap();
        assert_eq!(
            ids.iter().collect::<std::collections::HashSet<_>>().len(),
            3
        );
        eventually(
            "every idle thread exited after the 50 ms keep-alive",
            || e.threads() == 0,
        )
        .await;
        // The pool starts threads again afterwards (not asserted through `threads()`:
        // with a 50 ms keep-alive the new thread may already be gone).
        let (name, _) = e.submit(whoami).await.unwrap();
        assert_pool_thread_name(&name);
        eventually("the new thread exited too", || e.threads() == 0).await;
    });
    exec.shutdown(true);
}

#[test]
fn max_threads_is_never_exceeded_with_a_thousand_queued_jobs() {
    const MAX: usize = 4;
    const JOBS: usize = 1000;
    let exec = Executor::new(MAX);
    let e = exec.clone();
    let running = Arc::new(AtomicUsize::new(0));
    let max_running = Arc::new(AtomicUsize::new(0));
    let max_threads_seen = Arc::new(AtomicUsize::new(0));
    let (mr, mts) = (max_running.clone(), max_threads_seen.clone());
    common::run_guarded(async move {
        // The first MAX jobs meet the loop thread at `arrived`, then wait at `leave`:
        // they must all run at once, so the pool reaches its cap while the rest wait in
        // the queue.
        let arrived = Arc::new(Barrier::new(MAX + 1));
        let leave = Arc::new(Barrier::new(MAX + 1));
        let jobs: Vec<JobHandle<usize>> = (0..JOBS)
            .map(|i| {
                let (running, mr, mts, pool) =
                    (running.clone(), mr.clone(), mts.clone(), e.clone());
                let barriers = (i < MAX).then(|| (arrived.clone(), leave.clone()));
                e.submit(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    mr.fetch_max(now, Ordering::SeqCst);
                    mts.fetch_max(pool.threads(), Ordering::SeqCst);
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
        // Every thread is held inside one of the first MAX jobs.
        let threads_at_cap = e.threads();
        let queued_at_cap = e.queued_jobs();
        leave.wait();
        mts.fetch_max(threads_at_cap, Ordering::SeqCst);
        assert_eq!(threads_at_cap, MAX, "the pool grew to its cap");
        assert_eq!(queued_at_cap, JOBS - MAX, "the rest wait in the queue");
        let mut done = 0;
        while done < JOBS {
            mts.fetch_max(e.threads(), Ordering::SeqCst);
            done = jobs.iter().filter(|f| f.done()).count();
            evloop::yield_now().await.unwrap();
        }
        let results = evloop::gather(jobs).await.unwrap();
        assert_eq!(results, (0..JOBS).collect::<Vec<_>>());
    });
    assert_eq!(max_running.load(Ordering::SeqCst), MAX, "concurrent jobs");
    assert!(
        max_threads_seen.load(Ordering::SeqCst) <= MAX,
        "threads() exceeded max_threads: {}",
        max_threads_seen.load(Ordering::SeqCst)
    );
    exec.shutdown(true);
}

// ---------------------------------------------------------------------------------
// Future::take of results that are not Clone
// ---------------------------------------------------------------------------------

/// Not `Clone`: only a move can hand it over.
#[derive(Debug, PartialEq)]
struct Unique {
    id: u32,
    payload: Vec<u8>,
}

/// Awaiting a `JobHandle` moves a non-`Clone` result out (as awaiting a `Task` does);
/// its `future()` view then reports the value taken.
#[test]
fn awaiting_a_job_moves_a_non_clone_result_out() {
    let exec = Executor::new(2);
    let e = exec.clone();
    common::run_guarded(async move {
        let job = e.submit(|| Unique {
            id: 9,
            payload: vec![1, 2, 3],
        });
        let keep = job.future();
        let value = job.await.unwrap();
        assert_eq!(
            value,
            Unique {
                id: 9,
                payload: vec![1, 2, 3]
            }
        );
        assert!(keep.result_is_taken());
        assert!(keep.done());

        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        let file: std::fs::File = e
            .submit(move || std::fs::File::open(path))
            .await
            .unwrap()
            .unwrap();
        let text = e
            .submit(move || std::io::read_to_string(file))
            .await
            .unwrap()
            .unwrap();
        assert!(text.contains("[package]"));

        let err = e
            .submit(|| -> Unique { panic!("no value") })
            .await
            .unwrap_err();
        assert_eq!(panic_error_message(&err), "no value");
    });
    exec.shutdown(true);
}

// ---------------------------------------------------------------------------------
// L13: the default executor's gauges
// ---------------------------------------------------------------------------------

#[test]
fn stats_report_the_default_executor_threads_and_queued_jobs() {
    let rt = Runtime::builder().blocking_threads(1).build().unwrap();
    let handle = rt.handle();
    let explicit = Executor::new(2);
    let ex = explicit.clone();
    rt.block_on(async move {
        let loop_ = LoopHandle::current();
        let s = loop_.stats();
        assert_eq!((s.executor_threads, s.executor_queued_jobs), (0, 0));

        // An explicit executor is not the default one.
        ex.submit(|| ()).await.unwrap();
        let s = loop_.stats();
        assert_eq!((s.executor_threads, s.executor_queued_jobs), (0, 0));

        let (job, blocker) = Blocker::new();
        let busy = loop_.run_in_executor(None, job);
        blocker.wait_started();
        let queued: Vec<JobHandle<u8>> = (0..3u8)
            .map(|i| loop_.run_in_executor(None, move || i))
            .collect();
        let s = loop_.stats();
        assert_eq!(s.executor_threads, 1);
        assert_eq!(s.executor_queued_jobs, 3);

        blocker.release();
        busy.await.unwrap();
        assert_eq!(evloop::gather(queued).await.unwrap(), [0, 1, 2]);
        let s = loop_.stats();
        assert_eq!(s.executor_queued_jobs, 0);
        assert_eq!(s.executor_threads, 1, "the thread idles (10 s keep-alive)");
    });
    // Off the loop thread too.
    let s = handle.stats();
    assert_eq!((s.executor_threads, s.executor_queued_jobs), (1, 0));
    explicit.shutdown(true);
}
