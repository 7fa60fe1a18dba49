//! Adversarial review of `evloop::sync` against asyncio's semantics (SPEC §13: "asyncio's
//! primitives, with asyncio's semantics"). Each test states what CPython does (3.11 on
//! this machine; 3.13's `Lib/asyncio/queues.py` for `shutdown`) and pins the
//! difference found.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use evloop::sync::{Barrier, Condition, LifoQueue, PriorityQueue, Queue, QueueShutDown};
use evloop::{Error, create_task, yield_now};

async fn yields(n: usize) {
    for _ in 0..n {
        yield_now().await.unwrap();
    }
}

async fn poll_once<F: Future + ?Sized>(mut fut: Pin<&mut F>) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await
}

/// BUG: a `Condition::wait` future that was notified and is dropped while it re-acquires
/// the lock (a `select` / drop-based `time::timeout` around the wait) swallows the
/// notification: the next waiter is never notified. The module docs promise "Dropped:
/// the lock stays released (the guard was given up), a notification passes on", and
/// asyncio 3.13's `Condition.wait` calls `self._notify(1)` on any exception, including
/// a cancel while re-acquiring. `CondWait::drop` only handles `State::Waiting`, not a
/// notified waiter in `State::Reacquire`.
#[test]
fn condition_wait_dropped_while_reacquiring_loses_its_notification() {
    let b_done = evloop::run(async {
        let c = Condition::new();
        let g = c.acquire().await?;
        let mut a = Box::pin(c.wait(g));
        assert!(poll_once(a.as_mut()).await.is_pending()); // A waits, lock released
        let b = create_task({
            let c = c.clone();
            async move {
                let g = c.acquire().await?;
                drop(c.wait(g).await?);
                Ok(())
            }
        });
        yields(5).await; // B waits behind A
        let g = c.acquire().await?;
        c.notify(1)?; // notifies A
        // A sees its notification and starts re-acquiring (we hold the lock): pending.
        assert!(poll_once(a.as_mut()).await.is_pending());
        drop(a); // A goes away: its notification must pass to B
        drop(g);
        yields(20).await;
        let done = b.done();
        // Control: B really waits on the condition — one more notify releases it.
        let g = c.acquire().await?;
        c.notify(1)?;
        drop(g);
        yields(20).await;
        assert!(b.done(), "control: B was waiting on the condition");
        Ok::<_, Error>(done)
    })
    .unwrap();
    assert!(
        b_done,
        "B was never notified: A's notification was lost when A was dropped re-acquiring"
    );
}

/// BUG vs asyncio: a `PriorityQueue` getter that waits is handed the first item put,
/// not the smallest. asyncio (`q.get()` waiting; `put_nowait(5); put_nowait(1)` before
/// it runs) returns 1, then `get_nowait()` gives 5 — the heap decides when the getter
/// runs. evloop reserves 5 for the getter at the first put (`State::hand_to_getter`),
/// so "smallest first" does not hold for waiting getters.
#[test]
fn priority_queue_waiting_getter_gets_the_smallest_item() {
    let (got, next) = evloop::run(async {
        let q = PriorityQueue::new(0);
        let t = create_task({
            let q = q.clone();
            async move { q.get().await }
        });
        yields(3).await;
        q.put_nowait(5).unwrap();
        q.put_nowait(1).unwrap();
        let got = t.await?;
        Ok::<_, Error>((got, q.get_nowait().unwrap()))
    })
    .unwrap();
    assert_eq!(
        (got, next),
        (1, 5),
        "asyncio.PriorityQueue gives [1] then 5"
    );
}

/// BUG vs asyncio, same cause: a waiting `LifoQueue` getter gets the oldest of the items
/// put before it ran. asyncio: `put_nowait(1); put_nowait(2)` → the getter gets 2.
#[test]
fn lifo_queue_waiting_getter_gets_the_newest_item() {
    let (got, next) = evloop::run(async {
        let q = LifoQueue::new(0);
        let t = create_task({
            let q = q.clone();
            async move { q.get().await }
        });
        yields(3).await;
        q.put_nowait(1).unwrap();
        q.put_nowait(2).unwrap();
        let got = t.await?;
        Ok::<_, Error>((got, q.get_nowait().unwrap()))
    })
    .unwrap();
    assert_eq!((got, next), (2, 1), "asyncio.LifoQueue gives [2] then 1");
}

/// BUG vs asyncio: a party whose task has a cancel *pending* (requested, not yet run)
/// still counts in asyncio's barrier — `_count` only drops in the cancelled task's own
/// `finally` — so a third arrival in the same step trips a barrier of 3:
/// `asyncio.Barrier(3)`: A, B wait; `A.cancel()`; the current task's `await b.wait()`
/// returns 2 and B gets 1, A gets CancelledError (checked with python3.11). evloop's
/// `BarrierWait::poll` purges cancel-pending parties before counting (barrier.rs, "A
/// party whose task has a cancel pending has left"), so the third arrival waits.
#[test]
fn barrier_counts_a_party_whose_cancel_is_only_pending() {
    let tripped = evloop::run(async {
        let b = Barrier::new(3);
        let spawn = |b: &Barrier| {
            let b = b.clone();
            create_task(async move { b.wait().await })
        };
        let ta = spawn(&b);
        let tb = spawn(&b);
        yields(3).await;
        assert_eq!(b.n_waiting(), 2);
        ta.cancel();
        let mut me = Box::pin(b.wait());
        let polled = poll_once(me.as_mut()).await;
        let tripped = matches!(polled, Poll::Ready(Ok(2)));
        drop(me);
        tb.cancel();
        yields(5).await;
        Ok::<_, Error>(tripped)
    })
    .unwrap();
    assert!(
        tripped,
        "asyncio: the third arrival trips the barrier (the cancelled party has not left yet)"
    );
}

/// BUG vs Python 3.13: `shutdown(immediate=True)` drains *everything* in the queue
/// (`while not self.empty(): self._get()`), including an item a woken getter has not
/// taken yet; that getter then finds the queue empty and raises `QueueShutDown`, and
/// `qsize()` is 0. evloop leaves items reserved for getters out of the drain
/// (`Core::shutdown` pops only `state.buf`): `qsize()` stays 1 after an immediate
/// shutdown and the getter still receives the item.
#[test]
fn shutdown_immediate_drops_items_reserved_for_getters() {
    let (qsize, got) = evloop::run(async {
        let q = Queue::<u32>::new(0);
        let t = create_task({
            let q = q.clone();
            async move { q.get().await }
        });
        yields(3).await;
        q.put_nowait(1).unwrap(); // handed to the waiting getter, which has not run
        q.shutdown(true);
        let qsize = q.qsize();
        let got = t.await;
        Ok::<_, Error>((qsize, got))
    })
    .unwrap();
    assert_eq!(
        qsize, 0,
        "an immediate shutdown leaves nothing in the queue"
    );
    assert!(
        got.as_ref()
            .is_err_and(|e| e.downcast_ref::<QueueShutDown>().is_some()),
        "the getter gets QueueShutDown in Python 3.13, got {got:?}"
    );
}

/// A documented deviation from Python 3.13 (README's asyncio table): a put waiting on a
/// full queue whose room was made by a `get_nowait`, then `shutdown()` before the
/// putter ran. Python's putter wakes, finds room, calls `put_nowait`, which raises
/// `QueueShutDown`. evloop moves a waiting put's value in the moment room is made (the
/// put has happened: it returns `Ok`, and the item is delivered, as every item put
/// before a non-immediate shutdown is). Pins that the item is neither lost nor
/// duplicated either way.
#[test]
fn put_woken_by_a_get_then_shutdown_has_put_its_item() {
    let (put, left, got) = evloop::run(async {
        let q = Queue::<u32>::new(1);
        q.put_nowait(1).unwrap();
        let t = create_task({
            let q = q.clone();
            async move { q.put(2).await }
        });
        yields(3).await;
        assert_eq!(q.get_nowait().unwrap(), 1);
        q.shutdown(false);
        let put = t.await;
        let left = q.qsize();
        let got = q.get().await;
        Ok::<_, Error>((put, left, got))
    })
    .unwrap();
    assert!(
        put.is_ok(),
        "the value had moved in before the shutdown: {put:?}"
    );
    assert_eq!(left, 1);
    assert_eq!(got.unwrap(), 2, "a shut-down queue still drains");
}
