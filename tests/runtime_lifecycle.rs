//! The runtime's life cycle (SPEC R1–R4, L1, L8, L10, L14, L15): building, running,
//! stopping, re-running, nesting, and the identity of loop handles.

mod common;
use common::run_until_stopped;

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use evloop::{Error, LoopHandle, Runtime};

fn panic_text(result: Result<impl Sized, Box<dyn std::any::Any + Send>>) -> String {
    match result {
        Ok(_) => panic!("expected a panic"),
        Err(payload) => common::panic_message(payload.as_ref()),
    }
}

#[test]
fn run_forever_can_run_again_after_stop() {
    let rt = Runtime::new().unwrap();
    let loop_ = rt.handle();
    let log = Arc::new(Mutex::new(Vec::new()));
    let push = |name: &'static str| {
        let log = log.clone();
        move || log.lock().unwrap().push(name)
    };
    loop_.call_soon(push("first run"));
    loop_.call_soon(|| LoopHandle::current().stop());
    run_until_stopped(&rt);
    assert!(!loop_.is_running());
    assert_eq!(*log.lock().unwrap(), ["first run"]);

    // Scheduled between the runs: runs in the second run.
    loop_.call_soon(push("between runs"));
    loop_.call_later(Duration::from_millis(1), push("timer between runs"));
    loop_.call_later(Duration::from_millis(1), || LoopHandle::current().stop());
    run_until_stopped(&rt);
    assert_eq!(
        *log.lock().unwrap(),
        ["first run", "between runs", "timer between runs"]
    );

    // And a third time, with block_on in between.
    assert_eq!(rt.block_on(async { 7 }), 7);
    loop_.call_soon(push("third run"));
    loop_.call_soon(|| LoopHandle::current().stop());
    run_until_stopped(&rt);
    assert_eq!(log.lock().unwrap().len(), 4);
}

#[test]
fn stop_before_run_forever_runs_exactly_one_iteration() {
    let rt = Runtime::new().unwrap();
    let loop_ = rt.handle();
    let ran = Arc::new(Mutex::new(Vec::new()));
    {
        let ran = ran.clone();
        loop_.call_soon(move || {
            ran.lock().unwrap().push("ready");
            let ran = ran.clone();
            // Scheduled during the one iteration: belongs to the next one.
            LoopHandle::current().call_soon(move || ran.lock().unwrap().push("next"));
        });
    }
    // A 10 s timer proves run_forever returned because of the stop.
    let fallback = loop_.call_later(Duration::from_secs(10), || {});
    let before = loop_.stats().iterations;
    loop_.stop();
    rt.run_forever();
    assert_eq!(loop_.stats().iterations - before, 1);
    assert_eq!(*ran.lock().unwrap(), ["ready"]);
    assert!(!fallback.cancelled());

    // The stop request was consumed: the next run runs until a new stop.
    {
        let ran = ran.clone();
        loop_.call_later(Duration::from_millis(1), move || {
            ran.lock().unwrap().push("timer");
            LoopHandle::current().stop();
        });
    }
    rt.run_forever();
    assert_eq!(*ran.lock().unwrap(), ["ready", "next", "timer"]);
    assert!(fallback.cancel());
}

#[test]
fn stop_from_another_thread_before_run_forever() {
    let rt = Runtime::new().unwrap();
    let loop_ = rt.handle();
    let fallback = loop_.call_later(Duration::from_secs(10), || {});
    {
        let l = loop_.clone();
        std::thread::spawn(move || l.stop()).join().unwrap();
    }
    let before = loop_.stats().iterations;
    rt.run_forever();
    assert_eq!(loop_.stats().iterations - before, 1);
    assert!(fallback.cancel());
}

#[test]
fn run_until_complete_reports_a_stop_as_invalid_state() {
    let rt = Runtime::new().unwrap();
    let err = rt
        .run_until_complete(async {
            LoopHandle::current().stop();
            evloop::time::sleep(Duration::from_secs(3600)).await?;
            Ok(1)
        })
        .unwrap_err();
    match &err {
        Error::InvalidState(e) => {
            assert_eq!(e.message(), "loop stopped before future completed");
        }
        other => panic!("expected Error::InvalidState, got {other:?}"),
    }
    assert!(err.is_invalid_state());

    // The abandoned future (and its sleep) was dropped; the loop is usable again.
    let pending = rt.block_on(async { LoopHandle::current().stats().timers_pending });
    assert_eq!(pending, 0, "the abandoned sleep is still registered");
    // Its own result and its own error pass through.
    assert_eq!(rt.run_until_complete(async { Ok(5) }).unwrap(), 5);
    let err = rt
        .run_until_complete(async {
            evloop::time::sleep(Duration::from_millis(1)).await?;
            Err::<(), _>(Error::msg("own error"))
        })
        .unwrap_err();
    assert!(matches!(err, Error::Exception(_)), "{err:?}");
    assert_eq!(err.to_string(), "own error");
    // A stop in the same iteration that completes the future does not lose the output.
    let out = rt.run_until_complete(async {
        LoopHandle::current().stop();
        Ok("done")
    });
    assert_eq!(out.unwrap(), "done");
}

#[test]
fn nested_block_on_panics_with_an_explanation_and_the_runtime_survives() {
    let rt = Runtime::new().unwrap();
    let text = panic_text(catch_unwind(AssertUnwindSafe(|| {
        rt.block_on(async { rt.block_on(async { 1 }) })
    })));
    assert!(
        text.contains("cannot be called while an event loop is running"),
        "{text}"
    );
    assert!(text.contains("block_on"), "{text}");

    assert!(!rt.handle().is_running());
    assert!(LoopHandle::try_current().is_none());
    assert_eq!(
        rt.block_on(async { 2 }),
        2,
        "the runtime is usable after the panic"
    );

    // Same for run_forever / run_until_complete, and for another runtime's loop.
    let other = Runtime::new().unwrap();
    for (name, result) in [
        (
            "run_forever",
            catch_unwind(AssertUnwindSafe(|| rt.block_on(async { rt.run_forever() }))),
        ),
        (
            "run_until_complete",
            catch_unwind(AssertUnwindSafe(|| {
                rt.block_on(async {
                    let _ = rt.run_until_complete(async { Ok(()) });
                })
            })),
        ),
        (
            "block_on",
            catch_unwind(AssertUnwindSafe(|| {
                rt.block_on(async { other.block_on(async {}) })
            })),
        ),
    ] {
        let text = panic_text(result);
        assert!(
            text.contains(name) && text.contains("cannot be called while an event loop is running"),
            "{text}"
        );
    }
    assert_eq!(other.block_on(async { 3 }), 3);
    assert_eq!(rt.block_on(async { 4 }), 4);
}

#[test]
fn block_on_panics_when_the_loop_is_stopped_before_the_future_completes() {
    let rt = Runtime::new().unwrap();
    let text = panic_text(catch_unwind(AssertUnwindSafe(|| {
        rt.block_on(async {
            LoopHandle::current().stop();
            evloop::time::sleep(Duration::from_secs(3600)).await
        })
    })));
    assert!(
        text.contains("the loop was stopped (LoopHandle::stop) before the future passed to Runtime::block_on completed"),
        "{text}"
    );
    assert!(
        text.contains("run_until_complete"),
        "the message names the alternative"
    );
    // Usable again, and the sleep of the abandoned future is gone.
    assert_eq!(
        rt.block_on(async { LoopHandle::current().stats().timers_pending }),
        0
    );
}

#[test]
fn a_panicking_block_on_future_propagates_and_the_runtime_survives() {
    let rt = Runtime::new().unwrap();
    let text = panic_text(catch_unwind(AssertUnwindSafe(|| {
        rt.block_on(async { panic!("root-future-marker") })
    })));
    assert_eq!(text, "root-future-marker");
    assert!(!rt.handle().is_running());
    assert_eq!(rt.block_on(async { 9 }), 9);
}

#[test]
#[should_panic(expected = "no running event loop")]
fn current_off_a_loop_panics() {
    let _ = LoopHandle::current();
}

#[test]
fn current_from_a_worker_thread_of_a_running_loop_panics() {
    let rt = Runtime::new().unwrap();
    let text = rt.block_on(async {
        let worker = std::thread::spawn(LoopHandle::current);
        panic_text(worker.join())
    });
    assert!(text.contains("no running event loop"), "{text}");
}

#[test]
fn try_current_and_the_state_queries() {
    assert!(LoopHandle::try_current().is_none());
    let rt = Runtime::new().unwrap();
    let loop_ = rt.handle();
    assert!(!loop_.is_running());
    assert!(!loop_.is_current());
    assert!(!loop_.is_closed());

    let (inside, running, current, other_thread) = rt.block_on(async {
        let inside = LoopHandle::try_current();
        let h = LoopHandle::current();
        let other_thread = {
            let h = h.clone();
            std::thread::spawn(move || {
                (
                    h.is_running(),
                    h.is_current(),
                    LoopHandle::try_current().is_none(),
                )
            })
            .join()
            .unwrap()
        };
        (inside, h.is_running(), h.is_current(), other_thread)
    });
    assert_eq!(inside.as_ref(), Some(&loop_));
    assert!(running);
    assert!(current);
    assert_eq!(
        other_thread,
        (true, false, true),
        "from another thread: running, not current, no current loop"
    );

    // Inside run_forever's callbacks too.
    let seen = Arc::new(Mutex::new(None));
    {
        let seen = seen.clone();
        loop_.call_soon(move || {
            let h = LoopHandle::try_current();
            let current = h.as_ref().is_some_and(LoopHandle::is_current);
            *seen.lock().unwrap() = Some((h, current));
            LoopHandle::current().stop();
        });
    }
    run_until_stopped(&rt);
    let (h, current) = seen.lock().unwrap().take().unwrap();
    assert_eq!(h.as_ref(), Some(&loop_));
    assert!(current);

    // Another runtime's handle is not current inside this loop.
    let other = Runtime::new().unwrap();
    let other_handle = other.handle();
    assert!(!rt.block_on(async move { other_handle.is_current() }));

    assert!(LoopHandle::try_current().is_none());
    assert!(!loop_.is_running());
    drop(rt);
    assert!(loop_.is_closed());
    assert!(!loop_.is_running());
    assert!(!other.handle().is_closed());
}

#[test]
fn run_returns_the_output_and_closes_its_loop() {
    assert_eq!(evloop::run(async { 6 * 7 }), 42);
    let (out, handle) = evloop::run(async {
        evloop::time::sleep(Duration::from_millis(1)).await.unwrap();
        (String::from("slept"), LoopHandle::current())
    });
    assert_eq!(out, "slept");
    assert!(handle.is_closed(), "run shuts its runtime down");
    // Futures without a Send bound.
    let n = evloop::run(async {
        let rc = Rc::new(5);
        evloop::time::sleep(Duration::ZERO).await.unwrap();
        *rc
    });
    assert_eq!(n, 5);
}

#[test]
fn the_builder_accepts_every_option_and_runs() {
    let rt = Runtime::builder()
        .blocking_threads(4)
        .thread_keep_alive(Duration::from_millis(100))
        .event_capacity(1)
        .debug(false)
        .slow_callback_duration(Duration::from_millis(50))
        .shutdown_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    {
        let ran = ran.clone();
        rt.handle().call_soon(move || {
            ran.fetch_add(1, Ordering::SeqCst);
        });
    }
    let out = rt.block_on(async {
        evloop::time::sleep(Duration::from_millis(1)).await?;
        Ok::<_, Error>("built")
    });
    assert_eq!(out.unwrap(), "built");
    assert_eq!(ran.load(Ordering::SeqCst), 1);

    // Degenerate values are clamped, not rejected.
    let rt = evloop::Builder::new()
        .blocking_threads(0)
        .event_capacity(0)
        .thread_keep_alive(Duration::ZERO)
        .shutdown_timeout(Duration::ZERO)
        .slow_callback_duration(Duration::ZERO)
        .build()
        .unwrap();
    assert_eq!(rt.block_on(async { 1 }), 1);
    assert!(format!("{rt:?}").contains("Runtime"));
}

#[test]
fn debug_mode_warns_about_slow_callbacks() {
    common::init_logger();
    const MSG: &str = "Executing a callback took ";
    let slow = || std::thread::sleep(Duration::from_millis(5));

    // Debug mode off (explicitly, whatever EVLOOP_DEBUG says): no warning.
    let before = common::logs_containing(MSG).len();
    let rt = Runtime::builder()
        .debug(false)
        .slow_callback_duration(Duration::from_millis(1))
        .build()
        .unwrap();
    rt.handle().call_soon(slow);
    rt.block_on(evloop::time::sleep(Duration::ZERO)).unwrap();
    assert_eq!(common::logs_containing(MSG).len(), before);

    // Debug mode on: one warning for the slow callback, none for a fast one.
    let rt = Runtime::builder()
        .debug(true)
        .slow_callback_duration(Duration::from_millis(1))
        .build()
        .unwrap();
    let fast_ran = Arc::new(AtomicBool::new(false));
    {
        let fast_ran = fast_ran.clone();
        rt.handle()
            .call_soon(move || fast_ran.store(true, Ordering::SeqCst));
    }
    rt.handle().call_soon(slow);
    rt.block_on(evloop::time::sleep(Duration::ZERO)).unwrap();
    assert!(fast_ran.load(Ordering::SeqCst));
    let lines = common::logs_containing(MSG);
    assert_eq!(lines.len(), before + 1, "{lines:?}");
    let line = lines.last().unwrap();
    let secs: f64 = line
        .strip_prefix("WARN evloop: Executing a callback took ")
        .and_then(|rest| rest.strip_suffix(" seconds"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected format: {line}"));
    assert!(secs >= 0.005, "the callback slept 5 ms but took {secs} s");

    // The block_on future's polls are watched too.
    let root = "Executing the block_on future took ";
    let before = common::logs_containing(root).len();
    rt.block_on(async { std::thread::sleep(Duration::from_millis(5)) });
    assert_eq!(common::logs_containing(root).len(), before + 1);
}

/// L10 for tasks: a slow poll of a task is logged with the task's name and the line
/// that created it, so the warning points at the code to fix; fast polls are not.
#[test]
fn debug_mode_names_slow_task_polls_and_their_creation_site() {
    common::init_logger();
    const MSG: &str = "Executing a poll of task 'sluggish' (created at ";
    let before = common::logs_containing(MSG).len();
    let rt = Runtime::builder()
        .debug(true)
        .slow_callback_duration(Duration::from_millis(1))
        .build()
        .unwrap();
    let line = rt.block_on(async {
        let fast = evloop::create_task(async { Ok(()) });
        fast.set_name("quick");
        let line = line!() + 1;
        let slow = evloop::create_task(async {
            std::thread::sleep(Duration::from_millis(5));
            Ok(())
        });
        slow.set_name("sluggish");
        fast.await.unwrap();
        slow.await.unwrap();
        line
    });
    let lines = common::logs_containing(MSG);
    assert_eq!(lines.len(), before + 1, "{lines:?}");
    let site = format!("runtime_lifecycle.rs:{line}:");
    assert!(
        lines.last().unwrap().contains(&site),
        "{lines:?} lack {site}"
    );
    assert!(common::logs_containing("task 'quick'").is_empty());
}

#[test]
fn loop_handles_compare_and_hash_by_loop() {
    let rt1 = Runtime::new().unwrap();
    let rt2 = Runtime::new().unwrap();
    let a = rt1.handle();
    let a2 = a.clone();
    let b = rt2.handle();
    assert_eq!(a, a2);
    assert_eq!(a, rt1.handle());
    assert_ne!(a, b);
    assert_ne!(a.id(), b.id());
    assert_eq!(a.id(), a2.id());
    let state = RandomState::new();
    assert_eq!(state.hash_one(&a), state.hash_one(&a2));
    // LoopHandle has interior mutability (the loop's shared state) but hashes and
    // compares by its loop id, which never changes: a valid key (SPEC §2: Eq + Hash).
    #[allow(clippy::mutable_key_type)]
    let set: HashSet<LoopHandle> = [a.clone(), a2, b.clone(), rt2.handle()].into();
    assert_eq!(set.len(), 2);
    assert!(set.contains(&a) && set.contains(&b));
    // A handle from inside the loop is the same loop.
    assert_eq!(rt1.block_on(async { LoopHandle::current() }), a);
    let debug = format!("{a:?}");
    assert!(
        debug.contains("LoopHandle") && debug.contains(&a.id().to_string()),
        "{debug}"
    );
}
