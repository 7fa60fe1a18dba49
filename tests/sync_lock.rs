//! `evloop::sync` locks (SPEC §13 Y1, Y3, Y4): `Mutex` / `Lock`, `Semaphore`,
//! `BoundedSemaphore` and `Condition`, ported from CPython's
//! `Lib/test/test_asyncio/test_locks.py` (`LockTests`, `SemaphoreTests`,
//! `ConditionTests`).
//!
//! Every test logs what the tasks observe into an ordered log and compares the order of
//! events; none measures time. Where a bug would leave a task waiting forever, the test
//! first lets the loop settle and asserts on the log (so the failure names what did not
//! happen), and awaits tasks with `Finish::finish` (a task that never finishes fails
//! the test at that line); `common::run_guarded`'s watchdog catches anything else.

mod common;

use common::local::{Finish, Log, entries, new_log, poll_once, push, settle, strs, until_logged};

use std::cell::Cell;
use std::pin::pin;
use std::rc::Rc;

use evloop::sync::{BoundedSemaphore, Condition, Lock, Mutex, Semaphore};
use evloop::{Error, Future, Task, create_task};

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

/// How a failed wait ended, for the log.
fn describe(err: &Error) -> String {
    if err.is_cancelled() {
        "cancelled".to_string()
    } else {
        format!("error {err}")
    }
}

/// A task that logs "{name} waiting", locks `m`, logs "{name} locked", holds the lock
/// for `hold` loop iterations, logs "{name} unlocked" and releases it. A failed `lock()`
/// is logged as "{name} cancelled" (or "{name} error …") and ends the task with it.
fn locker(m: &Lock, log: &Log, name: &'static str, hold: usize) -> Task<()> {
    let (m, log) = (m.clone(), log.clone());
    create_task(async move {
        push(&log, format!("{name} waiting"));
        let guard = match m.lock().await {
            Ok(g) => g,
            Err(e) => {
                push(&log, format!("{name} {}", describe(&e)));
                return Err(e);
            }
        };
        push(&log, format!("{name} locked"));
        common::yield_times(hold).await;
        push(&log, format!("{name} unlocked"));
        drop(guard);
        Ok(())
    })
}

/// A task that logs "{name} waiting", acquires a permit of `s`, logs "{name} acquired"
/// and keeps the permit (`forget`), so the count of permits stays easy to follow.
fn acquirer(s: &Semaphore, log: &Log, name: &'static str) -> Task<()> {
    let (s, log) = (s.clone(), log.clone());
    create_task(async move {
        push(&log, format!("{name} waiting"));
        match s.acquire().await {
            Ok(permit) => {
                push(&log, format!("{name} acquired"));
                permit.forget();
                Ok(())
            }
            Err(e) => {
                push(&log, format!("{name} {}", describe(&e)));
                Err(e)
            }
        }
    })
}

/// A task that takes the condition's lock, logs "{name} waiting", waits for a
/// notification, logs "{name} notified" (or "{name} cancelled") and releases the lock.
fn cond_waiter(c: &Condition, log: &Log, name: &'static str) -> Task<()> {
    let (c, log) = (c.clone(), log.clone());
    create_task(async move {
        let guard = c.acquire().await?;
        push(&log, format!("{name} waiting"));
        match c.wait(guard).await {
            Ok(guard) => {
                push(
                    &log,
                    format!("{name} notified, lock held: {}", c.lock().locked()),
                );
                drop(guard);
                Ok(())
            }
            Err(e) => {
                push(&log, format!("{name} {}", describe(&e)));
                Err(e)
            }
        }
    })
}

// ---------------------------------------------------------------------------------
// Y1 Mutex / Lock
// ---------------------------------------------------------------------------------

/// asyncio `LockTests.test_acquire`: while the lock is held, acquirers queue up; each
/// release hands the lock to the first of them, in the order they started waiting, and
/// only one holds it at a time.
#[test]
fn lock_acquirers_get_the_lock_in_fifo_order() {
    let log = new_log();
    common::run_guarded(async {
        let m = Lock::default();
        let held = m.lock().await.unwrap();
        let mut tasks = Vec::new();
        for name in ["w1", "w2", "w3"] {
            tasks.push(locker(&m, &log, name, 2));
            until_logged(&log, &format!("{name} waiting")).await;
        }
        settle().await;
        assert_eq!(
            entries(&log),
            strs(&["w1 waiting", "w2 waiting", "w3 waiting"]),
            "nobody gets a held lock"
        );
        log.borrow_mut().clear();
        drop(held);
        for t in tasks {
            t.finish().await.unwrap();
        }
        assert!(!m.locked());
    });
    assert_eq!(
        entries(&log),
        strs(&[
            "w1 locked",
            "w1 unlocked",
            "w2 locked",
            "w2 unlocked",
            "w3 locked",
            "w3 unlocked"
        ])
    );
}

/// asyncio `LockTests.test_context_manager` / `test_lock`, with Rust's data-carrying
/// mutex: the guard derefs mutably to the value, and a task holding it across awaits
/// excludes every other task (each one's start/end pair is uninterrupted).
#[test]
fn guard_derefs_mutably_to_the_value_and_excludes_other_tasks() {
    let out = common::run_guarded(async {
        let m: Mutex<Vec<String>> = Mutex::new(Vec::new());
        let counter = Mutex::new(0u32);
        let mut tasks = Vec::new();
        for i in 0..4 {
            let (m, counter) = (m.clone(), counter.clone());
            tasks.push(create_task(async move {
                let mut g = m.lock().await?;
                g.push(format!("start {i}"));
                common::yield_times(3).await;
                *counter.lock().await? += 1;
                g.push(format!("end {i}"));
                Ok(())
            }));
        }
        for t in tasks {
            t.finish().await.unwrap();
        }
        assert_eq!(*counter.try_lock().unwrap(), 4);
        let g = m.lock().await.unwrap();
        let out = (*g).clone();
        drop(g);
        out
    });
    assert_eq!(
        out,
        strs(&[
            "start 0", "end 0", "start 1", "end 1", "start 2", "end 2", "start 3", "end 3"
        ])
    );
}

/// asyncio `LockTests.test_release_no_waiters` and the fast path of `acquire`:
/// `locked()` follows the holder; `try_lock` fails while the lock is held and while
/// someone waits for it (a lock released to a waiter is not there to be barged).
#[test]
fn try_lock_and_locked_follow_the_holder_and_never_barge_past_a_waiter() {
    let log = new_log();
    common::run_guarded(async {
        let m = Lock::default();
        assert!(!m.locked());
        let g = m.try_lock().expect("a free lock");
        assert!(m.locked());
        assert!(m.try_lock().is_none(), "held");
        drop(g);
        assert!(!m.locked());

        let g = m.lock().await.unwrap();
        let w = locker(&m, &log, "w", 3);
        until_logged(&log, "w waiting").await;
        assert!(m.try_lock().is_none(), "held, and w waits");
        drop(g);
        assert!(
            m.try_lock().is_none(),
            "released to the waiting w: try_lock must not take it first"
        );
        until_logged(&log, "w locked").await;
        assert!(m.locked());
        assert!(m.try_lock().is_none(), "w holds it");
        w.finish().await.unwrap();
        assert!(!m.locked());
        assert!(m.try_lock().is_some(), "free and nobody waits");
    });
    assert_eq!(
        entries(&log),
        strs(&["w waiting", "w locked", "w unlocked"])
    );
}

/// SPEC Y1 ("acquiring a free lock with nobody waiting does not suspend"), asyncio's
/// fast path in `Lock.acquire`: a sibling task that was scheduled before the `lock()`
/// does not run between the call and the guard.
#[test]
fn uncontended_lock_does_not_suspend() {
    let log = new_log();
    common::run_guarded(async {
        let l = log.clone();
        create_task(async move {
            let m = Mutex::new(1);
            let sibling = {
                let l = l.clone();
                create_task(async move {
                    push(&l, "sibling ran");
                    Ok(())
                })
            };
            let mut g = m.lock().await?;
            *g += 1;
            push(&l, format!("locked, value {}", *g));
            drop(g);
            sibling.await
        })
        .await
        .unwrap();
    });
    assert_eq!(entries(&log), strs(&["locked, value 2", "sibling ran"]));
}

/// asyncio `LockTests.test_acquire_cancel`: a task cancelled while waiting for the lock
/// resumes with `Err(Cancelled)` (carrying the message), never gets the lock, and leaves
/// no registration behind (`try_lock` succeeds once the holder releases).
#[test]
fn lock_waiter_cancelled_while_waiting_gets_cancelled_and_not_the_lock() {
    let log = new_log();
    common::run_guarded(async {
        let m = Lock::default();
        let g = m.lock().await.unwrap();
        let w = locker(&m, &log, "w", 0);
        until_logged(&log, "w waiting").await;
        assert!(w.cancel_with("give up"));
        let err = w.future().finish().await.unwrap_err();
        assert!(err.is_cancelled());
        match &err {
            Error::Cancelled(c) => assert_eq!(c.message(), Some("give up")),
            other => panic!("expected Cancelled, got {other:?}"),
        }
        assert!(w.cancelled());
        assert!(m.locked(), "the root still holds it");
        drop(g);
        assert!(!m.locked(), "nobody is left to hand the lock to");
        assert!(
            m.try_lock().is_some(),
            "the cancelled waiter's registration is gone"
        );
    });
    assert_eq!(entries(&log), strs(&["w waiting", "w cancelled"]));
}

/// asyncio `LockTests.test_finished_waiter_cancelled`: the lock is released to the first
/// waiter, which is cancelled before it runs; it ends cancelled and the lock goes on to
/// the next waiter (and after it to the third) instead of being lost.
#[test]
fn lock_handed_to_a_waiter_cancelled_before_it_runs_passes_to_the_next() {
    let log = new_log();
    common::run_guarded(async {
        let m = Lock::default();
        let g = m.lock().await.unwrap();
        let mut tasks = Vec::new();
        for name in ["w1", "w2", "w3"] {
            tasks.push(locker(&m, &log, name, 2));
            until_logged(&log, &format!("{name} waiting")).await;
        }
        log.borrow_mut().clear();
        drop(g); // the lock goes to w1 …
        assert!(tasks[0].cancel()); // … which is cancelled before it runs
        settle().await;
        assert_eq!(
            entries(&log),
            strs(&[
                "w1 cancelled",
                "w2 locked",
                "w2 unlocked",
                "w3 locked",
                "w3 unlocked"
            ]),
            "the lock must pass on from the cancelled w1"
        );
        let mut tasks = tasks.into_iter();
        let w1 = tasks.next().unwrap();
        assert!(w1.future().finish().await.unwrap_err().is_cancelled());
        assert!(w1.cancelled());
        for t in tasks {
            t.finish().await.unwrap();
        }
        assert!(!m.locked());
    });
}

/// asyncio `LockTests.test_cancel_release_race` (bpo-32734): in one callback the first
/// waiter is cancelled and then the lock released; exactly one task (the second waiter)
/// takes the lock, the third one gets it after it.
#[test]
fn lock_waiter_cancelled_then_lock_released_passes_to_the_next() {
    let log = new_log();
    common::run_guarded(async {
        let m = Lock::default();
        let g = m.lock().await.unwrap();
        let mut tasks = Vec::new();
        for name in ["w1", "w2", "w3"] {
            tasks.push(locker(&m, &log, name, 2));
            until_logged(&log, &format!("{name} waiting")).await;
        }
        log.borrow_mut().clear();
        assert!(tasks[0].cancel());
        drop(g);
        settle().await;
        assert_eq!(
            entries(&log),
            strs(&[
                "w1 cancelled",
                "w2 locked",
                "w2 unlocked",
                "w3 locked",
                "w3 unlocked"
            ])
        );
        let mut tasks = tasks.into_iter();
        assert!(
            tasks
                .next()
                .unwrap()
                .finish()
                .await
                .unwrap_err()
                .is_cancelled()
        );
        for t in tasks {
            t.finish().await.unwrap();
        }
        assert!(!m.locked());
    });
}

/// SPEC Q8 / the API ("its registration is removed when the future is dropped"): a
/// `lock()` future polled once (so it queued up) and then dropped is no longer in line;
/// the release goes to the waiter behind it.
#[test]
fn dropped_lock_future_removes_its_registration() {
    let log = new_log();
    common::run_guarded(async {
        let m = Lock::default();
        let g = m.lock().await.unwrap();
        let dropper = {
            let (m, log) = (m.clone(), log.clone());
            create_task(async move {
                let mut fut = pin!(m.lock());
                assert!(poll_once(fut.as_mut()).await.is_pending());
                push(&log, "dropper registered");
                Ok(())
            })
        };
        until_logged(&log, "dropper registered").await;
        dropper.finish().await.unwrap(); // its lock future is gone now
        let w = locker(&m, &log, "w", 0);
        until_logged(&log, "w waiting").await;
        drop(g);
        settle().await;
        assert_eq!(
            entries(&log),
            strs(&["dropper registered", "w waiting", "w locked", "w unlocked"]),
            "the release must skip the dropped future"
        );
        w.finish().await.unwrap();
        assert!(!m.locked());
    });
}

/// The API ("a waiter handed the lock and then cancelled/dropped before it ran passes it
/// on"), asyncio's `except` branch in `Lock.acquire` that wakes the next waiter: the
/// first waiter's future is handed the lock and dropped without being polled again; the
/// second waiter gets the lock.
#[test]
fn dropped_lock_future_that_was_handed_the_lock_passes_it_on() {
    let log = new_log();
    common::run_guarded(async {
        let m = Lock::default();
        let g = m.lock().await.unwrap();
        let go: Future<()> = Future::new();
        let dropper = {
            let (m, log, go) = (m.clone(), log.clone(), go.clone());
            create_task(async move {
                let mut fut = pin!(m.lock());
                assert!(poll_once(fut.as_mut()).await.is_pending());
                push(&log, "dropper registered");
                go.await?; // the lock is released to `fut` meanwhile
                push(&log, "dropper drops its lock future");
                Ok(())
            })
        };
        until_logged(&log, "dropper registered").await;
        let w = locker(&m, &log, "w", 0);
        until_logged(&log, "w waiting").await;
        drop(g); // goes to the dropper's future, first in line
        go.set_result(()).unwrap();
        dropper.finish().await.unwrap();
        settle().await;
        assert_eq!(
            entries(&log),
            strs(&[
                "dropper registered",
                "w waiting",
                "dropper drops its lock future",
                "w locked",
                "w unlocked"
            ])
        );
        w.finish().await.unwrap();
        assert!(!m.locked());
    });
}

// ---------------------------------------------------------------------------------
// Y4 Semaphore / BoundedSemaphore
// ---------------------------------------------------------------------------------

/// asyncio `SemaphoreTests.test_acquire_fifo_order`: three tasks each take the
/// semaphore (of 1) twice, holding it across awaits; they are served strictly in the
/// order they asked, also the second time round.
#[test]
fn semaphore_acquirers_are_served_in_fifo_order() {
    let log = new_log();
    common::run_guarded(async {
        let s = Semaphore::new(1);
        let mut tasks = Vec::new();
        for tag in ["c1", "c2", "c3"] {
            let (s, log) = (s.clone(), log.clone());
            tasks.push(create_task(async move {
                for round in 1..=2 {
                    let permit = s.acquire().await?;
                    push(&log, format!("{tag}_{round}"));
                    common::yield_times(2).await;
                    drop(permit);
                }
                Ok(())
            }));
        }
        for t in tasks {
            t.finish().await.unwrap();
        }
        assert_eq!(s.available(), 1);
    });
    assert_eq!(
        entries(&log),
        strs(&["c1_1", "c2_1", "c3_1", "c1_2", "c2_2", "c3_2"])
    );
}

/// asyncio `SemaphoreTests.test_acquire` / `test_acquire_fifo_order_2`: each release
/// hands one permit to the first waiter (the count stays 0, nobody can barge in with
/// `try_acquire`), waiters are served in order, and the rest keep waiting.
#[test]
fn semaphore_release_hands_permits_to_waiters_in_order() {
    let log = new_log();
    common::run_guarded(async {
        let s = Semaphore::new(0);
        assert!(s.locked());
        let mut tasks = Vec::new();
        for name in ["w1", "w2", "w3"] {
            tasks.push(acquirer(&s, &log, name));
            until_logged(&log, &format!("{name} waiting")).await;
        }
        log.borrow_mut().clear();
        s.release();
        s.release();
        assert_eq!(s.available(), 0, "both permits were handed to waiters");
        assert!(s.locked());
        assert!(s.try_acquire().is_none(), "no barging past the waiters");
        settle().await;
        assert_eq!(entries(&log), strs(&["w1 acquired", "w2 acquired"]));
        assert!(!tasks[2].done(), "w3 still waits");
        s.release();
        for t in tasks {
            t.finish().await.unwrap();
        }
        assert_eq!(
            entries(&log),
            strs(&["w1 acquired", "w2 acquired", "w3 acquired"])
        );
        assert_eq!(s.available(), 0);
    });
}

/// asyncio `SemaphoreTests.test_release_no_waiters`, `test_initial_value_zero` and the
/// unpaired `release()`: `available()` counts permits, `locked()` is true when an
/// acquire would wait, a permit is released when dropped, and a release without an
/// acquire simply adds a permit (also above the initial value).
#[test]
fn semaphore_release_is_unpaired_and_available_counts_permits() {
    common::run_guarded(async {
        assert!(Semaphore::new(0).locked());
        let s = Semaphore::new(2);
        assert_eq!(s.available(), 2);
        assert!(!s.locked());
        let p1 = s.try_acquire().expect("a free permit");
        assert_eq!(s.available(), 1);
        let p2 = s.acquire().await.unwrap();
        assert_eq!(s.available(), 0);
        assert!(s.locked());
        assert!(s.try_acquire().is_none());
        s.release();
        assert_eq!(s.available(), 1);
        assert!(!s.locked());
        drop(p1);
        assert_eq!(s.available(), 2);
        drop(p2);
        assert_eq!(
            s.available(),
            3,
            "a plain Semaphore may exceed its start value"
        );

        let z = Semaphore::new(0);
        z.release();
        assert_eq!(z.available(), 1);
        assert!(z.try_acquire().is_some());
        assert_eq!(z.available(), 1, "the dropped permit came back");
    });
}

/// `SemaphorePermit::forget` (tokio's name; asyncio's `acquire()` without `release()`):
/// a forgotten permit is never given back.
#[test]
fn semaphore_permit_forget_does_not_release() {
    common::run_guarded(async {
        let s = Semaphore::new(2);
        let p = s.acquire().await.unwrap();
        p.forget();
        assert_eq!(s.available(), 1);
        let p = s.try_acquire().unwrap();
        assert_eq!(s.available(), 0);
        drop(p);
        assert_eq!(s.available(), 1);
        s.try_acquire().unwrap().forget();
        assert_eq!(s.available(), 0);
        assert!(s.locked());
    });
}

/// asyncio `SemaphoreTests.test_acquire_cancel` / `test_acquire_fifo_order_3`: a task
/// cancelled while waiting resumes with `Err(Cancelled)`, takes no permit, and the
/// following releases serve the remaining waiters in order.
#[test]
fn semaphore_waiter_cancelled_while_waiting_takes_no_permit() {
    let log = new_log();
    common::run_guarded(async {
        let s = Semaphore::new(0);
        let mut tasks = Vec::new();
        for name in ["w1", "w2", "w3"] {
            tasks.push(acquirer(&s, &log, name));
            until_logged(&log, &format!("{name} waiting")).await;
        }
        log.borrow_mut().clear();
        assert!(tasks[0].cancel());
        settle().await;
        assert_eq!(entries(&log), strs(&["w1 cancelled"]));
        s.release();
        s.release();
        let mut tasks = tasks.into_iter();
        assert!(
            tasks
                .next()
                .unwrap()
                .finish()
                .await
                .unwrap_err()
                .is_cancelled()
        );
        for t in tasks {
            t.finish().await.unwrap();
        }
        assert_eq!(s.available(), 0);
        s.release();
        assert_eq!(
            s.available(),
            1,
            "no stale registration swallowed the permit"
        );
    });
    assert_eq!(
        entries(&log),
        strs(&["w1 cancelled", "w2 acquired", "w3 acquired"])
    );
}

/// asyncio `SemaphoreTests.test_acquire_hang`: a permit released to the first waiter,
/// which is cancelled before it runs, goes to the next waiter (the semaphore ends locked
/// with the second waiter done).
#[test]
fn semaphore_permit_handed_to_a_cancelled_waiter_passes_on() {
    let log = new_log();
    common::run_guarded(async {
        let s = Semaphore::new(0);
        let w1 = acquirer(&s, &log, "w1");
        until_logged(&log, "w1 waiting").await;
        let w2 = acquirer(&s, &log, "w2");
        until_logged(&log, "w2 waiting").await;
        log.borrow_mut().clear();
        s.release(); // handed to w1 …
        assert!(w1.cancel()); // … which is cancelled before it runs
        settle().await;
        assert_eq!(
            entries(&log),
            strs(&["w1 cancelled", "w2 acquired"]),
            "the permit must pass on from the cancelled w1"
        );
        assert!(w1.future().finish().await.unwrap_err().is_cancelled());
        w2.finish().await.unwrap();
        assert!(s.locked());
        assert_eq!(s.available(), 0);
    });
}

/// asyncio `SemaphoreTests.test_acquire_cancel_before_awoken`: two of four waiters are
/// cancelled, then one permit is released: the third waiter gets it, the fourth keeps
/// waiting.
#[test]
fn semaphore_cancelled_waiters_then_release_serves_the_first_live_waiter() {
    let log = new_log();
    common::run_guarded(async {
        let s = Semaphore::new(0);
        let mut tasks = Vec::new();
        for name in ["w1", "w2", "w3", "w4"] {
            tasks.push(acquirer(&s, &log, name));
            until_logged(&log, &format!("{name} waiting")).await;
        }
        log.borrow_mut().clear();
        assert!(tasks[0].cancel());
        assert!(tasks[1].cancel());
        s.release();
        settle().await;
        assert_eq!(
            entries(&log),
            strs(&["w1 cancelled", "w2 cancelled", "w3 acquired"])
        );
        assert!(tasks[2].done());
        assert!(!tasks[3].done(), "w4 still waits");
        assert!(tasks[3].cancel());
        for t in tasks {
            let _ = t.finish().await;
        }
        assert_eq!(s.available(), 0);
    });
}

/// asyncio `SemaphoreTests.test_release_not_acquired` (`BoundedSemaphore` raises
/// `ValueError`): releasing above the initial value is `Err(InvalidState)` saying
/// "released too many times" and changes nothing; within the bound it works like a
/// `Semaphore` (dropped permits, forgotten permits given back by `release`).
#[test]
fn bounded_semaphore_release_above_the_initial_value_is_invalid_state() {
    common::run_guarded(async {
        let b = BoundedSemaphore::new(2);
        let err = b.release().unwrap_err();
        assert!(err.is_invalid_state(), "{err:?}");
        assert!(
            err.to_string().contains("released too many times"),
            "message: {err}"
        );
        assert_eq!(b.available(), 2, "the failed release added nothing");

        let p1 = b.acquire().await.unwrap();
        let p2 = b.try_acquire().unwrap();
        assert!(b.locked());
        assert!(b.try_acquire().is_none());
        drop(p1);
        drop(p2);
        assert_eq!(b.available(), 2);
        assert!(b.release().unwrap_err().is_invalid_state());

        b.acquire().await.unwrap().forget();
        assert_eq!(b.available(), 1);
        b.release().unwrap();
        assert_eq!(b.available(), 2);
        let err = b.release().unwrap_err();
        assert!(err.to_string().contains("released too many times"), "{err}");
        assert_eq!(b.available(), 2);
    });
}

/// asyncio `SemaphoreTests.test_acquire` for `BoundedSemaphore`: waiters queue up and a
/// release hands them permits in order.
#[test]
fn bounded_semaphore_waiters_are_served_in_order() {
    let log = new_log();
    common::run_guarded(async {
        let b = BoundedSemaphore::new(1);
        let held = b.acquire().await.unwrap();
        let mut tasks = Vec::new();
        for name in ["w1", "w2"] {
            tasks.push({
                let (b, log) = (b.clone(), log.clone());
                create_task(async move {
                    push(&log, format!("{name} waiting"));
                    let p = b.acquire().await?;
                    push(&log, format!("{name} acquired"));
                    common::yield_times(2).await;
                    drop(p);
                    Ok(())
                })
            });
            until_logged(&log, &format!("{name} waiting")).await;
        }
        drop(held);
        for t in tasks {
            t.finish().await.unwrap();
        }
        assert_eq!(b.available(), 1);
        assert!(b.release().is_err());
    });
    assert_eq!(
        entries(&log),
        strs(&["w1 waiting", "w2 waiting", "w1 acquired", "w2 acquired"])
    );
}

// ---------------------------------------------------------------------------------
// Y3 Condition
// ---------------------------------------------------------------------------------

/// asyncio `ConditionTests.test_wait`: `wait` releases the lock while it waits; a
/// notified waiter does not resume while the notifier still holds the lock, and it
/// holds the lock again when `wait` returns.
#[test]
fn condition_wait_releases_the_lock_and_reacquires_it_before_returning() {
    let log = new_log();
    common::run_guarded(async {
        let c = Condition::new();
        let w = cond_waiter(&c, &log, "w");
        until_logged(&log, "w waiting").await;
        assert!(!c.lock().locked(), "wait released the lock");
        let g = c.acquire().await.unwrap();
        c.notify(1).unwrap();
        settle().await;
        assert_eq!(
            entries(&log),
            strs(&["w waiting"]),
            "w cannot return from wait while the notifier holds the lock"
        );
        drop(g);
        w.finish().await.unwrap();
        assert!(!c.lock().locked());
    });
    assert_eq!(
        entries(&log),
        strs(&["w waiting", "w notified, lock held: true"])
    );
}

/// asyncio `ConditionTests.test_notify`: `notify(n)` wakes the first `n` waiters, in the
/// order they started waiting; more than there are wakes everyone left.
#[test]
fn condition_notify_n_wakes_n_waiters_in_fifo_order() {
    let log = new_log();
    common::run_guarded(async {
        let c = Condition::new();
        let mut tasks = Vec::new();
        for name in ["w1", "w2", "w3", "w4"] {
            tasks.push(cond_waiter(&c, &log, name));
            until_logged(&log, &format!("{name} waiting")).await;
        }
        log.borrow_mut().clear();

        let g = c.acquire().await.unwrap();
        c.notify(1).unwrap();
        drop(g);
        settle().await;
        assert_eq!(entries(&log), strs(&["w1 notified, lock held: true"]));

        let g = c.acquire().await.unwrap();
        c.notify(2).unwrap();
        drop(g);
        settle().await;
        assert_eq!(
            entries(&log),
            strs(&[
                "w1 notified, lock held: true",
                "w2 notified, lock held: true",
                "w3 notified, lock held: true"
            ])
        );
        assert!(!tasks[3].done(), "w4 was not notified");

        let g = c.acquire().await.unwrap();
        c.notify(2048).unwrap();
        drop(g);
        for t in tasks {
            t.finish().await.unwrap();
        }
        assert_eq!(entries(&log).len(), 4);
        assert_eq!(entries(&log)[3], "w4 notified, lock held: true");

        // Nobody waits: notify is a no-op, not an error.
        let g = c.acquire().await.unwrap();
        c.notify(1).unwrap();
        drop(g);
    });
}

/// asyncio `ConditionTests.test_notify_all`: every waiter wakes, each re-acquiring the
/// lock in turn, in FIFO order.
#[test]
fn condition_notify_all_wakes_every_waiter_in_fifo_order() {
    let log = new_log();
    common::run_guarded(async {
        let c = Condition::new();
        let mut tasks = Vec::new();
        for name in ["w1", "w2", "w3"] {
            tasks.push(cond_waiter(&c, &log, name));
            until_logged(&log, &format!("{name} waiting")).await;
        }
        log.borrow_mut().clear();
        let g = c.acquire().await.unwrap();
        c.notify_all().unwrap();
        drop(g);
        for t in tasks {
            t.finish().await.unwrap();
        }
    });
    assert_eq!(
        entries(&log),
        strs(&[
            "w1 notified, lock held: true",
            "w2 notified, lock held: true",
            "w3 notified, lock held: true"
        ])
    );
}

/// asyncio `ConditionTests.test_notify_unacquired` / `test_notify_all_unacquired`
/// (`RuntimeError`): notifying while the lock is not held is `Err(InvalidState)`, and
/// the notification is not stored for a later waiter.
#[test]
fn condition_notify_without_the_lock_is_invalid_state() {
    let log = new_log();
    common::run_guarded(async {
        let c = Condition::new();
        let err = c.notify(1).unwrap_err();
        assert!(err.is_invalid_state(), "{err:?}");
        let err = c.notify_all().unwrap_err();
        assert!(err.is_invalid_state(), "{err:?}");

        let w = cond_waiter(&c, &log, "w");
        until_logged(&log, "w waiting").await;
        assert!(c.notify(1).unwrap_err().is_invalid_state());
        assert!(c.notify_all().unwrap_err().is_invalid_state());
        settle().await;
        assert_eq!(
            entries(&log),
            strs(&["w waiting"]),
            "a failed notify wakes nobody"
        );
        let g = c.acquire().await.unwrap();
        c.notify(1).unwrap();
        drop(g);
        w.finish().await.unwrap();
    });
}

/// asyncio `ConditionTests.test_wait_for` and `test_wait_for_unacquired` (true at once):
/// `wait_for` checks the predicate first, then again after every notification, and
/// returns (holding the lock) only once it is true; the predicate sees the guarded
/// value.
#[test]
fn condition_wait_for_waits_until_the_predicate_holds() {
    let log = new_log();
    common::run_guarded(async {
        let c = Condition::with_lock(Mutex::new(false));
        let calls = Rc::new(Cell::new(0usize));

        // True at once: returns without needing a notify.
        let g = c.acquire().await.unwrap();
        let g = c.wait_for(g, |_| true).await.unwrap();
        assert!(c.lock().locked());
        drop(g);

        let w = {
            let (c, log, calls) = (c.clone(), log.clone(), calls.clone());
            create_task(async move {
                let g = c.acquire().await?;
                push(&log, "w waiting");
                let g = c
                    .wait_for(g, |ready| {
                        calls.set(calls.get() + 1);
                        *ready
                    })
                    .await?;
                push(&log, format!("w done, value {}", *g));
                Ok(())
            })
        };
        until_logged(&log, "w waiting").await;
        assert_eq!(calls.get(), 1, "checked once before waiting");

        let g = c.acquire().await.unwrap();
        c.notify(1).unwrap();
        drop(g);
        settle().await;
        assert_eq!(entries(&log), strs(&["w waiting"]), "still false: waits on");
        assert_eq!(calls.get(), 2);

        let mut g = c.acquire().await.unwrap();
        *g = true;
        c.notify(1).unwrap();
        drop(g);
        w.finish().await.unwrap();
        assert_eq!(calls.get(), 3);
    });
    assert_eq!(entries(&log), strs(&["w waiting", "w done, value true"]));
}

/// asyncio `ConditionTests.test_explicit_lock`: a condition over an existing mutex shares
/// it — `c.lock()` is that mutex, a guard taken from the mutex can be waited on, and
/// the waiter sees what the notifier wrote.
#[test]
fn condition_with_lock_shares_the_mutex_and_its_value() {
    let log = new_log();
    common::run_guarded(async {
        let m = Mutex::new(0u32);
        let c = Condition::with_lock(m.clone());
        assert!(!c.lock().locked());
        let g = m.lock().await.unwrap();
        assert!(c.lock().locked(), "c.lock() is the same mutex");
        drop(g);
        let g = c.acquire().await.unwrap();
        assert!(m.locked());
        drop(g);

        let w = {
            let (m, c, log) = (m.clone(), c.clone(), log.clone());
            create_task(async move {
                let g = m.lock().await?;
                push(&log, "w waiting");
                let mut g = c.wait(g).await?;
                let seen = *g;
                *g += 1;
                Ok(seen)
            })
        };
        until_logged(&log, "w waiting").await;
        let mut g = c.acquire().await.unwrap();
        *g = 10;
        c.notify_all().unwrap();
        drop(g);
        assert_eq!(w.finish().await.unwrap(), 10);
        assert_eq!(*m.lock().await.unwrap(), 11);
    });
}

/// asyncio `ConditionTests.test_wait_cancel`: a waiter cancelled before any notify
/// resumes with `Err(Cancelled)`, leaves the lock free, and does not swallow a later
/// notification meant for the next waiter.
#[test]
fn condition_wait_cancelled_before_notify_leaves_no_trace() {
    let log = new_log();
    common::run_guarded(async {
        let c = Condition::new();
        let w1 = cond_waiter(&c, &log, "w1");
        until_logged(&log, "w1 waiting").await;
        let w2 = cond_waiter(&c, &log, "w2");
        until_logged(&log, "w2 waiting").await;
        assert!(w1.cancel());
        assert!(w1.future().finish().await.unwrap_err().is_cancelled());
        assert!(!c.lock().locked(), "the cancelled waiter released the lock");
        let g = c.acquire().await.unwrap();
        c.notify(1).unwrap();
        drop(g);
        settle().await;
        assert_eq!(
            entries(&log),
            strs(&[
                "w1 waiting",
                "w2 waiting",
                "w1 cancelled",
                "w2 notified, lock held: true"
            ])
        );
        w2.finish().await.unwrap();
    });
}

/// asyncio `ConditionTests.test_wait_cancel_after_notify` / `test_cancelled_error_re_aquire`
/// and SPEC Y3 ("re-acquires before returning, also when cancelled"): a waiter
/// cancelled while another task holds the lock does not resume until it has the lock
/// again, in its FIFO turn — after the holder and after a task that queued for the lock
/// before it; only then does it return `Err(Cancelled)` (and its guard is released).
#[test]
fn condition_cancelled_wait_reacquires_the_lock_before_returning() {
    let log = new_log();
    common::run_guarded(async {
        let c = Condition::new();
        let w = cond_waiter(&c, &log, "w");
        until_logged(&log, "w waiting").await;
        let g = c.acquire().await.unwrap();
        // Another task queues for the lock before the cancel.
        let other = {
            let (c, log) = (c.clone(), log.clone());
            create_task(async move {
                push(&log, "other waiting");
                let g = c.acquire().await?;
                push(&log, "other locked");
                common::yield_times(3).await;
                push(&log, "other unlocked");
                drop(g);
                Ok(())
            })
        };
        until_logged(&log, "other waiting").await;
        assert!(w.cancel());
        settle().await;
        assert!(
            !w.done(),
            "the cancelled waiter must wait for the lock: {:?}",
            entries(&log)
        );
        assert_eq!(entries(&log), strs(&["w waiting", "other waiting"]));
        push(&log, "root unlocks");
        drop(g);
        assert!(w.future().finish().await.unwrap_err().is_cancelled());
        other.finish().await.unwrap();
        assert!(
            !c.lock().locked(),
            "the re-acquired lock went with the error"
        );
    });
    assert_eq!(
        entries(&log),
        strs(&[
            "w waiting",
            "other waiting",
            "root unlocks",
            "other locked",
            "other unlocked",
            "w cancelled"
        ])
    );
}

/// asyncio `ConditionTests.test_cancelled_wakeup`: a waiter notified and cancelled
/// before it runs must not lose the notification — it goes to the next waiter, which
/// consumes the state the notifier produced.
#[test]
fn condition_notified_waiter_cancelled_before_it_runs_passes_the_notification_on() {
    let log = new_log();
    common::run_guarded(async {
        let c = Condition::with_lock(Mutex::new(0u32));
        let consumers: Vec<Task<()>> = ["c1", "c2"]
            .into_iter()
            .map(|name| consumer(&c, &log, name))
            .collect();
        until_logged(&log, "c1 waiting").await;
        until_logged(&log, "c2 waiting").await;
        log.borrow_mut().clear();

        let mut g = c.acquire().await.unwrap();
        *g += 1;
        c.notify(1).unwrap(); // c1 is notified …
        assert!(consumers[0].cancel()); // … and cancelled before it runs
        drop(g);
        settle().await;
        assert_eq!(
            entries(&log),
            strs(&["c1 cancelled", "c2 consumed 1", "c2 waiting"]),
            "the notification must pass on to c2"
        );
        assert_eq!(*c.acquire().await.unwrap(), 0, "the item was consumed");
        stop_consumers(&c, consumers).await;
    });
}

/// asyncio `ConditionTests.test_cancelled_wakeup_relock`: the notified waiter has woken
/// and queued to re-acquire the lock (the notifier still holds it) when it is
/// cancelled; it re-acquires, returns `Err(Cancelled)`, and the notification passes on
/// to the next waiter, which consumes the state.
#[test]
fn condition_waiter_cancelled_while_reacquiring_passes_the_notification_on() {
    let log = new_log();
    common::run_guarded(async {
        let c = Condition::with_lock(Mutex::new(0u32));
        let consumers: Vec<Task<()>> = ["c1", "c2"]
            .into_iter()
            .map(|name| consumer(&c, &log, name))
            .collect();
        until_logged(&log, "c1 waiting").await;
        until_logged(&log, "c2 waiting").await;
        log.borrow_mut().clear();

        let mut g = c.acquire().await.unwrap();
        *g += 1;
        c.notify(1).unwrap();
        settle().await; // c1 wakes and queues for the lock we hold
        assert!(entries(&log).is_empty(), "{:?}", entries(&log));
        assert!(consumers[0].cancel());
        settle().await;
        assert!(
            entries(&log).is_empty(),
            "nobody runs while we hold the lock"
        );
        drop(g);
        settle().await;
        assert_eq!(
            entries(&log),
            strs(&["c1 cancelled", "c2 consumed 1", "c2 waiting"]),
            "the notification must pass on to c2"
        );
        assert_eq!(*c.acquire().await.unwrap(), 0, "the item was consumed");
        stop_consumers(&c, consumers).await;
    });
}

/// asyncio `ConditionTests.test_cancelled_error_re_aquire`: the waiter was notified and
/// is re-acquiring the lock (the notifier still holds it) when it is cancelled; `wait`
/// re-acquires and then returns `Err(Cancelled)` with the cancel's message — it does not
/// return the guard as if nothing happened.
#[test]
fn condition_wait_cancelled_while_reacquiring_returns_cancelled() {
    let log = new_log();
    common::run_guarded(async {
        let c = Condition::new();
        let w = cond_waiter(&c, &log, "w");
        until_logged(&log, "w waiting").await;
        let g = c.acquire().await.unwrap();
        c.notify(1).unwrap();
        settle().await; // w wakes and queues for the lock we hold
        assert!(w.cancel_with("foo"));
        settle().await;
        assert!(!w.done(), "w re-acquires the lock first");
        drop(g);
        let err = w.future().finish().await.unwrap_err();
        match &err {
            Error::Cancelled(c) => assert_eq!(c.message(), Some("foo")),
            other => panic!("expected Cancelled, got {other:?}"),
        }
        assert!(!c.lock().locked());
    });
    assert_eq!(
        entries(&log),
        strs(&["w waiting", "w cancelled"]),
        "the wait itself must return Err(Cancelled)"
    );
}

/// asyncio's consumer loop from `test_cancelled_wakeup`: under the lock, `wait_for`
/// a positive count, take one, log it; a count set to `u32::MAX` means stop.
fn consumer(c: &Condition<u32>, log: &Log, name: &'static str) -> Task<()> {
    let (c, log) = (c.clone(), log.clone());
    create_task(async move {
        let mut g = c.acquire().await?;
        loop {
            push(&log, format!("{name} waiting"));
            g = match c.wait_for(g, |n| *n != 0).await {
                Ok(g) => g,
                Err(e) => {
                    push(&log, format!("{name} {}", describe(&e)));
                    return Err(e);
                }
            };
            if *g == u32::MAX {
                return Ok(());
            }
            *g -= 1;
            push(&log, format!("{name} consumed 1"));
        }
    })
}

async fn stop_consumers(c: &Condition<u32>, consumers: Vec<Task<()>>) {
    let mut g = c.acquire().await.unwrap();
    *g = u32::MAX;
    c.notify_all().unwrap();
    drop(g);
    for t in consumers {
        let _ = t.finish().await;
    }
}
