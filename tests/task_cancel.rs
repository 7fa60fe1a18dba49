//! Cooperative cancellation of tasks (SPEC T3), `cancelling` / `uncancel` (T4),
//! `abort` (T5) and `shield` (T9), with asyncio's semantics where the SPEC follows
//! them.
//!
//! "Loop-native" awaitables (evloop `Future`, `Task`, `time::sleep`, `yield_now`)
//! deliver a cancel request as `Err(Error::Cancelled)`; a task suspended on an evloop
//! `Future` cancels that future. A "foreign" future ([`common::Gate`]) knows nothing
//! about evloop: the request waits for the next loop-native await.

mod common;
use common::{entries, new_log, push};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{DropSpy, Gate};
use evloop::{Error, Future, Runtime};

const HOUR: Duration = Duration::from_secs(3600);

fn flag() -> Arc<AtomicBool> {
    Arc::new(AtomicBool::new(false))
}

/// Lets the loop iterate (from block_on's root) until `flag` is set: a few bare
/// iterations, then 1 ms sleeps (for conditions behind a timer), a few seconds at most.
async fn until(flag: &AtomicBool) {
    for i in 0..5000 {
        if flag.load(Ordering::SeqCst) {
            return;
        }
        if i < 100 {
            evloop::yield_now().await.unwrap();
        } else {
            evloop::time::sleep(Duration::from_millis(1)).await.unwrap();
        }
    }
    panic!("the awaited condition never became true");
}

/// The message of an `Error::Cancelled`; panics on any other error.
fn cancel_message(err: &Error) -> Option<String> {
    match err {
        Error::Cancelled(c) => c.message().map(str::to_string),
        other => panic!("expected Error::Cancelled, got {other:?}"),
    }
}

fn describe<T: std::fmt::Debug>(r: &Result<T, Error>) -> String {
    match r {
        Ok(v) => format!("ok {v:?}"),
        Err(e) if e.is_cancelled() => format!("cancelled {:?}", cancel_message(e)),
        Err(e) => format!("error {e}"),
    }
}

// ---------------------------------------------------------------------------------
// T3: where the request lands
// ---------------------------------------------------------------------------------

#[test]
fn cancel_while_suspended_on_a_future_cancels_that_future_at_once() {
    let log = new_log();
    let l = log.clone();
    common::run_guarded(async move {
        let fut: Future<u8> = Future::new();
        let started = flag();
        let task = {
            let (fut, l, started) = (fut.clone(), l.clone(), started.clone());
            evloop::create_task(async move {
                started.store(true, Ordering::SeqCst);
                let r = fut.await;
                push(&l, describe(&r));
                r?;
                push(&l, "unreachable");
                Ok::<_, Error>(())
            })
        };
        until(&started).await;
        assert!(task.cancel_with("stop"));
        // At once: before the task runs again.
        assert!(
            fut.cancelled(),
            "the awaited future is cancelled by the request"
        );
        assert_eq!(
            cancel_message(&fut.result().unwrap_err()).as_deref(),
            Some("stop")
        );
        assert!(!task.done(), "the coroutine has not resumed yet");
        let err = task.future().await.unwrap_err();
        assert_eq!(cancel_message(&err).as_deref(), Some("stop"));
        assert!(task.cancelled());
        assert_eq!(task.cancelling(), 1);
    });
    assert_eq!(entries(&log), ["cancelled Some(\"stop\")"]);
}

/// Proven with a one-hour sleep: only the cancellation can end it (run_guarded's watchdog turns
/// "waited for the timer" into a failure).
#[test]
fn cancel_while_sleeping_resumes_the_sleep_with_cancelled_at_once() {
    let log = new_log();
    let l = log.clone();
    common::run_guarded(async move {
        let started = flag();
        let task = {
            let (l, started) = (l.clone(), started.clone());
            evloop::create_task(async move {
                started.store(true, Ordering::SeqCst);
                let r = evloop::time::sleep(HOUR).await;
                push(&l, describe(&r));
                r?;
                Ok::<_, Error>(())
            })
        };
        until(&started).await;
        assert!(task.cancel_with("wake up"));
        let err = task.future().await.unwrap_err();
        assert_eq!(cancel_message(&err).as_deref(), Some("wake up"));
        assert!(task.cancelled());
    });
    assert_eq!(entries(&log), ["cancelled Some(\"wake up\")"]);
}

#[test]
fn cancel_while_suspended_on_a_foreign_future_waits_for_the_next_native_await() {
    let log = new_log();
    let l = log.clone();
    common::run_guarded(async move {
        let gate = Gate::new();
        let started = flag();
        let task = {
            let (gate, l, started) = (gate.clone(), l.clone(), started.clone());
            evloop::create_task(async move {
                started.store(true, Ordering::SeqCst);
                gate.wait().await;
                push(&l, "foreign future completed");
                let r = evloop::yield_now().await;
                push(&l, format!("yield_now: {}", describe(&r)));
                r?;
                push(&l, "unreachable");
                Ok::<_, Error>(())
            })
        };
        until(&started).await;
        assert!(task.cancel_with("later"));
        common::yield_times(5).await;
        // The foreign future is not interrupted: the task is still suspended on it.
        assert!(!task.done());
        assert!(entries(&l).is_empty(), "{:?}", entries(&l));
        gate.open();
        let err = task.future().await.unwrap_err();
        assert_eq!(cancel_message(&err).as_deref(), Some("later"));
        assert!(task.cancelled());
    });
    assert_eq!(
        entries(&log),
        [
            "foreign future completed",
            "yield_now: cancelled Some(\"later\")"
        ]
    );
}

/// asyncio: when the awaited future completed but the task has not resumed yet, a
/// cancel cannot cancel that future (`False`), so `_must_cancel` is set and the
/// coroutine gets `CancelledError` instead of the value.
#[test]
fn cancel_after_the_awaited_future_completed_delivers_cancelled_not_the_value() {
    let log = new_log();
    let l = log.clone();
    common::run_guarded(async move {
        let fut: Future<u8> = Future::new();
        let started = flag();
        let task = {
            let (fut, l, started) = (fut.clone(), l.clone(), started.clone());
            evloop::create_task(async move {
                started.store(true, Ordering::SeqCst);
                let r = fut.await;
                push(&l, describe(&r));
                r?;
                Ok::<_, Error>(())
            })
        };
        until(&started).await;
        fut.set_result(5).unwrap();
        assert!(task.cancel_with("m"));
        assert!(!fut.cancelled());
        assert!(task.future().await.unwrap_err().is_cancelled());
        assert!(task.cancelled());
    });
    assert_eq!(entries(&log), ["cancelled Some(\"m\")"]);
}

#[test]
fn cancel_before_the_first_poll_never_runs_the_body() {
    let ran = flag();
    let held = Arc::new(());
    let (r, h) = (ran.clone(), held.clone());
    common::run_guarded(async move {
        let task = evloop::create_task(async move {
            let _keep = h;
            r.store(true, Ordering::SeqCst);
            Ok::<_, Error>(1)
        });
        assert!(task.cancel_with("too early"));
        let err = task.future().await.unwrap_err();
        assert_eq!(cancel_message(&err).as_deref(), Some("too early"));
        assert!(task.cancelled());
    });
    assert!(!ran.load(Ordering::SeqCst), "the body ran");
    assert_eq!(Arc::strong_count(&held), 1, "the coroutine was dropped");
}

// ---------------------------------------------------------------------------------
// T3: what the coroutine makes of it
// ---------------------------------------------------------------------------------

#[test]
fn a_coroutine_may_catch_the_cancellation_clean_up_and_return_a_value() {
    let log = new_log();
    let l = log.clone();
    common::run_guarded(async move {
        let fut: Future<u8> = Future::new();
        let started = flag();
        let task = {
            let (fut, l, started) = (fut.clone(), l.clone(), started.clone());
            evloop::create_task(async move {
                started.store(true, Ordering::SeqCst);
                match fut.await {
                    Err(e) if e.is_cancelled() => {
                        // Asynchronous clean-up: the request was delivered, so these
                        // loop-native awaits succeed.
                        evloop::time::sleep(Duration::from_millis(1)).await?;
                        evloop::yield_now().await?;
                        let other: Future<u8> = Future::new();
                        other.set_result(1).unwrap();
                        other.await?;
                        push(&l, "cleaned up");
                        Ok::<_, Error>(42)
                    }
                    other => panic!("unexpected {other:?}"),
                }
            })
        };
        until(&started).await;
        assert!(task.cancel());
        assert_eq!(task.future().await.unwrap(), 42);
        assert!(
            !task.cancelled(),
            "the coroutine chose to finish with a value"
        );
        assert_eq!(task.result().unwrap(), 42);
        assert_eq!(
            task.cancelling(),
            1,
            "asyncio: the request is still counted"
        );
    });
    assert_eq!(entries(&log), ["cleaned up"]);
}

#[test]
fn propagating_the_cancellation_ends_the_task_cancelled() {
    common::run_guarded(async {
        let started = flag();
        let task = {
            let started = started.clone();
            evloop::create_task(async move {
                started.store(true, Ordering::SeqCst);
                evloop::time::sleep(HOUR).await?;
                Ok::<_, Error>(1)
            })
        };
        until(&started).await;
        assert!(task.cancel());
        assert!(task.future().await.unwrap_err().is_cancelled());
        assert!(task.done());
        assert!(task.cancelled());
        assert!(task.result().unwrap_err().is_cancelled());
        assert!(task.exception().unwrap_err().is_cancelled());
    });
}

/// T3: "A task whose coroutine returns `Ok` while a cancel request is still
/// undelivered ends cancelled."
#[test]
fn returning_ok_with_an_undelivered_request_ends_the_task_cancelled() {
    common::run_guarded(async {
        let gate = Gate::new();
        let started = flag();
        let returned = flag();
        let task = {
            let (gate, started, returned) = (gate.clone(), started.clone(), returned.clone());
            evloop::create_task(async move {
                started.store(true, Ordering::SeqCst);
                gate.wait().await;
                returned.store(true, Ordering::SeqCst);
                Ok::<_, Error>(5)
            })
        };
        until(&started).await;
        assert!(task.cancel_with("undelivered"));
        gate.open();
        let err = task.future().await.unwrap_err();
        assert!(
            returned.load(Ordering::SeqCst),
            "the coroutine did return Ok"
        );
        assert_eq!(cancel_message(&err).as_deref(), Some("undelivered"));
        assert!(task.cancelled());
    });
}

#[test]
fn cancellation_propagates_down_a_chain_of_awaited_tasks() {
    common::run_guarded(async {
        let bottom: Future<u8> = Future::new();
        let started = [flag(), flag(), flag()];
        let c = {
            let (bottom, s) = (bottom.clone(), started[2].clone());
            evloop::create_task(async move {
                s.store(true, Ordering::SeqCst);
                bottom.await
            })
        };
        let c_view = c.future();
        let b = {
            let s = started[1].clone();
            evloop::create_task(async move {
                s.store(true, Ordering::SeqCst);
                c.await
            })
        };
        let b_view = b.future();
        let a = {
            let s = started[0].clone();
            evloop::create_task(async move {
                s.store(true, Ordering::SeqCst);
                b.await
            })
        };
        for s in &started {
            until(s).await;
        }
        assert!(a.cancel_with("chain"));
        assert!(bottom.cancelled(), "reached the bottom future at once");
        let err = a.future().await.unwrap_err();
        assert_eq!(cancel_message(&err).as_deref(), Some("chain"));
        for (name, view) in [("a", a.future()), ("b", b_view), ("c", c_view)] {
            assert!(view.cancelled(), "{name} is not cancelled");
            assert_eq!(
                cancel_message(&view.result().unwrap_err()).as_deref(),
                Some("chain"),
                "{name}"
            );
        }
    });
}

/// Python 3.11: A awaits B; `a.cancel()` cancels B; B swallows it and returns 5; A
/// resumes with 5 and finishes normally (`a.cancelling() == 1`, not cancelled).
#[test]
fn an_awaited_task_that_swallows_the_cancellation_lets_the_awaiter_continue() {
    common::run_guarded(async {
        let started = flag();
        let b = evloop::create_task(async {
            let never: Future<u8> = Future::new();
            match never.await {
                Err(e) if e.is_cancelled() => Ok::<_, Error>(5u8),
                other => panic!("unexpected {other:?}"),
            }
        });
        let b_view = b.future();
        let a = {
            let started = started.clone();
            evloop::create_task(async move {
                started.store(true, Ordering::SeqCst);
                let v = b.await?;
                evloop::yield_now().await?;
                Ok::<_, Error>(v)
            })
        };
        until(&started).await;
        assert!(a.cancel());
        assert_eq!(a.future().await.unwrap(), 5);
        assert!(!a.cancelled());
        assert_eq!(a.cancelling(), 1);
        // B finished with its value (moved out by A's await), not cancelled.
        assert!(b_view.done());
        assert!(!b_view.cancelled());
        assert!(b_view.exception().unwrap().is_none());
    });
}

#[test]
fn cancel_returns_false_on_a_done_task() {
    common::run_guarded(async {
        let ok = evloop::create_task(async { Ok::<_, Error>(1u8) });
        let failed = evloop::create_task(async { Err::<u8, _>(Error::msg("failed")) });
        let cancelled = evloop::create_task(async { Ok::<_, Error>(3u8) });
        assert!(cancelled.cancel());
        common::yield_times(3).await;
        for t in [&ok, &failed, &cancelled] {
            assert!(t.done());
            assert!(!t.cancel());
            assert!(!t.cancel_with("late"));
            assert!(!t.to_ref().cancel());
        }
        assert_eq!(ok.result().unwrap(), 1);
        assert!(!ok.cancelled());
        assert_eq!(ok.cancelling(), 0, "a refused cancel is not counted");
        assert_eq!(failed.result().unwrap_err().to_string(), "failed");
        assert!(!failed.cancelled());
        assert!(cancelled.cancelled());
        assert_eq!(cancelled.cancelling(), 1);
        assert_eq!(
            cancel_message(&cancelled.result().unwrap_err()),
            None,
            "a later cancel_with must not change the message"
        );
    });
}

/// The loop is blocked on a one-hour timer; the remote cancel must wake it.
#[test]
fn cancel_from_another_thread() {
    let _watchdog = common::Watchdog::new("cancel from another thread", Duration::from_secs(30));
    let rt = Runtime::new().unwrap();
    let log = new_log();
    let started = flag();
    let task = {
        let (l, started) = (log.clone(), started.clone());
        rt.handle().spawn(async move {
            started.store(true, Ordering::SeqCst);
            let r = evloop::time::sleep(HOUR).await;
            push(&l, describe(&r));
            r?;
            Ok::<_, Error>(())
        })
    };
    let view = task.future();
    let canceller = {
        let started = started.clone();
        std::thread::spawn(move || {
            while !started.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
            std::thread::sleep(Duration::from_millis(10));
            let accepted = task.cancel_with("remote");
            (accepted, task.cancelling())
        })
    };
    let err = rt.block_on(view.clone()).unwrap_err();
    let (accepted, cancelling) = canceller.join().unwrap();
    assert!(accepted);
    assert_eq!(cancelling, 1, "counted at once, on the calling thread");
    assert_eq!(cancel_message(&err).as_deref(), Some("remote"));
    assert!(view.cancelled());
    assert_eq!(entries(&log), ["cancelled Some(\"remote\")"]);
}

/// Pins a stale-waiter bug: the task polled an evloop `Future` inside
/// `time::timeout`, the timeout expired (the inner future handle was dropped), and the
/// coroutine then suspended on a foreign future in the same poll. T3 says the request
/// must then wait for the next loop-native await; it must not cancel the abandoned
/// future (which the task no longer awaits) and must not be lost.
#[test]
fn cancel_after_an_abandoned_future_await_is_delivered_at_the_next_native_await() {
    let log = new_log();
    let l = log.clone();
    common::run_guarded(async move {
        let side: Future<u8> = Future::new();
        let gate = Gate::new();
        let timed_out = flag();
        let task = {
            let (side, gate, timed_out, l) =
                (side.clone(), gate.clone(), timed_out.clone(), l.clone());
            evloop::create_task(async move {
                let r = evloop::time::timeout(Duration::from_millis(1), side).await;
                assert!(r.unwrap_err().is_timeout());
                timed_out.store(true, Ordering::SeqCst);
                gate.wait().await;
                let r = evloop::yield_now().await;
                push(&l, format!("yield_now: {}", describe(&r)));
                r?;
                Ok::<_, Error>(())
            })
        };
        until(&timed_out).await;
        assert!(task.cancel_with("after timeout"));
        gate.open();
        let outcome = task.future().await;
        push(&l, format!("task: {}", describe(&outcome)));
        push(
            &l,
            format!("abandoned future cancelled: {}", side.cancelled()),
        );
    });
    assert_eq!(
        entries(&log),
        [
            "yield_now: cancelled Some(\"after timeout\")",
            "task: cancelled Some(\"after timeout\")",
            "abandoned future cancelled: false"
        ]
    );
}

#[test]
fn a_cancelled_task_awaiting_a_timeout_is_interrupted() {
    let log = new_log();
    let l = log.clone();
    common::run_guarded(async move {
        let gate = Gate::new();
        let started = flag();
        let task = {
            let (gate, started, l) = (gate.clone(), started.clone(), l.clone());
            evloop::create_task(async move {
                started.store(true, Ordering::SeqCst);
                // A foreign future under an hour-long timeout: the timeout's own sleep is
                // the loop-native await that receives the request.
                let r = evloop::time::timeout(HOUR, gate.wait()).await;
                push(&l, describe(&r));
                r?;
                Ok::<_, Error>(())
            })
        };
        until(&started).await;
        assert!(task.cancel());
        assert!(task.future().await.unwrap_err().is_cancelled());
        assert!(task.cancelled());
    });
    assert_eq!(entries(&log), ["cancelled None"]);
}

/// A task cancelling itself: nothing to interrupt now, so the request is delivered at
/// its next loop-native await.
#[test]
fn a_task_cancelling_itself_is_cancelled_at_its_next_native_await() {
    let log = new_log();
    let l = log.clone();
    common::run_guarded(async move {
        let task = evloop::create_task(async move {
            let me = evloop::current_task().unwrap();
            assert!(me.cancel_with("self"));
            push(&l, "still running after cancel()");
            let r = evloop::yield_now().await;
            push(&l, describe(&r));
            r?;
            Ok::<_, Error>(())
        });
        assert!(task.future().await.unwrap_err().is_cancelled());
        assert!(task.cancelled());
    });
    assert_eq!(
        entries(&log),
        ["still running after cancel()", "cancelled Some(\"self\")"]
    );
}

/// Python 3.11: two `cancel()`s while the task is suspended on a future: the first
/// cancels the future, the second only sets `_must_cancel`; the coroutine receives ONE
/// cancellation — the awaited future's own, so with the *first* message — its next
/// await succeeds, and it may finish with a value. (Regression: evloop delivered the
/// second message.)
#[test]
fn two_cancels_while_suspended_are_delivered_once() {
    let log = new_log();
    let l = log.clone();
    common::run_guarded(async move {
        let fut: Future<u8> = Future::new();
        let started = flag();
        let task = {
            let (fut, started, l) = (fut.clone(), started.clone(), l.clone());
            evloop::create_task(async move {
                started.store(true, Ordering::SeqCst);
                let first = fut.await;
                push(&l, format!("first: {}", describe(&first)));
                let second = evloop::yield_now().await;
                push(&l, format!("second: {}", describe(&second)));
                Ok::<_, Error>("v")
            })
        };
        until(&started).await;
        assert!(task.cancel_with("one"));
        assert!(task.cancel_with("two"));
        assert_eq!(task.cancelling(), 2);
        assert_eq!(task.future().await.unwrap(), "v");
        assert!(!task.cancelled());
        assert!(fut.cancelled());
    });
    assert_eq!(
        entries(&log),
        ["first: cancelled Some(\"one\")", "second: ok ()"]
    );
}

/// Python 3.11: `t.cancel('a'); t.cancel('b')` before the first step → CancelledError('b').
#[test]
fn two_cancels_before_the_first_poll_carry_the_latest_message() {
    common::run_guarded(async {
        let task = evloop::create_task(async { Ok::<_, Error>(()) });
        assert!(task.cancel_with("a"));
        assert!(task.cancel_with("b"));
        let err = task.future().await.unwrap_err();
        assert_eq!(cancel_message(&err).as_deref(), Some("b"));
    });
}

// ---------------------------------------------------------------------------------
// T4: cancelling / uncancel
// ---------------------------------------------------------------------------------

#[test]
fn cancelling_counts_requests_and_uncancel_to_zero_withdraws_the_request() {
    let log = new_log();
    let l = log.clone();
    common::run_guarded(async move {
        let gate = Gate::new();
        let started = flag();
        let task = {
            let (gate, started, l) = (gate.clone(), started.clone(), l.clone());
            evloop::create_task(async move {
                started.store(true, Ordering::SeqCst);
                gate.wait().await;
                let r = evloop::yield_now().await;
                push(&l, format!("yield_now: {}", describe(&r)));
                r?;
                Ok::<_, Error>("survived")
            })
        };
        until(&started).await;
        assert_eq!(task.cancelling(), 0);
        assert!(task.cancel());
        assert!(task.cancel(), "asyncio: a second request is accepted too");
        assert_eq!(task.cancelling(), 2);
        assert_eq!(task.uncancel(), 1);
        assert_eq!(task.cancelling(), 1);
        assert_eq!(task.uncancel(), 0);
        assert_eq!(task.uncancel(), 0, "never below zero");
        assert_eq!(task.cancelling(), 0);
        gate.open();
        assert_eq!(task.future().await.unwrap(), "survived");
        assert!(!task.cancelled());
    });
    assert_eq!(entries(&log), ["yield_now: ok ()"]);
}

#[test]
fn uncancel_above_zero_keeps_the_request() {
    common::run_guarded(async {
        let gate = Gate::new();
        let started = flag();
        let task = {
            let (gate, started) = (gate.clone(), started.clone());
            evloop::create_task(async move {
                started.store(true, Ordering::SeqCst);
                gate.wait().await;
                evloop::yield_now().await?;
                Ok::<_, Error>(())
            })
        };
        until(&started).await;
        task.cancel();
        task.cancel();
        assert_eq!(task.uncancel(), 1);
        gate.open();
        assert!(task.future().await.unwrap_err().is_cancelled());
        assert!(task.cancelled());
    });
}

/// The asyncio.timeout pattern: a task handles a cancellation, `uncancel()`s itself,
/// goes on, and is later cancelled again for real.
#[test]
fn a_task_can_uncancel_itself_and_be_cancelled_again() {
    let log = new_log();
    let l = log.clone();
    common::run_guarded(async move {
        let first: Future<u8> = Future::new();
        let handled = flag();
        let started = flag();
        let task = {
            let (first, handled, started, l) =
                (first.clone(), handled.clone(), started.clone(), l.clone());
            evloop::create_task(async move {
                started.store(true, Ordering::SeqCst);
                let r = first.await;
                push(&l, format!("first: {}", describe(&r)));
                let me = evloop::current_task().unwrap();
                push(
                    &l,
                    format!("cancelling before uncancel: {}", me.cancelling()),
                );
                push(&l, format!("uncancel: {}", me.uncancel()));
                evloop::yield_now().await?;
                handled.store(true, Ordering::SeqCst);
                let r = evloop::time::sleep(HOUR).await;
                push(&l, format!("second: {}", describe(&r)));
                r?;
                Ok::<_, Error>(())
            })
        };
        until(&started).await;
        assert!(task.cancel_with("one"));
        until(&handled).await;
        assert_eq!(task.cancelling(), 0);
        assert!(!task.done());
        assert!(task.cancel_with("two"));
        assert!(task.future().await.unwrap_err().is_cancelled());
        assert!(task.cancelled());
        assert_eq!(task.cancelling(), 1);
    });
    assert_eq!(
        entries(&log),
        [
            "first: cancelled Some(\"one\")",
            "cancelling before uncancel: 1",
            "uncancel: 0",
            "second: cancelled Some(\"two\")"
        ]
    );
}

// ---------------------------------------------------------------------------------
// T5: abort
// ---------------------------------------------------------------------------------

#[test]
fn abort_drops_the_coroutine_at_once_on_the_loop_thread() {
    let loop_thread = std::thread::current().id();
    let (spy, probe) = DropSpy::new();
    let resumed = flag();
    let r = resumed.clone();
    let p = probe.clone();
    common::run_guarded(async move {
        let probe = p;
        let gate = Gate::new();
        let started = flag();
        let task = {
            let (gate, started) = (gate.clone(), started.clone());
            evloop::create_task(async move {
                let _spy = spy;
                started.store(true, Ordering::SeqCst);
                gate.wait().await;
                r.store(true, Ordering::SeqCst);
                Ok::<_, Error>(1)
            })
        };
        until(&started).await;
        assert_eq!(probe.drops(), 0);
        task.abort();
        assert_eq!(probe.drops(), 1, "dropped at once");
        assert!(task.done());
        assert!(task.cancelled());
        assert!(task.future().await.unwrap_err().is_cancelled());
        task.abort(); // idempotent
        assert_eq!(probe.drops(), 1);
        gate.open(); // nobody is there any more
        common::yield_times(2).await;
    });
    assert!(!resumed.load(Ordering::SeqCst));
    assert_eq!(probe.dropped_on(), Some(loop_thread));
}

#[test]
fn abort_of_a_task_suspended_on_an_evloop_future() {
    let (spy, probe) = DropSpy::new();
    common::run_guarded(async move {
        let fut: Future<u8> = Future::new();
        let started = flag();
        let task = {
            let (fut, started) = (fut.clone(), started.clone());
            evloop::create_task(async move {
                let _spy = spy;
                started.store(true, Ordering::SeqCst);
                fut.await
            })
        };
        until(&started).await;
        task.abort();
        assert_eq!(probe.drops(), 1);
        assert!(task.cancelled());
        // The future it awaited is still usable by others.
        fut.set_result(3).unwrap();
        assert_eq!(fut.await.unwrap(), 3);
    });
}

#[test]
fn abort_before_the_first_poll_never_runs_the_body() {
    let ran = flag();
    let (spy, probe) = DropSpy::new();
    let r = ran.clone();
    common::run_guarded(async move {
        let task = evloop::create_task(async move {
            let _spy = spy;
            r.store(true, Ordering::SeqCst);
            Ok::<_, Error>(())
        });
        task.abort();
        assert!(task.done() && task.cancelled());
        assert_eq!(probe.drops(), 1);
        common::yield_times(2).await;
    });
    assert!(!ran.load(Ordering::SeqCst));
}

/// From another thread the coroutine is still dropped on the loop thread; the loop is
/// blocked with no timer, so the abort has to wake it.
#[test]
fn abort_from_another_thread_drops_on_the_loop_thread() {
    let _watchdog = common::Watchdog::new("abort from another thread", Duration::from_secs(30));
    let rt = Runtime::new().unwrap();
    let loop_thread = std::thread::current().id();
    let (spy, probe) = DropSpy::new();
    let gate = Gate::new();
    let started = flag();
    let task = {
        let (gate, started) = (gate.clone(), started.clone());
        rt.handle().spawn(async move {
            let _spy = spy;
            started.store(true, Ordering::SeqCst);
            gate.wait().await;
            Ok::<_, Error>(())
        })
    };
    let view = task.future();
    let aborter = std::thread::spawn(move || {
        while !started.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        std::thread::sleep(Duration::from_millis(10));
        task.abort();
        std::thread::current().id()
    });
    assert!(rt.block_on(view.clone()).unwrap_err().is_cancelled());
    let aborter_thread = aborter.join().unwrap();
    assert!(view.cancelled());
    assert_eq!(probe.drops(), 1);
    assert_eq!(probe.dropped_on(), Some(loop_thread));
    assert_ne!(probe.dropped_on(), Some(aborter_thread));
}

/// Inside the task, abort() cannot drop the coroutine that is running: the current
/// poll finishes, then the coroutine is dropped and the task ends cancelled.
#[test]
fn abort_from_inside_the_task_is_deferred_to_the_end_of_its_poll() {
    let loop_thread = std::thread::current().id();
    let log = new_log();
    let l = log.clone();
    let (spy, probe) = DropSpy::new();
    let probe_inside = probe.clone();
    common::run_guarded(async move {
        let gate = Gate::new();
        let task = {
            let gate = gate.clone();
            evloop::create_task(async move {
                let _spy = spy;
                evloop::current_task().unwrap().abort();
                push(&l, format!("after abort: dropped {}", probe_inside.drops()));
                gate.wait().await;
                push(&l, "unreachable");
                Ok::<_, Error>(())
            })
        };
        assert!(task.future().await.unwrap_err().is_cancelled());
        assert!(task.cancelled());
        gate.open();
        common::yield_times(2).await;
    });
    assert_eq!(entries(&log), ["after abort: dropped 0"]);
    assert_eq!(probe.drops(), 1);
    assert_eq!(probe.dropped_on(), Some(loop_thread));
}

#[test]
fn abort_of_a_done_task_is_a_no_op() {
    common::run_guarded(async {
        let ok = evloop::create_task(async { Ok::<_, Error>(5u8) });
        let failed = evloop::create_task(async { Err::<u8, _>(Error::msg("kept")) });
        common::yield_times(2).await;
        ok.abort();
        failed.abort();
        failed.to_ref().abort();
        common::yield_times(2).await;
        assert!(!ok.cancelled());
        assert_eq!(ok.result().unwrap(), 5);
        assert!(!failed.cancelled());
        assert_eq!(failed.result().unwrap_err().to_string(), "kept");
    });
}

// ---------------------------------------------------------------------------------
// T9: shield
// ---------------------------------------------------------------------------------

#[test]
fn cancelling_a_shield_leaves_the_inner_task_running() {
    common::run_guarded(async {
        let gate = Gate::new();
        let inner = {
            let gate = gate.clone();
            evloop::create_task(async move {
                gate.wait().await;
                evloop::yield_now().await?;
                Ok::<_, Error>(7u32)
            })
        };
        let outer = evloop::shield(inner.future());
        assert_ne!(outer, *inner);
        assert!(outer.cancel_with("outer only"));
        assert!(outer.cancelled());
        common::yield_times(3).await;
        assert!(!inner.done());
        assert!(!inner.cancelled());
        gate.open();
        assert_eq!(inner.future().await.unwrap(), 7);
        assert_eq!(
            cancel_message(&outer.result().unwrap_err()).as_deref(),
            Some("outer only")
        );
    });
}

#[test]
fn a_task_awaiting_a_shield_is_cancelled_while_the_inner_completes() {
    let log = new_log();
    let l = log.clone();
    common::run_guarded(async move {
        let inner: Future<u8> = Future::new();
        let started = flag();
        let awaiter = {
            let (inner, started, l) = (inner.clone(), started.clone(), l.clone());
            evloop::create_task(async move {
                started.store(true, Ordering::SeqCst);
                let r = evloop::shield(inner).await;
                push(&l, describe(&r));
                r
            })
        };
        until(&started).await;
        assert!(awaiter.cancel());
        assert!(awaiter.future().await.unwrap_err().is_cancelled());
        assert!(awaiter.cancelled());
        assert!(!inner.done(), "the shielded future was not cancelled");
        inner.set_result(3).unwrap();
        assert_eq!(inner.result().unwrap(), 3);
    });
    assert_eq!(entries(&log), ["cancelled None"]);
}

#[test]
fn shield_forwards_the_inner_outcome() {
    common::run_guarded(async {
        let done: Future<u8> = Future::new();
        done.set_result(1).unwrap();
        assert_eq!(
            evloop::shield(done.clone()),
            done,
            "a done future is returned as is"
        );

        let inner: Future<u8> = Future::new();
        let outer = evloop::shield(inner.clone());
        inner.set_result(4).unwrap();
        assert_eq!(outer.clone().await.unwrap(), 4);

        let inner: Future<u8> = Future::new();
        let outer = evloop::shield(inner.clone());
        inner.set_exception(Error::msg("inner failed")).unwrap();
        assert_eq!(outer.clone().await.unwrap_err().to_string(), "inner failed");

        // asyncio: a cancelled inner cancels the outer.
        let inner: Future<u8> = Future::new();
        let outer = evloop::shield(inner.clone());
        inner.cancel_with("inner cancelled");
        let err = outer.clone().await.unwrap_err();
        assert!(outer.cancelled());
        assert_eq!(cancel_message(&err).as_deref(), Some("inner cancelled"));
    });
}

/// asyncio's shield marks the inner exception retrieved when the outer was cancelled
/// (nobody can receive it any more): no "never retrieved" report for it.
#[test]
fn inner_exception_after_the_shield_was_cancelled_is_not_reported() {
    let rt = Runtime::new().unwrap();
    let reports = common::capture_exceptions(&rt.handle());
    rt.block_on(async {
        let inner: Future<u8> = Future::new();
        let outer = evloop::shield(inner.clone());
        assert!(outer.cancel());
        inner.set_exception(Error::msg("nobody listens")).unwrap();
        common::yield_times(3).await;
        drop((inner, outer));
        common::yield_times(2).await;
    });
    drop(rt);
    assert!(
        reports.lock().unwrap().is_empty(),
        "{:?}",
        reports.lock().unwrap()
    );
}

/// asyncio: once the cancelled shield's own callback has detached it from the inner
/// future (a later iteration), an inner exception is nobody's: when the inner future is
/// dropped unretrieved it is reported like any other (Python 3.11 prints "Future
/// exception was never retrieved" here).
#[test]
fn inner_exception_after_the_shield_was_detached_is_reported() {
    let rt = Runtime::new().unwrap();
    let reports = common::capture_exceptions(&rt.handle());
    rt.block_on(async {
        let inner: Future<u8> = Future::new();
        let outer = evloop::shield(inner.clone());
        assert!(outer.cancel());
        common::yield_times(3).await;
        inner.set_exception(Error::msg("detached")).unwrap();
        common::yield_times(3).await;
        drop((inner, outer));
        common::yield_times(2).await;
    });
    drop(rt);
    let reports = reports.lock().unwrap();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(
        reports[0]
            .message
            .starts_with("Future exception was never retrieved")
    );
}
