//! Done-callback ids (SPEC F7, F8): an id returned by `add_done_callback` is only
//! accepted by the future that issued it (and its clones, which name the same future).
//!
//! Covers:
//! * an id of one future given to another future's `remove_done_callback` removes
//!   nothing and returns 0 — also across value types and for a task's future;
//! * an id of a future that was dropped, given to a new future (which may even reuse
//!   the dropped one's memory), removes nothing;
//! * an id used twice: 1, then 0, and a callback registered in between is untouched;
//! * an id used on its own future once that is done (finished or cancelled): 0, and
//!   the callback, already scheduled, still runs (F8);
//! * clones and a task's `future()` view accept the ids of the same future.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use evloop::{CallbackId, Error, Future};

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

fn get(c: &AtomicUsize) -> usize {
    c.load(Ordering::SeqCst)
}

/// Registers a callback on `fut` that counts its runs in `runs`.
fn counted<T: Send + 'static>(fut: &Future<T>, runs: &Arc<AtomicUsize>) -> CallbackId {
    let runs = runs.clone();
    fut.add_done_callback(move |_: &Future<T>| {
        runs.fetch_add(1, Ordering::SeqCst);
    })
}

/// Pins a bug (fails until fixed): ids are per-future counters, so the first callback
/// of every future has the same id and `f2.remove_done_callback(id_from_f1)` removes
/// f2's own first callback and returns 1. An id must only be accepted by the future
/// that issued it: here it returns 0, f2's callback still runs, and f1 still accepts
/// its id afterwards.
#[test]
fn an_id_from_another_future_removes_nothing() {
    common::run_guarded(async {
        let (f1, f2) = (Future::<u32>::new(), Future::<u32>::new());
        let (runs1, runs2) = (counter(), counter());
        let id1 = counted(&f1, &runs1);
        let _id2 = counted(&f2, &runs2);
        assert_eq!(
            f2.remove_done_callback(id1),
            0,
            "f2 accepted an id issued by f1 (and removed an unrelated callback of its own)"
        );
        f2.set_result(2).unwrap();
        common::yield_times(3).await;
        assert_eq!(get(&runs2), 1, "f2's callback was removed by f1's id");

        // The id still belongs to f1.
        assert_eq!(f1.remove_done_callback(id1), 1, "f1 refuses its own id");
        f1.set_result(1).unwrap();
        common::yield_times(3).await;
        assert_eq!(get(&runs1), 0, "a removed callback ran");
    });
}

/// Same rule across value types (`CallbackId` is not generic) and for a task: an id of
/// a `Future<String>` or of a task removes nothing from a `Future<u32>` holding several
/// callbacks, whatever their position. Pins the same bug (fails until fixed): today
/// the i-th id of any future removes the i-th callback of every other one.
#[test]
fn ids_from_futures_of_other_types_and_from_tasks_remove_nothing() {
    common::run_guarded(async {
        let target = Future::<u32>::new();
        let runs = counter();
        for _ in 0..4 {
            counted(&target, &runs);
        }
        let other = Future::<String>::new();
        let foreign: Vec<CallbackId> = (0..4).map(|_| counted(&other, &counter())).collect();
        let task = evloop::create_task(async { Ok::<u8, Error>(7) });
        let task_ids: Vec<CallbackId> = (0..4).map(|_| counted(&task, &counter())).collect();

        let removed: usize = foreign
            .iter()
            .chain(&task_ids)
            .map(|id| target.remove_done_callback(*id))
            .sum();
        assert_eq!(
            removed, 0,
            "ids of other futures removed callbacks of target"
        );
        target.set_result(1).unwrap();
        common::yield_times(3).await;
        assert_eq!(get(&runs), 4, "every callback of target runs");
        assert_eq!(task.await.unwrap(), 7);
        other.cancel();
    });
}

/// Pins a bug (fails until fixed): an id outlives its future. A future dropped with a
/// callback still registered, then a new future — possibly in the very memory the old
/// one occupied, which is why this is repeated — must not accept the old id.
#[test]
fn an_id_of_a_dropped_future_is_refused_by_a_new_one() {
    common::run_guarded(async {
        let runs = counter();
        let mut accepted = 0;
        for _ in 0..100 {
            let old = Future::<u32>::new();
            let stale = counted(&old, &counter());
            drop(old);
            let new = Future::<u32>::new();
            counted(&new, &runs);
            accepted += new.remove_done_callback(stale);
            new.set_result(0).unwrap();
        }
        common::yield_times(3).await;
        assert_eq!(
            accepted, 0,
            "new futures accepted ids of dropped ones ({accepted} of 100)"
        );
        assert_eq!(get(&runs), 100, "callbacks removed by stale ids");
    });
}

/// An id removes its registration once: the second use returns 0 and does not remove
/// a callback registered after the first removal.
#[test]
fn an_id_used_twice_removes_once() {
    common::run_guarded(async {
        let fut = Future::<u32>::new();
        let (removed_runs, later_runs) = (counter(), counter());
        let id = counted(&fut, &removed_runs);
        assert_eq!(fut.remove_done_callback(id), 1);
        let later = counted(&fut, &later_runs);
        assert_ne!(id, later, "a new registration has a new id");
        assert_eq!(fut.remove_done_callback(id), 0, "second use of the same id");
        fut.set_result(1).unwrap();
        common::yield_times(3).await;
        assert_eq!(get(&removed_runs), 0);
        assert_eq!(get(&later_runs), 1, "the later callback was removed");
    });
}

/// F8: once the future is done (finished or cancelled) `remove_done_callback` returns
/// 0 for its own ids, and the callbacks, already scheduled, still run.
#[test]
fn an_id_on_a_done_future_removes_nothing_and_the_callback_still_runs() {
    common::run_guarded(async {
        let (finished, cancelled) = (Future::<u32>::new(), Future::<u32>::new());
        let runs = counter();
        let a = counted(&finished, &runs);
        let b = counted(&cancelled, &runs);
        finished.set_result(1).unwrap();
        assert!(cancelled.cancel());
        assert_eq!(finished.remove_done_callback(a), 0, "finished future");
        assert_eq!(cancelled.remove_done_callback(b), 0, "cancelled future");
        common::yield_times(3).await;
        assert_eq!(get(&runs), 2, "both callbacks ran");
        // Registered after completion (scheduled at once): also 0.
        let late = counted(&finished, &runs);
        assert_eq!(finished.remove_done_callback(late), 0);
        common::yield_times(3).await;
        assert_eq!(get(&runs), 3);
    });
}

/// Clones name the same future (F11), and a task's `future()` view is the task: both
/// accept the ids the future issued.
#[test]
fn clones_and_task_views_accept_the_ids_of_their_future() {
    common::run_guarded(async {
        let fut = Future::<u32>::new();
        let runs = counter();
        let id = counted(&fut, &runs);
        assert_eq!(fut.clone().remove_done_callback(id), 1, "a clone");

        let gate_tx = Future::<()>::new();
        let task = {
            let gate = gate_tx.clone();
            evloop::create_task(async move {
                gate.await?;
                Ok::<u8, Error>(1)
            })
        };
        let task_id = counted(&task, &runs);
        assert_eq!(
            task.future().remove_done_callback(task_id),
            1,
            "the task's view"
        );
        gate_tx.set_result(()).unwrap();
        assert_eq!(task.await.unwrap(), 1);
        fut.set_result(0).unwrap();
        common::yield_times(3).await;
        assert_eq!(get(&runs), 0, "a removed callback ran");
    });
}
