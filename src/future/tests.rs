//! Unit tests of the future state machine and the task record on a real loop, small
//! enough to run under Miri (`cargo +nightly miri test --lib`), which then also checks
//! the `unsafe` code they reach (the task cell's coroutine, borrowed wakers, the
//! handle reserve) for undefined behaviour and leaks.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::Error;
use crate::future::Future;
use crate::runtime::Runtime;
use crate::task::create_task;

const THREADS: usize = 3;
const PER_THREAD: usize = 4;

/// Counts drops of the value it is attached to.
struct DropCount(Arc<AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Worker threads complete futures that tasks on the loop await: every value
/// arrives once, at the task that awaited it.
#[test]
fn tasks_receive_results_set_by_worker_threads() {
    let rt = Runtime::new().unwrap();
    let sum = rt.block_on(async {
        let futs: Vec<Future<usize>> = (0..THREADS * PER_THREAD).map(|_| Future::new()).collect();
        let tasks: Vec<_> = futs
            .iter()
            .map(|f| {
                let f = f.clone();
                create_task(f)
            })
            .collect();
        let workers: Vec<_> = futs
            .chunks(PER_THREAD)
            .map(|chunk| {
                let chunk = chunk.to_vec();
                std::thread::spawn(move || {
                    for (i, f) in chunk.iter().enumerate() {
                        f.set_result(i + 1).unwrap();
                    }
                })
            })
            .collect();
        let mut sum = 0;
        for task in tasks {
            sum += task.await.unwrap();
        }
        for w in workers {
            w.join().unwrap();
        }
        sum
    });
    assert_eq!(sum, THREADS * (1..=PER_THREAD).sum::<usize>());
}

/// `set_result` on a worker racing `cancel` on the loop: each future ends in exactly
/// the state of the call that won, and its done-callback runs exactly once.
#[test]
fn set_result_racing_cancel_has_exactly_one_outcome() {
    let rt = Runtime::new().unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    rt.block_on(async {
        let futs: Vec<Future<u8>> = (0..8).map(|_| Future::new()).collect();
        for f in &futs {
            let ran = ran.clone();
            f.add_done_callback(move |_| {
                ran.fetch_add(1, Ordering::SeqCst);
            });
        }
        let setter = {
            let futs = futs.clone();
            std::thread::spawn(move || futs.iter().map(|f| f.set_result(1).is_ok()).collect())
        };
        let cancelled: Vec<bool> = futs.iter().map(|f| f.cancel()).collect();
        let set: Vec<bool> = setter.join().unwrap();
        for ((f, set), cancelled) in futs.iter().zip(set).zip(cancelled) {
            assert!(set ^ cancelled, "exactly one completion wins");
            assert_eq!(f.cancelled(), cancelled);
            match f.clone().await {
                Ok(v) => assert!(set && v == 1),
                Err(Error::Cancelled(_)) => assert!(cancelled),
                Err(other) => panic!("unexpected {other}"),
            }
        }
        crate::task::yield_now().await.unwrap();
    });
    assert_eq!(ran.load(Ordering::SeqCst), 8);
}

/// A done-callback that captures its own future is a reference cycle until the
/// future completes: running (and so dropping) the callback breaks it, and the
/// future and everything it holds are freed.
#[test]
fn a_callback_capturing_its_own_future_is_freed_once_done() {
    let drops = Arc::new(AtomicUsize::new(0));
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let fut: Future<u32> = Future::new();
        let me = fut.clone();
        let guard = DropCount(drops.clone());
        fut.add_done_callback(move |done| {
            let _keep = &guard;
            assert_eq!(me.result().unwrap(), done.result().unwrap());
        });
        fut.set_result(3).unwrap();
        crate::task::yield_now().await.unwrap();
    });
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "the callback (and the cycle) is gone"
    );
}

/// A task suspended on a future, cancelled from another thread: the request crosses
/// to the loop, cancels the awaited future at once (T3), the task ends cancelled and
/// its coroutine — with what it owns — is dropped on the loop.
#[test]
fn a_task_cancelled_from_another_thread_ends_cancelled_and_drops_its_coroutine() {
    let drops = Arc::new(AtomicUsize::new(0));
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let never: Future<()> = Future::new();
        let guard = DropCount(drops.clone());
        let waiting = never.clone();
        let task = create_task(async move {
            let _guard = guard;
            waiting.await
        });
        crate::task::yield_now().await.unwrap();
        let canceller = {
            let task = task.future();
            std::thread::spawn(move || task.cancel())
        };
        assert!(canceller.join().unwrap());
        assert!(matches!(task.await, Err(Error::Cancelled(_))));
        assert!(
            never.cancelled(),
            "the awaited future was cancelled with the task"
        );
    });
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}
