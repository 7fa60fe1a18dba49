//! The Tornado / plumpy chaining helpers (SPEC C1–C8): `chain_future`, `chain`,
//! `copy_future`, the "unless cancelled" setters, `future_set_panic`,
//! `future_add_done_callback`, `wait_for` and `time::timeout`.
//!
//! "Synchronous" is observed right after the call returns; "deferred" means nothing
//! has happened until the loop iterates (`yield_now`).

mod common;
use common::{entries, new_log, push};

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use evloop::{
    Error, Future, chain, chain_future, copy_future, create_task, future_add_done_callback,
    future_set_exception_unless_cancelled, future_set_panic, future_set_result_unless_cancelled,
    wait_for,
};

const HOUR: Duration = Duration::from_secs(3600);

fn cancel_message(err: &Error) -> Option<String> {
    match err {
        Error::Cancelled(c) => c.message().map(str::to_string),
        other => panic!("expected Error::Cancelled, got {other:?}"),
    }
}

/// A distinct error type, to check that the very error is copied (downcast).
#[derive(Debug)]
struct Marked(&'static str);

impl std::fmt::Display for Marked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "marked {}", self.0)
    }
}

impl std::error::Error for Marked {}

fn pair<T: Send + 'static>() -> (Future<T>, Future<T>) {
    (Future::new(), Future::new())
}

// ---------------------------------------------------------------------------------
// C1: chain_future
// ---------------------------------------------------------------------------------

/// `a` completes later: the copy happens in `a`'s done-callback, i.e. on the loop, not
/// inside `set_result`.
#[test]
fn chain_future_copies_when_a_completes_later() {
    common::run_guarded(async {
        let (a, b) = pair::<u8>();
        chain_future(&a, &b);
        assert!(!b.done());
        a.set_result(5).unwrap();
        assert!(!b.done(), "copied by a's done-callback, not synchronously");
        common::yield_times(1).await;
        assert_eq!(b.result().unwrap(), 5);

        // Completed from a worker thread: still copied on the loop.
        let (a, b) = pair::<u8>();
        chain_future(&a, &b);
        let thread = new_log();
        {
            let thread = thread.clone();
            b.add_done_callback(move |_| {
                push(&thread, format!("{:?}", std::thread::current().id()));
            });
        }
        let worker = {
            let a = a.clone();
            std::thread::spawn(move || a.set_result(6).unwrap())
        };
        worker.join().unwrap();
        assert!(!b.done(), "the worker did not copy it");
        common::yield_times(3).await;
        assert_eq!(b.result().unwrap(), 6);
        assert_eq!(
            entries(&thread),
            [format!("{:?}", std::thread::current().id())]
        );
    });
}

#[test]
fn chain_future_copies_synchronously_when_a_is_done() {
    common::run_guarded(async {
        let (a, b) = pair::<u8>();
        a.set_result(5).unwrap();
        chain_future(&a, &b);
        assert!(b.done(), "copied before chain_future returned");
        assert_eq!(b.result().unwrap(), 5);

        let (a, b) = pair::<u8>();
        a.set_exception(Error::new(Marked("sync"))).unwrap();
        chain_future(&a, &b);
        let err = b.exception().unwrap().expect("an exception");
        assert_eq!(err.downcast_ref::<Marked>().unwrap().0, "sync");

        let (a, b) = pair::<u8>();
        a.cancel_with("sync-cancel");
        chain_future(&a, &b);
        assert!(b.cancelled());
        assert_eq!(
            cancel_message(&b.result().unwrap_err()).as_deref(),
            Some("sync-cancel")
        );
    });
}

/// Works off the loop thread too: the synchronous copy needs no loop.
#[test]
fn chain_future_on_done_futures_off_the_loop() {
    let rt = evloop::Runtime::new().unwrap();
    let (a, b): (Future<u8>, Future<u8>) =
        (rt.handle().create_future(), rt.handle().create_future());
    std::thread::spawn(move || {
        a.set_result(1).unwrap();
        chain_future(&a, &b);
        assert_eq!(b.result().unwrap(), 1);
    })
    .join()
    .unwrap();
}

#[test]
fn chain_future_leaves_a_done_b_untouched() {
    common::run_guarded(async {
        // b done before the call, a already done.
        let (a, b) = pair::<u8>();
        b.set_result(1).unwrap();
        a.set_result(2).unwrap();
        chain_future(&a, &b);
        assert_eq!(b.result().unwrap(), 1);

        // b done between the call and a's completion.
        let (a, b) = pair::<u8>();
        chain_future(&a, &b);
        b.set_result(1).unwrap();
        a.set_exception(Error::msg("ignored")).unwrap();
        common::yield_times(3).await;
        assert_eq!(b.result().unwrap(), 1);

        // A cancelled b stays cancelled (with its own message).
        let (a, b) = pair::<u8>();
        chain_future(&a, &b);
        b.cancel_with("b's own");
        a.cancel_with("a's");
        common::yield_times(3).await;
        assert_eq!(
            cancel_message(&b.result().unwrap_err()).as_deref(),
            Some("b's own")
        );
    });
}

#[test]
fn cancelling_b_does_not_touch_a() {
    common::run_guarded(async {
        let (a, b) = pair::<u8>();
        chain_future(&a, &b);
        assert!(b.cancel());
        common::yield_times(3).await;
        assert!(!a.done(), "a is not cancelled");
        a.set_result(3).unwrap();
        common::yield_times(3).await;
        assert_eq!(a.result().unwrap(), 3);
        assert!(b.cancelled());
    });
}

/// A cancelled `a` cancels `b`, with the message (Tornado would leave `b` pending:
/// a documented deviation, see src/chain.rs).
#[test]
fn a_cancelled_a_cancels_b() {
    common::run_guarded(async {
        let (a, b) = pair::<u8>();
        chain_future(&a, &b);
        assert!(a.cancel_with("upstream"));
        assert!(!b.done(), "deferred to a's done-callback");
        common::yield_times(1).await;
        assert!(b.cancelled());
        assert_eq!(
            cancel_message(&b.result().unwrap_err()).as_deref(),
            Some("upstream")
        );

        let (a, b) = pair::<u8>();
        chain_future(&a, &b);
        assert!(a.cancel());
        common::yield_times(1).await;
        assert!(b.cancelled());
        assert_eq!(cancel_message(&b.result().unwrap_err()), None);
    });
}

#[test]
fn chain_future_copies_an_exception() {
    common::run_guarded(async {
        let (a, b) = pair::<u8>();
        chain_future(&a, &b);
        a.set_exception(Error::new(Marked("later"))).unwrap();
        common::yield_times(1).await;
        assert!(!b.cancelled());
        let err = b.result().unwrap_err();
        assert_eq!(err.downcast_ref::<Marked>().unwrap().0, "later");
        assert_eq!(err.to_string(), "marked later");
    });
}

/// A task as `a` (through its `Future` view).
#[test]
fn chain_future_from_a_task() {
    common::run_guarded(async {
        let task = create_task(async { Ok::<_, Error>(String::from("from task")) });
        let b: Future<String> = Future::new();
        chain_future(&task, &b);
        assert_eq!(b.clone().await.unwrap(), "from task");
    });
}

// ---------------------------------------------------------------------------------
// C2: chain
// ---------------------------------------------------------------------------------

#[test]
fn chain_is_deferred_even_when_a_is_done() {
    common::run_guarded(async {
        let (a, b) = pair::<u8>();
        a.set_result(3).unwrap();
        chain(&a, &b);
        assert!(!b.done(), "chain never copies synchronously");
        common::yield_times(1).await;
        assert_eq!(b.result().unwrap(), 3);

        let (a, b) = pair::<u8>();
        a.cancel_with("c2");
        chain(&a, &b);
        assert!(!b.done());
        common::yield_times(1).await;
        assert_eq!(
            cancel_message(&b.result().unwrap_err()).as_deref(),
            Some("c2")
        );
    });
}

#[test]
fn chain_copies_later_and_leaves_a_done_b_untouched() {
    common::run_guarded(async {
        let (a, b) = pair::<u8>();
        chain(&a, &b);
        a.set_exception(Error::new(Marked("c2"))).unwrap();
        assert!(!b.done());
        common::yield_times(1).await;
        assert_eq!(
            b.result().unwrap_err().downcast_ref::<Marked>().unwrap().0,
            "c2"
        );

        let (a, b) = pair::<u8>();
        chain(&a, &b);
        b.set_result(1).unwrap();
        a.set_result(2).unwrap();
        common::yield_times(3).await;
        assert_eq!(b.result().unwrap(), 1);

        // Cancelling b does not touch a.
        let (a, b) = pair::<u8>();
        chain(&a, &b);
        b.cancel();
        common::yield_times(3).await;
        assert!(!a.done());
        a.set_result(1).unwrap();
    });
}

// ---------------------------------------------------------------------------------
// C3: copy_future
// ---------------------------------------------------------------------------------

#[test]
fn copy_future_rules() {
    common::run_guarded(async {
        // Result, synchronously.
        let (s, t) = pair::<u8>();
        s.set_result(4).unwrap();
        copy_future(&s, &t);
        assert_eq!(t.result().unwrap(), 4);

        // Exception.
        let (s, t) = pair::<u8>();
        s.set_exception(Error::new(Marked("c3"))).unwrap();
        copy_future(&s, &t);
        assert_eq!(
            t.exception()
                .unwrap()
                .unwrap()
                .downcast_ref::<Marked>()
                .unwrap()
                .0,
            "c3"
        );

        // Cancelled source → target cancelled, with the message.
        let (s, t) = pair::<u8>();
        s.cancel_with("c3-cancel");
        copy_future(&s, &t);
        assert!(t.cancelled());
        assert_eq!(
            cancel_message(&t.result().unwrap_err()).as_deref(),
            Some("c3-cancel")
        );

        // Pending source → InvalidState exception on the target.
        let (s, t) = pair::<u8>();
        copy_future(&s, &t);
        assert!(!t.cancelled());
        assert!(t.exception().unwrap().unwrap().is_invalid_state());
        assert!(!s.done(), "the source is not touched");

        // Done target → untouched, whatever the source.
        for target_state in ["result", "exception", "cancelled"] {
            for source_state in ["result", "exception", "cancelled", "pending"] {
                let (s, t) = pair::<u8>();
                match target_state {
                    "result" => t.set_result(1).unwrap(),
                    "exception" => t.set_exception(Error::msg("target's")).unwrap(),
                    _ => assert!(t.cancel_with("target's")),
                }
                match source_state {
                    "result" => s.set_result(2).unwrap(),
                    "exception" => s.set_exception(Error::msg("source's")).unwrap(),
                    "cancelled" => assert!(s.cancel_with("source's")),
                    _ => {}
                }
                copy_future(&s, &t);
                let what = format!("target {target_state}, source {source_state}");
                match target_state {
                    "result" => assert_eq!(t.result().unwrap(), 1, "{what}"),
                    "exception" => {
                        assert_eq!(t.result().unwrap_err().to_string(), "target's", "{what}")
                    }
                    _ => assert_eq!(
                        cancel_message(&t.result().unwrap_err()).as_deref(),
                        Some("target's"),
                        "{what}"
                    ),
                }
            }
        }
    });
}

// ---------------------------------------------------------------------------------
// C4, C5: the "unless cancelled" setters
// ---------------------------------------------------------------------------------

#[test]
fn set_result_unless_cancelled() {
    common::run_guarded(async {
        let f: Future<u8> = Future::new();
        assert!(future_set_result_unless_cancelled(&f, 1).is_ok());
        assert_eq!(f.result().unwrap(), 1);

        let f: Future<u8> = Future::new();
        f.cancel_with("c4");
        assert!(future_set_result_unless_cancelled(&f, 1).is_ok(), "no-op");
        assert!(f.cancelled());
        assert_eq!(
            cancel_message(&f.result().unwrap_err()).as_deref(),
            Some("c4")
        );

        let f: Future<u8> = Future::new();
        f.set_result(1).unwrap();
        let err = future_set_result_unless_cancelled(&f, 2).unwrap_err();
        assert!(!err.message().is_empty());
        assert_eq!(f.result().unwrap(), 1, "the first result stays");

        let f: Future<u8> = Future::new();
        f.set_exception(Error::msg("first")).unwrap();
        assert!(future_set_result_unless_cancelled(&f, 2).is_err());
        assert_eq!(f.result().unwrap_err().to_string(), "first");

        // A task's future cannot be set from outside (T2), cancelled or not.
        let task = create_task(async { Ok::<u8, Error>(1) });
        assert!(future_set_result_unless_cancelled(&task, 2).is_err());
        assert_eq!(task.await.unwrap(), 1);
    });
}

#[test]
fn set_exception_unless_cancelled_logs_when_cancelled() {
    common::init_logger();
    common::run_guarded(async {
        let f: Future<u8> = Future::new();
        f.cancel();
        let r = future_set_exception_unless_cancelled(&f, Error::msg("c5-marker-cancelled"));
        assert!(r.is_ok());
        assert!(f.cancelled(), "still cancelled");
        let lines = common::logs_containing("c5-marker-cancelled");
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].starts_with("ERROR "), "{lines:?}");
        assert!(
            lines[0].contains("Exception after Future was cancelled"),
            "{lines:?}"
        );

        // Not cancelled: set, nothing logged.
        let f: Future<u8> = Future::new();
        future_set_exception_unless_cancelled(&f, Marked("c5-marker-set")).unwrap();
        assert_eq!(
            f.exception()
                .unwrap()
                .unwrap()
                .downcast_ref::<Marked>()
                .unwrap()
                .0,
            "c5-marker-set"
        );
        assert!(common::logs_containing("c5-marker-set").is_empty());

        // Already finished: the error is returned, nothing logged, outcome unchanged.
        let f: Future<u8> = Future::new();
        f.set_result(1).unwrap();
        assert!(future_set_exception_unless_cancelled(&f, Error::msg("c5-marker-late")).is_err());
        assert_eq!(f.result().unwrap(), 1);
        assert!(common::logs_containing("c5-marker-late").is_empty());
    });
}

// ---------------------------------------------------------------------------------
// C6: future_set_panic
// ---------------------------------------------------------------------------------

#[test]
fn set_panic_stores_the_caught_panic() {
    common::run_guarded(async {
        // A `String` payload (formatted panic).
        let f: Future<u8> = Future::new();
        let payload = std::panic::catch_unwind(|| panic!("worker {} died", 7)).unwrap_err();
        future_set_panic(&f, payload).unwrap();
        let err = f.clone().await.unwrap_err();
        assert!(err.is_panic(), "{err:?}");
        match &err {
            Error::Panic(p) => assert_eq!(p.message(), "worker 7 died"),
            other => panic!("{other:?}"),
        }
        assert_eq!(err.to_string(), "panicked: worker 7 died");
        assert!(!f.cancelled());

        // A `&'static str` payload, caught on a worker thread.
        let f: Future<u8> = Future::new();
        {
            let f = f.clone();
            std::thread::spawn(move || {
                let payload = std::panic::catch_unwind(|| panic!("static message")).unwrap_err();
                future_set_panic(&f, payload).unwrap();
            })
            .join()
            .unwrap();
        }
        assert_eq!(
            f.clone().await.unwrap_err().to_string(),
            "panicked: static message"
        );

        // Already done: refused, outcome unchanged.
        let f: Future<u8> = Future::new();
        f.set_result(1).unwrap();
        let payload: Box<dyn std::any::Any + Send> = Box::new("late");
        assert!(future_set_panic(&f, payload).is_err());
        assert_eq!(f.result().unwrap(), 1);
    });
}

// ---------------------------------------------------------------------------------
// C7: future_add_done_callback
// ---------------------------------------------------------------------------------

#[test]
fn add_done_callback_is_synchronous_when_done() {
    common::run_guarded(async {
        let log = new_log();
        let f: Future<u8> = Future::new();
        f.set_result(1).unwrap();
        {
            let log = log.clone();
            future_add_done_callback(&f, move |f| push(&log, format!("sync {:?}", f.result())));
        }
        assert_eq!(
            entries(&log),
            ["sync Ok(1)"],
            "ran before the call returned"
        );
        common::yield_times(3).await;
        assert_eq!(entries(&log).len(), 1, "and only once");

        // Even on a thread that runs no loop: the callback runs right there.
        let f: Future<u8> = Future::new();
        f.cancel();
        let seen = new_log();
        {
            let (f, seen) = (f.clone(), seen.clone());
            std::thread::spawn(move || {
                let me = std::thread::current().id();
                let sink = seen.clone();
                future_add_done_callback(&f, move |f| {
                    push(
                        &sink,
                        format!("{} {}", std::thread::current().id() == me, f.cancelled()),
                    );
                });
                assert_eq!(entries(&seen), ["true true"]);
            })
            .join()
            .unwrap();
        }
    });
}

#[test]
fn add_done_callback_is_deferred_when_pending() {
    common::run_guarded(async {
        let log = new_log();
        let f: Future<u8> = Future::new();
        {
            let log = log.clone();
            future_add_done_callback(&f, move |f| push(&log, format!("later {:?}", f.result())));
        }
        common::yield_times(2).await;
        assert!(entries(&log).is_empty(), "not run while pending");
        f.set_result(2).unwrap();
        assert!(entries(&log).is_empty(), "not run inside set_result");
        common::yield_times(1).await;
        assert_eq!(entries(&log), ["later Ok(2)"]);
    });
}

// ---------------------------------------------------------------------------------
// C8: wait_for, time::timeout
// ---------------------------------------------------------------------------------

#[test]
fn wait_for_returns_the_value_in_time() {
    common::run_guarded(async {
        let f: Future<u8> = Future::new();
        f.set_result(1).unwrap();
        assert_eq!(wait_for(f, HOUR).await.unwrap(), 1);

        let f: Future<u8> = Future::new();
        let worker = {
            let f = f.clone();
            std::thread::spawn(move || f.set_result(2).unwrap())
        };
        assert_eq!(wait_for(f.clone(), HOUR).await.unwrap(), 2);
        worker.join().unwrap();

        let task = create_task(async {
            evloop::yield_now().await?;
            Ok::<_, Error>(String::from("task value"))
        });
        assert_eq!(wait_for(task, HOUR).await.unwrap(), "task value");

        // An error in time is returned as is.
        let f: Future<u8> = Future::new();
        f.set_exception(Error::new(Marked("c8"))).unwrap();
        let err = wait_for(f, HOUR).await.unwrap_err();
        assert_eq!(err.downcast_ref::<Marked>().unwrap().0, "c8");
    });
}

/// The inner future cancelled by someone else (not by the timeout) is a
/// cancellation, not a timeout (asyncio raises `CancelledError`).
#[test]
fn wait_for_an_inner_cancelled_by_someone_else() {
    common::run_guarded(async {
        let f: Future<u8> = Future::new();
        let canceller = {
            let f = f.clone();
            create_task(async move {
                f.cancel_with("someone else");
                Ok::<_, Error>(())
            })
        };
        let err = wait_for(f, HOUR).await.unwrap_err();
        assert_eq!(cancel_message(&err).as_deref(), Some("someone else"));
        canceller.await.unwrap();
    });
}

#[test]
fn wait_for_timeout_cancels_the_inner_future() {
    common::run_guarded(async {
        let never: Future<u8> = Future::new();
        let err = wait_for(never.clone(), Duration::from_millis(1))
            .await
            .unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        assert!(never.cancelled(), "the inner future was cancelled");

        // A task as the inner future: it is cancelled and waited for.
        let task = create_task(async { Future::<u8>::new().await });
        let view = task.future();
        let err = wait_for(task, Duration::from_millis(1)).await.unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        assert!(
            view.done(),
            "wait_for waited for the cancellation to finish"
        );
        assert!(view.cancelled());
    });
}

/// Python 3.11, `timeout=0`: a done future gives its result; a pending one is
/// cancelled and `TimeoutError` raised; a task not started yet never runs its body.
#[test]
fn wait_for_with_a_zero_timeout() {
    common::run_guarded(async {
        let done: Future<u8> = Future::new();
        done.set_result(8).unwrap();
        assert_eq!(wait_for(done, Duration::ZERO).await.unwrap(), 8);

        let pending: Future<u8> = Future::new();
        let err = wait_for(pending.clone(), Duration::ZERO).await.unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        assert!(pending.cancelled());

        let ran = Arc::new(AtomicUsize::new(0));
        let task = {
            let ran = ran.clone();
            create_task(async move {
                ran.fetch_add(1, Ordering::SeqCst);
                Ok::<u8, Error>(1)
            })
        };
        let view = task.future();
        let err = wait_for(task, Duration::ZERO).await.unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        assert!(view.cancelled());
        assert_eq!(ran.load(Ordering::SeqCst), 0, "the body never ran");
    });
}

/// Python 3.11: `await asyncio.wait_for(t, 0.01)` on a task that catches
/// `CancelledError` and returns 'swallowed' returns 'swallowed'.
#[test]
fn wait_for_a_task_swallowing_the_cancellation_returns_its_value() {
    common::run_guarded(async {
        let cleaned = Arc::new(AtomicUsize::new(0));
        let task = {
            let cleaned = cleaned.clone();
            create_task(async move {
                match Future::<&'static str>::new().await {
                    Err(e) if e.is_cancelled() => {
                        // Asynchronous clean-up first.
                        evloop::yield_now().await?;
                        cleaned.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, Error>("swallowed")
                    }
                    other => panic!("{other:?}"),
                }
            })
        };
        let view = task.future();
        let out = wait_for(task, Duration::from_millis(1)).await;
        assert_eq!(out.unwrap(), "swallowed");
        assert_eq!(cleaned.load(Ordering::SeqCst), 1);
        assert!(!view.cancelled());
    });
}

/// Python 3.11: a task whose clean-up raises `ValueError('cleanup')` after the
/// timeout's cancellation → `wait_for` raises that error.
#[test]
fn wait_for_a_task_whose_cleanup_fails_returns_that_error() {
    common::run_guarded(async {
        let task = create_task(async {
            match Future::<u8>::new().await {
                Err(e) if e.is_cancelled() => Err(Error::new(Marked("cleanup"))),
                other => other,
            }
        });
        let err = wait_for(task, Duration::from_millis(1)).await.unwrap_err();
        assert!(!err.is_timeout());
        assert_eq!(err.downcast_ref::<Marked>().unwrap().0, "cleanup");
    });
}

/// Cancelling the task that awaits `wait_for` cancels the inner future (asyncio does
/// too); the awaiting task gets `Err(Cancelled)` — not `Timeout` — and ends cancelled.
#[test]
fn cancelling_the_awaiting_task_cancels_the_inner_future() {
    common::run_guarded(async {
        // Inner: a plain future.
        let inner: Future<u8> = Future::new();
        let started = Arc::new(AtomicUsize::new(0));
        let outer = {
            let (inner, started) = (inner.clone(), started.clone());
            create_task(async move {
                started.fetch_add(1, Ordering::SeqCst);
                wait_for(inner, HOUR).await
            })
        };
        while started.load(Ordering::SeqCst) == 0 {
            evloop::yield_now().await.unwrap();
        }
        common::yield_times(1).await;
        assert!(outer.cancel_with("outer"));
        let err = outer.future().await.unwrap_err();
        assert_eq!(cancel_message(&err).as_deref(), Some("outer"));
        assert!(outer.cancelled());
        assert!(inner.cancelled(), "the inner future was cancelled too");

        // Inner: a task.
        let inner_task = create_task(async { Future::<u8>::new().await });
        let inner_view = inner_task.future();
        let outer = create_task(async move { wait_for(inner_task, HOUR).await });
        common::yield_times(3).await;
        assert!(outer.cancel_with("outer-2"));
        let err = outer.future().await.unwrap_err();
        assert_eq!(cancel_message(&err).as_deref(), Some("outer-2"));
        common::yield_times(3).await;
        assert!(inner_view.cancelled(), "the inner task was cancelled too");
    });
}

/// A cancel request delivered to the awaiting task while `wait_for` is first polled
/// (the task was cancelled before it ever ran far enough to await) still cancels the
/// inner future: it must not keep running on its own.
#[test]
fn a_pending_cancel_request_delivered_at_wait_for_cancels_the_inner_future() {
    common::run_guarded(async {
        let gate = common::Gate::new();
        let inner: Future<u8> = Future::new();
        let started = Arc::new(AtomicUsize::new(0));
        let outer = {
            let (inner, gate, started) = (inner.clone(), gate.clone(), started.clone());
            create_task(async move {
                started.fetch_add(1, Ordering::SeqCst);
                gate.wait().await; // foreign: the request waits for the next native await
                wait_for(inner, HOUR).await
            })
        };
        while started.load(Ordering::SeqCst) == 0 {
            evloop::yield_now().await.unwrap();
        }
        assert!(outer.cancel_with("early"));
        gate.open();
        let err = outer.future().await.unwrap_err();
        assert_eq!(cancel_message(&err).as_deref(), Some("early"));
        assert!(inner.cancelled(), "the inner future was left running");
    });
}

/// `time::timeout` bounds any std future, here a foreign `Gate`.
#[test]
fn timeout_of_a_foreign_future() {
    common::run_guarded(async {
        let gate = common::Gate::new();
        let err = evloop::time::timeout(Duration::from_millis(1), gate.wait())
            .await
            .unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        assert!(gate.polls() >= 1, "the foreign future was polled");

        // Opened from another thread, in time.
        let gate = common::Gate::new();
        let opener = {
            let gate = gate.clone();
            std::thread::spawn(move || gate.open())
        };
        evloop::time::timeout(HOUR, gate.wait()).await.unwrap();
        opener.join().unwrap();

        // An evloop future inside: its own Result is wrapped.
        let f: Future<u8> = Future::new();
        f.set_result(3).unwrap();
        assert_eq!(evloop::time::timeout(HOUR, f).await.unwrap().unwrap(), 3);
    });
}
