//! `evloop::wait` and `evloop::as_completed` (SPEC §14 K3): ports of CPython's
//! `asyncio.wait` / `asyncio.as_completed` tests in `Lib/test/test_asyncio/test_tasks.py`,
//! and what evloop adds (input order, cancellation of the waiting task as
//! `Err(Cancelled)`, futures of other loops and threads, the `Stream` impl).
//!
//! Assertions are about order of events: futures are completed by hand, a wait is
//! polled once to show it is still pending, and timeouts are 10 ms against futures that
//! never complete.

mod common;

use std::future::{Future as StdFuture, poll_fn};
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use futures_util::StreamExt;

use evloop::{
    Error, Future, LoopGroup, ReturnWhen, as_completed, create_task, time::sleep, wait, yield_now,
};

const SHORT: Duration = Duration::from_millis(10);

/// Polls `fut` once with the current task's context; `true` while it is pending.
async fn still_pending<F: StdFuture + Unpin>(fut: &mut F) -> bool {
    poll_fn(|cx| Poll::Ready(Pin::new(&mut *fut).poll(cx).is_pending())).await
}

fn futs<T: Send + 'static, const N: usize>() -> [Future<T>; N] {
    std::array::from_fn(|_| Future::new())
}

// ---------------------------------------------------------------------------------
// wait
// ---------------------------------------------------------------------------------

/// Ports test_wait and test_wait_with_iterator_of_tasks: ALL_COMPLETED waits for every
/// task; `done` keeps the input order (asyncio: a set).
#[test]
fn wait_all_completed_returns_every_task_in_input_order() {
    common::run_guarded(async {
        let a = create_task(async {
            sleep(Duration::from_millis(2)).await?;
            Ok(1)
        });
        let b = create_task(async { Ok(2) });
        let (done, pending) = wait([a.future(), b.future()], None, ReturnWhen::AllCompleted)
            .await
            .unwrap();
        assert!(pending.is_empty());
        assert_eq!(done, [a.future(), b.future()]);
        assert_eq!(
            (done[0].result().unwrap(), done[1].result().unwrap()),
            (1, 2)
        );
    });
}

/// Ports test_wait_first_completed: returns with the first one done, the other one is
/// pending and not cancelled.
#[test]
fn wait_first_completed_returns_with_the_first() {
    common::run_guarded(async {
        let [a, b] = futs::<u8, 2>();
        let mut w = wait([a.clone(), b.clone()], None, ReturnWhen::FirstCompleted);
        assert!(still_pending(&mut w).await);
        b.set_result(2).unwrap();
        let (done, pending) = w.await.unwrap();
        assert_eq!((done, pending), (vec![b.clone()], vec![a.clone()]));
        assert!(!a.done());
    });
}

/// Ports test_wait_really_done: a future already done counts at once (and evloop
/// returns without suspending).
#[test]
fn wait_first_completed_with_one_already_done() {
    common::run_guarded(async {
        let [a, b] = futs::<u8, 2>();
        a.set_result(1).unwrap();
        let mut w = wait([b.clone(), a.clone()], None, ReturnWhen::FirstCompleted);
        let (done, pending) = poll_fn(|cx| Pin::new(&mut w).poll(cx)).await.unwrap();
        assert_eq!((done, pending), (vec![a], vec![b]));
    });
}

/// Ports test_wait_first_exception and test_wait_first_exception_in_wait: returns with
/// the first failure, already there or arriving while waiting.
#[test]
fn wait_first_exception_returns_with_the_first_failure() {
    common::run_guarded(async {
        let [a, b] = futs::<u8, 2>();
        b.set_exception(Error::msg("err")).unwrap();
        let (done, pending) = wait([a.clone(), b.clone()], None, ReturnWhen::FirstException)
            .await
            .unwrap();
        assert_eq!((done, pending), (vec![b], vec![a.clone()]));

        let [c] = futs::<u8, 1>();
        let mut w = wait([a.clone(), c.clone()], None, ReturnWhen::FirstException);
        assert!(still_pending(&mut w).await);
        c.set_exception(Error::msg("zero division")).unwrap();
        let (done, pending) = w.await.unwrap();
        assert_eq!((done, pending), (vec![c], vec![a]));
    });
}

/// FIRST_EXCEPTION with nothing failing is ALL_COMPLETED; a *cancelled* future is not
/// an exception for it (asyncio: `not f.cancelled() and f.exception() is not None`).
#[test]
fn wait_first_exception_ignores_results_and_cancellations() {
    common::run_guarded(async {
        let [a, b, c] = futs::<u8, 3>();
        let mut w = wait(
            [a.clone(), b.clone(), c.clone()],
            None,
            ReturnWhen::FirstException,
        );
        a.set_result(1).unwrap();
        assert!(still_pending(&mut w).await, "a result is not an exception");
        b.cancel();
        assert!(
            still_pending(&mut w).await,
            "a cancellation is not an exception"
        );
        c.set_result(3).unwrap();
        let (done, pending) = w.await.unwrap();
        assert_eq!(done, [a, b, c]);
        assert!(pending.is_empty());
    });
}

/// Ports test_wait_with_exception: ALL_COMPLETED waits past a failure.
#[test]
fn wait_all_completed_waits_past_a_failure() {
    common::run_guarded(async {
        let [a, b] = futs::<u8, 2>();
        let mut w = wait([a.clone(), b.clone()], None, ReturnWhen::AllCompleted);
        a.set_exception(Error::msg("err")).unwrap();
        assert!(still_pending(&mut w).await);
        b.set_result(2).unwrap();
        let (done, pending) = w.await.unwrap();
        assert_eq!(done, [a.clone(), b]);
        assert!(pending.is_empty());
        assert_eq!(a.exception().unwrap().unwrap().to_string(), "err");
    });
}

/// Ports test_wait_with_timeout: the timeout returns what is done and what is not;
/// nothing is cancelled, and a later completion finds no registration left.
#[test]
fn wait_timeout_cancels_nothing() {
    common::run_guarded(async {
        let [a, b] = futs::<u8, 2>();
        a.set_result(1).unwrap();
        let (done, pending) = wait(
            [a.clone(), b.clone()],
            Some(SHORT),
            ReturnWhen::AllCompleted,
        )
        .await
        .unwrap();
        assert_eq!((done, pending), (vec![a], vec![b.clone()]));
        assert!(!b.done());
        b.set_result(2).unwrap();
        yield_now().await.unwrap();
        // A huge timeout saturates instead of panicking.
        let (done, _) = wait([b.clone()], Some(Duration::MAX), ReturnWhen::AllCompleted)
            .await
            .unwrap();
        assert_eq!(done, [b]);
    });
}

/// Ports test_wait_duplicate_coroutines: a future given twice is waited on (and
/// returned) once.
#[test]
fn wait_deduplicates_its_input() {
    common::run_guarded(async {
        let [a, b] = futs::<u8, 2>();
        a.set_result(1).unwrap();
        b.set_result(2).unwrap();
        let (done, pending) = wait(
            [a.clone(), b.clone(), a.clone(), b.clone()],
            None,
            ReturnWhen::AllCompleted,
        )
        .await
        .unwrap();
        assert_eq!(done, [a, b]);
        assert!(pending.is_empty());
    });
}

/// asyncio raises ValueError for an empty input; evloop returns two empty vectors.
#[test]
fn wait_on_nothing_returns_at_once() {
    common::run_guarded(async {
        let (done, pending) = wait(
            Vec::<Future<u8>>::new(),
            Some(SHORT),
            ReturnWhen::FirstCompleted,
        )
        .await
        .unwrap();
        assert!(done.is_empty() && pending.is_empty());
    });
}

/// Cancelling the waiting task ends its wait with `Err(Cancelled)`; the futures waited
/// on are not cancelled (asyncio: `await waiter` raises, the futures are untouched).
#[test]
fn cancelling_the_waiting_task_cancels_the_wait_only() {
    common::run_guarded(async {
        let [a, b] = futs::<u8, 2>();
        let task = create_task({
            let (a, b) = (a.clone(), b.clone());
            async move {
                wait([a, b], None, ReturnWhen::AllCompleted)
                    .await
                    .map(|_| ())
            }
        });
        yield_now().await.unwrap(); // the task is suspended in the wait
        assert!(task.cancel());
        assert!(task.future().await.unwrap_err().is_cancelled());
        assert!(!a.done() && !b.done());
    });
}

/// Ports test_wait_concurrent_complete, across threads and loops: futures of another
/// loop, completed on other threads, wake the waiting task (the notification runs on
/// the completing thread).
#[test]
fn wait_on_futures_completed_by_other_threads_and_loops() {
    let group = LoopGroup::new(1).unwrap();
    let remote: Future<u32> = group.handles()[0].create_future();
    common::run_guarded({
        let remote = remote.clone();
        async move {
            let local: Future<u32> = Future::new();
            let mut w = wait(
                [local.clone(), remote.clone()],
                None,
                ReturnWhen::AllCompleted,
            );
            assert!(still_pending(&mut w).await);
            let workers =
                [local, remote].map(|f| std::thread::spawn(move || f.set_result(7).unwrap()));
            let (done, pending) = create_task(w).await.unwrap();
            assert_eq!(done.len(), 2);
            assert!(pending.is_empty());
            for w in workers {
                w.join().unwrap();
            }
        }
    });
    drop(remote);
    group.shutdown().unwrap();
}

// ---------------------------------------------------------------------------------
// as_completed
// ---------------------------------------------------------------------------------

/// Ports test_as_completed and test_as_completed_reverse_wait: results in completion
/// order, errors included; completions before the first `next()` keep their order.
#[test]
fn as_completed_yields_in_completion_order() {
    common::run_guarded(async {
        let [a, b, c, d] = futs::<&str, 4>();
        let mut it = as_completed([a.clone(), b.clone(), c.clone(), d.clone()], None);
        c.set_result("c").unwrap();
        a.set_exception(Error::msg("a failed")).unwrap();
        assert_eq!(it.next().await.unwrap().unwrap(), "c");
        assert_eq!(
            it.next().await.unwrap().unwrap_err().to_string(),
            "a failed"
        );
        let mut next = Box::pin(it.next());
        assert!(still_pending(&mut next).await);
        d.cancel();
        assert!(next.await.unwrap().unwrap_err().is_cancelled());
        b.set_result("b").unwrap();
        assert_eq!(it.next().await.unwrap().unwrap(), "b");
        assert!(it.next().await.is_none());
        assert!(it.next().await.is_none());
    });
}

/// Ports test_as_completed_with_timeout: what completed comes first, then one
/// `Err(Timeout)`, then the end (asyncio raises TimeoutError from every remaining
/// await instead); nothing is cancelled.
#[test]
fn as_completed_timeout_yields_timeout_once_then_ends() {
    common::run_guarded(async {
        let [a, b] = futs::<u8, 2>();
        a.set_result(1).unwrap();
        let mut it = as_completed([a.clone(), b.clone()], Some(SHORT));
        assert_eq!(it.next().await.unwrap().unwrap(), 1);
        assert!(it.next().await.unwrap().unwrap_err().is_timeout());
        assert!(it.next().await.is_none());
        assert!(!b.done());
        b.set_result(2).unwrap();
        assert!(it.next().await.is_none(), "ended for good");
    });
}

/// Ports test_as_completed_with_unused_timeout: everything yielded before the timeout,
/// then the end without an error.
#[test]
fn as_completed_unused_timeout_never_fires() {
    common::run_guarded(async {
        let [a] = futs::<u8, 1>();
        let mut it = as_completed([a.clone()], Some(SHORT));
        a.set_result(1).unwrap();
        assert_eq!(it.next().await.unwrap().unwrap(), 1);
        sleep(SHORT * 2).await.unwrap(); // past the deadline
        assert!(it.next().await.is_none());
    });
}

/// Ports test_as_completed_duplicate_coroutines: a future given twice is yielded once.
#[test]
fn as_completed_deduplicates_its_input() {
    common::run_guarded(async {
        let [a] = futs::<u8, 1>();
        a.set_result(1).unwrap();
        let got: Vec<_> = as_completed([a.clone(), a.clone()], None).collect().await;
        assert_eq!(got.len(), 1);
        assert!(
            as_completed(Vec::<Future<u8>>::new(), None)
                .next()
                .await
                .is_none()
        );
    });
}

/// `AsCompleted` is a `futures_core::Stream`: stream combinators drive it, in
/// completion order (tasks finishing in reverse input order here).
#[test]
fn as_completed_is_a_stream() {
    common::run_guarded(async {
        let gates = futs::<(), 3>();
        let tasks: Vec<_> = (0..3u8)
            .map(|i| {
                let gate = gates[i as usize].clone();
                create_task(async move {
                    gate.await?;
                    Ok(i)
                })
            })
            .collect();
        let stream = as_completed(tasks, None);
        for gate in gates.iter().rev() {
            gate.set_result(()).unwrap();
            yield_now().await.unwrap(); // that task finishes before the next gate opens
            yield_now().await.unwrap();
        }
        let got: Vec<u8> = stream.map(|r| r.unwrap()).collect().await;
        assert_eq!(got, [2, 1, 0]);
    });
}

/// Cancelling a task waiting in `next()` gives it `Some(Err(Cancelled))`; no item is
/// consumed and the iterator still works; the futures are not cancelled.
#[test]
fn cancelling_a_task_in_next_consumes_nothing() {
    common::run_guarded(async {
        let [a] = futs::<u8, 1>();
        let task = create_task({
            let a = a.clone();
            async move {
                let mut it = as_completed([a.clone()], None);
                let first = it.next().await.unwrap();
                assert!(first.unwrap_err().is_cancelled());
                assert!(!a.done(), "the future was not cancelled");
                a.set_result(5).unwrap();
                let second = it.next().await.unwrap()?;
                assert!(it.next().await.is_none());
                Ok(second)
            }
        });
        yield_now().await.unwrap();
        assert!(task.cancel());
        assert_eq!(
            task.future().await.unwrap(),
            5,
            "the task handled the cancellation"
        );
    });
}

/// Futures completed on other threads, in a known order, are yielded in that order.
#[test]
fn as_completed_with_futures_completed_on_other_threads() {
    common::run_guarded(async {
        let all = futs::<u32, 3>();
        let mut it = as_completed(all.clone(), None);
        let mut got = Vec::new();
        for (n, i) in [2usize, 0, 1].into_iter().enumerate() {
            let f = all[i].clone();
            std::thread::spawn(move || f.set_result(n as u32).unwrap())
                .join()
                .unwrap();
            got.push(it.next().await.unwrap().unwrap());
        }
        assert_eq!(got, [0, 1, 2]);
        assert!(it.next().await.is_none());
    });
}
