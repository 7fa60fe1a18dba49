//! SPEC Q3 (faults) with L9, T5, T6, E2 and R5: panics wherever user code runs, and a
//! runtime dropped with everything still pending. A user observes that nothing hangs,
//! nothing promised is lost, the process does not abort, and:
//!
//! * a panicking callback (`call_soon` from any thread, a timer, a done-callback) is
//!   reported to the exception handler as "Exception in callback" with an
//!   `Error::Panic` carrying the message, and the loop runs every later callback;
//! * a panicking task body becomes the task's exception (`Error::Panic`), seen by
//!   awaiters and `gather` on any loop (T6);
//! * a panicking executor job becomes its future's exception and the worker thread
//!   runs the next job (E2);
//! * a panicking exception handler is reported by the default handler as "Unhandled
//!   error in exception handler", the original report is logged too, and neither the
//!   loop nor a reporting worker thread is unwound (L9);
//! * a coroutine whose destructor panics while it is being cancelled ends with that
//!   panic as its exception; one whose destructor panics while it is aborted (T5) ends
//!   cancelled and the panic is reported as "Exception while dropping an aborted task";
//! * dropping a runtime with tasks blocked in `accept` and `read`, a task ignoring its
//!   cancellation, pending timers and a running executor job returns (its waiting is
//!   bounded by the configured `shutdown_timeout`, R5), cancels or aborts every task,
//!   never fires the timers, releases the sockets, and detaches the job, which
//!   finishes safely later.
//!
//! Misbehaviour found while writing these (panics escaping the loop, a task left
//! pending forever) is pinned separately in `fault_bugs_found.rs`.

mod common;
use common::{DropSpy, Gate, capture_exceptions, new_log, push, yield_times};

use std::io::Read;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use evloop::JobHandle;
use evloop::net::{TcpListener, UnixStream};
use evloop::{
    CancelledError, Error, ExceptionContext, ExceptionSource, Future, LoopHandle, Runtime, Task,
    gather, gather_results,
};

/// Generous bound that turns a hang into a failure.
const HANG_LIMIT: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// [`common::bounded`] with this file's [`HANG_LIMIT`].
fn bounded<T: Send + 'static>(what: &'static str, body: impl FnOnce() -> T + Send + 'static) -> T {
    common::bounded(HANG_LIMIT, what, body)
}

/// Polls `cond` (1 ms apart, on a plain thread) until it holds; fails after
/// [`HANG_LIMIT`].
fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + HANG_LIMIT;
    while !cond() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

/// Lets the loop iterate until `cond` holds (yields, then 1 ms sleeps); fails after
/// [`HANG_LIMIT`].
async fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + HANG_LIMIT;
    let mut round = 0;
    while !cond() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        round += 1;
        if round < 100 {
            evloop::yield_now().await.unwrap();
        } else {
            evloop::time::sleep(Duration::from_millis(1)).await.unwrap();
        }
    }
}

fn flag() -> Arc<AtomicBool> {
    Arc::new(AtomicBool::new(false))
}

/// The message of an `Error::Panic`; fails on anything else.
fn panic_text(err: &Error) -> String {
    match err {
        Error::Panic(p) => p.message().to_string(),
        other => panic!("expected Error::Panic, got {other:?}"),
    }
}

/// A value whose destructor panics (unless the thread is already unwinding).
struct PanicOnDrop(&'static str);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if !thread::panicking() {
            panic!("{}", self.0);
        }
    }
}

/// A loop running `run_forever` on a thread of its own.
struct LoopThread {
    handle: LoopHandle,
    thread: Option<thread::JoinHandle<()>>,
}

impl LoopThread {
    fn start() -> LoopThread {
        let (tx, rx) = mpsc::channel();
        let thread = thread::spawn(move || {
            let rt = Runtime::new().unwrap();
            tx.send(rt.handle()).unwrap();
            rt.run_forever();
        });
        LoopThread {
            handle: rx.recv().unwrap(),
            thread: Some(thread),
        }
    }

    fn shutdown(mut self) {
        self.handle.stop();
        if let Err(payload) = self.thread.take().unwrap().join() {
            resume_unwind(payload);
        }
    }
}

impl Drop for LoopThread {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.handle.stop();
            let _ = t.join();
        }
    }
}

fn assert_callback_panic(ctx: &ExceptionContext, marker: &str) {
    assert_eq!(ctx.message, "Exception in callback", "{ctx:?}");
    assert_eq!(ctx.source, ExceptionSource::Callback, "{ctx:?}");
    let err = ctx.exception.as_ref().expect("the panic is the exception");
    assert_eq!(panic_text(err), marker);
    assert!(ctx.to_string().contains(marker), "{ctx}");
}

// ---------------------------------------------------------------------------------
// Callbacks
// ---------------------------------------------------------------------------------

/// Four threads schedule 400 callbacks each with `call_soon_threadsafe`; every third
/// one panics with a message naming it. Each panic reaches the handler exactly once
/// with its own message; every other callback runs exactly once; the loop keeps going
/// (it finishes the test, after all panics).
#[test]
fn panicking_callbacks_from_four_threads_are_each_reported_once_and_the_rest_run() {
    const THREADS: usize = 4;
    const EACH: usize = 400;
    let ran: Arc<Vec<AtomicU32>> =
        Arc::new((0..THREADS * EACH).map(|_| AtomicU32::new(0)).collect());
    let panics = |t: usize, i: usize| (t + i) % 3 == 0;
    let (reports, loop_after) = bounded("panicking cross-thread callbacks", {
        let ran = ran.clone();
        move || {
            common::run_guarded(async move {
                let loop_ = LoopHandle::current();
                let reports = capture_exceptions(&loop_);
                let producers: Vec<_> = (0..THREADS)
                    .map(|t| {
                        let (loop_, ran) = (loop_.clone(), ran.clone());
                        thread::spawn(move || {
                            for i in 0..EACH {
                                let ran = ran.clone();
                                loop_.call_soon_threadsafe(move || {
                                    if panics(t, i) {
                                        panic!("xthread-cb {t}:{i}");
                                    }
                                    ran[t * EACH + i].fetch_add(1, SeqCst);
                                });
                            }
                        })
                    })
                    .collect();
                let expected_runs = (0..THREADS)
                    .flat_map(|t| (0..EACH).map(move |i| (t, i)))
                    .filter(|&(t, i)| !panics(t, i))
                    .count();
                let expected_reports = THREADS * EACH - expected_runs;
                until("every callback ran or was reported", || {
                    let runs: u32 = ran.iter().map(|c| c.load(SeqCst)).sum();
                    runs as usize >= expected_runs
                        && reports.lock().unwrap().len() >= expected_reports
                })
                .await;
                for p in producers {
                    p.join().unwrap();
                }
                // A callback scheduled after all the panics still runs.
                let after: Future<&str> = Future::new();
                let done = after.clone();
                loop_.call_soon(move || done.set_result("still running").unwrap());
                let after = after.await.unwrap();
                let reports = reports.lock().unwrap().clone();
                (reports, after)
            })
        }
    });
    assert_eq!(loop_after, "still running");
    for t in 0..THREADS {
        for i in 0..EACH {
            let want = u32::from(!panics(t, i));
            assert_eq!(ran[t * EACH + i].load(SeqCst), want, "callback {t}:{i}");
        }
    }
    let mut reported: Vec<String> = reports
        .iter()
        .map(|ctx| {
            assert_eq!(ctx.message, "Exception in callback");
            assert_eq!(ctx.source, ExceptionSource::Callback);
            panic_text(ctx.exception.as_ref().unwrap())
        })
        .collect();
    reported.sort();
    let mut expected: Vec<String> = (0..THREADS)
        .flat_map(|t| (0..EACH).map(move |i| (t, i)))
        .filter(|&(t, i)| panics(t, i))
        .map(|(t, i)| format!("xthread-cb {t}:{i}"))
        .collect();
    expected.sort();
    assert_eq!(reported, expected, "each panic reported exactly once");
}

/// Ten timers 1..=10 ms ahead, the odd ones panicking, plus a panicking timer that is
/// cancelled first: the good timers fire in deadline order, each panic is reported in
/// that order, the cancelled timer neither runs nor is reported, and a timer set after
/// all of them still fires.
#[test]
fn panicking_timers_are_reported_and_the_later_timers_fire_in_order() {
    let log = new_log();
    let reports = bounded("panicking timers", {
        let log = log.clone();
        move || {
            let rt = Runtime::new().unwrap();
            let loop_ = rt.handle();
            let reports = capture_exceptions(&loop_);
            let start = loop_.time();
            for ms in (1..=10u64).rev() {
                let log = log.clone();
                loop_.call_at(start + Duration::from_millis(ms), move || {
                    if ms % 2 == 1 {
                        panic!("timer-panic {ms}");
                    }
                    push(&log, format!("timer {ms}"));
                });
            }
            let cancelled =
                loop_.call_later(Duration::from_millis(5), || panic!("cancelled timer ran"));
            assert!(cancelled.cancel());
            {
                let log = log.clone();
                loop_.call_at(start + Duration::from_millis(11), move || {
                    push(&log, "last");
                    LoopHandle::current().stop();
                });
            }
            common::run_until_stopped(&rt);
            reports.lock().unwrap().clone()
        }
    });
    assert_eq!(
        common::entries(&log),
        [
            "timer 2", "timer 4", "timer 6", "timer 8", "timer 10", "last"
        ]
    );
    let markers: Vec<String> = [1, 3, 5, 7, 9]
        .iter()
        .map(|ms| format!("timer-panic {ms}"))
        .collect();
    assert_eq!(reports.len(), markers.len(), "{reports:?}");
    for (ctx, marker) in reports.iter().zip(&markers) {
        assert_callback_panic(ctx, marker);
    }
}

/// A future completed by a worker thread has three done-callbacks and an awaiting task
/// registered in between: "a", a panicking one, the task, "b". The panic is reported;
/// "a", the task's wake-up and "b" still happen, in registration order (F7), each on
/// the loop thread.
#[test]
fn a_panicking_done_callback_of_a_future_completed_by_a_worker_thread() {
    let log = new_log();
    let reports = bounded("panicking done-callback", {
        let log = log.clone();
        move || {
            let rt = Runtime::new().unwrap();
            let reports = capture_exceptions(&rt.handle());
            let loop_thread = thread::current().id();
            rt.block_on(async {
                let fut: Future<u32> = Future::new();
                let on_loop = move |log: &common::Log, what: &str| {
                    assert_eq!(thread::current().id(), loop_thread);
                    push(log, what);
                };
                {
                    let log = log.clone();
                    fut.add_done_callback(move |f| on_loop(&log, &format!("a {:?}", f.result())));
                }
                fut.add_done_callback(|f| panic!("done-cb-panic {:?}", f.result()));
                let waiter = {
                    let (fut, log) = (fut.clone(), log.clone());
                    evloop::create_task(async move {
                        let v = fut.await?;
                        on_loop(&log, &format!("task {v}"));
                        Ok::<_, Error>(v)
                    })
                };
                yield_times(2).await; // the task is suspended on `fut` now
                {
                    let log = log.clone();
                    fut.add_done_callback(move |f| on_loop(&log, &format!("b {:?}", f.result())));
                }
                let worker = {
                    let fut = fut.clone();
                    thread::spawn(move || fut.set_result(5).unwrap())
                };
                assert_eq!(waiter.await.unwrap(), 5);
                until("callback b ran", || common::entries(&log).len() == 3).await;
                worker.join().unwrap();
            });
            reports.lock().unwrap().clone()
        }
    });
    assert_eq!(common::entries(&log), ["a Ok(5)", "task 5", "b Ok(5)"]);
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_callback_panic(&reports[0], "done-cb-panic Ok(5)");
}

// ---------------------------------------------------------------------------------
// Tasks
// ---------------------------------------------------------------------------------

/// A task on loop B panics after an await; on loop A a task awaiting it, a `gather`
/// and a `gather_results` containing it all see `Error::Panic` with the message (T6,
/// G1, G2, G5). The panic was retrieved, so nothing is reported as never retrieved on
/// B, and B runs a new task afterwards.
#[test]
fn a_panicking_task_on_one_loop_fails_its_awaiters_and_gathers_on_another() {
    let b = LoopThread::start();
    let reports_b = capture_exceptions(&b.handle);
    let b_handle = b.handle.clone();
    bounded("a panicking task seen from another loop", move || {
        common::run_guarded(async move {
            let gate: Future<()> = b_handle.create_future();
            let boom: Task<u32> = {
                let gate = gate.clone();
                b_handle.spawn(async move {
                    gate.await?;
                    panic!("task-panic on B")
                })
            };
            let fine: Task<u32> = b_handle.spawn(async { Ok(7) });
            // A task on A awaiting B's task.
            let awaiter = evloop::create_task(boom.future());
            let all = gather([fine.future(), boom.future()]);
            let each = gather_results([fine.future(), boom.future()]);
            gate.set_result(()).unwrap();

            let err = awaiter.await.unwrap_err();
            assert_eq!(panic_text(&err), "task-panic on B");
            assert_eq!(panic_text(&all.await.unwrap_err()), "task-panic on B");
            let each = each.await.unwrap();
            assert_eq!(*each[0].as_ref().unwrap(), 7);
            assert_eq!(panic_text(each[1].as_ref().unwrap_err()), "task-panic on B");
            assert!(boom.done() && !boom.cancelled());
            assert_eq!(
                panic_text(&boom.exception().unwrap().unwrap()),
                "task-panic on B"
            );
            assert_eq!(
                b_handle.spawn(async { Ok(8) }).await.unwrap(),
                8,
                "B still runs tasks"
            );
        });
    });
    b.shutdown();
    assert!(
        reports_b.lock().unwrap().is_empty(),
        "{:?}",
        reports_b.lock().unwrap()
    );
}

/// T3 + T6: a task suspended in `sleep` holds a value whose destructor panics. When it
/// is cancelled from another thread, propagating the cancellation with `?` drops the
/// coroutine's locals, the destructor panics, and that panic — not the cancellation —
/// is the task's outcome: `Error::Panic`, `cancelled()` false. The loop keeps running
/// tasks.
#[test]
fn a_destructor_panicking_while_a_task_unwinds_its_cancellation_becomes_its_exception() {
    bounded("a destructor panicking during cancellation", || {
        let rt = Runtime::new().unwrap();
        let reports = capture_exceptions(&rt.handle());
        rt.block_on(async {
            let started = flag();
            let task: Task<()> = {
                let started = started.clone();
                evloop::create_task(async move {
                    let _bomb = PanicOnDrop("dropped while cancelled");
                    started.store(true, SeqCst);
                    evloop::time::sleep(HOUR).await?;
                    Ok(())
                })
            };
            until("the task sleeps", || started.load(SeqCst)).await;
            let view = task.future();
            thread::spawn(move || assert!(view.cancel_with("from a thread")))
                .join()
                .unwrap();
            let err = task.future().await.unwrap_err();
            assert_eq!(panic_text(&err), "dropped while cancelled");
            assert!(task.done() && !task.cancelled());
            let next = evloop::create_task(async { Ok::<_, Error>("next") });
            assert_eq!(next.await.unwrap(), "next");
        });
        assert!(
            reports.lock().unwrap().is_empty(),
            "the panic was retrieved"
        );
    });
}

/// T5: a task blocked on a foreign future (which cancellation cannot reach) is aborted
/// from another thread; its coroutine's destructor panics. The task still ends
/// cancelled, the panic is reported as "Exception while dropping an aborted task" with
/// the task as source, the coroutine was dropped on the loop thread, and the loop goes
/// on.
#[test]
fn a_destructor_panicking_while_a_task_is_aborted_is_reported_and_the_task_ends_cancelled() {
    bounded("a destructor panicking during abort", || {
        let rt = Runtime::new().unwrap();
        let reports = capture_exceptions(&rt.handle());
        let (spy, probe) = DropSpy::new();
        let loop_thread = thread::current().id();
        let id = rt.block_on(async {
            let gate = Gate::new();
            let started = flag();
            let task: Task<()> = {
                let (gate, started) = (gate.clone(), started.clone());
                evloop::create_task(async move {
                    let _spy = spy;
                    let _bomb = PanicOnDrop("dropped while aborted");
                    started.store(true, SeqCst);
                    gate.wait().await;
                    Ok(())
                })
            };
            task.set_name("aborted-bomb");
            until("the task waits on the gate", || started.load(SeqCst)).await;
            let id = task.id();
            let remote = task.to_ref();
            thread::spawn(move || remote.abort()).join().unwrap();
            until("the abort reached the loop", || task.done()).await;
            assert!(task.cancelled());
            assert!(task.await.unwrap_err().is_cancelled());
            let next = evloop::create_task(async { Ok::<_, Error>(1) });
            assert_eq!(next.await.unwrap(), 1);
            id
        });
        assert_eq!(probe.dropped_on(), Some(loop_thread));
        let reports = reports.lock().unwrap();
        assert_eq!(reports.len(), 1, "{reports:?}");
        let ctx = &reports[0];
        assert_eq!(ctx.message, "Exception while dropping an aborted task");
        match &ctx.source {
            ExceptionSource::Task { id: i, name, .. } => {
                assert_eq!((*i, name.as_deref()), (id, Some("aborted-bomb")));
            }
            other => panic!("expected the task as source, got {other:?}"),
        }
        assert_eq!(
            panic_text(ctx.exception.as_ref().unwrap()),
            "dropped while aborted"
        );
    });
}

/// R5 + T6: at runtime drop, a task sleeping with a panicking destructor in its frame is
/// cancelled; dropping its locals panics and that becomes its exception, while its
/// neighbour still gets to clean up asynchronously and finish. The drop neither panics
/// nor hangs.
#[test]
fn a_destructor_panicking_when_the_runtime_cancels_a_task_at_drop_becomes_its_exception() {
    let log = new_log();
    let (bomb, neighbour) = bounded("a destructor panicking at shutdown", {
        let log = log.clone();
        move || {
            let rt = Runtime::new().unwrap();
            let views = rt.block_on(async {
                let started = [flag(), flag()];
                let bomb: Task<()> = {
                    let s = started[0].clone();
                    evloop::create_task(async move {
                        let _bomb = PanicOnDrop("dropped at shutdown");
                        s.store(true, SeqCst);
                        evloop::time::sleep(HOUR).await?;
                        Ok(())
                    })
                };
                let neighbour: Task<()> = {
                    let (s, log) = (started[1].clone(), log.clone());
                    evloop::create_task(async move {
                        s.store(true, SeqCst);
                        if let Err(e) = evloop::time::sleep(HOUR).await {
                            push(&log, format!("neighbour: {e}"));
                            evloop::time::sleep(Duration::from_millis(1)).await?;
                            push(&log, "neighbour: cleaned up");
                        }
                        Ok(())
                    })
                };
                until("both tasks sleep", || {
                    started.iter().all(|s| s.load(SeqCst))
                })
                .await;
                [bomb.future(), neighbour.future()]
            });
            let dropped = catch_unwind(AssertUnwindSafe(move || drop(rt)));
            assert!(dropped.is_ok(), "Runtime::drop panicked");
            let [bomb, neighbour] = views;
            (bomb, neighbour)
        }
    });
    assert_eq!(
        panic_text(&bomb.result().unwrap_err()),
        "dropped at shutdown"
    );
    assert!(!bomb.cancelled());
    assert_eq!(neighbour.result().unwrap(), ());
    assert_eq!(
        common::entries(&log),
        ["neighbour: cancelled", "neighbour: cleaned up"]
    );
}

// ---------------------------------------------------------------------------------
// Executor jobs and the exception handler
// ---------------------------------------------------------------------------------

/// E2 on the runtime's default executor (limited to one thread): a panicking job's
/// future fails with `Error::Panic` — seen by a task awaiting it and by a
/// done-callback on the loop thread — and the same worker thread runs the next job.
#[test]
fn a_panicking_default_executor_job_fails_its_future_and_its_worker_runs_the_next_job() {
    bounded("a panicking executor job", || {
        let rt = Runtime::builder().blocking_threads(1).build().unwrap();
        let reports = capture_exceptions(&rt.handle());
        let loop_thread = thread::current().id();
        rt.block_on(async {
            let loop_ = LoopHandle::current();
            let whoami = || thread::current().name().map(String::from);
            let before = loop_.run_in_executor(None, whoami).await.unwrap();
            assert!(before.as_deref().unwrap().starts_with("evloop-blocking-"));

            let job: JobHandle<u32> = loop_.run_in_executor(None, || panic!("job-panic {}", 42));
            let callback_saw = Arc::new(Mutex::new(None));
            {
                let saw = callback_saw.clone();
                job.add_done_callback(move |f| {
                    assert_eq!(thread::current().id(), loop_thread);
                    *saw.lock().unwrap() = Some(f.exception());
                });
            }
            // A task awaiting the job's future.
            let awaiter = evloop::create_task(job.clone());
            assert_eq!(panic_text(&awaiter.await.unwrap_err()), "job-panic 42");
            until("the done-callback ran", || {
                callback_saw.lock().unwrap().is_some()
            })
            .await;
            let saw = callback_saw.lock().unwrap().take().unwrap();
            assert_eq!(panic_text(&saw.unwrap().unwrap()), "job-panic 42");

            let after = loop_.run_in_executor(None, whoami).await.unwrap();
            assert_eq!(after, before, "the worker survived and ran the next job");
            assert_eq!(loop_.stats().executor_threads, 1);
        });
        assert!(
            reports.lock().unwrap().is_empty(),
            "the job's panic was retrieved"
        );
    });
}

/// L9: a custom handler that always panics. Three reports reach it — a panicking
/// callback on the loop, a task exception never retrieved (reported on the loop when
/// the task is released), and `call_exception_handler` from a worker thread. Each time
/// the default handler logs "Unhandled error in exception handler" with the handler's
/// panic and then the original report; the worker's call returns normally; the loop
/// runs every later callback.
#[test]
fn a_panicking_exception_handler_is_contained_on_the_loop_and_on_worker_threads() {
    common::init_logger();
    let calls = Arc::new(AtomicUsize::new(0));
    bounded("a panicking exception handler", {
        let calls = calls.clone();
        move || {
            let rt = Runtime::new().unwrap();
            let loop_ = rt.handle();
            loop_.set_exception_handler(Some(move |_: &LoopHandle, _: &ExceptionContext| {
                calls.fetch_add(1, SeqCst);
                panic!("handler-panic-5e1f");
            }));
            rt.block_on(async {
                let loop_ = LoopHandle::current();
                let later = Arc::new(AtomicUsize::new(0));
                loop_.call_soon(|| panic!("cb-5e1f"));
                let l = later.clone();
                loop_.call_soon(move || {
                    l.fetch_add(1, SeqCst);
                });
                drop(evloop::create_task(async {
                    Err::<u8, _>(Error::msg("lost-task-5e1f"))
                }));
                let remote = loop_.clone();
                let returned = thread::spawn(move || {
                    remote.call_exception_handler(
                        ExceptionContext::new("worker-report-5e1f")
                            .with_exception(Error::msg("from a worker")),
                    );
                    "returned"
                })
                .join()
                .expect("the handler's panic unwound into the worker thread");
                assert_eq!(returned, "returned");
                until("the lost task was reported", || {
                    !common::logs_containing("lost-task-5e1f").is_empty()
                })
                .await;
                let l = later.clone();
                loop_.call_soon(move || {
                    l.fetch_add(1, SeqCst);
                });
                until("both later callbacks ran", || later.load(SeqCst) == 2).await;
            });
        }
    });
    assert_eq!(calls.load(SeqCst), 3);
    let failures = common::logs_containing("handler-panic-5e1f");
    assert_eq!(failures.len(), 3, "{failures:?}");
    for line in &failures {
        assert_eq!(
            line,
            "ERROR evloop: Unhandled error in exception handler: panicked: handler-panic-5e1f"
        );
    }
    assert_eq!(
        common::logs_containing("cb-5e1f"),
        ["ERROR evloop: Exception in callback: panicked: cb-5e1f"]
    );
    assert_eq!(
        common::logs_containing("worker-report-5e1f"),
        ["ERROR evloop: worker-report-5e1f: from a worker"]
    );
    let lost = common::logs_containing("lost-task-5e1f");
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert!(
        lost[0].contains("Task exception was never retrieved"),
        "{lost:?}"
    );
}

// ---------------------------------------------------------------------------------
// Dropping a runtime with everything pending
// ---------------------------------------------------------------------------------

/// What a task saw when its socket operation ended — whether the io::Error wraps a
/// `CancelledError` and whether `?` would turn it into `Error::Cancelled` (T3 for
/// I/O) — and the converted error.
fn describe_io_end(e: std::io::Error) -> (String, Error) {
    let wraps = e
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<CancelledError>().is_some());
    let err = Error::from(e);
    (
        format!(
            "wraps CancelledError: {wraps}, converts: {}",
            err.is_cancelled()
        ),
        err,
    )
}

/// R5 + Q3: the runtime is dropped while a task is blocked in `TcpListener::accept`, a
/// task is blocked reading a connected `TcpStream`, a task keeps reading a Unix socket
/// after swallowing its cancellation, a task awaits a running executor job, and two
/// timers are an hour away. With a 200 ms `shutdown_timeout` the drop returns without
/// panicking; the accept and read tasks saw an io::Error wrapping `CancelledError` and
/// ended cancelled; the stubborn task was aborted (its coroutine dropped on the loop
/// thread); the job's future was cancelled with its awaiting task; the timers never
/// fire and report cancelled; the peers see EOF (the sockets were closed); nothing was
/// reported to the exception handler. The job, detached, finishes later without harm.
#[test]
fn dropping_the_runtime_with_tasks_blocked_in_io_timers_and_a_running_job_returns() {
    let log = new_log();
    let job_finished = flag();
    let timer_fired = flag();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (stubborn_spy, stubborn_probe) = DropSpy::new();

    let (handle, loop_thread, views, timers, mut tcp_peer, unix_peer, job, reports) =
        bounded("dropping a runtime with pending I/O, timers and a job", {
            let (log, job_finished, timer_fired) =
                (log.clone(), job_finished.clone(), timer_fired.clone());
            move || {
                let rt = Runtime::builder()
                    .shutdown_timeout(Duration::from_millis(200))
                    .blocking_threads(1)
                    .build()
                    .unwrap();
                let handle = rt.handle();
                let reports = capture_exceptions(&handle);
                let (views, timers, tcp_peer, unix_peer, job) = rt.block_on(async move {
                    let loop_ = LoopHandle::current();
                    let started: Vec<Arc<AtomicBool>> = (0..4).map(|_| flag()).collect();

                    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                    let acceptor: Task<&str> = {
                        let (log, s) = (log.clone(), started[0].clone());
                        evloop::create_task(async move {
                            s.store(true, SeqCst);
                            match listener.accept().await {
                                Ok(_) => Ok("accepted?"),
                                Err(e) => {
                                    let (seen, err) = describe_io_end(e);
                                    push(&log, format!("accept: {seen}"));
                                    Err(err)
                                }
                            }
                        })
                    };

                    let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
                    let tcp_peer =
                        std::net::TcpStream::connect(server.local_addr().unwrap()).unwrap();
                    let (stream, _) = server.accept().await.unwrap();
                    let reader: Task<&str> = {
                        let (log, s) = (log.clone(), started[1].clone());
                        evloop::create_task(async move {
                            s.store(true, SeqCst);
                            let mut buf = [0u8; 16];
                            match stream.read(&mut buf).await {
                                Ok(n) => Ok(if n == 0 { "eof?" } else { "data?" }),
                                Err(e) => {
                                    let (seen, err) = describe_io_end(e);
                                    push(&log, format!("read: {seen}"));
                                    Err(err)
                                }
                            }
                        })
                    };

                    let (mine, unix_peer) = UnixStream::pair().unwrap();
                    let stubborn: Task<&str> = {
                        let (log, s) = (log.clone(), started[2].clone());
                        evloop::create_task(async move {
                            let _spy = stubborn_spy;
                            s.store(true, SeqCst);
                            let mut buf = [0u8; 16];
                            for _ in 0..100 {
                                match mine.read(&mut buf).await {
                                    Ok(_) => return Ok("read?"),
                                    Err(e) => {
                                        let (seen, _) = describe_io_end(e);
                                        push(&log, format!("stubborn ignores: {seen}"));
                                    }
                                }
                            }
                            Ok("gave up?")
                        })
                    };

                    let (job_started_tx, job_started_rx) = mpsc::channel();
                    let job: JobHandle<u32> = loop_.run_in_executor(None, move || {
                        job_started_tx.send(()).unwrap();
                        let _ = release_rx.recv_timeout(HANG_LIMIT);
                        job_finished.store(true, SeqCst);
                        42
                    });
                    job_started_rx
                        .recv_timeout(HANG_LIMIT)
                        .expect("the job started");
                    let job_waiter: Task<u32> = {
                        let (job, s) = (job.clone(), started[3].clone());
                        evloop::create_task(async move {
                            s.store(true, SeqCst);
                            job.await
                        })
                    };

                    let timers = [HOUR, 2 * HOUR].map(|d| {
                        let fired = timer_fired.clone();
                        loop_.call_later(d, move || fired.store(true, SeqCst))
                    });
                    until("every task is blocked", || {
                        started.iter().all(|s| s.load(SeqCst))
                    })
                    .await;
                    yield_times(3).await;
                    let views = [acceptor.future(), reader.future(), stubborn.future()];
                    (
                        views,
                        timers,
                        tcp_peer,
                        unix_peer,
                        (job, job_waiter.future()),
                    )
                });
                let loop_thread = thread::current().id();
                let dropped = catch_unwind(AssertUnwindSafe(move || drop(rt)));
                assert!(dropped.is_ok(), "Runtime::drop panicked");
                let reports = reports.lock().unwrap().clone();
                (
                    handle,
                    loop_thread,
                    views,
                    timers,
                    tcp_peer,
                    unix_peer,
                    job,
                    reports,
                )
            }
        });

    assert!(handle.is_closed());
    let [acceptor, reader, stubborn] = &views;
    for (name, view) in [
        ("acceptor", acceptor),
        ("reader", reader),
        ("stubborn", stubborn),
    ] {
        assert!(view.cancelled(), "{name}: {view:?}");
    }
    let log = common::entries(&log);
    assert!(
        log.contains(&"accept: wraps CancelledError: true, converts: true".to_string()),
        "{log:?}"
    );
    assert!(
        log.contains(&"read: wraps CancelledError: true, converts: true".to_string()),
        "{log:?}"
    );
    assert!(
        log.contains(&"stubborn ignores: wraps CancelledError: true, converts: true".to_string()),
        "{log:?}"
    );
    assert_eq!(
        stubborn_probe.dropped_on(),
        Some(loop_thread),
        "aborted on the loop thread"
    );
    let (job, job_waiter) = job;
    assert!(job_waiter.cancelled(), "{job_waiter:?}");
    assert!(
        job.cancelled(),
        "cancelling the awaiting task cancelled the job's future"
    );
    for timer in &timers {
        assert!(timer.cancelled());
    }
    assert!(!timer_fired.load(SeqCst));
    assert!(reports.is_empty(), "{reports:?}");

    // The sockets were closed: their peers see EOF.
    tcp_peer.set_read_timeout(Some(HANG_LIMIT)).unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(tcp_peer.read(&mut buf).unwrap(), 0, "EOF on the TCP peer");
    assert_eq!(
        unix_peer.try_read(&mut buf).unwrap(),
        0,
        "EOF on the Unix peer"
    );
    // An I/O object of the closed loop may be dropped on any thread.
    thread::spawn(move || drop(unix_peer)).join().unwrap();

    // The detached job finishes later; its (cancelled) future is not disturbed.
    assert!(!job_finished.load(SeqCst), "the job is still blocked");
    release_tx.send(()).unwrap();
    eventually("the detached job finished", || job_finished.load(SeqCst));
    assert!(job.cancelled());
}
