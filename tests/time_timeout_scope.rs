//! `time::timeout_scope` / `timeout_scope_at` / `timeout_scope_with` (SPEC §14 K2):
//! ports of CPython's `Lib/test/test_asyncio/test_timeouts.py`, plus what evloop adds
//! (a scope dropped mid-way, a handle used from another thread, saturation, the panic
//! outside a task).
//!
//! Every assertion is about which event happened (the body saw a cancellation, the
//! scope reported a timeout, the task's `cancelling()` count), never about how long it
//! took: deadlines are 10 ms against sleeps of an hour, or the other way round.

mod common;
use common::{Gate, entries, new_log, push};

use std::future::Future as StdFuture;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use evloop::time::{self, sleep, timeout_scope, timeout_scope_at, timeout_scope_with};
use evloop::{Error, LoopHandle, create_task, current_task, yield_now};

const HOUR: Duration = Duration::from_secs(3600);
const SHORT: Duration = Duration::from_millis(10);

/// Runs `body` as a task (a scope needs one) under the watchdog; its output.
#[track_caller]
fn in_task<T: Send + 'static>(body: impl StdFuture<Output = Result<T, Error>> + 'static) -> T {
    common::run_guarded(async move { create_task(body).await }).expect("the task failed")
}

fn me() -> evloop::TaskRef {
    current_task().expect("inside a task")
}

fn timers_pending() -> u64 {
    LoopHandle::current().stats().timers_pending
}

// ---------------------------------------------------------------------------------
// The basics
// ---------------------------------------------------------------------------------

/// Ports test_timeout_basic and test_waiter_cancelled: the body's await sees the
/// cancellation, the scope reports a timeout, `expired()` says so.
#[test]
fn expiry_cancels_the_body_and_becomes_a_timeout() {
    let log = new_log();
    let l = log.clone();
    in_task(async move {
        let scope = timeout_scope(SHORT, {
            let l = l.clone();
            async move {
                let r = sleep(HOUR).await;
                push(
                    &l,
                    format!("body: cancelled={}", r.as_ref().unwrap_err().is_cancelled()),
                );
                r
            }
        });
        let handle = scope.handle();
        let out = scope.await;
        push(
            &l,
            format!("scope: timeout={}", out.unwrap_err().is_timeout()),
        );
        assert!(handle.expired());
        assert_eq!(me().cancelling(), 0, "the scope's request was withdrawn");
        Ok(())
    });
    assert_eq!(
        entries(&log),
        ["body: cancelled=true", "scope: timeout=true"]
    );
}

/// Ports test_timeout_at_basic: the absolute deadline is what `when()` reports.
#[test]
fn timeout_at_reports_its_deadline_and_expires() {
    in_task(async {
        let deadline = Instant::now() + SHORT;
        let scope = timeout_scope_at(deadline, async { sleep(HOUR).await });
        let handle = scope.handle();
        assert_eq!(handle.when(), Some(deadline));
        assert!(scope.await.unwrap_err().is_timeout());
        assert!(handle.expired());
        assert_eq!(handle.when(), Some(deadline));
        Ok(())
    });
}

/// Ports test_timeout_not_called: a body that finishes first is untouched, and the
/// scope's timer is gone once it exits.
#[test]
fn a_body_that_finishes_first_is_untouched() {
    in_task(async {
        let before = timers_pending();
        let scope = timeout_scope(HOUR, async {
            sleep(Duration::from_millis(1)).await?;
            Ok(5)
        });
        let handle = scope.handle();
        assert_eq!(scope.await?, 5);
        assert!(!handle.expired());
        assert!(handle.when().unwrap() > Instant::now());
        assert_eq!(timers_pending(), before, "the scope's timer was cancelled");
        // Nothing is left to cancel this task later.
        yield_now().await?;
        assert_eq!(me().cancelling(), 0);
        Ok(())
    });
}

/// Ports test_timeout_disabled / test_timeout_at_disabled: no deadline, no expiry.
#[test]
fn a_scope_without_a_deadline_never_expires() {
    in_task(async {
        let scope = timeout_scope(SHORT, async {
            sleep(SHORT * 2).await?;
            Ok(())
        });
        let handle = scope.handle();
        handle.reschedule(None); // before entering: recorded
        assert_eq!(handle.when(), None);
        scope.await?;
        assert!(!handle.expired());
        assert_eq!(handle.when(), None);
        Ok(())
    });
}

/// Ports test_timeout_zero, test_timeout_zero_sleep_zero and
/// test_timeout_in_the_past_sleep_zero: a deadline of now or in the past expires at
/// the next iteration, before a `sleep(0)` entered after it completes.
#[test]
fn zero_and_past_deadlines_expire_at_the_next_iteration() {
    in_task(async {
        for body_sleep in [Duration::ZERO, HOUR] {
            let t0 = Instant::now();
            let scope = timeout_scope(Duration::ZERO, sleep(body_sleep));
            let handle = scope.handle();
            assert!(scope.await.unwrap_err().is_timeout());
            assert!(handle.expired());
            let when = handle.when().unwrap();
            assert!(t0 <= when && when <= Instant::now());
        }
        let past = Instant::now() - Duration::from_secs(11);
        let scope = timeout_scope_at(past, sleep(Duration::ZERO));
        let handle = scope.handle();
        assert!(scope.await.unwrap_err().is_timeout());
        assert!(handle.expired());
        assert_eq!(me().cancelling(), 0);
        Ok(())
    });
}

/// Ports test_foreign_exception_passed: the body's own error goes through.
#[test]
fn a_body_error_passes_through_unexpired() {
    in_task(async {
        let scope = timeout_scope(SHORT, async { Err::<(), _>(Error::msg("key error")) });
        let handle = scope.handle();
        let err = scope.await.unwrap_err();
        assert_eq!(err.to_string(), "key error");
        assert!(!handle.expired());
        Ok(())
    });
}

/// Ports test_foreign_exception_on_timeout: a body that turns the cancellation into
/// another error keeps that error (only `Err(Cancelled)` becomes a timeout).
#[test]
fn a_body_that_replaces_the_cancellation_keeps_its_error() {
    in_task(async {
        let scope = timeout_scope(SHORT, async {
            match sleep(HOUR).await {
                Err(e) if e.is_cancelled() => Err::<(), _>(Error::msg("division by zero")),
                other => other,
            }
        });
        let handle = scope.handle();
        assert_eq!(scope.await.unwrap_err().to_string(), "division by zero");
        assert!(handle.expired());
        assert_eq!(me().cancelling(), 0, "withdrawn whatever the body returned");
        Ok(())
    });
}

/// Ports test_timeout_expiring (and test_timeout_expired / test_timeout_finished, where
/// asyncio raises and evloop ignores the call): a body that swallows the cancellation
/// returns normally; `reschedule` once expired or exited does nothing.
#[test]
fn a_body_that_swallows_the_cancellation_returns_normally() {
    in_task(async {
        let out = timeout_scope_with(SHORT, |scope| async move {
            assert!(sleep(HOUR).await.unwrap_err().is_cancelled());
            let when = scope.when();
            scope.reschedule(Some(Instant::now() + HOUR)); // expiring: ignored
            assert_eq!(scope.when(), when);
            sleep(Duration::from_millis(1)).await?; // the request was consumed
            Ok(scope)
        })
        .await;
        let scope = out?;
        assert!(scope.expired());
        let when = scope.when();
        scope.reschedule(None); // exited: ignored
        assert_eq!(scope.when(), when);
        assert_eq!(me().cancelling(), 0);
        Ok(())
    });
}

/// Ports test_foreign_cancel_doesnt_timeout_if_not_expired: a cancellation from
/// elsewhere stays a cancellation.
#[test]
fn a_cancellation_from_elsewhere_stays_a_cancellation() {
    let out = common::run_guarded(async {
        let task = create_task(async {
            let scope = timeout_scope(HOUR, async {
                me().cancel();
                sleep(HOUR).await
            });
            let handle = scope.handle();
            let out = scope.await;
            assert!(!handle.expired());
            out
        });
        task.await
    });
    assert!(out.unwrap_err().is_cancelled());
}

/// Ports test_outer_task_is_not_cancelled: a task that handles its scope's timeout
/// ends normally, with no cancel request left.
#[test]
fn a_task_that_handles_the_timeout_is_not_cancelled() {
    common::run_guarded(async {
        let task = create_task(async {
            let out = timeout_scope(SHORT, sleep(HOUR)).await;
            assert!(out.unwrap_err().is_timeout());
            Ok(me().cancelling())
        });
        assert_eq!(task.future().await.unwrap(), 0);
        assert!(task.done() && !task.cancelled());
    });
}

/// The body cleans up asynchronously after the cancellation: its awaits work again
/// (the request was consumed by the await that saw it), and only then does the scope
/// report the timeout.
#[test]
fn the_body_can_await_while_cleaning_up() {
    let log = new_log();
    let l = log.clone();
    in_task(async move {
        let out = timeout_scope(SHORT, {
            let l = l.clone();
            async move {
                let Err(cancelled) = sleep(HOUR).await else {
                    unreachable!("an hour did not pass")
                };
                push(&l, "cancelled");
                sleep(Duration::from_millis(1)).await?;
                push(&l, "cleanup slept");
                yield_now().await?;
                push(&l, "cleanup yielded");
                Err::<(), _>(cancelled)
            }
        })
        .await;
        push(&l, format!("timeout={}", out.unwrap_err().is_timeout()));
        Ok(())
    });
    assert_eq!(
        entries(&log),
        [
            "cancelled",
            "cleanup slept",
            "cleanup yielded",
            "timeout=true"
        ]
    );
}

/// A body waiting on a foreign future that completes right after the deadline (in the
/// same iteration, before the task resumes) finishes without seeing the request: the
/// scope expired but there is nothing to convert, and the undelivered request is
/// withdrawn (the task's next await is not cancelled).
#[test]
fn a_scope_that_expires_as_the_body_finishes_converts_nothing() {
    in_task(async {
        let deadline = Instant::now() + SHORT;
        let gate = Gate::new();
        let scope = timeout_scope_at(deadline, {
            let gate = gate.clone();
            async move {
                // Armed after the scope's timer, same deadline: fires right after it.
                let opener = gate.clone();
                LoopHandle::current().call_at(deadline, move || opener.open());
                gate.wait().await;
                Ok(7)
            }
        });
        let handle = scope.handle();
        assert_eq!(scope.await?, 7);
        assert!(handle.expired(), "the deadline did pass");
        assert_eq!(me().cancelling(), 0);
        yield_now().await?; // not cancelled
        Ok(())
    });
}

// ---------------------------------------------------------------------------------
// Cancel counts (asyncio >= 3.11's rule: uncancel() <= the count at entry)
// ---------------------------------------------------------------------------------

/// The scope expires and, before the body resumes, someone else cancels the task too:
/// the body's cancellation is not the scope's alone, so it stays a cancellation (with
/// the other request still counted).
#[test]
fn expiry_plus_an_outside_cancel_stays_a_cancellation() {
    let out = common::run_guarded(async {
        let task = create_task(async {
            let deadline = Instant::now() + SHORT;
            let scope = timeout_scope_at(deadline, async move {
                let task = me();
                LoopHandle::current().call_at(deadline, move || {
                    task.cancel();
                });
                sleep(HOUR).await
            });
            let handle = scope.handle();
            let out = scope.await;
            assert!(handle.expired());
            assert_eq!(me().cancelling(), 1, "the outside request is still counted");
            out
        });
        task.await
    });
    assert!(out.unwrap_err().is_cancelled());
}

/// Ports test_timeout_after_cancellation and test_cancel_in_timeout_after_cancellation:
/// a scope entered by a task already being cancelled (in its clean-up) measures from
/// that count: its own expiry is a timeout, a new cancel a cancellation, and the count
/// is back to the entry value afterwards.
#[test]
fn a_scope_in_a_cancelled_tasks_cleanup_counts_from_its_entry() {
    in_task(async {
        me().cancel();
        assert!(sleep(HOUR).await.unwrap_err().is_cancelled());
        assert_eq!(me().cancelling(), 1);

        let out = timeout_scope(Duration::ZERO, sleep(HOUR)).await;
        assert!(out.unwrap_err().is_timeout());
        assert_eq!(me().cancelling(), 1, "back to the entry value");

        let out = timeout_scope(HOUR, async {
            me().cancel();
            sleep(HOUR).await
        })
        .await;
        assert!(out.unwrap_err().is_cancelled());
        assert_eq!(me().cancelling(), 2);
        Ok(())
    });
}

// ---------------------------------------------------------------------------------
// Nested scopes
// ---------------------------------------------------------------------------------

/// The inner scope expires: it reports the timeout, and the outer scope (not expired)
/// lets the body go on.
#[test]
fn nested_inner_expiry_does_not_leak_into_the_outer_scope() {
    in_task(async {
        let outer = timeout_scope_with(HOUR, |outer| async move {
            let inner = timeout_scope(SHORT, sleep(HOUR));
            let inner_handle = inner.handle();
            assert!(inner.await.unwrap_err().is_timeout());
            assert!(inner_handle.expired());
            sleep(Duration::from_millis(1)).await?; // not cancelled
            Ok(outer)
        });
        let outer = outer.await?;
        assert!(!outer.expired());
        assert_eq!(me().cancelling(), 0);
        Ok(())
    });
}

/// The outer scope expires while the inner one runs: the inner scope passes the
/// cancellation through, the outer one reports the timeout.
#[test]
fn nested_outer_expiry_passes_through_the_inner_scope_as_a_cancel() {
    let log = new_log();
    let l = log.clone();
    in_task(async move {
        let outer = timeout_scope(SHORT, {
            let l = l.clone();
            async move {
                let inner = timeout_scope(HOUR, sleep(HOUR));
                let inner_handle = inner.handle();
                let r = inner.await;
                push(
                    &l,
                    format!(
                        "inner: cancelled={}",
                        r.as_ref().unwrap_err().is_cancelled()
                    ),
                );
                assert!(!inner_handle.expired());
                r
            }
        });
        let handle = outer.handle();
        let r = outer.await;
        push(
            &l,
            format!("outer: timeout={}", r.unwrap_err().is_timeout()),
        );
        assert!(handle.expired());
        assert_eq!(me().cancelling(), 0);
        Ok(())
    });
    assert_eq!(
        entries(&log),
        ["inner: cancelled=true", "outer: timeout=true"]
    );
}

/// Ports test_nested_timeouts (the same deadline) and test_nested_timeouts_loop_busy
/// (the inner deadline first, but both passed when the loop next runs timers): both
/// scopes expire; only the outermost reports the timeout.
#[test]
fn nested_scopes_that_both_expire_report_one_timeout_at_the_top() {
    for busy in [false, true] {
        let log = new_log();
        let l = log.clone();
        in_task(async move {
            let deadline = Instant::now() + SHORT;
            let outer = timeout_scope_at(deadline, {
                let l = l.clone();
                async move {
                    // The same deadline, or an earlier one with the loop then blocked
                    // past both.
                    let inner_deadline = if busy {
                        Instant::now() + Duration::from_millis(1)
                    } else {
                        deadline
                    };
                    let inner = timeout_scope_at(inner_deadline, async move {
                        if busy {
                            std::thread::sleep(SHORT * 2);
                        }
                        sleep(HOUR).await
                    });
                    let inner_handle = inner.handle();
                    let r = inner.await;
                    push(
                        &l,
                        format!(
                            "inner: cancelled={}",
                            r.as_ref().unwrap_err().is_cancelled()
                        ),
                    );
                    assert!(inner_handle.expired());
                    r
                }
            });
            let handle = outer.handle();
            let r = outer.await;
            push(
                &l,
                format!("outer: timeout={}", r.unwrap_err().is_timeout()),
            );
            assert!(handle.expired());
            assert_eq!(me().cancelling(), 0);
            Ok(())
        });
        assert_eq!(
            entries(&log),
            ["inner: cancelled=true", "outer: timeout=true"],
            "busy={busy}"
        );
    }
}

/// Ports test_nested_timeout_in_finally: a scope in the clean-up of an expired one
/// times out on its own, and the outer one still reports its timeout.
#[test]
fn a_scope_in_the_cleanup_of_an_expired_one() {
    in_task(async {
        let out = timeout_scope(SHORT, async {
            let r = sleep(HOUR).await;
            assert!(r.as_ref().unwrap_err().is_cancelled());
            let cleanup = timeout_scope(SHORT, sleep(HOUR)).await;
            assert!(cleanup.unwrap_err().is_timeout());
            r
        })
        .await;
        assert!(out.unwrap_err().is_timeout());
        assert_eq!(me().cancelling(), 0);
        Ok(())
    });
}

// ---------------------------------------------------------------------------------
// reschedule / when
// ---------------------------------------------------------------------------------

/// Ports test_reschedule: another task moves the deadline later, then removes it;
/// cancelling the task then is a plain cancellation, the scope never expired.
#[test]
fn reschedule_from_another_task_then_cancel() {
    common::run_guarded(async {
        let handles: evloop::Future<time::TimeoutHandle> = evloop::Future::new();
        let deadline1 = Instant::now() + HOUR;
        let deadline2 = deadline1 + 2 * HOUR;
        let task = create_task({
            let handles = handles.clone();
            async move {
                let scope = timeout_scope_at(deadline1, sleep(3 * HOUR));
                handles.set_result(scope.handle()).unwrap();
                scope.await
            }
        });
        let handle = handles.await.unwrap();
        assert_eq!(handle.when(), Some(deadline1));
        handle.reschedule(Some(deadline2));
        assert_eq!(handle.when(), Some(deadline2));
        handle.reschedule(None);
        assert_eq!(handle.when(), None);
        task.cancel();
        assert!(task.await.unwrap_err().is_cancelled());
        assert!(!handle.expired());
    });
}

/// Moving the deadline later (or removing it) from inside the body: the first
/// deadline passes unnoticed.
#[test]
fn reschedule_later_or_to_none_keeps_the_body_running() {
    in_task(async {
        for later in [Some(Instant::now() + HOUR), None] {
            let before = timers_pending();
            let out = timeout_scope_with(Duration::from_millis(1), |scope| async move {
                scope.reschedule(later);
                sleep(SHORT).await?; // outlives the first deadline
                Ok(scope)
            })
            .await;
            let scope = out?;
            assert!(!scope.expired());
            assert_eq!(scope.when(), later);
            assert_eq!(timers_pending(), before, "no timer left behind");
        }
        Ok(())
    });
}

/// Moving the deadline earlier, or into the past, makes it expire.
#[test]
fn reschedule_earlier_or_into_the_past_expires() {
    in_task(async {
        for earlier in [
            Instant::now() + Duration::from_millis(1),
            Instant::now() - HOUR,
        ] {
            let out = timeout_scope_with(HOUR, |scope| async move {
                scope.reschedule(Some(earlier));
                sleep(HOUR).await
            })
            .await;
            assert!(out.unwrap_err().is_timeout());
        }
        Ok(())
    });
}

/// The handle is `Send + Sync`: another thread moves the deadline of a scope in a
/// `LoopHandle::spawn` task (a `Send` coroutine, so the scope is `Send` too).
#[test]
fn reschedule_from_another_thread() {
    common::run_guarded(async {
        let loop_ = LoopHandle::current();
        let handles: evloop::Future<time::TimeoutHandle> = evloop::Future::new();
        let task = loop_.spawn({
            let handles = handles.clone();
            async move {
                let scope = timeout_scope(HOUR, sleep(HOUR));
                handles.set_result(scope.handle()).unwrap();
                scope.await
            }
        });
        let handle = handles.await.unwrap();
        let worker = std::thread::spawn(move || handle.reschedule(Some(Instant::now())));
        assert!(task.await.unwrap_err().is_timeout());
        worker.join().unwrap();
    });
}

// ---------------------------------------------------------------------------------
// Dropped scopes, saturation, misuse
// ---------------------------------------------------------------------------------

/// A scope dropped before its body returned leaves no timer behind, and an expired
/// one's request is withdrawn: the task's later awaits are not cancelled by it.
#[test]
fn a_dropped_scope_cleans_up() {
    in_task(async {
        let before = timers_pending();
        // Dropped while active.
        let mut scope = Box::pin(timeout_scope(HOUR, sleep(HOUR)));
        assert!(!common::leak::poll_once(scope.as_mut()).await);
        assert_eq!(
            timers_pending(),
            before + 2,
            "the scope's timer and the sleep's"
        );
        drop(scope);
        assert_eq!(timers_pending(), before);

        // Dropped after it expired, before the body saw the request (it waits on a
        // foreign future, opened after the deadline).
        let deadline = Instant::now() + Duration::from_millis(1);
        let mut scope = Box::pin(timeout_scope_at(
            deadline,
            std::future::pending::<Result<(), Error>>(),
        ));
        let handle = scope.handle();
        assert!(!common::leak::poll_once(scope.as_mut()).await);
        let gate = Gate::new();
        let opener = gate.clone();
        LoopHandle::current().call_at(deadline, move || opener.open());
        gate.wait().await;
        assert!(handle.expired());
        assert_eq!(me().cancelling(), 1, "requested, not yet delivered");
        drop(scope);
        assert_eq!(me().cancelling(), 0, "withdrawn by the drop");
        yield_now().await?; // not cancelled
        Ok(())
    });
}

/// User durations saturate: `Duration::MAX` is a deadline that never comes.
#[test]
fn a_huge_delay_saturates() {
    in_task(async {
        let scope = timeout_scope(Duration::MAX, async { Ok(1) });
        assert!(scope.handle().when().unwrap() > Instant::now() + HOUR);
        assert_eq!(scope.await?, 1);
        Ok(())
    });
}

/// Ports test_timeout_without_task: outside a task (block_on's own future) the scope
/// panics with a message saying what to do.
#[test]
fn a_scope_outside_a_task_panics_clearly() {
    let rt = evloop::Runtime::new().unwrap();
    let panicked = catch_unwind(AssertUnwindSafe(|| {
        rt.block_on(timeout_scope(SHORT, async { Ok(()) }))
    }))
    .unwrap_err();
    let message = common::panic_message(&*panicked);
    assert!(message.contains("inside an evloop task"), "{message}");
}
