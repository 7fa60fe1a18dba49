//! Callbacks on the loop (SPEC L2, L6, L7, L9): FIFO order, tick semantics,
//! `Handle::cancel`, and the exception handler.

mod common;
use common::run_until_stopped;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use evloop::{Error, ExceptionContext, ExceptionSource, Handle, LoopHandle, Runtime};

/// Schedules a `stop()` of the current loop (as a callback, so it is FIFO with the rest).
fn stop_soon(loop_: &LoopHandle) {
    let l = loop_.clone();
    loop_.call_soon(move || l.stop());
}

#[test]
fn call_soon_runs_in_fifo_order_from_outside_the_loop() {
    let rt = Runtime::new().unwrap();
    let loop_ = rt.handle();
    let order = Arc::new(Mutex::new(Vec::new()));
    for i in 0..1000 {
        let order = order.clone();
        loop_.call_soon(move || order.lock().unwrap().push(i));
    }
    stop_soon(&loop_);
    run_until_stopped(&rt);
    let order = order.lock().unwrap();
    assert_eq!(*order, (0..1000).collect::<Vec<_>>());
    assert_eq!(loop_.stats().callbacks_run, 1001);
}

#[test]
fn call_soon_runs_in_fifo_order_on_the_loop_thread() {
    let rt = Runtime::new().unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    {
        let order = order.clone();
        rt.handle().call_soon(move || {
            let loop_ = LoopHandle::current();
            for i in 0..1000 {
                let order = order.clone();
                // Alternate the two entry points: on the loop thread both feed the same
                // FIFO queue.
                if i % 2 == 0 {
                    loop_.call_soon(move || order.lock().unwrap().push(i));
                } else {
                    loop_.call_soon_threadsafe(move || order.lock().unwrap().push(i));
                }
            }
            stop_soon(&loop_);
        });
    }
    run_until_stopped(&rt);
    assert_eq!(*order.lock().unwrap(), (0..1000).collect::<Vec<_>>());
}

#[test]
fn callbacks_scheduled_during_an_iteration_run_in_a_later_one() {
    let rt = Runtime::new().unwrap();
    let loop_ = rt.handle();
    // (outer iteration, inner iteration) pairs.
    let seen = Arc::new(Mutex::new(Vec::new()));
    for _ in 0..5 {
        let seen = seen.clone();
        loop_.call_soon(move || {
            let l = LoopHandle::current();
            let outer = l.stats().iterations;
            let seen = seen.clone();
            l.call_soon(move || {
                let l = LoopHandle::current();
                let inner = l.stats().iterations;
                let mut seen = seen.lock().unwrap();
                seen.push((outer, inner));
                if seen.len() == 5 {
                    l.stop();
                }
            });
        });
    }
    run_until_stopped(&rt);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 5);
    for &(outer, inner) in seen.iter() {
        assert!(
            inner > outer,
            "a callback scheduled in iteration {outer} ran in the same iteration ({inner})"
        );
    }
    // Scheduled before the run phase (all outer ones) → one iteration; likewise every
    // inner one was scheduled during that same iteration → one later iteration.
    assert!(seen.iter().all(|&(o, _)| o == seen[0].0), "{seen:?}");
    assert!(seen.iter().all(|&(_, i)| i == seen[0].1), "{seen:?}");
}

#[test]
fn callbacks_scheduled_before_the_run_phase_all_run_in_the_same_iteration() {
    let rt = Runtime::new().unwrap();
    let loop_ = rt.handle();
    let iterations = Arc::new(Mutex::new(Vec::new()));
    for _ in 0..100 {
        let iterations = iterations.clone();
        loop_.call_soon(move || {
            iterations
                .lock()
                .unwrap()
                .push(LoopHandle::current().stats().iterations);
        });
    }
    stop_soon(&loop_);
    run_until_stopped(&rt);
    let iterations = iterations.lock().unwrap();
    assert_eq!(iterations.len(), 100);
    assert!(
        iterations.iter().all(|&i| i == iterations[0]),
        "{iterations:?}"
    );
}

#[test]
fn a_self_rescheduling_callback_runs_once_per_iteration() {
    // Pins the snapshot rule of L6: if items scheduled during the run phase were run in
    // the same phase, this callback would spin inside one iteration forever.
    fn again(seen: Arc<Mutex<Vec<u64>>>) {
        let l = LoopHandle::current();
        let mut v = seen.lock().unwrap();
        v.push(l.stats().iterations);
        if v.len() == 50 {
            l.stop();
            return;
        }
        drop(v);
        l.call_soon(move || again(seen));
    }
    let rt = Runtime::new().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    {
        let seen = seen.clone();
        rt.handle().call_soon(move || again(seen));
    }
    run_until_stopped(&rt);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 50);
    for w in seen.windows(2) {
        assert_eq!(w[1], w[0] + 1, "one run per iteration: {seen:?}");
    }
}

#[test]
fn cancel_before_it_runs_is_idempotent_and_drops_the_closure() {
    let rt = Runtime::new().unwrap();
    let loop_ = rt.handle();
    let ran = Arc::new(AtomicBool::new(false));
    let token = Arc::new(());
    let handle = {
        let ran = ran.clone();
        let token = token.clone();
        loop_.call_soon(move || {
            let _keep = &token;
            ran.store(true, Ordering::SeqCst);
        })
    };
    assert!(!handle.cancelled());
    assert!(handle.cancel(), "the first cancel wins");
    assert!(!handle.cancel(), "cancel is idempotent");
    assert!(handle.cancelled());
    assert_eq!(
        Arc::strong_count(&token),
        1,
        "cancel frees the closure at once"
    );
    stop_soon(&loop_);
    run_until_stopped(&rt);
    assert!(!ran.load(Ordering::SeqCst), "a cancelled callback ran");
    assert!(handle.cancelled());
    assert_eq!(loop_.stats().callbacks_run, 1, "only the stop callback ran");
}

#[test]
fn cancel_from_an_earlier_callback_of_the_same_iteration() {
    let rt = Runtime::new().unwrap();
    let loop_ = rt.handle();
    let b_handle: Arc<OnceLock<Handle>> = Arc::new(OnceLock::new());
    let a_result = Arc::new(Mutex::new(None));
    let b_ran = Arc::new(AtomicBool::new(false));
    let iterations = Arc::new(Mutex::new(Vec::new()));
    {
        let b_handle = b_handle.clone();
        let a_result = a_result.clone();
        let iterations = iterations.clone();
        loop_.call_soon(move || {
            iterations
                .lock()
                .unwrap()
                .push(LoopHandle::current().stats().iterations);
            let h = b_handle.get().expect("B was scheduled right after A");
            *a_result.lock().unwrap() = Some((h.cancel(), h.cancelled()));
        });
    }
    {
        let b_ran = b_ran.clone();
        b_handle
            .set(loop_.call_soon(move || b_ran.store(true, Ordering::SeqCst)))
            .unwrap();
    }
    {
        let iterations = iterations.clone();
        loop_.call_soon(move || {
            let l = LoopHandle::current();
            iterations.lock().unwrap().push(l.stats().iterations);
            l.stop();
        });
    }
    run_until_stopped(&rt);
    let its = iterations.lock().unwrap();
    assert_eq!(its.len(), 2);
    assert_eq!(its[0], its[1], "A, B and the stop ran in one iteration");
    assert_eq!(*a_result.lock().unwrap(), Some((true, true)));
    assert!(
        !b_ran.load(Ordering::SeqCst),
        "B ran although A cancelled it earlier in the same iteration"
    );
    assert!(b_handle.get().unwrap().cancelled());
}

#[test]
fn cancel_from_another_thread_before_it_runs() {
    let rt = Runtime::new().unwrap();
    let loop_ = rt.handle();
    let ran = Arc::new(AtomicBool::new(false));
    let handle = {
        let ran = ran.clone();
        loop_.call_soon(move || ran.store(true, Ordering::SeqCst))
    };
    let h = handle.clone();
    let won = std::thread::spawn(move || h.cancel()).join().unwrap();
    assert!(won);
    assert!(!handle.cancel());
    stop_soon(&loop_);
    run_until_stopped(&rt);
    assert!(!ran.load(Ordering::SeqCst));
    assert!(handle.cancelled());
}

#[test]
fn cancel_after_it_ran_is_a_no_op() {
    let rt = Runtime::new().unwrap();
    let loop_ = rt.handle();
    let runs = Arc::new(AtomicUsize::new(0));
    let handle = {
        let runs = runs.clone();
        loop_.call_soon(move || {
            runs.fetch_add(1, Ordering::SeqCst);
        })
    };
    stop_soon(&loop_);
    run_until_stopped(&rt);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(
        !handle.cancel(),
        "cancel after the callback ran returns false"
    );
    assert!(!handle.cancelled(), "a callback that ran is not cancelled");
    assert!(!handle.cancel());
    assert!(!handle.cancelled());
}

type Seen = Arc<Mutex<Vec<(String, ExceptionSource, Option<Error>, bool)>>>;

fn recording_handler(loop_: &LoopHandle) -> Seen {
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let expected = loop_.clone();
    loop_.set_exception_handler(Some(move |l: &LoopHandle, ctx: &ExceptionContext| {
        s.lock().unwrap().push((
            ctx.message.clone(),
            ctx.source.clone(),
            ctx.exception.clone(),
            *l == expected,
        ));
    }));
    seen
}

#[test]
fn a_panicking_callback_is_reported_and_the_loop_keeps_running() {
    let rt = Runtime::new().unwrap();
    let loop_ = rt.handle();
    let seen = recording_handler(&loop_);
    let after = Arc::new(AtomicBool::new(false));
    loop_.call_soon(|| panic!("cb-panic-marker-7f3a"));
    {
        let after = after.clone();
        loop_.call_soon(move || after.store(true, Ordering::SeqCst));
    }
    // A panicking timer callback is reported the same way.
    loop_.call_later(Duration::ZERO, || panic!("timer-panic-marker-7f3a"));
    {
        let after = after.clone();
        loop_.call_later(Duration::from_millis(1), move || {
            assert!(after.load(Ordering::SeqCst));
            LoopHandle::current().stop();
        });
    }
    run_until_stopped(&rt);
    assert!(
        after.load(Ordering::SeqCst),
        "the callback after the panicking one did not run"
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for ((message, source, exception, right_loop), marker) in seen
        .iter()
        .zip(["cb-panic-marker-7f3a", "timer-panic-marker-7f3a"])
    {
        assert_eq!(message, "Exception in callback");
        assert_eq!(*source, ExceptionSource::Callback);
        assert!(right_loop, "the handler received another loop's handle");
        match exception {
            Some(e @ Error::Panic(p)) => {
                assert!(e.to_string().contains(marker), "{e}");
                assert_eq!(p.message(), marker);
                assert!(e.is_panic());
            }
            other => panic!("expected Some(Error::Panic), got {other:?}"),
        }
    }
}

#[test]
fn a_panicking_callback_without_a_handler_is_logged_by_the_default_handler() {
    common::init_logger();
    let rt = Runtime::new().unwrap();
    let loop_ = rt.handle();
    loop_.call_soon(|| panic!("default-handler-marker-91c2"));
    stop_soon(&loop_);
    run_until_stopped(&rt);
    let logs = common::logs_containing("default-handler-marker-91c2");
    assert_eq!(
        logs,
        ["ERROR evloop: Exception in callback: panicked: default-handler-marker-91c2"]
    );
}

#[test]
fn a_panicking_exception_handler_is_reported_by_the_default_handler() {
    common::init_logger();
    let rt = Runtime::new().unwrap();
    let loop_ = rt.handle();
    let calls = Arc::new(AtomicUsize::new(0));
    {
        let calls = calls.clone();
        loop_.set_exception_handler(Some(move |_: &LoopHandle, _: &ExceptionContext| {
            calls.fetch_add(1, Ordering::SeqCst);
            panic!("handler-panic-marker-c0de");
        }));
    }
    let later = Arc::new(AtomicUsize::new(0));
    loop_.call_soon(|| panic!("first-cb-marker-c0de"));
    {
        let later = later.clone();
        loop_.call_soon(move || {
            later.fetch_add(1, Ordering::SeqCst);
        });
    }
    // The loop still works in later iterations too: another panic reaches the handler.
    loop_.call_later(Duration::from_millis(1), || panic!("second-cb-marker-c0de"));
    {
        let later = later.clone();
        loop_.call_later(Duration::from_millis(2), move || {
            later.fetch_add(1, Ordering::SeqCst);
            LoopHandle::current().stop();
        });
    }
    run_until_stopped(&rt);
    assert_eq!(later.load(Ordering::SeqCst), 2, "the loop stopped running");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the handler was called twice"
    );
    let failures = common::logs_containing("handler-panic-marker-c0de");
    assert_eq!(failures.len(), 2, "{failures:?}");
    for line in &failures {
        assert_eq!(
            line,
            "ERROR evloop: Unhandled error in exception handler: panicked: handler-panic-marker-c0de"
        );
    }
    // The original report is not lost: the default handler logs it as well.
    assert_eq!(
        common::logs_containing("first-cb-marker-c0de"),
        ["ERROR evloop: Exception in callback: panicked: first-cb-marker-c0de"]
    );
    assert_eq!(common::logs_containing("second-cb-marker-c0de").len(), 1);
}

#[test]
fn call_exception_handler_reaches_the_handler_and_none_restores_the_default() {
    common::init_logger();
    let rt = Runtime::new().unwrap();
    let loop_ = rt.handle();
    let seen = recording_handler(&loop_);

    let ctx = ExceptionContext::new("user-report-marker-5e1f")
        .with_exception(Error::msg("disk full"))
        .with_source(ExceptionSource::Other);
    loop_.call_exception_handler(ctx);
    // From another thread too (the handler runs synchronously on the caller's thread).
    {
        let l = loop_.clone();
        std::thread::spawn(move || {
            l.call_exception_handler(
                ExceptionContext::new("thread-report-marker-5e1f")
                    .with_source(ExceptionSource::Future),
            );
        })
        .join()
        .unwrap();
    }
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        let (message, source, exception, right_loop) = &seen[0];
        assert_eq!(message, "user-report-marker-5e1f");
        assert_eq!(*source, ExceptionSource::Other);
        assert_eq!(
            exception.as_ref().map(Error::to_string).as_deref(),
            Some("disk full")
        );
        assert!(right_loop);
        assert_eq!(seen[1].0, "thread-report-marker-5e1f");
        assert_eq!(seen[1].1, ExceptionSource::Future);
        assert!(seen[1].2.is_none());
    }
    assert!(
        common::logs_containing("report-marker-5e1f").is_empty(),
        "a custom handler replaces the default one"
    );

    // `set_exception_handler(None)` restores the default handler.
    loop_.set_exception_handler(None::<fn(&LoopHandle, &ExceptionContext)>);
    loop_.call_exception_handler(
        ExceptionContext::new("after-none-marker-5e1f").with_exception(Error::msg("oops")),
    );
    assert_eq!(
        seen.lock().unwrap().len(),
        2,
        "the removed handler was called"
    );
    assert_eq!(
        common::logs_containing("after-none-marker-5e1f"),
        ["ERROR evloop: after-none-marker-5e1f: oops"]
    );

    // `clear_exception_handler()` does the same.
    let seen = recording_handler(&loop_);
    loop_.call_exception_handler(ExceptionContext::new("installed-again-marker-5e1f"));
    assert_eq!(seen.lock().unwrap().len(), 1);
    loop_.clear_exception_handler();
    loop_.call_exception_handler(ExceptionContext::new("after-clear-marker-5e1f"));
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "the cleared handler was called"
    );
    assert_eq!(
        common::logs_containing("after-clear-marker-5e1f"),
        ["ERROR evloop: after-clear-marker-5e1f"]
    );
    assert!(common::logs_containing("installed-again-marker-5e1f").is_empty());

    // The default handler is also callable directly.
    loop_.default_exception_handler(&ExceptionContext::new("direct-default-marker-5e1f"));
    assert_eq!(
        common::logs_containing("direct-default-marker-5e1f"),
        ["ERROR evloop: direct-default-marker-5e1f"]
    );
}

#[test]
fn callbacks_run_counts_every_callback_but_not_cancelled_ones() {
    let rt = Runtime::new().unwrap();
    let loop_ = rt.handle();
    let before = loop_.stats().callbacks_run;
    let handles: Vec<Handle> = (0..10).map(|_| loop_.call_soon(|| {})).collect();
    for h in handles.iter().step_by(2) {
        assert!(h.cancel());
    }
    stop_soon(&loop_);
    run_until_stopped(&rt);
    let stats = loop_.stats();
    assert_eq!(stats.callbacks_run - before, 5 + 1);
    assert!(
        stats.remote_schedules >= 11,
        "scheduled while the loop was not running: {stats:?}"
    );
}
