//! K1 (`evloop::TaskGroup`, `ExceptionGroup`): ports of CPython's
//! `Lib/test/test_asyncio/test_taskgroups.py` (3.13) where they mean something in Rust,
//! plus `join_next` (tokio's `JoinSet`) and dropping a group. Every test asserts an
//! order of events (log vectors) or outcomes, never a duration: children finish after a
//! number of `yield_now`s, and "long" children sleep an hour, so they only ever end by
//! being cancelled.
//!
//! Rust has no `async with`: `__aexit__` is `tg.join().await`, and a body that raised
//! is the caller's business — the port calls `tg.cancel_all()` (asyncio's `_abort`)
//! before `join` where asyncio's `__aexit__` got an exception.

mod common;

use std::rc::Rc;
use std::time::Duration;

use common::local::{Finish, Log, entries, new_log, push, strs, until_logged, yields};
use common::run_guarded;
use evloop::{Error, TaskGroup, create_task, current_task, time::sleep, yield_now};

const HOUR: Duration = Duration::from_secs(3600);

/// Runs `body` as a task (the group's parent) on a fresh loop and returns its result.
fn in_task<T: Send + 'static>(
    body: impl std::future::Future<Output = Result<T, Error>> + 'static,
) -> Result<T, Error> {
    run_guarded(async move { create_task(body).await })
}

/// Fails with `message` after `n` yields.
async fn fail_after(n: usize, message: &'static str) -> Result<(), Error> {
    yields(n).await?;
    Err(Error::msg(message))
}

/// Succeeds with `value` after `n` yields.
async fn ok_after<T>(n: usize, value: T) -> Result<T, Error> {
    yields(n).await?;
    Ok(value)
}

/// Logs "`name` started", sleeps an hour, logs "`name` cancelled" and propagates it.
async fn sleeper(log: Log, name: &'static str) -> Result<(), Error> {
    push(&log, format!("{name} started"));
    let out = sleep(HOUR).await;
    push(&log, format!("{name} cancelled"));
    out
}

/// The messages of an `Error::Group`; panics on any other outcome.
fn group_messages(out: &Result<(), Error>) -> Vec<String> {
    match out {
        Err(Error::Group(group)) => group.errors().iter().map(|e| e.to_string()).collect(),
        other => panic!("expected Err(Error::Group), got {other:?}"),
    }
}

fn cancelling() -> usize {
    current_task().expect("in a task").cancelling()
}

// ---------------------------------------------------------------------------------
// Children that succeed, or are cancelled by someone else
// ---------------------------------------------------------------------------------

/// test_taskgroup_01 / 02: every child succeeds (one spawned after the body awaited);
/// `join` returns `Ok` once both are done, and their tasks hold the results.
#[test]
fn children_succeed_and_join_waits_for_all() {
    let out = in_task(async {
        let tg = TaskGroup::new();
        let t1 = tg.spawn(ok_after(3, 42))?;
        yields(1).await?;
        let t2 = tg.spawn(ok_after(5, 11))?;
        assert_eq!(tg.len(), 2);
        tg.join().await?;
        assert!(
            t1.done() && t2.done(),
            "join returned before a child finished"
        );
        assert!(tg.is_empty());
        Ok((t1.result()?, t2.result()?))
    });
    assert_eq!(out.unwrap(), (42, 11));
}

/// test_taskgroup_03: a child cancelled explicitly is not an error; the others carry on.
#[test]
fn a_child_cancelled_from_outside_is_not_an_error() {
    let log = new_log();
    let l = log.clone();
    let out = in_task(async move {
        let tg = TaskGroup::new();
        let t1 = tg.spawn(sleeper(l.clone(), "t1"))?;
        until_logged(&l, "t1 started").await;
        t1.cancel();
        let t2 = tg.spawn(ok_after(2, ()))?;
        tg.join().await?;
        assert!(t1.cancelled());
        assert!(t2.result().is_ok());
        Ok(())
    });
    out.unwrap();
    assert_eq!(entries(&log), strs(&["t1 started", "t1 cancelled"]));
}

/// A child that handles its cancellation and returns normally ends with its value and
/// is not an error.
#[test]
fn a_child_that_handles_its_cancellation_and_returns_ok_is_not_an_error() {
    let out = in_task(async {
        let tg = TaskGroup::new();
        let polite = tg.spawn(async {
            match sleep(HOUR).await {
                Err(e) if e.is_cancelled() => Ok(7),
                other => panic!("expected the group's cancellation, got {other:?}"),
            }
        })?;
        tg.spawn(async {
            fail_after(1, "boom").await?;
            Ok(0)
        })?;
        let out = tg.join().await;
        assert_eq!(
            group_messages(&out),
            ["boom"],
            "the polite child is no error"
        );
        polite.result()
    });
    assert_eq!(out.unwrap(), 7);
}

// ---------------------------------------------------------------------------------
// The first failure
// ---------------------------------------------------------------------------------

/// test_taskgroup_04 ("a child failing after the body already waits"): the body is in
/// `join` when a child fails; its sibling is cancelled, `join` returns the group, and
/// the code after a `?` on it never runs.
#[test]
fn a_failure_while_joining_cancels_the_siblings() {
    let log = new_log();
    let l = log.clone();
    let out = in_task(async move {
        let tg = TaskGroup::new();
        tg.spawn(fail_after(2, "division by zero"))?;
        let t2 = tg.spawn(sleeper(l.clone(), "t2"))?;
        let joined = tg.join().await;
        push(&l, "joined");
        assert!(t2.cancelled());
        assert_eq!(cancelling(), 0, "the group's request is withdrawn");
        joined?;
        push(&l, "unreachable");
        Ok(())
    });
    let err = out.unwrap_err();
    assert_eq!(
        err.to_string(),
        "unhandled errors in a TaskGroup (1 sub-exception): [division by zero]"
    );
    assert_eq!(
        entries(&log),
        strs(&["t2 started", "t2 cancelled", "joined"])
    );
}

/// test_cancel_children_on_child_error, and "two fail → both in the group in
/// completion order": the first failure interrupts the body (the parent's sleep is
/// cancelled) and cancels the siblings; a child failing in the same iteration and one
/// failing while it handles its cancellation are collected too, in completion order.
#[test]
fn a_failure_interrupts_the_body_and_every_failure_is_collected_in_order() {
    let log = new_log();
    let l = log.clone();
    let out = in_task(async move {
        let entry = cancelling();
        let tg = TaskGroup::new();
        tg.spawn(fail_after(1, "a"))?;
        tg.spawn(fail_after(1, "c"))?;
        let l2 = l.clone();
        tg.spawn(async move {
            let _ = sleeper(l2.clone(), "b").await;
            Err(Error::msg("b, while cancelled"))
        })?;
        // The body awaits something else: the group's cancel request interrupts it.
        let body = sleep(HOUR).await;
        push(&l, format!("body: {}", describe(&body)));
        assert_eq!(cancelling(), entry + 1, "the group requested it once");
        let out = tg.join().await;
        assert_eq!(cancelling(), entry, "back to its entry value");
        Ok(group_messages(&out))
    });
    assert_eq!(out.unwrap(), ["a", "c", "b, while cancelled"]);
    assert_eq!(
        entries(&log),
        strs(&["b started", "b cancelled", "body: cancelled"])
    );
}

/// A panic in a child is a failure like any other: `Error::Panic` in the group.
#[test]
fn a_panicking_child_counts_as_a_failure() {
    let log = new_log();
    let l = log.clone();
    let out = in_task(async move {
        let tg = TaskGroup::new();
        let sibling = tg.spawn(sleeper(l.clone(), "sibling"))?;
        tg.spawn(async {
            yields(1).await?;
            panic!("child panicked");
        })?;
        let out = tg.join().await;
        assert!(sibling.cancelled());
        match out {
            Err(Error::Group(group)) => {
                assert_eq!(group.errors().len(), 1);
                assert!(group.errors()[0].is_panic());
                Ok(group.errors()[0].to_string())
            }
            other => panic!("expected a group, got {other:?}"),
        }
    });
    assert_eq!(out.unwrap(), "panicked: child panicked");
    assert_eq!(
        entries(&log),
        strs(&["sibling started", "sibling cancelled"])
    );
}

/// test_cancelling_level_preserved: after `join` returned the group, the parent's
/// `cancelling()` is back to its entry value (the group's request withdrawn).
#[test]
fn cancelling_is_back_to_its_entry_value_after_the_group() {
    let out = in_task(async {
        let tg = TaskGroup::new();
        tg.spawn(fail_after(0, "runtime error"))?;
        let out = tg.join().await;
        assert_eq!(group_messages(&out), ["runtime error"]);
        assert_eq!(cancelling(), 0);
        // Nothing is pending any more: the next await is not cancelled.
        yield_now().await
    });
    out.unwrap();
}

// ---------------------------------------------------------------------------------
// The parent cancelled from outside
// ---------------------------------------------------------------------------------

/// test_cancellation / test_taskgroup_22: the parent cancelled while in `join` cancels
/// the children, waits for them, and returns `Err(Cancelled)`.
#[test]
fn the_parent_cancelled_while_joining_cancels_the_children_and_returns_cancelled() {
    let log = new_log();
    let l = log.clone();
    run_guarded(async move {
        let runner = create_task({
            let l = l.clone();
            async move {
                let tg = TaskGroup::new();
                for name in ["c0", "c1", "c2"] {
                    tg.spawn(sleeper(l.clone(), name))?;
                }
                let out = tg.join().await;
                push(&l, format!("join: {}", describe(&out)));
                out
            }
        });
        until_logged(&l, "c2 started").await;
        runner.cancel();
        let out = runner.finish().await;
        assert!(out.unwrap_err().is_cancelled());
    });
    assert_eq!(
        entries(&log),
        strs(&[
            "c0 started",
            "c1 started",
            "c2 started",
            "c0 cancelled",
            "c1 cancelled",
            "c2 cancelled",
            "join: cancelled",
        ])
    );
}

/// test_taskgroup_07 / 17: the body is cancelled while it awaits something else. In
/// Rust the body sees `Err(Cancelled)`; `cancel_all` and `join` (what asyncio's
/// `__aexit__` does with the `CancelledError`) wait for the cancelled children before
/// the cancellation propagates.
#[test]
fn a_body_cancelled_before_join_cancels_and_waits_for_the_children() {
    let log = new_log();
    let l = log.clone();
    run_guarded(async move {
        let runner = create_task({
            let l = l.clone();
            async move {
                let tg = TaskGroup::new();
                tg.spawn(sleeper(l.clone(), "c0"))?;
                tg.spawn(sleeper(l.clone(), "c1"))?;
                let body: Result<(), Error> = sleep(HOUR).await;
                assert!(body.is_err(), "the hour-long sleep was cancelled");
                push(&l, "body cancelled");
                tg.cancel_all();
                tg.join().await?;
                push(&l, "joined");
                body
            }
        });
        until_logged(&l, "c1 started").await;
        runner.cancel();
        assert!(runner.finish().await.unwrap_err().is_cancelled());
    });
    assert_eq!(
        entries(&log),
        strs(&[
            "c0 started",
            "c1 started",
            "body cancelled",
            "c0 cancelled",
            "c1 cancelled",
            "joined",
        ])
    );
}

/// test_taskgroup_08 (Python 3.13): the parent is cancelled while joining and the
/// children fail while they handle it: the errors win over the cancellation, and the
/// outside request stays pending — `cancelling()` is 1 and the parent's next await is
/// cancelled.
#[test]
fn child_errors_win_over_the_parents_cancellation_which_stays_pending() {
    let log = new_log();
    let l = log.clone();
    run_guarded(async move {
        let runner = create_task({
            let l = l.clone();
            async move {
                let tg = TaskGroup::<()>::new();
                for name in ["c0", "c1"] {
                    let l = l.clone();
                    tg.spawn(async move {
                        let _ = sleeper(l, name).await;
                        Err(Error::msg(format!("{name} failed in its clean-up")))
                    })?;
                }
                let out = tg.join().await;
                push(&l, format!("cancelling {}", cancelling()));
                let next = yield_now().await;
                push(&l, format!("next await: {}", describe(&next)));
                out
            }
        });
        until_logged(&l, "c1 started").await;
        runner.cancel();
        let out = runner.finish().await;
        assert_eq!(
            group_messages(&out),
            ["c0 failed in its clean-up", "c1 failed in its clean-up"]
        );
    });
    let log = entries(&log);
    assert_eq!(
        log[4..],
        strs(&["cancelling 1", "next await: cancelled"])[..]
    );
}

/// test_error_and_cancel (3.13): the body is cancelled from outside, then a child
/// fails: the group is returned, `cancelling()` stays 1, and the await after the group
/// is cancelled (the request was re-armed), so the task ends cancelled.
#[test]
fn an_outside_cancel_of_the_body_survives_the_groups_errors() {
    let log = new_log();
    let l = log.clone();
    run_guarded(async move {
        let event = evloop::sync::Event::new();
        let inner = create_task({
            let (l, event) = (l.clone(), event.clone());
            async move {
                let tg = TaskGroup::<()>::new();
                tg.spawn(async move {
                    event.set();
                    let _ = yield_now().await; // cancelled or not, it fails
                    Err(Error::msg("runtime error"))
                })?;
                if sleep(HOUR).await.is_ok() {
                    unreachable!("sleep in the group should have been cancelled");
                }
                tg.cancel_all();
                let out = tg.join().await;
                push(&l, format!("group {:?}", group_messages(&out)));
                push(&l, format!("cancelling {}", cancelling()));
                let after: Result<(), Error> = sleep(HOUR).await;
                assert!(
                    after.is_err(),
                    "sleep after the group should have been cancelled"
                );
                after
            }
        });
        event.wait().await.unwrap();
        assert_eq!(inner.cancelling(), 0);
        inner.cancel();
        assert_eq!(inner.cancelling(), 1);
        assert!(inner.future().finish().await.unwrap_err().is_cancelled());
        assert!(inner.cancelled());
    });
    assert_eq!(
        entries(&log),
        strs(&["group [\"runtime error\"]", "cancelling 1"])
    );
}

// ---------------------------------------------------------------------------------
// spawn refused
// ---------------------------------------------------------------------------------

/// test_taskgroup_finished: `spawn` after `join` returned is refused with
/// `InvalidState`, and the coroutine is dropped without ever running.
#[test]
fn spawn_after_join_is_refused_and_drops_the_coroutine() {
    let log = new_log();
    let l = log.clone();
    in_task(async move {
        let tg = TaskGroup::new();
        tg.join().await?;
        let (spy, probe) = common::DropSpy::new();
        let refused = tg.spawn(async move {
            let _spy = spy;
            push(&l, "ran");
            Ok(())
        });
        let err = refused.unwrap_err();
        assert!(err.is_invalid_state(), "{err:?}");
        assert!(err.to_string().contains("finished"), "{err}");
        assert_eq!(probe.drops(), 1, "the coroutine is dropped at once");
        let again = tg.join().await.unwrap_err();
        assert!(again.is_invalid_state(), "a second join: {again:?}");
        Ok(())
    })
    .unwrap();
    assert!(entries(&log).is_empty());
}

/// test_taskgroup_no_create_task_after_failure: while the group shuts down after a
/// failure, `spawn` is refused (a child handling its cancellation tries).
#[test]
fn spawn_while_shutting_down_is_refused() {
    let log = new_log();
    let l = log.clone();
    let out = in_task(async move {
        let tg = Rc::new(TaskGroup::new());
        tg.spawn(fail_after(1, "boom"))?;
        let (g, l2) = (tg.clone(), l.clone());
        tg.spawn(async move {
            if sleep(HOUR).await.is_err() {
                let refused = g.spawn(async { Ok(()) }).unwrap_err();
                push(&l2, format!("spawn: {refused}"));
            }
            Ok(())
        })?;
        Ok(group_messages(&tg.join().await))
    });
    assert_eq!(out.unwrap(), ["boom"]);
    let log = entries(&log);
    assert_eq!(log.len(), 1);
    assert!(log[0].contains("shutting down"), "{log:?}");
}

// ---------------------------------------------------------------------------------
// Nesting and children that spawn
// ---------------------------------------------------------------------------------

/// test_taskgroup_11 / 12: a child running a group of its own fails with that group:
/// the outer group holds it, nested.
#[test]
fn a_nested_group_failure_is_nested_in_the_outer_group() {
    let out = in_task(async {
        let outer = TaskGroup::new();
        outer.spawn(async {
            let inner = TaskGroup::new();
            inner.spawn(fail_after(1, "zero division"))?;
            inner.spawn(sleep(HOUR))?;
            inner.join().await
        })?;
        let out = outer.join().await;
        match &out {
            Err(Error::Group(group)) => {
                let nested = group.errors()[0].as_group().expect("a nested group");
                assert_eq!(nested.errors()[0].to_string(), "zero division");
            }
            other => panic!("{other:?}"),
        }
        Ok(out.unwrap_err().to_string())
    });
    assert_eq!(
        out.unwrap(),
        "unhandled errors in a TaskGroup (1 sub-exception): [unhandled errors in a \
         TaskGroup (1 sub-exception): [zero division]]"
    );
}

/// test_nested_groups_both_cancelled: two groups of one parent fail at once; each
/// withdraws its own request, so `cancelling()` is 1 between them and 0 after.
#[test]
fn nested_groups_of_one_parent_withdraw_their_own_requests() {
    let out = in_task(async {
        let outer = TaskGroup::new();
        let inner = TaskGroup::new();
        inner.spawn(fail_after(0, "runtime error"))?;
        outer.spawn(fail_after(0, "value error"))?;
        let inner_out = inner.join().await;
        assert_eq!(group_messages(&inner_out), ["runtime error"]);
        assert_eq!(
            cancelling(),
            1,
            "the outer group's request is still pending"
        );
        let outer_out = outer.join().await;
        assert_eq!(group_messages(&outer_out), ["value error"]);
        Ok(cancelling())
    });
    assert_eq!(out.unwrap(), 0);
}

/// test_taskgroup_24 / 25 (hydra): children spawn siblings while the parent joins;
/// `join` waits for all of them.
#[test]
fn children_spawn_siblings_while_the_parent_joins() {
    fn hydra(tg: Rc<TaskGroup>, count: Rc<std::cell::Cell<u32>>, depth: u32) {
        let g = tg.clone();
        tg.spawn(async move {
            count.set(count.get() + 1);
            yields(1).await?;
            if depth < 3 {
                hydra(g.clone(), count.clone(), depth + 1);
                hydra(g, count, depth + 1);
            }
            Ok(())
        })
        .expect("the group accepts children while joining");
    }
    let out = in_task(async {
        let tg = Rc::new(TaskGroup::new());
        let count = Rc::new(std::cell::Cell::new(0));
        hydra(tg.clone(), count.clone(), 0);
        tg.join().await?;
        Ok(count.get())
    });
    assert_eq!(out.unwrap(), 1 + 2 + 4 + 8);
}

// ---------------------------------------------------------------------------------
// join_next (tokio's JoinSet)
// ---------------------------------------------------------------------------------

/// `join_next` returns results in completion order, then `None`.
#[test]
fn join_next_returns_results_in_completion_order() {
    let out = in_task(async {
        let tg = TaskGroup::new();
        for (n, v) in [(5, "slow"), (1, "fast"), (3, "middle")] {
            tg.spawn(ok_after(n, v))?;
        }
        let mut order = Vec::new();
        while let Some(result) = tg.join_next().await {
            order.push(result?);
            order.push(["left 0", "left 1", "left 2"][tg.len()]);
        }
        assert!(tg.join_next().await.is_none());
        Ok(order)
    });
    assert_eq!(
        out.unwrap(),
        ["fast", "left 2", "middle", "left 1", "slow", "left 0"]
    );
}

/// A failure `join_next` returns does not cancel the other children (JoinSet), nor the
/// parent.
#[test]
fn join_next_a_failure_does_not_cancel_the_others() {
    let out = in_task(async {
        let tg = TaskGroup::new();
        tg.spawn(async {
            fail_after(1, "boom").await?;
            Ok(0)
        })?;
        tg.spawn(ok_after(4, 1))?;
        let first = tg.join_next().await.unwrap();
        assert_eq!(first.unwrap_err().to_string(), "boom");
        let second = tg.join_next().await.unwrap();
        assert!(tg.join_next().await.is_none());
        assert_eq!(cancelling(), 0);
        tg.join().await?;
        second
    });
    assert_eq!(out.unwrap(), 1);
}

/// `join` after `join_next` does not report the failures already returned; a child
/// failing while `join` runs still aborts the group.
#[test]
fn join_after_join_next_reports_only_unreaped_failures() {
    let log = new_log();
    let l = log.clone();
    let out = in_task(async move {
        let tg = TaskGroup::new();
        tg.spawn(fail_after(1, "a"))?;
        tg.spawn(fail_after(4, "b"))?;
        let sleeper = tg.spawn(sleeper(l.clone(), "s"))?;
        let first = tg.join_next().await.unwrap();
        assert_eq!(first.unwrap_err().to_string(), "a");
        let out = tg.join().await;
        assert!(
            sleeper.cancelled(),
            "the failure during join aborted the group"
        );
        assert_eq!(cancelling(), 0);
        Ok(group_messages(&out))
    });
    assert_eq!(out.unwrap(), ["b"]);
    assert_eq!(entries(&log), strs(&["s started", "s cancelled"]));
}

/// The task awaiting `join_next` is cancelled: it gets `Some(Err(Cancelled))`, no
/// child is taken, and the children keep running.
#[test]
fn join_next_of_a_cancelled_task_returns_cancelled_and_takes_nothing() {
    run_guarded(async {
        let tg = Rc::new(TaskGroup::new());
        let child = tg.spawn(ok_after(50, 5)).unwrap();
        let waiter = create_task({
            let tg = tg.clone();
            async move {
                let next = tg.join_next().await;
                assert!(next.unwrap().unwrap_err().is_cancelled());
                Ok(tg.len())
            }
        });
        yields(2).await.unwrap();
        waiter.cancel();
        assert_eq!(
            waiter.finish().await.unwrap(),
            1,
            "the child is still there"
        );
        assert!(!child.done());
        assert_eq!(tg.join_next().await.unwrap().unwrap(), 5);
    });
}

// ---------------------------------------------------------------------------------
// Drop
// ---------------------------------------------------------------------------------

/// Dropping a group cancels (T3) its unfinished children: they resume with
/// `Err(Cancelled)` in a later iteration and may clean up; finished ones are left as
/// they are.
#[test]
fn dropping_a_group_cancels_its_children() {
    let log = new_log();
    let l = log.clone();
    run_guarded(async move {
        let tg = TaskGroup::new();
        let done = tg.spawn(ok_after(0, ())).unwrap();
        let a = tg.spawn(sleeper(l.clone(), "a")).unwrap();
        let b = tg.spawn(sleeper(l.clone(), "b")).unwrap();
        until_logged(&l, "b started").await;
        assert!(done.done());
        drop(tg);
        push(&l, "dropped");
        assert!(a.future().finish().await.unwrap_err().is_cancelled());
        assert!(b.future().finish().await.unwrap_err().is_cancelled());
        assert!(done.result().is_ok());
    });
    assert_eq!(
        entries(&log),
        strs(&[
            "a started",
            "b started",
            "dropped",
            "a cancelled",
            "b cancelled"
        ])
    );
}

/// A body that propagates the group's cancel request with `?` drops the group: the
/// request is withdrawn (the task still ends cancelled: its coroutine returned
/// `Err(Cancelled)`), and the children were cancelled by the failure already.
#[test]
fn a_body_that_propagates_the_cancel_drops_the_group_and_cancels_the_children() {
    let log = new_log();
    let l = log.clone();
    run_guarded(async move {
        let runner = create_task({
            let l = l.clone();
            async move {
                let tg = TaskGroup::new();
                tg.spawn(fail_after(1, "boom"))?;
                tg.spawn(sleeper(l.clone(), "s"))?;
                let me = current_task().unwrap();
                let out = sleep(HOUR).await;
                push(&l, format!("body: {}", describe(&out)));
                push(&l, format!("cancelling before drop {}", me.cancelling()));
                drop(tg);
                push(&l, format!("cancelling after drop {}", me.cancelling()));
                out
            }
        });
        assert!(runner.finish().await.unwrap_err().is_cancelled());
        until_logged(&l, "s cancelled").await;
    });
    assert_eq!(
        entries(&log),
        strs(&[
            "s started",
            "s cancelled",
            "body: cancelled",
            "cancelling before drop 1",
            "cancelling after drop 0",
        ])
    );
}

fn describe<T: std::fmt::Debug>(r: &Result<T, Error>) -> String {
    match r {
        Ok(v) => format!("ok {v:?}"),
        Err(e) if e.is_cancelled() => "cancelled".to_string(),
        Err(e) => format!("error {e}"),
    }
}
