//! `gather` / `gather_results` (SPEC G1–G4), checked against asyncio's `GatherTests`
//! (Lib/test/test_asyncio/test_tasks.py) and Python 3.11's observed behaviour.
//!
//! Children are plain evloop futures (completed by hand, from the loop or from worker
//! threads) and tasks. "At once" in asyncio means "in the child's done-callback", so a
//! later loop iteration: the tests let the loop iterate with `yield_now` and check
//! what is done in between.

mod common;
use common::{entries, new_log, push};

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use evloop::{Error, Future, Runtime, Task, create_task, gather, gather_results};

/// Lets the loop iterate until `cond()` holds: first bare iterations, then 1 ms sleeps
/// (for conditions met by other threads), a few seconds at most.
async fn until(what: &str, cond: impl Fn() -> bool) {
    for i in 0..5000 {
        if cond() {
            return;
        }
        if i < 100 {
            evloop::yield_now().await.unwrap();
        } else {
            evloop::time::sleep(std::time::Duration::from_millis(1))
                .await
                .unwrap();
        }
    }
    panic!("never happened: {what}");
}

/// The message of an `Error::Cancelled`; panics on any other error.
fn cancel_message(err: &Error) -> Option<String> {
    match err {
        Error::Cancelled(c) => c.message().map(str::to_string),
        other => panic!("expected Error::Cancelled, got {other:?}"),
    }
}

/// Counts the calls of a done-callback registered on `fut`.
fn count_callbacks<T: Send + 'static>(fut: &Future<T>) -> Arc<AtomicUsize> {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    fut.add_done_callback(move |_| {
        c.fetch_add(1, Ordering::SeqCst);
    });
    calls
}

/// A task suspended on a future of its own until cancelled; it then optionally waits
/// for `release` (asynchronous clean-up) and either swallows the cancellation
/// (returns `Ok(value)`) or propagates it.
fn cancellable_task(
    started: &Arc<AtomicUsize>,
    release: Option<Future<()>>,
    swallow: Option<&'static str>,
) -> Task<&'static str> {
    let started = started.clone();
    create_task(async move {
        let hang: Future<&'static str> = Future::new();
        started.fetch_add(1, Ordering::SeqCst);
        match hang.await {
            Err(e) if e.is_cancelled() => {
                if let Some(release) = release {
                    release.await?;
                }
                match swallow {
                    Some(value) => Ok(value),
                    None => Err(e),
                }
            }
            other => panic!("the hang future is only ever cancelled: {other:?}"),
        }
    })
}

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

// ---------------------------------------------------------------------------------
// G1: results
// ---------------------------------------------------------------------------------

/// asyncio GatherTests `test_result`: results in argument order,
/// whatever the completion order, and the outer's done-callback runs exactly once.
#[test]
fn results_come_in_argument_order_with_one_outer_callback() {
    common::run_guarded(async {
        let futs: Vec<Future<u32>> = (0..8).map(|_| Future::new()).collect();
        let outer = gather(futs.clone());
        let calls = count_callbacks(&outer);
        let mut order: Vec<usize> = (0..futs.len()).collect();
        common::SplitMix64::new(7).shuffle(&mut order);
        for (n, &i) in order.iter().enumerate() {
            futs[i].set_result(i as u32 * 10).unwrap();
            common::yield_times(2).await;
            if n + 1 < order.len() {
                assert!(!outer.done(), "done with {} of 8 children", n + 1);
            }
        }
        until("outer done", || outer.done()).await;
        assert_eq!(outer.result().unwrap(), [0, 10, 20, 30, 40, 50, 60, 70]);
        common::yield_times(5).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1, "outer callback calls");
        assert!(!outer.cancelled());
    });
}

#[test]
fn tasks_are_gathered_directly_and_keep_argument_order() {
    let out = common::run_guarded(async {
        // Task i finishes after 5 - i yields: the last one finishes first.
        let tasks: Vec<Task<usize>> = (0..5)
            .map(|i| {
                create_task(async move {
                    common::yield_times(5 - i).await;
                    Ok::<_, Error>(i)
                })
            })
            .collect();
        gather(tasks).await
    });
    assert_eq!(out.unwrap(), [0, 1, 2, 3, 4]);
}

/// `Task<T>` and `Future<T>` are both `Into<Future<T>>`: one gather takes both.
#[test]
fn tasks_and_futures_mixed() {
    common::run_guarded(async {
        let plain: Future<String> = Future::new();
        let t1 = create_task(async { Ok::<_, Error>(String::from("task-1")) });
        let t2 = {
            let plain = plain.clone();
            create_task(async move {
                plain.set_result(String::from("plain")).unwrap();
                Ok::<_, Error>(String::from("task-2"))
            })
        };
        let children: Vec<Future<String>> = vec![t1.into(), plain.clone(), t2.future()];
        let out = gather(children).await.unwrap();
        assert_eq!(out, ["task-1", "plain", "task-2"]);
        drop(t2);
    });
}

#[test]
fn children_completed_from_worker_threads() {
    common::run_guarded(async {
        let futs: Vec<Future<usize>> = (0..8).map(|_| Future::new()).collect();
        let outer = gather(futs.clone());
        let barrier = Arc::new(std::sync::Barrier::new(futs.len()));
        let workers: Vec<_> = futs
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let (f, barrier) = (f.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    f.set_result(i * i).unwrap();
                })
            })
            .collect();
        let out = outer.clone().await.unwrap();
        for w in workers {
            w.join().unwrap();
        }
        assert_eq!(out, [0, 1, 4, 9, 16, 25, 36, 49]);
    });
}

#[test]
fn ten_thousand_children_set_from_a_worker_thread() {
    const N: usize = 10_000;
    common::run_guarded(async {
        let futs: Vec<Future<usize>> = (0..N).map(|_| Future::new()).collect();
        let outer = gather(futs.clone());
        let calls = count_callbacks(&outer);
        let worker = std::thread::spawn(move || {
            for (i, f) in futs.iter().enumerate().rev() {
                f.set_result(i).unwrap();
            }
        });
        let out = outer.clone().await.unwrap();
        worker.join().unwrap();
        assert_eq!(out.len(), N);
        assert!(out.iter().enumerate().all(|(i, &v)| i == v), "out of order");
        common::yield_times(2).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    });
}

// ---------------------------------------------------------------------------------
// G1: the first error
// ---------------------------------------------------------------------------------

/// asyncio `test_one_exception`: the outer fails as soon as one child fails; the other
/// children are neither cancelled nor awaited, and still complete.
#[test]
fn one_exception_finishes_the_outer_while_the_others_keep_running() {
    common::run_guarded(async {
        let (a, c): (Future<u8>, Future<u8>) = (Future::new(), Future::new());
        let b = create_task(async { Err::<u8, _>(Error::msg("b failed")) });
        let b_view = b.future();
        let outer = gather(vec![a.clone(), b.into(), c.clone()]);
        let calls = count_callbacks(&outer);
        until("outer done", || outer.done()).await;
        assert!(!a.done() && !c.done(), "the other children are untouched");
        assert_eq!(outer.exception().unwrap().unwrap().to_string(), "b failed");
        assert!(!outer.cancelled());
        // The others still complete normally.
        a.set_result(1).unwrap();
        c.set_result(3).unwrap();
        common::yield_times(3).await;
        assert_eq!((a.result().unwrap(), c.result().unwrap()), (1, 3));
        assert!(b_view.done());
        assert_eq!(
            outer.result().unwrap_err().to_string(),
            "b failed",
            "the outer keeps the first error"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    });
}

/// asyncio: the done-callbacks run in completion order, so the first child to fail in
/// time — not in argument order — gives the outer its error.
#[test]
fn the_first_failure_in_completion_order_wins() {
    common::run_guarded(async {
        let futs: Vec<Future<u8>> = (0..3).map(|_| Future::new()).collect();
        let outer = gather(futs.clone());
        futs[2]
            .set_exception(Error::msg("third, first to fail"))
            .unwrap();
        futs[0]
            .set_exception(Error::msg("first, second to fail"))
            .unwrap();
        let err = outer.clone().await.unwrap_err();
        assert_eq!(err.to_string(), "third, first to fail");
        futs[1].set_result(1).unwrap();
    });
}

/// G1 / F10: once the outer has failed, later children's exceptions are marked
/// retrieved — dropping every handle reports nothing. A control future proves the
/// handler would have seen an unretrieved exception.
#[test]
fn later_child_exceptions_are_marked_retrieved() {
    let rt = Runtime::new().unwrap();
    let reports = common::capture_exceptions(&rt.handle());
    rt.block_on(async {
        let (first, second): (Future<u8>, Future<u8>) = (Future::new(), Future::new());
        let release: Future<()> = Future::new();
        let third = {
            let release = release.clone();
            create_task(async move {
                release.await?;
                Err::<u8, _>(Error::msg("gs-later-third"))
            })
        };
        let third_view = third.future();
        let outer = gather(vec![first.clone(), second.clone(), third.into()]);
        first.set_exception(Error::msg("gs-first")).unwrap();
        assert_eq!(outer.clone().await.unwrap_err().to_string(), "gs-first");
        second.set_exception(Error::msg("gs-later-second")).unwrap();
        release.set_result(()).unwrap();
        until("third task done", || third_view.done()).await;
        common::yield_times(3).await;
        drop((first, second, third_view, outer, release));
        let control: Future<u8> = Future::new();
        control.set_exception(Error::msg("gs-control")).unwrap();
        drop(control);
        until("control reported", || !reports.lock().unwrap().is_empty()).await;
        common::yield_times(5).await;
    });
    drop(rt);
    let got: Vec<String> = reports
        .lock()
        .unwrap()
        .iter()
        .map(|ctx| ctx.to_string())
        .collect();
    assert_eq!(got.len(), 1, "only the control is reported: {got:?}");
    assert!(got[0].contains("gs-control"), "{got:?}");
}

/// F10 for the outer future itself: asyncio reports "_GatheringFuture exception was
/// never retrieved" when an outer that failed is dropped unobserved (checked on
/// Python 3.11). The SPEC's F10 covers every `Future`, the outer included.
///
/// Pins a library bug: evloop's gather outer (`GatherCell`) has no never-retrieved
/// report, so the error is lost silently.
#[test]
fn an_unobserved_failed_outer_is_reported_when_dropped() {
    let rt = Runtime::new().unwrap();
    let reports = common::capture_exceptions(&rt.handle());
    rt.block_on(async {
        let (a, b): (Future<u8>, Future<u8>) = (Future::new(), Future::new());
        let outer = gather(vec![a.clone(), b.clone()]);
        a.set_exception(Error::msg("gs-outer-unobserved")).unwrap();
        until("outer done", || outer.done()).await;
        b.set_result(2).unwrap();
        common::yield_times(3).await;
        drop((a, b, outer));
        common::yield_times(10).await;
    });
    drop(rt);
    let got: Vec<String> = reports
        .lock()
        .unwrap()
        .iter()
        .map(|ctx| ctx.to_string())
        .collect();
    assert_eq!(got.len(), 1, "exactly one report expected: {got:?}");
    assert!(
        got[0].starts_with("Future exception was never retrieved"),
        "{got:?}"
    );
    assert!(got[0].contains("gs-outer-unobserved"), "{got:?}");
}

/// asyncio `test_one_cancellation`: a cancelled child fails a plain gather with a
/// `CancelledError` *exception* carrying the child's message; the outer itself is not
/// cancelled, and the other children keep running.
#[test]
fn a_cancelled_child_is_a_cancelled_exception_of_the_outer() {
    common::run_guarded(async {
        let (a, b): (Future<u8>, Future<u8>) = (Future::new(), Future::new());
        let outer = gather(vec![a.clone(), b.clone()]);
        assert!(b.cancel_with("child-msg"));
        let err = outer.clone().await.unwrap_err();
        assert_eq!(cancel_message(&err).as_deref(), Some("child-msg"));
        assert!(outer.done());
        assert!(!outer.cancelled(), "an exception, not a cancellation");
        assert!(cancel_message(&outer.exception().unwrap().unwrap()).is_some());
        assert!(!a.done(), "the other child keeps running");
        a.set_result(1).unwrap();
    });
}

// ---------------------------------------------------------------------------------
// G2: gather_results
// ---------------------------------------------------------------------------------

#[test]
fn gather_results_holds_one_slot_per_outcome() {
    common::run_guarded(async {
        let value: Future<u8> = Future::new();
        let failed: Future<u8> = Future::new();
        let cancelled: Future<u8> = Future::new();
        let ok_task = create_task(async { Ok::<u8, Error>(4) });
        let err_task = create_task(async { Err::<u8, _>(Error::msg("task failed")) });
        let cancelled_task = {
            let started = counter();
            let t = create_task({
                let started = started.clone();
                async move {
                    started.fetch_add(1, Ordering::SeqCst);
                    Future::<u8>::new().await
                }
            });
            until("task started", || started.load(Ordering::SeqCst) == 1).await;
            t
        };
        let outer = gather_results(vec![
            value.clone(),
            failed.clone(),
            cancelled.clone(),
            ok_task.into(),
            err_task.into(),
            cancelled_task.future(),
        ]);
        cancelled_task.cancel_with("task-msg");
        failed.set_exception(Error::msg("plain failed")).unwrap();
        common::yield_times(3).await;
        assert!(!outer.done(), "return_exceptions: waits for every child");
        cancelled.cancel_with("plain-msg");
        value.set_result(1).unwrap();
        let out = outer.clone().await.unwrap();
        assert_eq!(out.len(), 6);
        assert_eq!(*out[0].as_ref().unwrap(), 1);
        assert_eq!(out[1].as_ref().unwrap_err().to_string(), "plain failed");
        assert_eq!(
            cancel_message(out[2].as_ref().unwrap_err()).as_deref(),
            Some("plain-msg")
        );
        assert_eq!(*out[3].as_ref().unwrap(), 4);
        assert_eq!(out[4].as_ref().unwrap_err().to_string(), "task failed");
        assert_eq!(
            cancel_message(out[5].as_ref().unwrap_err()).as_deref(),
            Some("task-msg")
        );
        assert!(!outer.cancelled());
        assert!(outer.exception().unwrap().is_none());
    });
}

/// Nothing is reported for the children's exceptions collected into the slots.
#[test]
fn gather_results_marks_every_child_exception_retrieved() {
    let rt = Runtime::new().unwrap();
    let reports = common::capture_exceptions(&rt.handle());
    rt.block_on(async {
        let futs: Vec<Future<u8>> = (0..3).map(|_| Future::new()).collect();
        let outer = gather_results(futs.clone());
        for (i, f) in futs.iter().enumerate() {
            f.set_exception(Error::msg(format!("gr-{i}"))).unwrap();
        }
        let out = outer.clone().await.unwrap();
        assert!(out.iter().all(Result::is_err));
        drop((futs, outer, out));
        let control: Future<u8> = Future::new();
        control.set_exception(Error::msg("gr-control")).unwrap();
        drop(control);
        until("control reported", || !reports.lock().unwrap().is_empty()).await;
        common::yield_times(5).await;
    });
    drop(rt);
    let got: Vec<String> = reports
        .lock()
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].contains("gr-control"), "{got:?}");
}

// ---------------------------------------------------------------------------------
// G3: empty input, duplicates
// ---------------------------------------------------------------------------------

#[test]
fn empty_input_is_already_done_with_an_empty_vec() {
    common::run_guarded(async {
        let outer = gather(Vec::<Future<u8>>::new());
        assert!(outer.done(), "gather: done at once");
        assert_eq!(outer.result().unwrap(), Vec::<u8>::new());
        assert!(!outer.cancel(), "nothing to cancel once done");
        let outer = gather_results(Vec::<Future<u8>>::new());
        assert!(outer.done(), "gather_results: done at once");
        assert!(outer.result().unwrap().is_empty());
        assert!(outer.await.unwrap().is_empty());
    });
}

/// Off a loop thread with no child, there is no loop to bind the outer to.
#[test]
fn empty_input_off_a_loop_panics_with_a_hint() {
    let payload = std::panic::catch_unwind(|| gather(Vec::<Future<u8>>::new())).unwrap_err();
    let message = common::panic_message(payload.as_ref());
    assert!(message.contains("no running event loop"), "{message}");
}

/// Off a loop thread the outer binds to the first child's loop.
#[test]
fn off_a_loop_the_outer_binds_to_the_first_childs_loop() {
    let rt = Runtime::new().unwrap();
    let futs: Vec<Future<u8>> = (0..2).map(|_| rt.handle().create_future()).collect();
    let outer = gather(futs.clone());
    assert_eq!(outer.get_loop().id(), rt.handle().id());
    futs[0].set_result(1).unwrap();
    futs[1].set_result(2).unwrap();
    assert_eq!(rt.block_on(outer).unwrap(), [1, 2]);
}

#[test]
fn the_same_future_twice_fills_both_slots() {
    common::run_guarded(async {
        let a: Future<u8> = Future::new();
        let b: Future<u8> = Future::new();
        let outer = gather(vec![a.clone(), b.clone(), a.clone()]);
        a.set_result(7).unwrap();
        common::yield_times(3).await;
        assert!(!outer.done(), "b is still pending");
        b.set_result(8).unwrap();
        assert_eq!(outer.await.unwrap(), [7, 8, 7]);

        // The same task twice.
        let t = create_task(async { Ok::<_, Error>(String::from("t")) });
        let view = t.future();
        let out = gather(vec![view.clone(), t.into()]).await.unwrap();
        assert_eq!(out, ["t", "t"]);
    });
}

#[test]
fn the_same_failing_future_twice() {
    common::run_guarded(async {
        let a: Future<u8> = Future::new();
        let outer = gather(vec![a.clone(), a.clone()]);
        let calls = count_callbacks(&outer);
        a.set_exception(Error::msg("dup failed")).unwrap();
        assert_eq!(outer.clone().await.unwrap_err().to_string(), "dup failed");
        common::yield_times(3).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let b: Future<u8> = Future::new();
        let outer = gather_results(vec![b.clone(), b.clone()]);
        b.set_exception(Error::msg("dup slot")).unwrap();
        let out = outer.await.unwrap();
        assert_eq!(out.len(), 2);
        for slot in &out {
            assert_eq!(slot.as_ref().unwrap_err().to_string(), "dup slot");
        }

        let c: Future<u8> = Future::new();
        let outer = gather_results(vec![c.clone(), c.clone()]);
        c.cancel_with("dup cancelled");
        let out = outer.await.unwrap();
        for slot in &out {
            assert_eq!(
                cancel_message(slot.as_ref().unwrap_err()).as_deref(),
                Some("dup cancelled")
            );
        }
    });
}

// ---------------------------------------------------------------------------------
// G4: cancelling the outer
// ---------------------------------------------------------------------------------

/// The outer of `gather` or of `gather_results`, so one test body covers both.
enum Outer<T> {
    Plain(Future<Vec<T>>),
    Results(Future<Vec<Result<T, Error>>>),
}

impl<T: Send + Clone + 'static> Outer<T> {
    fn start(return_exceptions: bool, futs: Vec<Future<T>>) -> Outer<T> {
        if return_exceptions {
            Outer::Results(gather_results(futs))
        } else {
            Outer::Plain(gather(futs))
        }
    }

    fn cancel(&self) -> bool {
        match self {
            Outer::Plain(f) => f.cancel(),
            Outer::Results(f) => f.cancel(),
        }
    }

    fn cancel_with(&self, message: &str) -> bool {
        match self {
            Outer::Plain(f) => f.cancel_with(message),
            Outer::Results(f) => f.cancel_with(message),
        }
    }

    fn done(&self) -> bool {
        match self {
            Outer::Plain(f) => f.done(),
            Outer::Results(f) => f.done(),
        }
    }

    fn cancelled(&self) -> bool {
        match self {
            Outer::Plain(f) => f.cancelled(),
            Outer::Results(f) => f.cancelled(),
        }
    }

    /// The outer's exception, through `exception()` (so `Ok(Some(_))`: not a
    /// cancellation); `None` after a result.
    fn exception(&self) -> Option<Error> {
        match self {
            Outer::Plain(f) => f.exception().unwrap(),
            Outer::Results(f) => f.exception().unwrap(),
        }
    }

    /// Awaits the outer and returns its error (panics on a result).
    async fn error(&self) -> Error {
        match self {
            Outer::Plain(f) => f.clone().await.map(drop).unwrap_err(),
            Outer::Results(f) => f.clone().await.map(drop).unwrap_err(),
        }
    }
}

/// asyncio `test_cancel` / bpo-32684, for both functions: `cancel()` cancels the
/// children (with the message) and returns true; the outer is still pending right
/// after; it then finishes with a `CancelledError` *exception* carrying the message,
/// whatever `return_exceptions`, and is not `cancelled()`.
#[test]
fn outer_cancel_cancels_the_children_and_ends_with_a_cancelled_exception() {
    common::run_guarded(async {
        for return_exceptions in [false, true] {
            let futs: Vec<Future<u8>> = (0..3).map(|_| Future::new()).collect();
            let outer = Outer::start(return_exceptions, futs.clone());
            assert!(outer.cancel_with("outer-msg"), "{return_exceptions}");
            assert!(!outer.done(), "not done right after cancel()");
            for f in &futs {
                assert!(f.cancelled(), "every child is cancelled at once");
                assert_eq!(
                    cancel_message(&f.result().unwrap_err()).as_deref(),
                    Some("outer-msg")
                );
            }
            let err = outer.error().await;
            assert_eq!(
                cancel_message(&err).as_deref(),
                Some("outer-msg"),
                "return_exceptions={return_exceptions}"
            );
            assert!(!outer.cancelled(), "return_exceptions={return_exceptions}");
            let exc = outer.exception().expect("an exception");
            assert!(exc.is_cancelled());

            // Without a message.
            let futs: Vec<Future<u8>> = (0..2).map(|_| Future::new()).collect();
            let outer = Outer::start(return_exceptions, futs.clone());
            assert!(outer.cancel());
            assert_eq!(cancel_message(&outer.error().await), None);
            assert!(!outer.cancelled());
        }
    });
}

/// G4: "once all children have finished": a child task that cleans up asynchronously
/// before propagating the cancellation keeps the outer pending (both functions).
#[test]
fn outer_cancel_waits_for_a_child_finishing_its_cleanup() {
    common::run_guarded(async {
        for return_exceptions in [false, true] {
            let started = counter();
            let release: Future<()> = Future::new();
            let child = cancellable_task(&started, Some(release.clone()), None);
            until("child started", || started.load(Ordering::SeqCst) == 1).await;
            let outer = Outer::start(return_exceptions, vec![child.future()]);
            assert!(outer.cancel_with("cleanup"));
            common::yield_times(10).await;
            assert!(!child.done(), "still cleaning up");
            assert!(!outer.done(), "return_exceptions={return_exceptions}");
            release.set_result(()).unwrap();
            let err = outer.error().await;
            assert_eq!(cancel_message(&err).as_deref(), Some("cleanup"));
            assert!(!outer.cancelled());
            assert!(child.cancelled());
        }
    });
}

#[test]
fn outer_cancel_returns_true_if_any_child_cancel_succeeded() {
    common::run_guarded(async {
        for return_exceptions in [false, true] {
            let (done, pending): (Future<u8>, Future<u8>) = (Future::new(), Future::new());
            done.set_result(1).unwrap();
            let outer = Outer::start(return_exceptions, vec![done.clone(), pending.clone()]);
            assert!(outer.cancel_with("any"), "one child could be cancelled");
            assert_eq!(done.result().unwrap(), 1, "a done child is untouched");
            assert!(pending.cancelled());
            assert_eq!(cancel_message(&outer.error().await).as_deref(), Some("any"));
            assert!(!outer.cancelled());
        }
    });
}

/// asyncio: `_GatheringFuture.cancel()` returns false when no child could be
/// cancelled — also while the outer is still pending because the children's
/// done-callbacks have not run yet (checked on Python 3.11: `False`, then the outer
/// gets `[1, 2]`). After the outer finished it returns false too.
#[test]
fn cancel_after_every_child_is_done_returns_false_and_keeps_the_results() {
    common::run_guarded(async {
        for return_exceptions in [false, true] {
            let futs: Vec<Future<u8>> = (0..2).map(|_| Future::new()).collect();
            let outer = Outer::start(return_exceptions, futs.clone());
            futs[0].set_result(1).unwrap();
            futs[1].set_result(2).unwrap();
            assert!(!outer.done(), "the children's callbacks have not run yet");
            assert!(!outer.cancel(), "no child could be cancelled");
            until("outer done", || outer.done()).await;
            assert!(
                outer.exception().is_none(),
                "the results, not a cancellation"
            );
            match &outer {
                Outer::Plain(f) => assert_eq!(f.result().unwrap(), [1, 2]),
                Outer::Results(f) => {
                    let out: Vec<u8> = f
                        .result()
                        .unwrap()
                        .into_iter()
                        .map(Result::unwrap)
                        .collect();
                    assert_eq!(out, [1, 2]);
                }
            }
            assert!(!outer.cancel(), "after the outer is done");
            assert!(!outer.cancelled());
        }
    });
}

/// G4: "After the outer is done, `cancel()` returns false and cancels nothing" — here
/// the outer failed early while another child is still pending.
#[test]
fn cancel_after_the_outer_failed_cancels_nothing() {
    common::run_guarded(async {
        let (bad, pending): (Future<&str>, Future<&str>) = (Future::new(), Future::new());
        let started = counter();
        let task = cancellable_task(&started, None, None);
        until("task started", || started.load(Ordering::SeqCst) == 1).await;
        let outer = gather(vec![bad.clone(), pending.clone(), task.future()]);
        bad.set_exception(Error::msg("early")).unwrap();
        until("outer done", || outer.done()).await;
        assert!(!outer.cancel());
        assert!(!outer.cancel_with("late"));
        common::yield_times(3).await;
        assert!(!pending.done(), "the pending child was not cancelled");
        assert!(!task.done(), "the child task was not cancelled");
        assert_eq!(task.cancelling(), 0, "no cancel request reached the task");
        assert_eq!(outer.result().unwrap_err().to_string(), "early");
        pending.set_result("two").unwrap();
        task.cancel();
    });
}

/// G4: "even if children swallowed the cancellation". Python 3.11, one child that
/// catches `CancelledError` and returns a value: `cancel()` is true and the outer
/// raises `CancelledError` once the child is done, whatever `return_exceptions`; the
/// child keeps its value.
///
/// Difference pinned here: asyncio's `CancelledError` has no message in this case
/// (`args == ()`: it is built from the last child, a task whose waiter took the
/// message), while evloop's carries the message given to `outer.cancel_with`.
#[test]
fn a_child_swallowing_the_cancellation_still_ends_the_outer_cancelled() {
    common::run_guarded(async {
        for return_exceptions in [false, true] {
            let started = counter();
            let release: Future<()> = Future::new();
            let child = cancellable_task(&started, Some(release.clone()), Some("swallowed"));
            until("child started", || started.load(Ordering::SeqCst) == 1).await;
            let outer = Outer::start(return_exceptions, vec![child.future()]);
            assert!(outer.cancel_with("swallow-msg"));
            common::yield_times(5).await;
            assert!(!outer.done(), "the child has not finished yet");
            release.set_result(()).unwrap();
            let err = outer.error().await;
            assert_eq!(
                cancel_message(&err).as_deref(),
                Some("swallow-msg"),
                "return_exceptions={return_exceptions}"
            );
            assert!(!outer.cancelled());
            assert!(!child.cancelled());
            assert_eq!(child.result().unwrap(), "swallowed");
        }
    });
}

/// One child swallows the cancellation (after an asynchronous clean-up), another is
/// cancelled. Mirrors Python 3.11:
/// * `gather`: the cancelled child fails the outer at once (G1), before the
///   swallowing child has finished — `CancelledError('msg')`;
/// * `gather_results`: the outer waits for every child, then `CancelledError('msg')`
///   (G4) rather than the list of outcomes.
#[test]
fn one_child_swallows_another_is_cancelled() {
    common::run_guarded(async {
        for return_exceptions in [false, true] {
            let started = counter();
            let release: Future<()> = Future::new();
            let swallower = cancellable_task(&started, Some(release.clone()), Some("swallowed"));
            let plain: Future<&'static str> = Future::new();
            until("child started", || started.load(Ordering::SeqCst) == 1).await;
            let outer = Outer::start(return_exceptions, vec![swallower.future(), plain.clone()]);
            assert!(outer.cancel_with("msg"));
            common::yield_times(5).await;
            assert!(!swallower.done(), "still cleaning up");
            assert_eq!(
                outer.done(),
                !return_exceptions,
                "gather fails at the cancelled child; gather_results waits"
            );
            release.set_result(()).unwrap();
            let err = outer.error().await;
            assert_eq!(
                cancel_message(&err).as_deref(),
                Some("msg"),
                "return_exceptions={return_exceptions}"
            );
            assert!(!outer.cancelled());
            until("swallower done", || swallower.done()).await;
            assert_eq!(swallower.result().unwrap(), "swallowed");
            assert!(plain.cancelled());
        }
    });
}

/// G4 / T3: a task awaiting a gather is cancelled → the gather is cancelled → every
/// child task is cancelled; the awaiting task gets `Err(Cancelled)` and, propagating
/// it, ends cancelled (asyncio: `w.cancel('stop')` → children cancelled,
/// `CancelledError('stop')`, `w.cancelled()`).
#[test]
fn cancelling_a_task_awaiting_a_gather_cancels_every_child() {
    common::run_guarded(async {
        for return_exceptions in [false, true] {
            let started = counter();
            let kids: Vec<Task<&'static str>> = (0..3)
                .map(|_| cancellable_task(&started, None, None))
                .collect();
            let views: Vec<Future<&'static str>> = kids.iter().map(|k| k.future()).collect();
            let log = new_log();
            let waiter = {
                let (log, started) = (log.clone(), started.clone());
                create_task(async move {
                    started.fetch_add(1, Ordering::SeqCst);
                    let r = if return_exceptions {
                        gather_results(kids).await.map(drop)
                    } else {
                        gather(kids).await.map(drop)
                    };
                    push(&log, format!("{r:?}"));
                    r
                })
            };
            until("everyone started", || started.load(Ordering::SeqCst) == 4).await;
            common::yield_times(2).await;
            assert!(waiter.cancel_with("stop"));
            let err = waiter.future().await.unwrap_err();
            assert_eq!(cancel_message(&err).as_deref(), Some("stop"));
            assert!(waiter.cancelled());
            for v in &views {
                assert!(v.cancelled(), "return_exceptions={return_exceptions}");
                assert_eq!(
                    cancel_message(&v.result().unwrap_err()).as_deref(),
                    Some("stop")
                );
            }
            let seen = entries(&log);
            assert_eq!(seen.len(), 1);
            assert!(seen[0].starts_with("Err(Cancelled"), "{seen:?}");
        }
    });
}

/// Outer cancel on a gather of tasks: every child task resumes with
/// `Err(Cancelled)` (counted by the children themselves).
#[test]
fn every_child_task_sees_the_cancellation() {
    common::run_guarded(async {
        let seen = counter();
        let kids: Vec<Task<u8>> = (0..5)
            .map(|_| {
                let seen = seen.clone();
                create_task(async move {
                    let r = Future::<u8>::new().await;
                    if r.as_ref().is_err_and(Error::is_cancelled) {
                        seen.fetch_add(1, Ordering::SeqCst);
                    }
                    r
                })
            })
            .collect();
        common::yield_times(2).await;
        let outer = gather(kids);
        assert!(outer.cancel());
        assert!(outer.clone().await.unwrap_err().is_cancelled());
        until("every child cleaned up", || {
            seen.load(Ordering::SeqCst) == 5
        })
        .await;
    });
}

/// A finished gather holds nothing once its handles are gone: the children's
/// registrations are released on completion, so no cycle keeps values alive.
#[test]
fn a_finished_gather_frees_its_children_and_values() {
    let value = Arc::new(());
    common::run_guarded({
        let value = value.clone();
        async move {
            let futs: Vec<Future<Arc<()>>> = (0..3).map(|_| Future::new()).collect();
            let outer = gather(futs.clone());
            let failing: Future<Arc<()>> = Future::new();
            let failed_outer = gather(vec![failing.clone(), futs[0].clone()]);
            failing.set_exception(Error::msg("gs-free")).unwrap();
            for f in &futs {
                f.set_result(value.clone()).unwrap();
            }
            assert_eq!(outer.clone().await.unwrap().len(), 3);
            assert!(failed_outer.clone().await.is_err());
            common::yield_times(3).await;
            drop((futs, outer, failing, failed_outer));
            common::yield_times(3).await;
        }
    });
    assert_eq!(Arc::strong_count(&value), 1, "a value is still referenced");
}

/// A child whose clean-up fails with another error after the outer's cancel.
/// Python 3.11: `gather` → that error (the first child exception, G1);
/// `gather_results` → `CancelledError` (bpo-32684: the requested cancellation wins
/// whatever `return_exceptions`).
///
/// Difference pinned here: asyncio's `CancelledError` has no message (`args == ()`),
/// evloop's carries the one given to `outer.cancel_with`.
#[test]
fn a_child_failing_during_its_cancellation_cleanup() {
    common::run_guarded(async {
        for return_exceptions in [false, true] {
            let started = counter();
            let child = {
                let started = started.clone();
                create_task(async move {
                    started.fetch_add(1, Ordering::SeqCst);
                    match Future::<u8>::new().await {
                        Err(e) if e.is_cancelled() => Err(Error::msg("cleanup failed")),
                        other => other,
                    }
                })
            };
            until("child started", || started.load(Ordering::SeqCst) == 1).await;
            let outer = Outer::start(return_exceptions, vec![child.future()]);
            assert!(outer.cancel_with("m"));
            let err = outer.error().await;
            if return_exceptions {
                assert_eq!(cancel_message(&err).as_deref(), Some("m"));
            } else {
                assert_eq!(err.to_string(), "cleanup failed");
            }
            assert!(!outer.cancelled());
            assert_eq!(
                child.result().unwrap_err().to_string(),
                "cleanup failed",
                "return_exceptions={return_exceptions}"
            );
        }
    });
}

/// Regression: a child held its gather strongly through its registration and the gather
/// held the child, so a gather whose children never completed leaked once every handle
/// was dropped. Now the registration is weak: dropping the outer frees the gather, which
/// drops the child (and with it the child's never-run done-callback).
#[test]
fn an_abandoned_pending_gather_is_freed() {
    let (spy, probe) = common::DropSpy::new();
    evloop::run(async move {
        let child: Future<u8> = Future::new();
        child.add_done_callback(move |_| drop(spy));
        let outer = gather([child]);
        assert!(!outer.done());
        drop(outer);
        evloop::yield_now().await.unwrap();
    });
    assert_eq!(probe.drops(), 1, "the child (and its callback) were freed");
}
