//! Hardening rule 7 (SPEC R5 "Drop never hangs forever and never panics", Q3 "the
//! process does not abort"): dropping a `Runtime` never aborts the process, whatever
//! destructors panic.
//!
//! When a runtime is dropped, everything it still owns is dropped with it: queued
//! callbacks, pending timers, tasks' coroutines, fd-watch callbacks, signal handlers,
//! the done-callbacks of futures only the loop still holds, queued executor jobs. Any of
//! those may capture a value whose destructor panics. One such panic that unwinds
//! through a loop dropping a *collection* of values makes Rust drop the rest of the
//! collection during the unwind; the second panicking destructor then aborts the
//! process ("panic in a destructor during cleanup"). Each scenario therefore runs in a
//! child process (`common::child::isolate`), and the parent asserts the child exited
//! successfully. In every scenario the non-panicking values are counted: each one must
//! have been dropped exactly once once the runtime is gone, and `Runtime::drop` itself
//! must return normally.
//!
//! * `queued_callbacks_*`: two or more `call_soon` callbacks, never run, whose captures
//!   panic on drop.
//! * `pending_timers_*`: the same with `call_later` timers.
//! * `callbacks_queued_from_another_thread_*`: the same with `call_soon_threadsafe` from
//!   a plain thread while the loop is idle (they wait in the cross-thread queue).
//! * `timers_scheduled_from_another_thread_*`: `call_later` from a plain thread while
//!   the loop runs (the loop moves them into its wheel).
//! * `pending_tasks_*`: tasks whose coroutines panic when dropped — one cancelled
//!   gracefully by the shutdown, one that ignores its cancellation (aborted), one never
//!   started.
//! * `fd_watch_callbacks_*`: `add_reader` / `add_writer` callbacks.
//! * `signal_handlers_*`: `add_signal_handler` callbacks (the signals are never raised).
//! * `done_callbacks_of_pending_futures_*`: futures whose only handles are held by the
//!   loop (a task's coroutine, a timer's closure), each with two panicking
//!   done-callbacks.
//! * `queued_executor_jobs_*`: jobs of the default executor that never started.
//! * `everything_at_once_*`: all of the above in one runtime.

mod common;

use std::os::fd::AsRawFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::Gate;
use common::child::isolate;
use evloop::{Future, LoopHandle, Runtime, Task};

const HOUR: Duration = Duration::from_secs(3600);

/// A value whose destructor always panics — also while the thread is already
/// unwinding, where that aborts the process. Dropped by itself (each under its own
/// `catch_unwind`, never during another value's unwind) it is just a caught panic.
struct PanicOnDrop(&'static str);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("{}", self.0);
    }
}

/// Counts its drops.
#[derive(Clone, Default)]
struct Drops(Arc<AtomicUsize>);

impl Drops {
    fn token(&self) -> Counted {
        Counted(self.0.clone())
    }

    fn count(&self) -> usize {
        self.0.load(SeqCst)
    }
}

/// A value counted by its [`Drops`] when dropped.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// A runtime with a short shutdown timeout (tasks that ignore cancellation are aborted
/// after it).
fn runtime() -> Runtime {
    Runtime::builder()
        .shutdown_timeout(Duration::from_millis(100))
        .build()
        .unwrap()
}

/// Drops `rt`, asserting that `Runtime::drop` returned normally (no panic escaped it).
fn drop_runtime(rt: Runtime) {
    let dropped = catch_unwind(AssertUnwindSafe(move || drop(rt)));
    if let Err(payload) = dropped {
        panic!(
            "Runtime::drop panicked with {:?}",
            common::panic_message(&*payload)
        );
    }
}

/// Queues, with `call_soon` on the loop thread, `bombs` callbacks capturing a
/// panicking value, each followed by one capturing a counted value. Without tasks they
/// never run; with tasks alive at the drop, the shutdown's iterations run them (R5),
/// which drops their captures too — so none of them panics when run, and a capture is
/// dropped exactly once either way. (The same holds for every callback below.)
fn queue_callbacks(loop_: &LoopHandle, drops: &Drops, bombs: usize) -> usize {
    let mut counted = 0;
    for _ in 0..bombs {
        let bomb = PanicOnDrop("queued callback's capture dropped");
        loop_.call_soon(move || {
            let _bomb = &bomb;
        });
        let token = drops.token();
        loop_.call_soon(move || {
            let _token = &token;
        });
        counted += 1;
    }
    counted
}

fn queue_timers(loop_: &LoopHandle, drops: &Drops, bombs: usize) -> usize {
    let mut counted = 0;
    for _ in 0..bombs {
        let bomb = PanicOnDrop("pending timer's capture dropped");
        loop_.call_later(HOUR, move || {
            let _bomb = &bomb;
        });
        let token = drops.token();
        loop_.call_later(HOUR, move || {
            let _token = &token;
        });
        counted += 1;
    }
    counted
}

/// Queues callbacks from a plain thread while the loop is not running: they wait in
/// the cross-thread queue until the runtime is dropped.
fn queue_remote_callbacks(loop_: &LoopHandle, drops: &Drops, bombs: usize) -> usize {
    let loop_ = loop_.clone();
    let drops = drops.clone();
    thread::spawn(move || {
        let mut counted = 0;
        for _ in 0..bombs {
            let bomb = PanicOnDrop("cross-thread callback's capture dropped");
            loop_.call_soon_threadsafe(move || {
                let _bomb = &bomb;
            });
            let token = drops.token();
            loop_.call_soon_threadsafe(move || {
                let _token = &token;
            });
            counted += 1;
        }
        counted
    })
    .join()
    .expect("the producer thread")
}

/// Schedules timers (an hour away) with `call_later` from a plain thread while the
/// loop runs; the caller then lets the loop iterate, which moves them into its wheel.
fn queue_remote_timers(loop_: &LoopHandle, drops: &Drops, bombs: usize) -> usize {
    let loop_ = loop_.clone();
    let drops = drops.clone();
    thread::spawn(move || {
        let mut counted = 0;
        for _ in 0..bombs {
            let bomb = PanicOnDrop("cross-thread timer's capture dropped");
            loop_.call_later(HOUR, move || {
                let _bomb = &bomb;
            });
            let token = drops.token();
            loop_.call_later(HOUR, move || {
                let _token = &token;
            });
            counted += 1;
        }
        counted
    })
    .join()
    .expect("the producer thread")
}

/// Creates tasks with panicking coroutine destructors (and counted neighbours): one
/// that handles its cancellation and returns, one that ignores it (blocked on a foreign
/// future: aborted after the shutdown timeout), one never polled.
fn spawn_tasks(drops: &Drops, gate: &Gate) -> (usize, Vec<Future<()>>) {
    let mut views = Vec::new();
    let graceful_bomb = PanicOnDrop("gracefully cancelled coroutine dropped");
    let graceful_token = drops.token();
    let graceful: Task<()> = evloop::create_task(async move {
        let _bomb = graceful_bomb;
        let _token = graceful_token;
        let _ = evloop::time::sleep(HOUR).await;
        Ok(())
    });
    views.push(graceful.future());
    let stubborn_bomb = PanicOnDrop("aborted coroutine dropped");
    let stubborn_token = drops.token();
    let wait = gate.wait();
    let stubborn: Task<()> = evloop::create_task(async move {
        let _bomb = stubborn_bomb;
        let _token = stubborn_token;
        wait.await;
        Ok(())
    });
    views.push(stubborn.future());
    (2, views)
}

/// Tasks created last in the block_on future: never polled before the drop.
fn spawn_unstarted_tasks(drops: &Drops) -> usize {
    let bomb = PanicOnDrop("unstarted coroutine dropped");
    drop(evloop::create_task(async move {
        let _bomb = bomb;
        Ok(())
    }));
    let token = drops.token();
    drop(evloop::create_task(async move {
        let _token = token;
        Ok(())
    }));
    1
}

/// Watches fds with callbacks that capture panicking values (and one counted one). The
/// fds are returned: they must outlive the runtime.
fn watch_fds(loop_: &LoopHandle, drops: &Drops) -> (usize, Vec<std::os::unix::net::UnixStream>) {
    let mut keep = Vec::new();
    let mut pair = || {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let fd = a.as_raw_fd();
        keep.push(a);
        keep.push(b);
        fd
    };
    let (fd1, fd2, fd3) = (pair(), pair(), pair());
    let bomb = PanicOnDrop("reader callback dropped");
    loop_
        .add_reader(fd1, move || {
            let _bomb = &bomb;
        })
        .unwrap();
    let bomb = PanicOnDrop("writer callback dropped");
    loop_
        .add_writer(fd2, move || {
            let _bomb = &bomb;
        })
        .unwrap();
    let bomb = PanicOnDrop("second reader callback dropped");
    loop_
        .add_reader(fd2, move || {
            let _bomb = &bomb;
        })
        .unwrap();
    let token = drops.token();
    loop_
        .add_reader(fd3, move || {
            let _token = &token;
        })
        .unwrap();
    (1, keep)
}

fn install_signal_handlers(loop_: &LoopHandle, drops: &Drops) -> usize {
    for signum in [libc::SIGUSR1, libc::SIGUSR2] {
        let bomb = PanicOnDrop("signal handler dropped");
        loop_
            .add_signal_handler(signum, move || {
                let _bomb = &bomb;
            })
            .unwrap();
    }
    let token = drops.token();
    loop_
        .add_signal_handler(libc::SIGWINCH, move || {
            let _token = &token;
        })
        .unwrap();
    1
}

/// A pending future with two panicking done-callbacks and a counted one.
fn doomed_future(drops: &Drops) -> Future<u8> {
    let fut = Future::new();
    for _ in 0..2 {
        let bomb = PanicOnDrop("done-callback of a pending future dropped");
        fut.add_done_callback(move |_: &Future<u8>| {
            let _bomb = &bomb;
        });
    }
    let token = drops.token();
    fut.add_done_callback(move |_: &Future<u8>| {
        let _token = &token;
    });
    fut
}

/// Futures whose only handles the loop holds: one in a task's coroutine (cancelled by
/// the shutdown), one in a pending timer's closure.
fn hide_futures_in_the_loop(loop_: &LoopHandle, drops: &Drops) -> usize {
    let in_task = doomed_future(drops);
    drop(evloop::create_task(async move {
        let _keep = in_task;
        let _ = evloop::time::sleep(HOUR).await;
        Ok(())
    }));
    let in_timer = doomed_future(drops);
    loop_.call_later(HOUR, move || drop(in_timer));
    2
}

/// Occupies the default executor's only thread until `release` fires (after the
/// drop), then queues jobs that never start: panicking captures and a counted one.
fn queue_jobs(loop_: &LoopHandle, drops: &Drops, release: mpsc::Receiver<()>) -> usize {
    let (started_tx, started_rx) = mpsc::channel();
    drop(loop_.run_in_executor(None, move || {
        started_tx.send(()).unwrap();
        let _ = release.recv_timeout(Duration::from_secs(60));
    }));
    started_rx.recv().unwrap();
    for _ in 0..2 {
        let bomb = PanicOnDrop("queued executor job dropped");
        drop(loop_.run_in_executor(None, move || {
            let _bomb = &bomb;
        }));
    }
    let token = drops.token();
    drop(loop_.run_in_executor(None, move || {
        let _token = &token;
    }));
    1
}

/// Dropping a runtime with three locally queued `call_soon` callbacks whose captures
/// panic on drop (interleaved with counted ones). `Local::close` cancels the queued
/// cells in one loop under a single `catch_unwind`: the first panic unwinds out of it,
/// the rest of the queue is dropped during the unwind, and the second panicking
/// capture aborts the process. Expected: the process lives on, `Runtime::drop` returns,
/// every counted capture is dropped exactly once.
#[test]
fn queued_callbacks_with_panicking_captures_do_not_abort_runtime_drop() {
    isolate(
        "queued_callbacks_with_panicking_captures_do_not_abort_runtime_drop",
        || {
            let drops = Drops::default();
            let rt = runtime();
            let counted = rt.block_on(async {
                // Queued during the last poll of the block_on future: they never run.
                queue_callbacks(&LoopHandle::current(), &drops, 3)
            });
            drop_runtime(rt);
            assert_eq!(drops.count(), counted);
        },
    );
}

/// The same with three pending `call_later` timers (an hour away): `Local::close`
/// drains the wheel and cancels the timer cells in the same single `catch_unwind`.
#[test]
fn pending_timers_with_panicking_captures_do_not_abort_runtime_drop() {
    isolate(
        "pending_timers_with_panicking_captures_do_not_abort_runtime_drop",
        || {
            let drops = Drops::default();
            let rt = runtime();
            let counted = rt.block_on(async { queue_timers(&LoopHandle::current(), &drops, 3) });
            drop_runtime(rt);
            assert_eq!(drops.count(), counted);
        },
    );
}

/// The same with callbacks queued by `call_soon_threadsafe` from a plain thread while
/// the loop is not running: they wait in the cross-thread queue, which
/// `Shared::drain_closed` empties outside any `catch_unwind`.
#[test]
fn callbacks_queued_from_another_thread_with_panicking_captures_do_not_abort_runtime_drop() {
    isolate(
        "callbacks_queued_from_another_thread_with_panicking_captures_do_not_abort_runtime_drop",
        || {
            let drops = Drops::default();
            let rt = runtime();
            let counted = queue_remote_callbacks(&rt.handle(), &drops, 3);
            drop_runtime(rt);
            assert_eq!(drops.count(), counted);
        },
    );
}

/// The same with timers scheduled by `call_later` from a plain thread while the loop
/// runs: the loop moves them from its cross-thread queue into its wheel, and the runtime
/// drop drains the wheel as for local timers.
#[test]
fn timers_scheduled_from_another_thread_with_panicking_captures_do_not_abort_runtime_drop() {
    isolate(
        "timers_scheduled_from_another_thread_with_panicking_captures_do_not_abort_runtime_drop",
        || {
            let drops = Drops::default();
            let rt = runtime();
            let counted = rt.block_on(async {
                let counted = queue_remote_timers(&LoopHandle::current(), &drops, 3);
                common::yield_times(2).await; // drained into the wheel
                counted
            });
            drop_runtime(rt);
            assert_eq!(drops.count(), counted);
        },
    );
}

/// Tasks whose coroutines panic when dropped: one cancelled by the shutdown that
/// returns, one blocked on a foreign future that ignores the cancellation (aborted once
/// the shutdown timeout passed), one never polled.
#[test]
fn pending_tasks_with_panicking_coroutine_destructors_do_not_abort_runtime_drop() {
    isolate(
        "pending_tasks_with_panicking_coroutine_destructors_do_not_abort_runtime_drop",
        || {
            let drops = Drops::default();
            let gate = Gate::new();
            let rt = runtime();
            let (counted, views) = rt.block_on(async {
                let (mut counted, views) = spawn_tasks(&drops, &gate);
                common::yield_times(2).await; // both are suspended now
                counted += spawn_unstarted_tasks(&drops);
                (counted, views)
            });
            drop_runtime(rt);
            assert_eq!(drops.count(), counted);
            for view in views {
                assert!(view.done(), "a task outlived its runtime: {view:?}");
            }
        },
    );
}

/// `add_reader` / `add_writer` callbacks whose captures panic on drop: the runtime
/// drop clears the watch table (`Local::clear_watches`) outside any `catch_unwind`.
#[test]
fn fd_watch_callbacks_with_panicking_captures_do_not_abort_runtime_drop() {
    isolate(
        "fd_watch_callbacks_with_panicking_captures_do_not_abort_runtime_drop",
        || {
            let drops = Drops::default();
            let rt = runtime();
            let (counted, fds) = rt.block_on(async { watch_fds(&LoopHandle::current(), &drops) });
            drop_runtime(rt);
            assert_eq!(drops.count(), counted);
            drop(fds);
        },
    );
}

/// Signal handlers whose captures panic on drop (the signals never arrive): the runtime
/// drop clears them (`Signals::clear`) outside any `catch_unwind`.
#[test]
fn signal_handlers_with_panicking_captures_do_not_abort_runtime_drop() {
    isolate(
        "signal_handlers_with_panicking_captures_do_not_abort_runtime_drop",
        || {
            let drops = Drops::default();
            let rt = runtime();
            let counted =
                rt.block_on(async { install_signal_handlers(&LoopHandle::current(), &drops) });
            drop_runtime(rt);
            assert_eq!(drops.count(), counted);
        },
    );
}

/// Pending futures held only by the loop — one by a task's coroutine, one by a pending
/// timer's closure — each with two panicking done-callbacks: dropping the future drops
/// its callback list, and the second panicking callback is dropped while the first one
/// unwinds.
#[test]
fn done_callbacks_of_pending_futures_with_panicking_captures_do_not_abort_runtime_drop() {
    isolate(
        "done_callbacks_of_pending_futures_with_panicking_captures_do_not_abort_runtime_drop",
        || {
            let drops = Drops::default();
            let rt = runtime();
            let counted = rt.block_on(async {
                let counted = hide_futures_in_the_loop(&LoopHandle::current(), &drops);
                common::yield_times(2).await;
                counted
            });
            drop_runtime(rt);
            assert_eq!(drops.count(), counted);
        },
    );
}

/// Jobs queued on the default executor that never start (its only thread is busy):
/// the runtime drop fails them and drops their closures.
#[test]
fn queued_executor_jobs_with_panicking_captures_do_not_abort_runtime_drop() {
    isolate(
        "queued_executor_jobs_with_panicking_captures_do_not_abort_runtime_drop",
        || {
            let drops = Drops::default();
            let (release_tx, release_rx) = mpsc::channel();
            let rt = Runtime::builder()
                .blocking_threads(1)
                .shutdown_timeout(Duration::from_millis(100))
                .build()
                .unwrap();
            let counted =
                rt.block_on(async { queue_jobs(&LoopHandle::current(), &drops, release_rx) });
            drop_runtime(rt);
            let _ = release_tx.send(());
            assert_eq!(drops.count(), counted);
        },
    );
}

/// Everything at once in one runtime: queued callbacks, timers, cross-thread callbacks,
/// tasks (graceful, aborted, unstarted), fd watches, signal handlers, done-callbacks of
/// futures only the loop holds, queued executor jobs — each kind with panicking
/// captures and counted neighbours.
#[test]
fn everything_panicking_at_once_does_not_abort_runtime_drop() {
    isolate(
        "everything_panicking_at_once_does_not_abort_runtime_drop",
        || {
            let drops = Drops::default();
            let gate = Gate::new();
            let (release_tx, release_rx) = mpsc::channel();
            let rt = Runtime::builder()
                .blocking_threads(1)
                .shutdown_timeout(Duration::from_millis(100))
                .build()
                .unwrap();
            let (mut counted, fds, views) = rt.block_on(async {
                let loop_ = LoopHandle::current();
                let mut counted = 0;
                let (n, views) = spawn_tasks(&drops, &gate);
                counted += n;
                let (n, fds) = watch_fds(&loop_, &drops);
                counted += n;
                counted += install_signal_handlers(&loop_, &drops);
                counted += hide_futures_in_the_loop(&loop_, &drops);
                counted += queue_jobs(&loop_, &drops, release_rx);
                counted += queue_remote_timers(&loop_, &drops, 2);
                common::yield_times(2).await; // tasks suspended, remote timers in the wheel
                counted += queue_timers(&loop_, &drops, 2);
                counted += spawn_unstarted_tasks(&drops);
                counted += queue_callbacks(&loop_, &drops, 2);
                (counted, fds, views)
            });
            // The loop is idle now: these wait in its cross-thread queue.
            counted += queue_remote_callbacks(&rt.handle(), &drops, 2);
            drop_runtime(rt);
            let _ = release_tx.send(());
            assert_eq!(drops.count(), counted);
            for view in views {
                assert!(view.done(), "a task outlived its runtime: {view:?}");
            }
            drop(fds);
        },
    );
}
