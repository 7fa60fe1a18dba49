//! Regression tests for bugs found while writing the SPEC Q3 fault tests
//! (`fault_panics.rs`), all fixed: each test asserts the behaviour the SPEC promises,
//! and its doc comment says what used to go wrong and where.
//!
//! * L9 / T3: "a panicking callback, task or handler never kills the loop" — but a
//!   destructor panic while the loop drops a coroutine or a task's result outside
//!   `catch_unwind` unwinds out of `block_on`.
//! * R5: "Drop never hangs forever and never panics" / "every task still pending is
//!   cancelled" — a destructor panic during shutdown leaves a task pending forever, or
//!   escapes `Runtime::drop`.
//! * Q3 ("nothing hangs"): I/O on a socket whose loop was closed never completes.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::{new_log, push, yield_times};
use evloop::JobHandle;
use evloop::net::UnixStream;
use evloop::{Error, Future, LoopHandle, Runtime, Task};

/// Generous bound that turns a hang into a failure.
const HANG_LIMIT: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// [`common::bounded`] with this file's [`HANG_LIMIT`].
fn bounded<T: Send + 'static>(what: &'static str, body: impl FnOnce() -> T + Send + 'static) -> T {
    common::bounded(HANG_LIMIT, what, body)
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

fn panic_message(result: &thread::Result<impl Sized>) -> String {
    match result {
        Ok(_) => String::new(),
        Err(payload) => common::panic_message(&**payload),
    }
}

/// Regression (was a bug; T3, L9): a task cancelled before its first poll is finished by dropping its
/// unstarted coroutine in `TaskCell::finish` (src/task/cell.rs, the `cancel_first`
/// path of `run`), outside any `catch_unwind`. If a value captured by the coroutine
/// panics in its destructor, the panic unwinds through `run_task` / `run_once` out of
/// `block_on` — the loop dies — and the task is never completed. The abort path
/// (`abort_now`) catches the same panic and reports it; this path should too: the task
/// should end cancelled (its body never ran) and the loop keep running.
#[test]
fn a_task_cancelled_before_its_first_poll_with_a_panicking_destructor_ends_cancelled() {
    bounded("cancel before the first poll", || {
        let rt = Runtime::new().unwrap();
        let _reports = common::capture_exceptions(&rt.handle());
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            rt.block_on(async {
                let bomb = PanicOnDrop("unstarted coroutine dropped");
                let task: Task<()> = evloop::create_task(async move {
                    let _bomb = bomb;
                    Ok(())
                });
                assert!(task.cancel());
                yield_times(3).await;
                // (In an array: a bare future as block_on's output looks like a missed
                // await.)
                [task.future()]
            })
        }));
        let message = panic_message(&outcome);
        let [view] = outcome.unwrap_or_else(|_| {
            panic!("block_on panicked with {message:?}: a destructor panic escaped the loop")
        });
        assert!(view.done(), "the task never ended");
        assert!(view.cancelled(), "{view:?}");
    });
}

/// Regression (was a bug; R5): at runtime drop, a task created but not yet polled is cancelled by the
/// shutdown and finished through the same unprotected `TaskCell::finish` as above. Its
/// coroutine's destructor panics, the panic unwinds out of `shutdown_tasks` (caught by
/// `Runtime::drop`, which only logs "shutdown of its tasks panicked"), and then:
/// * the task is left **pending forever** — `close()` skips it because its slab slot
///   is empty (taken out for the poll that never returned) — so anything awaiting it,
///   on another loop for instance, hangs;
/// * the graceful shutdown of every other task is cut short: a neighbour that would
///   clean up asynchronously on cancellation is aborted instead.
#[test]
fn a_panicking_destructor_of_an_unstarted_task_at_runtime_drop_still_cancels_it() {
    let log = new_log();
    let (unstarted, neighbour) = bounded("shutdown with an unstarted task", {
        let log = log.clone();
        move || {
            let rt = Runtime::builder()
                .shutdown_timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            let [unstarted, neighbour]: [Future<()>; 2] = rt.block_on(async move {
                let started = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                let neighbour: Task<()> = {
                    let started = started.clone();
                    evloop::create_task(async move {
                        started.store(true, std::sync::atomic::Ordering::SeqCst);
                        if let Err(e) = evloop::time::sleep(HOUR).await {
                            push(&log, format!("neighbour: {e}"));
                            evloop::time::sleep(Duration::from_millis(1)).await?;
                            push(&log, "neighbour: cleaned up");
                        }
                        Ok(())
                    })
                };
                while !started.load(std::sync::atomic::Ordering::SeqCst) {
                    evloop::yield_now().await.unwrap();
                }
                let bomb = PanicOnDrop("unstarted coroutine dropped at shutdown");
                // Created last and not yet polled when block_on returns.
                let unstarted: Task<()> = evloop::create_task(async move {
                    let _bomb = bomb;
                    Ok(())
                });
                [unstarted.future(), neighbour.future()]
            });
            let dropped = catch_unwind(AssertUnwindSafe(move || drop(rt)));
            assert!(dropped.is_ok(), "Runtime::drop panicked");
            (unstarted, neighbour)
        }
    });
    assert!(
        unstarted.done(),
        "the task is still pending after its runtime was dropped: {unstarted:?}"
    );
    assert!(unstarted.cancelled(), "{unstarted:?}");
    assert_eq!(
        common::entries(&log),
        ["neighbour: cancelled", "neighbour: cleaned up"],
        "the neighbour's graceful shutdown was skipped"
    );
    assert_eq!(neighbour.result().unwrap(), ());
}

/// Regression (was a bug; R5: "Drop never hangs forever and never panics"): at runtime drop the default
/// executor's queued jobs are failed and dropped by `Executor::shutdown_now`
/// (src/executor.rs, `job.fail(..)`), called from `Runtime::drop` outside
/// `catch_unwind`. A job closure whose captured value panics in its destructor makes
/// the panic escape `Runtime::drop`; the rest of the shutdown is skipped, so the loop
/// is never closed (L14) and the running job is not waited for.
#[test]
fn a_panicking_destructor_of_a_queued_executor_job_stays_inside_runtime_drop() {
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (dropped, handle, queued) = bounded("runtime drop with a queued job", move || {
        let rt = Runtime::builder()
            .blocking_threads(1)
            .shutdown_timeout(Duration::from_millis(200))
            .build()
            .unwrap();
        let handle = rt.handle();
        let [queued]: [JobHandle<u8>; 1] = rt.block_on(async move {
            let loop_ = LoopHandle::current();
            let (started_tx, started_rx) = mpsc::channel();
            // Occupies the only worker thread until released (after the drop).
            drop(loop_.run_in_executor(None, move || {
                started_tx.send(()).unwrap();
                let _ = release_rx.recv_timeout(HANG_LIMIT);
            }));
            started_rx.recv_timeout(HANG_LIMIT).unwrap();
            let bomb = PanicOnDrop("queued job closure dropped");
            [loop_.run_in_executor(None, move || {
                let _bomb = &bomb;
                1u8
            })]
        });
        let dropped = catch_unwind(AssertUnwindSafe(move || drop(rt)));
        (panic_message(&dropped), handle, queued)
    });
    let _ = release_tx.send(());
    assert_eq!(dropped, "", "Runtime::drop panicked");
    assert!(handle.is_closed(), "the loop was never closed");
    assert!(queued.result().unwrap_err().is_invalid_state());
}

/// Regression (was a bug; L9: "a panicking callback, task or handler never kills the loop"): a task
/// whose handle was dropped is released by the loop when it finishes
/// (`run_task`'s `drop(slot)`, src/core/tasks.rs), which drops its stored result there,
/// outside `catch_unwind`. A result whose destructor panics unwinds out of `block_on`.
/// (tokio catches the same panic when it drops a task's output.)
#[test]
fn a_panicking_destructor_of_a_task_result_released_by_the_loop_is_reported() {
    bounded("a task result dropped by the loop", || {
        let rt = Runtime::new().unwrap();
        let _reports = common::capture_exceptions(&rt.handle());
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            rt.block_on(async {
                let task = evloop::create_task(async {
                    evloop::yield_now().await?;
                    Ok::<_, Error>(PanicOnDrop("task result dropped by the loop"))
                });
                drop(task); // only the loop holds the task now
                yield_times(4).await;
                "the loop survived"
            })
        }));
        let message = panic_message(&outcome);
        assert_eq!(
            outcome.unwrap_or_else(|_| panic!("block_on panicked with {message:?}")),
            "the loop survived"
        );
    });
}

/// Regression (was a hang; Q3 "nothing hangs"; L14 "closed loops are safe"): an I/O object whose loop
/// was closed can still be awaited from another loop, and the operation never
/// completes — not even a write on a fresh, writable socket — because readiness only
/// ever comes from the closed loop's reactor. The net docs say an I/O object works
/// "only while its own loop runs", but a forever-pending future is the one failure
/// mode a user cannot detect; tokio returns an error for I/O on a shut-down runtime
/// and asyncio raises "Event loop is closed". Expected: the operation fails at once
/// with an io::Error. (A 5 s timeout stands in for "never".)
#[test]
fn io_on_a_socket_whose_loop_was_closed_fails_at_once() {
    bounded("I/O after the loop closed", || {
        let first = Runtime::new().unwrap();
        let (mine, _peer) = first.block_on(async { UnixStream::pair().unwrap() });
        drop(first);
        let second = Runtime::new().unwrap();
        let outcome = second.block_on(async {
            evloop::time::timeout(Duration::from_secs(5), mine.write(b"x")).await
        });
        assert!(
            matches!(outcome, Ok(Err(_))),
            "expected an io::Error, got {outcome:?}: the write never completed"
        );
    });
}
