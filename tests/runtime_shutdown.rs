//! Shutdown (SPEC R5, T5): dropping a `Runtime` (or `evloop::run` returning) cancels
//! every pending task and runs the loop until they finish, up to `shutdown_timeout`;
//! tasks still alive then are aborted. Drop never hangs and never panics.

mod common;
use common::{Log, entries, new_log, push};

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{DropSpy, Gate};
use evloop::{Error, Future, Runtime, Task};

const HOUR: Duration = Duration::from_secs(3600);

fn flag() -> Arc<AtomicBool> {
    Arc::new(AtomicBool::new(false))
}

/// Lets the loop iterate until every task in `started` has begun.
async fn until_all(started: &[Arc<AtomicBool>]) {
    for _ in 0..1000 {
        if started.iter().all(|f| f.load(Ordering::SeqCst)) {
            return;
        }
        evloop::yield_now().await.unwrap();
    }
    panic!("the tasks never started");
}

/// A task that sleeps for an hour, then on cancellation cleans up asynchronously
/// (a short sleep) and either finishes with a value or re-raises.
fn cooperative(
    name: &'static str,
    log: &Log,
    started: &Arc<AtomicBool>,
    swallow: bool,
) -> Task<&'static str> {
    let (log, started) = (log.clone(), started.clone());
    evloop::create_task(async move {
        started.store(true, Ordering::SeqCst);
        match evloop::time::sleep(HOUR).await {
            Ok(()) => Ok("slept an hour"),
            Err(e) => {
                push(&log, format!("{name}: {e}"));
                evloop::time::sleep(Duration::from_millis(1)).await?;
                evloop::yield_now().await?;
                push(&log, format!("{name}: cleaned up"));
                if swallow { Ok("cleaned") } else { Err(e) }
            }
        }
    })
}

#[test]
fn dropping_the_runtime_cancels_pending_tasks_and_lets_them_clean_up() {
    let _watchdog = common::Watchdog::new("graceful shutdown", Duration::from_secs(30));
    let log = new_log();
    let rt = Runtime::new().unwrap();
    let loop_ = rt.handle();
    let (swallowing, propagating, unstarted, held) = rt.block_on(async {
        let started = [flag(), flag()];
        let swallowing = cooperative("swallowing", &log, &started[0], true);
        let propagating = cooperative("propagating", &log, &started[1], false);
        until_all(&started).await;
        // Created last: never polled before the shutdown.
        let held = Arc::new(());
        let unstarted = {
            let (log, held) = (log.clone(), held.clone());
            evloop::create_task(async move {
                let _keep = held;
                push(&log, "unstarted: body ran");
                Ok::<_, Error>("ran")
            })
        };
        (swallowing, propagating, unstarted, held)
    });
    assert!(!swallowing.done() && !propagating.done() && !unstarted.done());
    drop(rt);
    assert!(loop_.is_closed());

    let mut got = entries(&log);
    got.sort();
    assert_eq!(
        got,
        [
            "propagating: cancelled",
            "propagating: cleaned up",
            "swallowing: cancelled",
            "swallowing: cleaned up"
        ]
    );
    assert_eq!(swallowing.result().unwrap(), "cleaned");
    assert!(!swallowing.cancelled());
    assert!(propagating.cancelled());
    assert!(unstarted.cancelled(), "a task that never ran is cancelled");
    assert_eq!(Arc::strong_count(&held), 1, "its coroutine was dropped");
}

/// The shutdown loop is a full loop: clean-up may create a new task and await it, and
/// may wait for a worker thread to answer through an evloop `Future`.
#[test]
fn clean_up_may_spawn_tasks_and_wait_for_other_threads() {
    let _watchdog = common::Watchdog::new("clean-up during shutdown", Duration::from_secs(30));
    let log = new_log();
    let rt = Runtime::new().unwrap();
    let ack: Future<&'static str> = rt.handle().create_future();
    let (cancelled_tx, cancelled_rx) = std::sync::mpsc::channel::<()>();
    let worker = {
        let ack = ack.clone();
        std::thread::spawn(move || {
            // Answers only once the shutdown has cancelled the task.
            if cancelled_rx.recv().is_ok() {
                std::thread::sleep(Duration::from_millis(5));
                ack.set_result("ack from worker").unwrap();
            }
        })
    };
    let task = rt.block_on(async {
        let started = flag();
        let task = {
            let (log, started) = (log.clone(), started.clone());
            evloop::create_task(async move {
                started.store(true, Ordering::SeqCst);
                let Err(e) = evloop::time::sleep(HOUR).await else {
                    return Ok("slept");
                };
                push(&log, format!("got {e}"));
                let helper = evloop::create_task(async {
                    evloop::yield_now().await?;
                    Ok::<_, Error>("helper done")
                });
                push(&log, helper.await?);
                cancelled_tx.send(()).unwrap();
                push(&log, ack.await?);
                Ok::<_, Error>("cleaned")
            })
        };
        until_all(std::slice::from_ref(&started)).await;
        [task]
    });
    drop(rt);
    worker.join().unwrap();
    assert_eq!(
        entries(&log),
        ["got cancelled", "helper done", "ack from worker"]
    );
    let [task] = task;
    assert_eq!(task.result().unwrap(), "cleaned");
}

#[test]
fn a_task_spawned_remotely_just_before_the_drop_never_runs() {
    let rt = Runtime::new().unwrap();
    let ran = flag();
    let held = Arc::new(());
    let task = {
        let (ran, held) = (ran.clone(), held.clone());
        rt.handle().spawn(async move {
            let _keep = held;
            ran.store(true, Ordering::SeqCst);
            Ok::<_, Error>(())
        })
    };
    drop(rt);
    assert!(task.done());
    assert!(task.cancelled());
    assert!(!ran.load(Ordering::SeqCst));
    assert_eq!(Arc::strong_count(&held), 1);
}

/// Three ways to ignore the request: catching it in a loop of yields, sitting on a
/// foreign future that never completes, and cleaning up for an hour. With a 50 ms
/// shutdown timeout the drop returns and every coroutine is dropped (aborted).
#[test]
fn tasks_ignoring_cancellation_are_aborted_after_the_shutdown_timeout() {
    let _watchdog = common::Watchdog::new("shutdown with stubborn tasks", Duration::from_secs(30));
    let this_thread = std::thread::current().id();
    let rt = Runtime::builder()
        .shutdown_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let (spies, probes): (Vec<_>, Vec<_>) = (0..3).map(|_| DropSpy::new()).unzip();
    let gate = Gate::new();
    let log = new_log();
    let views: Vec<Future<()>> = rt.block_on(async {
        let mut spies = spies.into_iter();
        let started = [flag(), flag(), flag()];
        let yielder = {
            let (spy, s, log) = (spies.next().unwrap(), started[0].clone(), log.clone());
            evloop::create_task(async move {
                let _spy = spy;
                s.store(true, Ordering::SeqCst);
                loop {
                    if let Err(e) = evloop::yield_now().await {
                        push(&log, format!("yielder ignores: {e}"));
                    }
                }
            })
        };
        let foreign = {
            let (spy, s, gate) = (spies.next().unwrap(), started[1].clone(), gate.clone());
            evloop::create_task(async move {
                let _spy = spy;
                s.store(true, Ordering::SeqCst);
                gate.wait().await;
                Ok::<_, Error>(())
            })
        };
        let slow_cleanup = {
            let (spy, s, log) = (spies.next().unwrap(), started[2].clone(), log.clone());
            evloop::create_task(async move {
                let _spy = spy;
                s.store(true, Ordering::SeqCst);
                if let Err(e) = evloop::time::sleep(HOUR).await {
                    push(&log, format!("slow cleanup starts: {e}"));
                    evloop::time::sleep(HOUR).await?;
                }
                Ok::<_, Error>(())
            })
        };
        until_all(&started).await;
        vec![yielder.future(), foreign.future(), slow_cleanup.future()]
    });
    drop(rt);
    for (i, probe) in probes.iter().enumerate() {
        assert_eq!(probe.drops(), 1, "coroutine {i} was not dropped");
        assert_eq!(probe.dropped_on(), Some(this_thread), "coroutine {i}");
    }
    for (i, view) in views.iter().enumerate() {
        assert!(view.cancelled(), "task {i} did not end cancelled");
    }
    assert_eq!(
        entries(&log),
        [
            "yielder ignores: cancelled",
            "slow cleanup starts: cancelled"
        ]
    );
    // The foreign future can still complete later: nobody is there any more.
    gate.open();
}

#[test]
fn evloop_run_returning_shuts_down_its_tasks() {
    let _watchdog = common::Watchdog::new("evloop::run shutdown", Duration::from_secs(30));
    let log = new_log();
    let l = log.clone();
    let (cleaned, plain) = evloop::run(async move {
        let started = [flag(), flag()];
        let cleaned = cooperative("run", &l, &started[0], true);
        let plain = {
            let s = started[1].clone();
            evloop::create_task(async move {
                s.store(true, Ordering::SeqCst);
                evloop::time::sleep(HOUR).await?;
                Ok::<_, Error>("slept")
            })
        };
        until_all(&started).await;
        (cleaned, plain)
    });
    assert_eq!(entries(&log), ["run: cancelled", "run: cleaned up"]);
    assert_eq!(cleaned.result().unwrap(), "cleaned");
    assert!(plain.cancelled());
}

struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("drop of an aborted coroutine panicked");
        }
    }
}

#[test]
fn a_panicking_drop_during_abort_does_not_panic_out_of_the_runtime_drop() {
    let _watchdog = common::Watchdog::new("panicking drop at shutdown", Duration::from_secs(30));
    let rt = Runtime::builder()
        .shutdown_timeout(Duration::from_millis(20))
        .build()
        .unwrap();
    let reports = common::capture_exceptions(&rt.handle());
    let (spy, probe) = DropSpy::new();
    let gate = Gate::new();
    let views: Vec<Future<()>> = rt.block_on(async {
        let started = [flag(), flag()];
        let panicky = {
            let (gate, s) = (gate.clone(), started[0].clone());
            evloop::create_task(async move {
                let _bomb = PanicOnDrop;
                s.store(true, Ordering::SeqCst);
                gate.wait().await;
                Ok::<_, Error>(())
            })
        };
        let neighbour = {
            let (gate, s) = (gate.clone(), started[1].clone());
            evloop::create_task(async move {
                let _spy = spy;
                s.store(true, Ordering::SeqCst);
                gate.wait().await;
                Ok::<_, Error>(())
            })
        };
        until_all(&started).await;
        vec![panicky.future(), neighbour.future()]
    });
    let dropped = catch_unwind(AssertUnwindSafe(move || drop(rt)));
    assert!(dropped.is_ok(), "Runtime::drop panicked");
    assert!(views.iter().all(|v| v.cancelled()));
    assert_eq!(probe.drops(), 1, "the other task was aborted as well");
    let reports = reports.lock().unwrap();
    let panics: Vec<_> = reports
        .iter()
        .filter_map(|ctx| ctx.exception.as_ref())
        .filter(|e| e.is_panic() && e.to_string().contains("aborted coroutine panicked"))
        .collect();
    assert_eq!(panics.len(), 1, "reported once: {reports:?}");
}

/// A task that panics while handling the shutdown's cancellation ends with a panic
/// exception; the drop itself neither panics nor hangs.
#[test]
fn a_task_panicking_on_the_shutdown_cancellation_does_not_escape() {
    let _watchdog = common::Watchdog::new("panic during shutdown", Duration::from_secs(30));
    let rt = Runtime::new().unwrap();
    // (In an array: a bare future as block_on's output would look like a missed await.)
    let [view] = rt.block_on(async {
        let started = flag();
        let task = {
            let s = started.clone();
            evloop::create_task(async move {
                s.store(true, Ordering::SeqCst);
                if evloop::time::sleep(HOUR).await.is_err() {
                    panic!("cannot cope with cancellation");
                }
                Ok::<_, Error>(())
            })
        };
        until_all(std::slice::from_ref(&started)).await;
        [task.future()]
    });
    let dropped = catch_unwind(AssertUnwindSafe(move || drop(rt)));
    assert!(dropped.is_ok(), "Runtime::drop panicked");
    let err = view.result().unwrap_err();
    assert!(err.is_panic(), "{err:?}");
    assert!(err.to_string().contains("cannot cope"), "{err}");
}
