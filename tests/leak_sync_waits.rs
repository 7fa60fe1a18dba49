//! Bounded memory for abandoned waits on the `evloop::sync` primitives (SPEC Q8, §13):
//! every wait registration is removed when the future that made it is dropped, so a
//! million waits of each kind started and abandoned — while the thing waited for stays
//! unavailable — leave the heap exactly where it was.
//!
//! Kinds (a batch is 1 000 waits; "one by one": each wait is created, polled once —
//! which registers it — and dropped before the next; "together": under
//! `timeout(0, ..)`, in rounds of 100 waits registered at once, polled by one task and
//! dropped as their zero timeouts fire in the same iteration, so registrations leave
//! from the middle of a list of pending ones):
//!
//! | kind | what stays unavailable |
//! |---|---|
//! | `Mutex::lock` | the lock, held by the test throughout |
//! | `Semaphore::acquire` | a semaphore of 0 permits |
//! | `BoundedSemaphore::acquire` | a bounded semaphore whose one permit the test holds |
//! | `Event::wait` | an event never set |
//! | `Condition::wait` | a condition never notified (each wait takes the free lock, which `wait` releases) |
//! | `Barrier::wait` | a barrier of 101 parties, more than ever wait at once (a wait that leaves lowers `n_waiting`) |
//! | `Queue::get`, `LifoQueue::get`, `PriorityQueue::get` | an empty queue |
//! | `Queue::put` | a full queue (maxsize 1, one item) |
//! | `Queue::join` | a queue with an item never marked `task_done` |
//! | `mpsc::Receiver::recv`, `mpsc::UnboundedReceiver::recv` | an empty channel whose sender stays (one by one only: `recv` takes `&mut self` of the one receiver) |
//! | `mpsc::Sender::send` | a full channel (capacity 1, one item) |
//! | `broadcast::Receiver::recv` | nothing sent (together: 100 subscribed receivers, one wait each per round) |
//! | `watch::Receiver::changed` | no value sent since the receiver saw the latest (together: 100 receivers) |
//! | `SharedMutex::lock` | the lock, held by the test |
//! | `SharedSemaphore::acquire` | 0 permits |
//! | `SharedEvent::wait` | never set |
//!
//! Method: as `tests/leak_waits.rs` (`tests/common/leak.rs`): this binary installs the
//! counting `#[global_allocator]` and holds a single test, so nothing else allocates
//! meanwhile. Everything runs in one task on one runtime that stays alive throughout;
//! each kind gets primitives of its own. Per kind: three warm-up batches (the wait
//! list's slab and the loop's queues reach their steady size), a few loop iterations,
//! the baseline, then 1 000 batches (1 000 000 abandoned waits) with the heap compared
//! every 100 batches (a difference stops the kind: it is already the failure), and the
//! final count, which must equal the baseline exactly. At the end of each kind the
//! primitive is checked to be as unavailable as it was, with nobody left waiting on it.
//! Nothing is printed until every kind was measured; the assertion lists every kind
//! that leaked, with the allocations and bytes left per wait.

mod common;

use std::time::{Duration, Instant};

use evloop::sync::{
    Barrier, BoundedSemaphore, Condition, Event, LifoQueue, Mutex, PriorityQueue, Queue, Semaphore,
    SharedEvent, SharedMutex, SharedSemaphore, broadcast, mpsc, watch,
};
use evloop::{Error, Runtime, create_task, time};

#[global_allocator]
static GLOBAL: common::counting_alloc::CountingAlloc = common::counting_alloc::CountingAlloc;

use common::counting_alloc::Watchdog;
use common::leak::{Outcome, ROUND, measure, poll_once, timed_out, together};

const ZERO: Duration = Duration::ZERO;

/// Kinds measured by [`scenario`].
const KINDS: usize = 36;

/// A wait that must stay pending when polled once.
async fn pending_once<F: std::future::Future>(fut: F) {
    assert!(
        !poll_once(fut).await,
        "the wait completed: it must stay pending"
    );
}

/// `measure!` one by one only (`$wait` polled once and dropped).
macro_rules! one_by_one {
    ($outcomes:expr, $kind:literal, $wait:expr) => {{
        measure!($outcomes, concat!($kind, ", one by one"), async {
            for _ in 0..BATCH {
                pending_once($wait).await;
            }
        });
    }};
}

/// `measure!` twice: one by one (`$wait` polled once and dropped), and together
/// (`$wait` under `timeout(0, ..)` in rounds).
macro_rules! both {
    ($outcomes:expr, $kind:literal, $wait:expr) => {{
        measure!($outcomes, concat!($kind, ", one by one"), async {
            for _ in 0..BATCH {
                pending_once($wait).await;
            }
        });
        measure!(
            $outcomes,
            concat!($kind, ", together"),
            together((0..BATCH).map(|_| time::timeout(ZERO, $wait)), timed_out)
        );
    }};
}

async fn scenario() -> Vec<Outcome> {
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(KINDS);
    {
        let m = Mutex::new(0u64);
        let held = m.try_lock().expect("a fresh lock is free");
        both!(outcomes, "Mutex::lock (held)", m.lock());
        drop(held);
        assert!(m.try_lock().is_some(), "nobody else waits for the lock");
    }
    {
        let s = Semaphore::new(0);
        both!(outcomes, "Semaphore::acquire (0 permits)", s.acquire());
        s.release();
        assert_eq!(s.available(), 1, "no waiter took the released permit");
    }
    {
        let s = BoundedSemaphore::new(1);
        let held = s.try_acquire().expect("one permit");
        both!(outcomes, "BoundedSemaphore::acquire (held)", s.acquire());
        drop(held);
        assert_eq!(s.available(), 1, "no waiter took the permit");
    }
    {
        let e = Event::new();
        both!(outcomes, "Event::wait", e.wait());
        assert!(!e.is_set());
    }
    {
        let c = Condition::new();
        // Each wait takes the lock (free: the previous wait released it), then waits.
        both!(outcomes, "Condition::wait", async {
            let guard = c.acquire().await?;
            c.wait(guard).await.map(drop)
        });
        assert!(!c.lock().locked(), "an abandoned wait left the lock held");
        let guard = c.acquire().await.unwrap();
        c.notify_all().unwrap();
        drop(guard);
    }
    {
        // More parties than waits at once: it never trips.
        let b = Barrier::new(ROUND + 1);
        both!(outcomes, "Barrier::wait", async {
            let out = b.wait().await;
            assert!(out.is_err(), "the barrier tripped");
        });
        assert_eq!(b.n_waiting(), 0, "abandoned waits left the barrier");
        assert!(!b.broken());
    }
    {
        let q = Queue::<u64>::new(0);
        both!(outcomes, "Queue::get (empty)", q.get());
        assert!(q.empty());
        q.put_nowait(7).unwrap();
        assert_eq!(
            q.get_nowait().ok(),
            Some(7),
            "no getter was handed the item"
        );
    }
    {
        let q = LifoQueue::<u64>::new(0);
        both!(outcomes, "LifoQueue::get (empty)", q.get());
        assert!(q.empty());
    }
    {
        let q = PriorityQueue::<u64>::new(0);
        both!(outcomes, "PriorityQueue::get (empty)", q.get());
        assert!(q.empty());
    }
    {
        let q = Queue::<u64>::new(1);
        q.put_nowait(1).unwrap();
        both!(outcomes, "Queue::put (full)", q.put(2));
        assert_eq!(q.get_nowait().ok(), Some(1));
        assert!(q.empty(), "an abandoned put stored its value");
    }
    {
        let q = Queue::<u64>::new(0);
        q.put_nowait(1).unwrap();
        both!(outcomes, "Queue::join (unfinished)", q.join());
        q.get_nowait().unwrap();
        q.task_done().unwrap();
        assert!(q.task_done().is_err(), "one item was put");
    }
    thread_safe(&mut outcomes).await;
    outcomes
}

/// The Y7 kinds.
async fn thread_safe(outcomes: &mut Vec<Outcome>) {
    {
        let (tx, mut rx) = mpsc::channel::<u64>(1);
        one_by_one!(outcomes, "mpsc::Receiver::recv (empty)", rx.recv());
        tx.try_send(1).unwrap();
        both!(outcomes, "mpsc::Sender::send (full)", async {
            let out = tx.send(2).await;
            assert!(out.is_err(), "the full channel took a value");
        });
        assert_eq!(rx.try_recv().ok(), Some(1));
        assert!(rx.try_recv().is_err(), "an abandoned send sent its value");
    }
    {
        let (tx, mut rx) = mpsc::unbounded_channel::<u64>();
        one_by_one!(outcomes, "mpsc::UnboundedReceiver::recv (empty)", rx.recv());
        tx.send(1).unwrap();
        assert_eq!(
            rx.try_recv().ok(),
            Some(1),
            "no abandoned recv took the item"
        );
    }
    {
        let (tx, mut rx) = broadcast::channel::<u64>(4);
        one_by_one!(outcomes, "broadcast::Receiver::recv", rx.recv());
        let mut rxs: Vec<_> = (0..ROUND).map(|_| tx.subscribe()).collect();
        measure!(outcomes, "broadcast::Receiver::recv, together", async {
            for _ in 0..BATCH / ROUND {
                together(
                    rxs.iter_mut().map(|rx| time::timeout(ZERO, rx.recv())),
                    |out| assert!(matches!(out, Err(Error::Timeout(_))), "a message came"),
                )
                .await;
            }
        });
        assert_eq!(tx.send(9).unwrap(), ROUND + 1);
        assert_eq!(rx.try_recv().ok(), Some(9));
    }
    {
        let (tx, mut rx) = watch::channel(0u64);
        rx.borrow_and_update();
        one_by_one!(outcomes, "watch::Receiver::changed", rx.changed());
        let mut rxs: Vec<_> = (0..ROUND)
            .map(|_| {
                let mut rx = tx.subscribe();
                rx.borrow_and_update();
                rx
            })
            .collect();
        measure!(outcomes, "watch::Receiver::changed, together", async {
            for _ in 0..BATCH / ROUND {
                together(
                    rxs.iter_mut().map(|rx| time::timeout(ZERO, rx.changed())),
                    |out| assert!(matches!(out, Err(Error::Timeout(_))), "a value came"),
                )
                .await;
            }
        });
        assert!(!rx.has_changed().unwrap());
    }
    {
        let m = SharedMutex::new(0u64);
        let held = m.try_lock().expect("a fresh lock is free");
        both!(outcomes, "SharedMutex::lock (held)", m.lock());
        drop(held);
        assert!(m.try_lock().is_some(), "nobody else waits for the lock");
    }
    {
        let s = SharedSemaphore::new(0);
        both!(
            outcomes,
            "SharedSemaphore::acquire (0 permits)",
            s.acquire()
        );
        s.release();
        assert_eq!(s.available(), 1, "no waiter took the released permit");
    }
    {
        let e = SharedEvent::new();
        both!(outcomes, "SharedEvent::wait", e.wait());
        assert!(!e.is_set());
    }
}

#[test]
fn a_million_abandoned_sync_waits_of_each_kind_leave_the_heap_where_it_was() {
    let watchdog = Watchdog::arm("leak_sync_waits", Duration::from_secs(600));
    let started = Instant::now();
    // Without the cooperative budget (K7): with it, where a round of 100 waits is cut
    // into poll slices shifts from batch to batch, so the peak length of a wait list
    // (the waiters queued on `Condition`'s lock while one holds it) can first be reached
    // long after the warm-up — a one-time growth of capacity, not a leak, but this test
    // compares the heap exactly. What is measured is abandonment, which the budget does
    // not touch.
    let rt = Runtime::builder()
        .coop_budget(None)
        .build()
        .expect("runtime");
    let outcomes = rt.block_on(async {
        // Inside a task, as a user's code would be.
        create_task(async { Ok::<_, Error>(scenario().await) })
            .await
            .unwrap()
    });
    drop(rt);
    drop(watchdog);
    let elapsed = started.elapsed();

    let leaks = common::leak::leaks(&outcomes);
    println!("{} kinds in {elapsed:?}", outcomes.len());
    assert_eq!(outcomes.len(), KINDS, "every kind was measured");
    assert!(
        leaks.is_empty(),
        "abandoned sync waits left memory behind (SPEC Q8):\n{}",
        leaks.join("\n")
    );
}
