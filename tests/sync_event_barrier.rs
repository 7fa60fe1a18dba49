//! `evloop::sync::Event` and `evloop::sync::Barrier` (SPEC §13 Y2, Y5), ported from
//! CPython's `Lib/test/test_asyncio/test_locks.py` (`EventTests`, `BarrierTests`).
//!
//! Tests compare the order of events the tasks log, never times. Where a bug would leave
//! a task waiting, the test first settles the loop and asserts on the log, and awaits
//! tasks with `Finish::finish` (a task that never finishes fails at that line); all of
//! it under `common::run_guarded`'s watchdog.

mod common;

use common::local::{Finish, Log, entries, new_log, push, settle, strs, until_logged};

use std::cell::RefCell;
use std::rc::Rc;

use evloop::sync::{Barrier, BrokenBarrierError, Event};
use evloop::{Error, Task, create_task};

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

fn is_broken(err: &Error) -> bool {
    err.downcast_ref::<BrokenBarrierError>().is_some()
}

/// How a wait ended, for the log.
fn describe<T: std::fmt::Debug>(r: &Result<T, Error>) -> String {
    match r {
        Ok(v) => format!("ok {v:?}"),
        Err(e) if e.is_cancelled() => "cancelled".to_string(),
        Err(e) if is_broken(e) => "broken".to_string(),
        Err(e) => format!("error {e}"),
    }
}

/// A task that logs "{name} waiting", waits for `e`, and logs "{name} ok" /
/// "{name} cancelled".
fn event_waiter(e: &Event, log: &Log, name: &'static str) -> Task<()> {
    let (e, log) = (e.clone(), log.clone());
    create_task(async move {
        push(&log, format!("{name} waiting"));
        let r = e.wait().await;
        push(&log, format!("{name} {}", describe(&r)));
        r
    })
}

/// A task that logs "{name} waiting", waits on `b` and logs "{name} ok {index}" /
/// "{name} broken" / "{name} cancelled"; it returns the wait's result.
fn barrier_waiter(b: &Barrier, log: &Log, name: &'static str) -> Task<usize> {
    let (b, log) = (b.clone(), log.clone());
    create_task(async move {
        push(&log, format!("{name} waiting"));
        let r = b.wait().await;
        push(&log, format!("{name} {}", describe(&r)));
        r
    })
}

// ---------------------------------------------------------------------------------
// Y2 Event
// ---------------------------------------------------------------------------------

/// asyncio `EventTests.test_wait`: `set` wakes every waiter; a task that was already
/// scheduled and waits on the now-set event passes at once, ahead of the woken ones
/// (asyncio's result `[3, 1, 2]`).
#[test]
fn event_set_wakes_every_waiter() {
    let log = new_log();
    common::run_guarded(async {
        let e = Event::new();
        assert!(!e.is_set());
        let t1 = event_waiter(&e, &log, "t1");
        let t2 = event_waiter(&e, &log, "t2");
        until_logged(&log, "t1 waiting").await;
        until_logged(&log, "t2 waiting").await;
        settle().await;
        assert_eq!(entries(&log), strs(&["t1 waiting", "t2 waiting"]));
        log.borrow_mut().clear();
        let t3 = {
            let (e, log) = (e.clone(), log.clone());
            create_task(async move {
                let r = e.wait().await;
                push(&log, format!("t3 {}", describe(&r)));
                r
            })
        };
        e.set();
        assert!(e.is_set());
        for t in [t1, t2, t3] {
            t.finish().await.unwrap();
        }
    });
    assert_eq!(entries(&log), strs(&["t3 ok ()", "t1 ok ()", "t2 ok ()"]));
}

/// asyncio `EventTests.test_wait_on_set` and SPEC Y2 ("wait on a set event does not
/// suspend"): a sibling scheduled before the wait does not run in between.
#[test]
fn event_wait_on_a_set_event_does_not_suspend() {
    let log = new_log();
    common::run_guarded(async {
        let l = log.clone();
        create_task(async move {
            let e = Event::new();
            e.set();
            let sibling = {
                let l = l.clone();
                create_task(async move {
                    push(&l, "sibling ran");
                    Ok(())
                })
            };
            e.wait().await?;
            push(&l, "waited");
            e.wait().await?;
            push(&l, "waited again");
            sibling.await
        })
        .await
        .unwrap();
    });
    assert_eq!(
        entries(&log),
        strs(&["waited", "waited again", "sibling ran"])
    );
}

/// asyncio `EventTests.test_clear`: `clear` resets the flag; a wait after it suspends
/// until the next `set`.
#[test]
fn event_clear_resets_the_flag_and_later_waits_suspend() {
    let log = new_log();
    common::run_guarded(async {
        let e = Event::new();
        e.set();
        assert!(e.is_set());
        e.clear();
        assert!(!e.is_set());
        e.clear();
        assert!(!e.is_set());
        let w = event_waiter(&e, &log, "w");
        until_logged(&log, "w waiting").await;
        settle().await;
        assert_eq!(
            entries(&log),
            strs(&["w waiting"]),
            "a cleared event blocks"
        );
        e.set();
        w.finish().await.unwrap();
    });
    assert_eq!(entries(&log), strs(&["w waiting", "w ok ()"]));
}

/// asyncio `EventTests.test_clear_with_waiters`: a waiter woken by `set` returns `Ok`
/// even though `clear` ran before it resumed; setting twice wakes it once.
#[test]
fn event_waiter_woken_by_set_returns_ok_even_if_cleared_before_it_ran() {
    let log = new_log();
    common::run_guarded(async {
        let e = Event::new();
        let w = event_waiter(&e, &log, "w");
        until_logged(&log, "w waiting").await;
        e.set();
        e.clear();
        assert!(!e.is_set());
        e.set();
        e.set();
        e.clear();
        w.finish().await.unwrap();
        assert!(!e.is_set());
        // The flag is really cleared: a new waiter waits.
        let w2 = event_waiter(&e, &log, "w2");
        until_logged(&log, "w2 waiting").await;
        settle().await;
        assert!(!w2.done());
        e.set();
        w2.finish().await.unwrap();
    });
    assert_eq!(
        entries(&log),
        strs(&["w waiting", "w ok ()", "w2 waiting", "w2 ok ()"])
    );
}

/// asyncio `EventTests.test_wait_cancel`: a waiter cancelled while waiting resumes with
/// `Err(Cancelled)`; the other waiters are still woken by a later `set`.
#[test]
fn event_waiter_cancelled_while_waiting_gets_cancelled() {
    let log = new_log();
    common::run_guarded(async {
        let e = Event::new();
        let w1 = event_waiter(&e, &log, "w1");
        let w2 = event_waiter(&e, &log, "w2");
        until_logged(&log, "w1 waiting").await;
        until_logged(&log, "w2 waiting").await;
        assert!(w1.cancel());
        assert!(w1.future().finish().await.unwrap_err().is_cancelled());
        assert!(w1.cancelled());
        assert!(!w2.done());
        e.set();
        w2.finish().await.unwrap();
    });
    assert_eq!(
        entries(&log),
        strs(&["w1 waiting", "w2 waiting", "w1 cancelled", "w2 ok ()"])
    );
}

// ---------------------------------------------------------------------------------
// Y5 Barrier
// ---------------------------------------------------------------------------------

/// asyncio `BarrierTests.test_filling_tasks_check_return_value` and
/// `test_context_manager`: every round hands out the indices `0..parties` exactly once;
/// in the first round (tasks arrive in the order they were created) the index is the
/// arrival order.
#[test]
fn barrier_indices_are_unique_per_round_and_follow_arrival_order() {
    const N: usize = 5;
    const ROUNDS: usize = 3;
    let seen = Rc::new(RefCell::new(vec![Vec::new(); ROUNDS]));
    common::run_guarded(async {
        let b = Barrier::new(N);
        assert_eq!(b.parties(), N);
        let tasks: Vec<Task<()>> = (0..N)
            .map(|i| {
                let (b, seen) = (b.clone(), seen.clone());
                create_task(async move {
                    for round in 0..ROUNDS {
                        let idx = b.wait().await?;
                        seen.borrow_mut()[round].push((i, idx));
                    }
                    Ok(())
                })
            })
            .collect();
        for t in tasks {
            t.finish().await.unwrap();
        }
        assert_eq!(b.n_waiting(), 0);
        assert!(!b.broken());
    });
    let seen = seen.borrow();
    for (round, got) in seen.iter().enumerate() {
        let mut indices: Vec<usize> = got.iter().map(|&(_, idx)| idx).collect();
        indices.sort_unstable();
        assert_eq!(
            indices,
            (0..N).collect::<Vec<_>>(),
            "round {round}: {got:?}"
        );
    }
    for &(task, idx) in &seen[0] {
        assert_eq!(
            task, idx,
            "first round: index = arrival order: {:?}",
            seen[0]
        );
    }
}

/// SPEC Y5 ("the last arrival trips the barrier without suspending"), asyncio's
/// `Barrier._release`: the last party continues at once — ahead of a sibling scheduled
/// before its `wait`, and ahead of the parties it woke.
#[test]
fn barrier_last_arrival_trips_without_suspending() {
    let log = new_log();
    common::run_guarded(async {
        let b = Barrier::new(3);
        let w0 = barrier_waiter(&b, &log, "w0");
        until_logged(&log, "w0 waiting").await;
        let w1 = barrier_waiter(&b, &log, "w1");
        until_logged(&log, "w1 waiting").await;
        assert_eq!(b.n_waiting(), 2);
        log.borrow_mut().clear();
        let last = {
            let (b, log) = (b.clone(), log.clone());
            create_task(async move {
                let sibling = {
                    let log = log.clone();
                    create_task(async move {
                        push(&log, "sibling ran");
                        Ok(())
                    })
                };
                let r = b.wait().await;
                push(&log, format!("last {}", describe(&r)));
                sibling.await?;
                r
            })
        };
        assert_eq!(last.finish().await.unwrap(), 2);
        assert_eq!(w0.finish().await.unwrap(), 0);
        assert_eq!(w1.finish().await.unwrap(), 1);
        assert_eq!(b.n_waiting(), 0);
    });
    let log = entries(&log);
    assert_eq!(log[0], "last ok 2", "{log:?}");
    assert_eq!(log[1], "sibling ran", "{log:?}");
    let mut rest = log[2..].to_vec();
    rest.sort();
    assert_eq!(rest, strs(&["w0 ok 0", "w1 ok 1"]));
}

/// asyncio `BarrierTests.test_filling_tasks_wait_twice` /
/// `test_blocking_tasks_while_draining`: the barrier is cyclic — over several rounds
/// nobody passes round r before every party has arrived at round r, and nobody arrives
/// at round r+1 before it passed round r.
#[test]
fn barrier_is_reusable_over_several_rounds() {
    const N: usize = 3;
    const ROUNDS: usize = 4;
    let log = new_log();
    common::run_guarded(async {
        let b = Barrier::new(N);
        let tasks: Vec<Task<()>> = (0..N)
            .map(|i| {
                let (b, log) = (b.clone(), log.clone());
                create_task(async move {
                    for round in 0..ROUNDS {
                        push(&log, format!("arrive {round} {i}"));
                        b.wait().await?;
                        push(&log, format!("pass {round} {i}"));
                        // Uneven work between rounds.
                        common::yield_times(i).await;
                    }
                    Ok(())
                })
            })
            .collect();
        for t in tasks {
            t.finish().await.unwrap();
        }
        assert_eq!(b.n_waiting(), 0);
        assert!(!b.broken());
    });
    let log = entries(&log);
    assert_eq!(log.len(), 2 * N * ROUNDS, "{log:?}");
    for round in 0..ROUNDS {
        let pos = |what: &str| -> Vec<usize> {
            let prefix = format!("{what} {round} ");
            log.iter()
                .enumerate()
                .filter(|(_, e)| e.starts_with(&prefix))
                .map(|(p, _)| p)
                .collect()
        };
        let (arrive, pass) = (pos("arrive"), pos("pass"));
        assert_eq!(arrive.len(), N, "{log:?}");
        assert_eq!(pass.len(), N, "{log:?}");
        assert!(
            arrive.iter().max() < pass.iter().min(),
            "round {round}: someone passed before everyone arrived: {log:?}"
        );
    }
}

/// asyncio `BarrierTests.test_filling_task_by_task` and `test_filling_one_task_twice`:
/// `n_waiting` counts the parties waiting in the current round and drops to 0 when it
/// trips; a barrier of one party never waits.
#[test]
fn barrier_n_waiting_counts_the_waiting_parties() {
    let log = new_log();
    common::run_guarded(async {
        let one = Barrier::new(1);
        assert_eq!(one.wait().await.unwrap(), 0);
        assert_eq!(one.wait().await.unwrap(), 0);
        assert_eq!(one.n_waiting(), 0);

        let b = Barrier::new(3);
        assert_eq!(b.n_waiting(), 0);
        let t1 = barrier_waiter(&b, &log, "t1");
        until_logged(&log, "t1 waiting").await;
        assert_eq!(b.n_waiting(), 1);
        let t2 = barrier_waiter(&b, &log, "t2");
        until_logged(&log, "t2 waiting").await;
        assert_eq!(b.n_waiting(), 2);
        settle().await;
        assert!(!t1.done() && !t2.done());
        let t3 = barrier_waiter(&b, &log, "t3");
        assert_eq!(t3.finish().await.unwrap(), 2);
        assert_eq!(b.n_waiting(), 0);
        assert_eq!(t1.finish().await.unwrap(), 0);
        assert_eq!(t2.finish().await.unwrap(), 1);
        assert!(!b.broken());
    });
}

/// asyncio `BarrierTests.test_filling_tasks_cancel_one`: a party cancelled while
/// waiting resumes with `Err(Cancelled)` and leaves (`n_waiting` drops); the barrier
/// then needs a full set of other parties to trip.
#[test]
fn barrier_cancelled_waiter_leaves_and_n_waiting_drops() {
    let log = new_log();
    common::run_guarded(async {
        let b = Barrier::new(3);
        let t1 = barrier_waiter(&b, &log, "t1");
        until_logged(&log, "t1 waiting").await;
        let t2 = barrier_waiter(&b, &log, "t2");
        until_logged(&log, "t2 waiting").await;
        assert_eq!(b.n_waiting(), 2);
        assert!(t1.cancel());
        assert!(t1.future().finish().await.unwrap_err().is_cancelled());
        assert!(t1.cancelled());
        assert_eq!(b.n_waiting(), 1, "the cancelled party left");
        let t3 = barrier_waiter(&b, &log, "t3");
        until_logged(&log, "t3 waiting").await;
        assert_eq!(b.n_waiting(), 2);
        settle().await;
        assert!(
            !t2.done() && !t3.done(),
            "two live parties of three: no trip"
        );
        let t4 = barrier_waiter(&b, &log, "t4");
        assert_eq!(t4.finish().await.unwrap(), 2);
        assert_eq!(t2.finish().await.unwrap(), 0);
        assert_eq!(t3.finish().await.unwrap(), 1);
        assert_eq!(b.n_waiting(), 0);
        assert!(!b.broken());
    });
    assert!(entries(&log).contains(&"t1 cancelled".to_string()));
}

/// asyncio `BarrierTests.test_reset_barrier_while_tasks_waiting` and
/// `test_reset_barrier_while_tasks_waiting_and_waiting_again`: `reset` breaks the
/// parties waiting now (`BrokenBarrierError`, downcastable); the barrier is not broken
/// afterwards and a full set of parties (including the broken ones, waiting again)
/// trips it.
#[test]
fn barrier_reset_breaks_current_waiters_and_leaves_it_usable() {
    const N: usize = 4;
    let log = new_log();
    common::run_guarded(async {
        let b = Barrier::new(N);
        let tasks: Vec<Task<usize>> = (0..N - 1)
            .map(|i| {
                let (b, log) = (b.clone(), log.clone());
                create_task(async move {
                    push(&log, format!("t{i} waiting"));
                    let r = b.wait().await;
                    push(&log, format!("t{i} {}", describe(&r)));
                    let err = r.expect_err("the reset breaks this wait");
                    assert!(is_broken(&err), "{err:?}");
                    b.wait().await // again, after the reset
                })
            })
            .collect();
        for i in 0..N - 1 {
            until_logged(&log, &format!("t{i} waiting")).await;
        }
        assert_eq!(b.n_waiting(), N - 1);
        b.reset();
        assert_eq!(b.n_waiting(), 0, "reset empties the barrier");
        assert!(!b.broken());
        settle().await;
        for i in 0..N - 1 {
            assert!(
                entries(&log).contains(&format!("t{i} broken")),
                "{:?}",
                entries(&log)
            );
        }
        assert_eq!(b.n_waiting(), N - 1, "they wait again");
        let last = b.wait().await.unwrap();
        assert_eq!(last, N - 1);
        let mut indices: Vec<usize> = Vec::new();
        for t in tasks {
            indices.push(t.finish().await.unwrap());
        }
        indices.push(last);
        indices.sort_unstable();
        assert_eq!(indices, (0..N).collect::<Vec<_>>());
        assert_eq!(b.n_waiting(), 0);
        assert!(!b.broken());
    });
}

/// asyncio `BarrierTests.test_abort_barrier`, `test_abort_barrier_when_exception` and
/// `test_abort_barrier_when_exception_then_resetting`: `abort` breaks the waiting
/// parties; the barrier stays broken — every later `wait` fails at once — until
/// `reset`, after which it works again.
#[test]
fn barrier_abort_breaks_waiters_and_later_waits_until_reset() {
    let log = new_log();
    common::run_guarded(async {
        let b = Barrier::new(3);
        let t1 = barrier_waiter(&b, &log, "t1");
        until_logged(&log, "t1 waiting").await;
        let t2 = barrier_waiter(&b, &log, "t2");
        until_logged(&log, "t2 waiting").await;
        b.abort();
        assert!(b.broken());
        assert!(is_broken(&t1.finish().await.unwrap_err()));
        assert!(is_broken(&t2.finish().await.unwrap_err()));
        assert_eq!(b.n_waiting(), 0);

        // Later waits fail at once, even a full set of them.
        for _ in 0..3 {
            let err = b.wait().await.unwrap_err();
            assert!(is_broken(&err), "{err:?}");
        }
        let t3 = barrier_waiter(&b, &log, "t3");
        assert!(is_broken(&t3.finish().await.unwrap_err()));
        assert!(b.broken());
        assert_eq!(b.n_waiting(), 0);

        b.reset();
        assert!(!b.broken());
        let t4 = barrier_waiter(&b, &log, "t4");
        until_logged(&log, "t4 waiting").await;
        let t5 = barrier_waiter(&b, &log, "t5");
        until_logged(&log, "t5 waiting").await;
        assert_eq!(b.wait().await.unwrap(), 2);
        assert_eq!(t4.finish().await.unwrap(), 0);
        assert_eq!(t5.finish().await.unwrap(), 1);
        assert!(!b.broken());
    });
    assert_eq!(
        entries(&log),
        strs(&[
            "t1 waiting",
            "t2 waiting",
            "t1 broken",
            "t2 broken",
            "t3 waiting",
            "t3 broken",
            "t4 waiting",
            "t5 waiting",
            "t4 ok 0",
            "t5 ok 1"
        ])
    );
}

/// asyncio `BarrierTests.test_barrier_parties` (`ValueError` for 0): `Barrier::new(0)`
/// panics.
#[test]
fn barrier_of_zero_parties_panics() {
    common::run_guarded(async {
        let r = std::panic::catch_unwind(|| Barrier::new(0));
        assert!(r.is_err(), "Barrier::new(0) must panic");
        assert_eq!(Barrier::new(1).parties(), 1);
    });
}
