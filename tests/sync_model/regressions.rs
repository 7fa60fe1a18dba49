//! The counterexamples the properties found, shrunk, as plain tests.
//!
//! The first ones (up to `a_permit_released_past_a_cancelled_waiter_is_available`)
//! failed until fe562bc: a task cancelled while it waited stayed in the wait list until
//! it ran again (the cancel was taken at the wait's next poll), so whatever was
//! released meanwhile was handed to it. The API says the cancelled task "resumes at
//! once" and (module docs) that a cancelled wait leaves the wait list at once; SPEC
//! §13: "an item is never taken from a queue by a cancelled `get`"; sync_api.md: "A
//! waiting put that is cancelled puts nothing", "A cancelled waiter leaves (n_waiting
//! drops by 1)". They pass now and stay as regressions.
//!
//! The ones after it failed on main until the fix each one's doc names; they pass
//! now. Since items are no longer handed to a waiting get (a woken get holds a *claim*
//! on one buffered item and takes the next item in order when it runs, as in asyncio),
//! the queue ones check the same observables through claims.

use std::cell::RefCell;
use std::future::Future as StdFuture;
use std::rc::Rc;

use evloop::sync::{Barrier, Condition, LifoQueue, Mutex, Queue, Semaphore};
use evloop::{Runtime, Task, create_task};

use crate::queue::AnyQueue;

/// `q.get()` in a task of its own, suspended (the loop has settled).
async fn suspended_get<Q: AnyQueue>(q: &Q) -> Task<u32> {
    let q = q.clone();
    let task = create_task(async move { q.get().await });
    quiesce().await;
    assert!(!task.done(), "the get waits");
    task
}

/// Lets every woken task run.
async fn quiesce() {
    for _ in 0..16 {
        evloop::yield_now().await.unwrap();
    }
}

fn on_a_loop(body: impl StdFuture<Output = ()> + 'static) {
    Runtime::new()
        .unwrap()
        .block_on(async move {
            create_task(async move {
                body.await;
                Ok(())
            })
            .await
        })
        .unwrap();
}

/// A cancelled get is not given a claim (SPEC §13: "an item is never taken from a
/// queue by a cancelled `get`"): right after `put_nowait`, the item is free to take.
/// Failed before the fix: `get_nowait()` is `Err(QueueEmpty)` until the cancelled task has run
/// (the item was handed to the cancelled get; before 63477cc `qsize()` was 0 too).
#[test]
fn a_cancelled_get_is_not_handed_an_item() {
    on_a_loop(async {
        let q = Queue::<u32>::new(0);
        let getter = suspended_get(&q).await;
        getter.cancel();
        q.put_nowait(1).unwrap();
        assert_eq!(
            q.qsize(),
            1,
            "the item is in the queue, not with the cancelled get"
        );
        assert_eq!(q.get_nowait().ok(), Some(1));
    });
}

/// Items reach the waiting gets in order (Y6) when the first of them was cancelled:
/// the next get gets the first item. Failed before the fix: the live get receives the *second*
/// item (the first went to the cancelled get, which put it back into the queue when
/// it ran).
#[test]
fn a_cancelled_get_does_not_reorder_a_queue() {
    on_a_loop(async {
        let q = Queue::<u32>::new(0);
        let cancelled = suspended_get(&q).await;
        let live = suspended_get(&q).await;
        cancelled.cancel();
        q.put_nowait(1).unwrap();
        q.put_nowait(2).unwrap();
        quiesce().await;
        assert!(cancelled.cancelled());
        assert_eq!(
            live.result().ok(),
            Some(1),
            "the first item, to the first live get"
        );
        assert_eq!(q.get_nowait().ok(), Some(2));
    });
}

/// The same for a `LifoQueue`: the last item put is the first taken. Failed while a
/// cancelled waiter stayed in the list: the item handed to the cancelled get came back
/// on top, after the later one.
#[test]
fn a_cancelled_get_does_not_reorder_a_lifo_queue() {
    on_a_loop(async {
        let q = LifoQueue::<u32>::new(0);
        let cancelled = suspended_get(&q).await;
        cancelled.cancel();
        q.put_nowait(1).unwrap();
        q.put_nowait(2).unwrap();
        quiesce().await;
        assert_eq!(q.get_nowait().ok(), Some(2), "last in, first out");
        assert_eq!(q.get_nowait().ok(), Some(1));
    });
}

/// `maxsize` holds when a cancelled get was waiting: of two `put_nowait` on a queue of
/// maxsize 1, the second finds it full. Failed before 63477cc: both succeeded (the
/// first item went to the cancelled get), and once the cancelled task had run the
/// queue held 2 items; it holds since every item stays in the buffer (claimed or not)
/// until a get takes it, as in asyncio.
#[test]
fn a_cancelled_get_does_not_overfill_a_queue() {
    on_a_loop(async {
        let q = Queue::<u32>::new(1);
        let cancelled = suspended_get(&q).await;
        cancelled.cancel();
        q.put_nowait(1).unwrap();
        let second = q.put_nowait(2);
        quiesce().await;
        assert!(
            q.qsize() <= q.maxsize(),
            "qsize {} above maxsize {} (second put_nowait: {:?})",
            q.qsize(),
            q.maxsize(),
            second.map_err(|e| e.into_inner())
        );
        assert!(second.is_err(), "the queue was full");
    });
}

/// A waiting put that is cancelled puts nothing (Y6). Failed before the fix: a `get_nowait` after
/// the cancel still moves the cancelled put's value into the queue (and that put
/// returns `Ok` when its task runs).
#[test]
fn a_cancelled_put_puts_nothing() {
    on_a_loop(async {
        let q = Queue::<u32>::new(1);
        q.put_nowait(1).unwrap();
        let putter = create_task({
            let q = q.clone();
            async move { q.put(2).await }
        });
        quiesce().await;
        assert!(!putter.done(), "the put waits: the queue is full");
        putter.cancel();
        assert_eq!(q.get_nowait().ok(), Some(1));
        assert_eq!(q.qsize(), 0, "the cancelled put's value was not stored");
        quiesce().await;
        assert!(putter.cancelled());
        assert!(q.get_nowait().is_err(), "nothing was put");
    });
}

/// asyncio's `Barrier` counts a party whose task has a cancel pending until that task
/// runs (its `wait` leaves in a `finally`): of two parties, one cancelled, the other
/// arriving before the cancelled task ran trips the round (`Ok(1)`), and the cancelled
/// one still ends `Cancelled`. (python3.11: `n_waiting` stays 2 after `cancel()` and a
/// third party of a `Barrier(3)` returns 2.)
#[test]
fn a_barrier_counts_a_party_whose_cancel_is_pending() {
    on_a_loop(async {
        let b = Barrier::new(2);
        let first = create_task({
            let b = b.clone();
            async move { b.wait().await }
        });
        quiesce().await;
        first.cancel();
        assert_eq!(b.n_waiting(), 1, "still a party until its task runs");
        assert_eq!(b.wait().await.unwrap(), 1, "the round trips");
        quiesce().await;
        assert!(first.cancelled());
        assert_eq!(b.n_waiting(), 0);
    });
}

/// The cancelled party leaves the round when its task runs: `n_waiting` drops then.
#[test]
fn a_cancelled_barrier_wait_leaves_when_its_task_runs() {
    on_a_loop(async {
        let b = Barrier::new(2);
        let waiter = create_task({
            let b = b.clone();
            async move { b.wait().await }
        });
        quiesce().await;
        assert_eq!(b.n_waiting(), 1);
        waiter.cancel();
        quiesce().await;
        assert!(waiter.cancelled());
        assert_eq!(b.n_waiting(), 0, "the cancelled wait left the round");
    });
}

/// The lock released while its only waiter was cancelled is free at once. Observed:
/// it is handed to the cancelled waiter (`locked()` stays true, `try_lock()` fails)
/// until that task has run.
#[test]
fn a_lock_released_past_a_cancelled_waiter_is_free() {
    on_a_loop(async {
        let m = Mutex::new(());
        let held = m.try_lock().unwrap();
        let waiter = create_task({
            let m = m.clone();
            async move { m.lock().await.map(drop) }
        });
        quiesce().await;
        waiter.cancel();
        drop(held);
        assert!(!m.locked(), "nobody holds or waits for the lock");
        assert!(m.try_lock().is_some());
    });
}

/// The same for a semaphore's permit. Failed before the fix: `available()` is 0 until the
/// cancelled task has run.
#[test]
fn a_permit_released_past_a_cancelled_waiter_is_available() {
    on_a_loop(async {
        let s = Semaphore::new(0);
        let waiter = create_task({
            let s = s.clone();
            async move { s.acquire().await.map(drop) }
        });
        quiesce().await;
        waiter.cancel();
        s.release();
        assert_eq!(s.available(), 1, "nobody waits for the permit");
    });
}

// After fe562bc (wait lists pass over a waiter whose task has a cancel pending):

/// `Condition::wait` cancelled while it re-acquires the lock keeps its FIFO turn for
/// the lock (`/work/sync_api.md`: "it still re-acquires (waiting its FIFO turn for the
/// lock, ignoring further cancels), then returns Err(Cancelled)"). Failed before the fix: the lock's
/// wait list passes over it because its task has a cancel pending, and a waiter behind
/// it gets the lock first.
#[test]
fn a_cancel_during_the_reacquire_keeps_the_fifo_turn() {
    on_a_loop(async {
        let c = Condition::new();
        let order: Rc<RefCell<Vec<&'static str>>> = Rc::default();
        let waiter = |name: &'static str| {
            let (c, order) = (c.clone(), order.clone());
            create_task(async move {
                let guard = c.acquire().await?;
                let out = c.wait(guard).await.map(drop);
                order.borrow_mut().push(name);
                out
            })
        };
        let first = waiter("first");
        let second = waiter("second");
        quiesce().await;
        let held = c.lock().try_lock().expect("both wait: the lock is free");
        c.notify_all().unwrap();
        quiesce().await; // both re-acquire: first, then second, in the lock's FIFO
        first.cancel();
        drop(held);
        quiesce().await;
        assert!(
            first.cancelled(),
            "the cancel is reported after the re-acquire"
        );
        assert!(second.result().is_ok());
        assert_eq!(
            *order.borrow(),
            ["first", "second"],
            "the cancelled waiter re-acquired in its turn"
        );
    });
}

/// A `Condition::wait` whose task is aborted while it re-takes the lock after a
/// notification passes that notification to the next waiter (asyncio 3.13 notifies
/// another waiter on any exit by error from `wait`; the code since 277273f). The
/// property `condition_matches_model` found this in CI: its model still dropped the
/// notification in that state, so the code's (correct) answer was reported as a bug.
#[test]
fn a_wait_aborted_while_it_retakes_the_lock_passes_its_notification_on() {
    on_a_loop(async {
        let c = Condition::new();
        let woke: Rc<RefCell<Vec<&'static str>>> = Rc::default();
        let waiter = |name: &'static str| {
            let (c, woke) = (c.clone(), woke.clone());
            create_task(async move {
                let guard = c.acquire().await?;
                let guard = c.wait(guard).await?;
                woke.borrow_mut().push(name);
                drop(guard);
                Ok(())
            })
        };
        let first = waiter("first");
        let second = waiter("second");
        quiesce().await;
        let held = c.lock().try_lock().expect("both wait: the lock is free");
        c.notify(1).unwrap();
        quiesce().await; // first is notified and queues for the lock held here
        first.abort();
        drop(held);
        quiesce().await;
        assert_eq!(*woke.borrow(), ["second"], "the notification passed on");
        assert!(second.result().is_ok());
    });
}

/// The claim of a get whose task is cancelled before it ran passes to the next
/// waiting get, so items reach the live gets in order (Y6; asyncio: the item stays in
/// the buffer, and the next get takes it). Failed before claims: the item was handed to
/// the cancelled get and stayed with it until its task ran, the next item went to the
/// next get, and the first item then went back into the queue — the live get received
/// the second item.
#[test]
fn a_claim_given_before_the_cancel_goes_to_the_next_get() {
    on_a_loop(async {
        let q = Queue::<u32>::new(0);
        let cancelled = suspended_get(&q).await;
        let live = suspended_get(&q).await;
        q.put_nowait(1).unwrap(); // a claim for `cancelled`
        cancelled.cancel();
        q.put_nowait(2).unwrap();
        quiesce().await;
        assert!(cancelled.cancelled());
        assert_eq!(
            live.result().ok(),
            Some(1),
            "the first item, to the first live get"
        );
        assert_eq!(q.get_nowait().ok(), Some(2));
    });
}

/// The same with no other get: the claim lapses and the item is free at the next queue
/// operation (asyncio: it never left the buffer). Failed before the fix: `get_nowait()`
/// is `Err(QueueEmpty)` until the cancelled task has run.
#[test]
fn a_claim_given_before_the_cancel_is_back_in_the_queue() {
    on_a_loop(async {
        let q = Queue::<u32>::new(0);
        let getter = suspended_get(&q).await;
        q.put_nowait(1).unwrap();
        getter.cancel();
        assert_eq!(q.get_nowait().ok(), Some(1));
    });
}

/// The same for a `LifoQueue`: what was put last comes out first. Failed while items
/// were handed to gets: the item handed to the cancelled get went back on top when the
/// task ran — above an item put after it (with claims it never leaves its place).
#[test]
fn a_claim_given_before_the_cancel_keeps_its_lifo_place() {
    on_a_loop(async {
        let q = LifoQueue::<u32>::new(0);
        let getter = suspended_get(&q).await;
        q.put_nowait(1).unwrap();
        getter.cancel();
        q.put_nowait(2).unwrap();
        quiesce().await;
        assert_eq!(q.get_nowait().ok(), Some(2), "last in, first out");
        assert_eq!(q.get_nowait().ok(), Some(1));
    });
}

/// A claim keeps *an* item, not a particular one (asyncio: the woken get takes whatever
/// is next when it runs): with one get woken for the first of two items, `get_nowait`
/// takes the next item in the queue's order — the oldest for a `Queue`, the newest for
/// a `LifoQueue` — and the woken get the other. (`python3.11`: `Queue` gives
/// `get_nowait() == 1`, the get 2; `LifoQueue` `get_nowait() == 2`, the get 1.)
#[test]
fn a_claim_keeps_an_item_not_a_particular_one() {
    on_a_loop(async {
        let q = Queue::<u32>::new(0);
        let getter = suspended_get(&q).await;
        q.put_nowait(1).unwrap();
        q.put_nowait(2).unwrap();
        assert_eq!(q.get_nowait().ok(), Some(1), "the oldest item");
        quiesce().await;
        assert_eq!(getter.result().ok(), Some(2));

        let q = LifoQueue::<u32>::new(0);
        let getter = suspended_get(&q).await;
        q.put_nowait(1).unwrap();
        q.put_nowait(2).unwrap();
        assert_eq!(q.get_nowait().ok(), Some(2), "the newest item");
        quiesce().await;
        assert_eq!(getter.result().ok(), Some(1));
    });
}

// Found by a soak of the properties (`PROPTEST_CASES=20000`); the model was wrong, the
// code right:

/// A permit handed to a waiter whose task is then cancelled before it ran stays that
/// waiter's until its task runs; the task then passes it to the next waiter and returns
/// `Err(Cancelled)` (ARCHITECTURE "A permit", step 3; asyncio 3.13 alike: `_value`
/// stays 0 and `locked()` true until the cancelled task's `acquire` gives the permit
/// back). `semaphore_matches_model` failed on the sequence below (two permits released
/// to two waiters, the first cancelled, a task created before the cancel that had not
/// run yet): its model passed the permit on at `cancel()`, so it demanded that this
/// task take it at its first poll, ahead of the cancelled task's run — the code's
/// (right) answer was reported as a bug. Here `b` queues, and is handed `a`'s permit
/// only when `a` runs; `d` keeps its own, so nothing else could reach `b`.
#[test]
fn a_permit_handed_before_the_cancel_passes_on_when_the_task_runs() {
    on_a_loop(async {
        let s = Semaphore::new(0);
        let log: Rc<RefCell<Vec<&'static str>>> = Rc::default();
        let worker = |name: &'static str| {
            let (s, log) = (s.clone(), log.clone());
            create_task(async move {
                let out = s.acquire().await;
                log.borrow_mut()
                    .push(if out.is_ok() { name } else { "a cancelled" });
                out?.forget();
                Ok(())
            })
        };
        let a = worker("a");
        let d = worker("d");
        quiesce().await; // a, then d, wait
        let b = worker("b"); // created, not run yet
        s.release(); // to a
        s.release(); // to d
        a.cancel();
        assert_eq!(
            s.available(),
            0,
            "the permit handed to a is a's until it runs"
        );
        assert!(s.locked());
        assert!(s.try_acquire().is_none());
        quiesce().await;
        assert!(a.cancelled());
        assert!(b.result().is_ok() && d.result().is_ok());
        let log = log.borrow();
        let at = |name| log.iter().position(|n| *n == name).unwrap();
        assert!(
            at("a cancelled") < at("b"),
            "b is handed a's permit when a runs, not at its first poll: {log:?}"
        );
        assert_eq!(s.available(), 0, "b and d hold the two permits");
    });
}

/// The shrunk input of that failure, through the property's own driver: the model
/// now allows what the code does.
#[test]
fn the_shrunk_semaphore_case_agrees_with_the_model() {
    use crate::permits::SemOp::*;
    let ops = vec![
        Acquire(0),
        Acquire(3),
        Settle,
        Acquire(1),
        Add,
        Add,
        Release(3),
        Cancel(0),
        Acquire(2),
    ];
    let out = crate::harness::run_driver(crate::permits::run_sem::<Semaphore>(4, 0, ops));
    assert!(out.is_ok(), "{}", out.unwrap_err());
}
