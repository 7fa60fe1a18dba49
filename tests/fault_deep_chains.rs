//! Hardening rule 3: no recursion whose depth grows with user data. Long chains of
//! tasks, futures and done-callbacks are ordinary (a pipeline of tasks each awaiting
//! the next, a chain of `chain_future`s), and cancelling, completing or dropping one
//! must not take stack space proportional to its length: a stack overflow aborts the
//! process. Each scenario therefore runs in a child process
//! (`common::child::isolate`) whose test thread has the default 2 MiB stack.
//!
//! * `cancelling_the_head_of_*_tasks_*` (10 000 and 100 000): tasks each awaiting the
//!   next, the last one a pending `Future`; cancelling the first cancels them all
//!   (T3 "cancellation propagates down a chain of awaited tasks") — every task ends
//!   `cancelled()` and the leaf future is cancelled.
//! * `dropping_a_pending_chain_future_chain_*`: 100 000 futures linked by
//!   `chain_future(a_i, a_{i+1})`, all pending; dropping the handles frees them all (each
//!   future's done-callback holds the next future).
//! * `completing_the_head_of_a_chain_future_chain_*`: the same chain, completed at the
//!   head; the value reaches the tail.
//! * `cancelling_gathers_nested_*`: gathers nested 100 000 deep, cancelled at the top;
//!   every level ends with a cancellation and the innermost future is cancelled.
//! * `dropping_gathers_nested_*`: 100 000 gathers each owning the next, dropped.
//! * `dropping_a_chain_of_done_callbacks_*`: 100 000 pending futures, each with a
//!   done-callback capturing the next one, dropped.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use common::child::isolate;
use evloop::{Error, Future, Runtime, Task, chain_future, gather};

/// A value counted when dropped (to see that a whole chain was freed).
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// Lets the loop iterate until `count` reaches `target`, for at most `max_iterations`
/// iterations (a count, not a time: the chains below advance a bounded number of steps
/// per iteration).
async fn iterate_until(what: &str, count: &AtomicUsize, target: usize, max_iterations: usize) {
    for _ in 0..max_iterations {
        if count.load(SeqCst) >= target {
            return;
        }
        evloop::yield_now().await.unwrap();
    }
    panic!(
        "{what}: {} of {target} after {max_iterations} iterations",
        count.load(SeqCst)
    );
}

/// `n` tasks, task `i` awaiting task `i + 1`, the last awaiting a pending future; the
/// first is cancelled once all are suspended.
fn cancel_a_task_chain(n: usize) {
    let rt = Runtime::new().unwrap();
    rt.block_on(async move {
        let leaf: Future<()> = Future::new();
        let finished = Arc::new(AtomicUsize::new(0));
        let cancelled = Arc::new(AtomicUsize::new(0));
        let watch = |task: &Task<()>| {
            let (finished, cancelled) = (finished.clone(), cancelled.clone());
            task.add_done_callback(move |f: &Future<()>| {
                if f.cancelled() {
                    cancelled.fetch_add(1, SeqCst);
                }
                finished.fetch_add(1, SeqCst);
            });
        };
        let mut next: Task<()> = {
            let leaf = leaf.clone();
            evloop::create_task(async move {
                leaf.await?;
                Ok(())
            })
        };
        watch(&next);
        for _ in 1..n {
            let inner = next;
            next = evloop::create_task(async move {
                inner.await?;
                Ok(())
            });
            watch(&next);
        }
        let head = next;
        // Every task's first poll: each suspends on the one after it.
        common::yield_times(3).await;
        assert!(!head.done());
        assert!(head.cancel());
        iterate_until("tasks finished", &finished, n, 4 * n + 100).await;
        assert_eq!(cancelled.load(SeqCst), n, "every task ends cancelled");
        assert!(head.cancelled());
        assert!(leaf.cancelled(), "the leaf future is cancelled too");
    });
}

/// 10 000 tasks, each awaiting the next, the last on a pending future; cancelling the
/// first. Today `request_cancel → apply_cancel → cancel_hook → request_cancel`
/// (src/task/cell.rs) recurses once per task, on the caller's stack.
#[test]
fn cancelling_the_head_of_10_000_tasks_awaiting_each_other_cancels_them_all() {
    isolate(
        "cancelling_the_head_of_10_000_tasks_awaiting_each_other_cancels_them_all",
        || cancel_a_task_chain(10_000),
    );
}

/// The same with 100 000 tasks.
#[test]
fn cancelling_the_head_of_100_000_tasks_awaiting_each_other_cancels_them_all() {
    isolate(
        "cancelling_the_head_of_100_000_tasks_awaiting_each_other_cancels_them_all",
        || cancel_a_task_chain(100_000),
    );
}

const DEPTH: usize = 100_000;

/// `DEPTH` pending futures linked by `chain_future(a_i, a_{i+1})`; each carries a
/// counted done-callback, so a freed future is observable.
fn chain_future_chain(drops: &Arc<AtomicUsize>) -> Vec<Future<u32>> {
    let futs: Vec<Future<u32>> = (0..DEPTH).map(|_| Future::new()).collect();
    for pair in futs.windows(2) {
        chain_future(&pair[0], &pair[1]);
    }
    for fut in &futs {
        let token = Counted(drops.clone());
        fut.add_done_callback(move |_| drop(token));
    }
    futs
}

/// Drops every handle but the head's (each future stays alive through the
/// done-callback of the one before it), then the head: the whole chain is freed by that
/// one drop.
fn drop_tail_first(mut futs: Vec<Future<u32>>) {
    let head = futs.remove(0);
    while futs.pop().is_some() {}
    drop(head);
}

/// 100 000 pending futures chained with `chain_future(a_i, a_{i+1})`: `a_i` holds a
/// done-callback holding `a_{i+1}`. Dropping the last handle of the head frees the
/// chain; expected: no stack overflow, every future (its counted done-callback) freed.
/// Today the drop recurses once per future (`PlainCell` → its callback list → the next
/// `Future` → its `PlainCell` …).
#[test]
fn dropping_a_pending_chain_future_chain_100_000_long_frees_it_without_overflow() {
    isolate(
        "dropping_a_pending_chain_future_chain_100_000_long_frees_it_without_overflow",
        || {
            let rt = Runtime::new().unwrap();
            let drops = Arc::new(AtomicUsize::new(0));
            rt.block_on(async {
                let futs = chain_future_chain(&drops);
                drop_tail_first(futs);
            });
            assert_eq!(drops.load(SeqCst), DEPTH, "every future was freed");
        },
    );
}

/// The same chain, completed at the head: the value is copied link by link (each copy
/// schedules the next through a done-callback) and reaches the tail.
#[test]
fn completing_the_head_of_a_chain_future_chain_100_000_long_reaches_the_tail() {
    isolate(
        "completing_the_head_of_a_chain_future_chain_100_000_long_reaches_the_tail",
        || {
            let rt = Runtime::new().unwrap();
            let drops = Arc::new(AtomicUsize::new(0));
            rt.block_on(async {
                let futs = chain_future_chain(&drops);
                let tail = futs[DEPTH - 1].clone();
                futs[0].set_result(7).unwrap();
                drop(futs);
                assert_eq!(tail.await.unwrap(), 7);
            });
        },
    );
}

/// Gathers nested `DEPTH` deep around one pending future: level `i` is
/// `gather([task_i])` where `task_i` awaits level `i + 1` and unwraps its one-element
/// vector. (A gather of gathers changes type at every level — `Future<Vec<Vec<…>>>` — so
/// a task per level makes the nesting expressible; it is also what a user writes.)
/// Returns the outermost gather and the innermost future.
async fn nested_gathers(depth: usize) -> (Future<Vec<u32>>, Future<u32>) {
    let leaf: Future<u32> = Future::new();
    let mut level: Future<Vec<u32>> = gather(vec![leaf.clone()]);
    for _ in 1..depth {
        let inner = level;
        let adapter: Task<u32> = evloop::create_task(async move {
            let v = inner.await?;
            Ok::<_, Error>(v[0])
        });
        level = gather(vec![adapter]);
    }
    // Every adapter's first poll: each suspends on the gather inside it.
    common::yield_times(3).await;
    (level, leaf)
}

/// Cancelling the outermost of 100 000 nested gathers: `outer.cancel()` cancels its
/// child task, which is suspended on the next gather and cancels it (T3, G4), and so on
/// down to the innermost future. Expected: no stack overflow; the outer gather ends
/// with a cancellation error, the innermost future is cancelled. Today that cascade is
/// one recursion (`GatherCell::cancel_children → request_cancel → apply_cancel →
/// cancel_hook → cancel_children …`).
#[test]
fn cancelling_gathers_nested_100_000_deep_cancels_the_innermost_future() {
    isolate(
        "cancelling_gathers_nested_100_000_deep_cancels_the_innermost_future",
        || {
            let rt = Runtime::new().unwrap();
            rt.block_on(async {
                let (outer, leaf) = nested_gathers(DEPTH).await;
                assert!(outer.cancel());
                let out = outer.clone().await;
                assert!(
                    matches!(&out, Err(e) if e.is_cancelled()),
                    "the outer gather ends with a cancellation: {out:?}"
                );
                assert!(leaf.cancelled(), "the innermost future is cancelled");
            });
        },
    );
}

/// 100 000 gathers each owning the next one: gather `i` owns its child future `c_i`,
/// whose done-callback holds gather `i + 1` (a gather's children are held strongly by
/// it). Dropping the handles frees the whole structure from the outermost gather.
/// Expected: no stack overflow, every level freed (a counted done-callback per level).
#[test]
fn dropping_gathers_nested_100_000_deep_frees_them_without_overflow() {
    isolate(
        "dropping_gathers_nested_100_000_deep_frees_them_without_overflow",
        || {
            let rt = Runtime::new().unwrap();
            let drops = Arc::new(AtomicUsize::new(0));
            rt.block_on(async {
                let mut next: Option<Future<Vec<u32>>> = None;
                for _ in 0..DEPTH {
                    let child: Future<u32> = Future::new();
                    let token = Counted(drops.clone());
                    let inner = next.take();
                    child.add_done_callback(move |_| {
                        let _keep = (inner, token);
                    });
                    next = Some(gather(vec![child]));
                }
                drop(next);
            });
            assert_eq!(drops.load(SeqCst), DEPTH, "every level was freed");
        },
    );
}

/// 100 000 pending futures, each with a done-callback capturing the next one (and a
/// counted value); every handle but the head's is dropped, then the head. Expected: no
/// stack overflow, every callback freed. Today: one recursion level per future.
#[test]
fn dropping_a_chain_of_100_000_done_callbacks_frees_it_without_overflow() {
    isolate(
        "dropping_a_chain_of_100_000_done_callbacks_frees_it_without_overflow",
        || {
            let rt = Runtime::new().unwrap();
            let drops = Arc::new(AtomicUsize::new(0));
            rt.block_on(async {
                let futs: Vec<Future<u32>> = (0..DEPTH).map(|_| Future::new()).collect();
                for pair in futs.windows(2) {
                    let next = pair[1].clone();
                    let token = Counted(drops.clone());
                    pair[0].add_done_callback(move |_| {
                        let _keep = (next, token);
                    });
                }
                drop_tail_first(futs);
            });
            assert_eq!(drops.load(SeqCst), DEPTH - 1, "every callback was freed");
        },
    );
}
