//! `evloop::sync::{Queue, LifoQueue, PriorityQueue}` (SPEC §13 Y6, Q8), ported from
//! CPython's `Lib/test/test_asyncio/test_queues.py` (3.13, with `Queue.shutdown`).
//!
//! evloop's queues hand items over directly (see the module docs): a put while a get
//! waits gives the item to that get, and a get while a put waits on a full queue moves
//! the put's value into the buffer. The tests check what a user sees of that — the
//! order of events the tasks log, `qsize()`, and that no item is ever lost or
//! duplicated, also when gets and puts are cancelled — never times. Tasks are awaited
//! with `Finish::finish` (a task that never finishes fails at that line), all under
//! `common::run_guarded`'s watchdog.

mod common;

use common::local::{
    Finish, Log, entries, new_log, poll_once, push, settle, strs, until_logged, yields,
};

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::pin::pin;
use std::rc::Rc;

use common::SplitMix64;
use evloop::sync::{LifoQueue, PriorityQueue, Queue, QueueEmpty, QueueShutDown};
use evloop::{Error, Future, Task, create_task};

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

fn is_shut_down(err: &Error) -> bool {
    err.downcast_ref::<QueueShutDown>().is_some()
}

/// How a queue operation ended, for the log.
fn describe<T: std::fmt::Debug>(r: &Result<T, Error>) -> String {
    match r {
        Ok(v) => format!("ok {v:?}"),
        Err(e) if e.is_cancelled() => "cancelled".to_string(),
        Err(e) if is_shut_down(e) => "shut down".to_string(),
        Err(e) => format!("error {e}"),
    }
}

/// The three queue kinds have the same methods but no common trait; the helpers and the
/// stress test below are written once against this one (each method forwards to the
/// type's own).
trait TestQueue<T>: Clone + 'static {
    fn get(&self) -> impl std::future::Future<Output = Result<T, Error>> + '_;
    fn put(&self, v: T) -> impl std::future::Future<Output = Result<(), Error>> + '_;
    fn get_nowait(&self) -> Result<T, QueueEmpty>;
    fn qsize(&self) -> usize;
    fn empty(&self) -> bool;
    fn task_done(&self) -> Result<(), Error>;
    fn join(&self) -> impl std::future::Future<Output = Result<(), Error>> + '_;
    fn shutdown(&self, immediate: bool);
}

macro_rules! impl_test_queue {
    ($queue:ident $(, $bound:path)?) => {
        impl<T: 'static $(+ $bound)?> TestQueue<T> for $queue<T> {
            fn get(&self) -> impl std::future::Future<Output = Result<T, Error>> + '_ {
                $queue::get(self)
            }
            fn put(&self, v: T) -> impl std::future::Future<Output = Result<(), Error>> + '_ {
                $queue::put(self, v)
            }
            fn get_nowait(&self) -> Result<T, QueueEmpty> {
                $queue::get_nowait(self)
            }
            fn qsize(&self) -> usize {
                $queue::qsize(self)
            }
            fn empty(&self) -> bool {
                $queue::empty(self)
            }
            fn task_done(&self) -> Result<(), Error> {
                $queue::task_done(self)
            }
            fn join(&self) -> impl std::future::Future<Output = Result<(), Error>> + '_ {
                $queue::join(self)
            }
            fn shutdown(&self, immediate: bool) {
                $queue::shutdown(self, immediate)
            }
        }
    };
}

impl_test_queue!(Queue);
impl_test_queue!(LifoQueue);
impl_test_queue!(PriorityQueue, Ord);

/// A task that logs "{name} waiting", gets one item and logs "{name} ok {item}" (or
/// "{name} cancelled" / "{name} shut down"); it returns the get's result.
fn getter<T, Q>(q: &Q, log: &Log, name: &'static str) -> Task<T>
where
    T: std::fmt::Debug + Send + 'static,
    Q: TestQueue<T>,
{
    let (q, log) = (q.clone(), log.clone());
    create_task(async move {
        push(&log, format!("{name} waiting"));
        let r = q.get().await;
        push(&log, format!("{name} {}", describe(&r)));
        r
    })
}

/// A task that logs "{name} waiting", puts `v` and logs "{name} ok ()" (or
/// "{name} cancelled" / "{name} shut down").
fn putter<T, Q>(q: &Q, log: &Log, name: &'static str, v: T) -> Task<()>
where
    T: 'static,
    Q: TestQueue<T>,
{
    let (q, log) = (q.clone(), log.clone());
    create_task(async move {
        push(&log, format!("{name} waiting"));
        let r = q.put(v).await;
        push(&log, format!("{name} {}", describe(&r)));
        r
    })
}

/// Everything left in the queue, by `get_nowait`.
fn drain<T, Q: TestQueue<T>>(q: &Q) -> Vec<T> {
    std::iter::from_fn(|| q.get_nowait().ok()).collect()
}

/// A value that counts its drops.
#[derive(Debug)]
struct Tracked {
    drops: Rc<Cell<usize>>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.drops.set(self.drops.get() + 1);
    }
}

// ---------------------------------------------------------------------------------
// Order, size, the non-blocking calls
// ---------------------------------------------------------------------------------

/// asyncio `QueueBasicTests.test_order`, `test_empty`, `test_full`: a `Queue` is FIFO;
/// `empty`/`qsize` follow the items; an unbounded queue is never full.
#[test]
fn queue_is_fifo() {
    common::run_guarded(async {
        let q = Queue::new(0);
        assert_eq!(q.maxsize(), 0);
        assert!(q.empty());
        assert!(!q.full());
        for i in [1, 3, 2] {
            q.put(i).await.unwrap();
        }
        assert!(!q.empty());
        assert_eq!(q.qsize(), 3);
        for i in 0..1000 {
            q.put_nowait(100 + i).unwrap();
        }
        assert!(!q.full(), "maxsize 0 is unbounded");
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(q.get().await.unwrap());
        }
        assert_eq!(got, [1, 3, 2]);
        assert_eq!(drain(&q), (100..1100).collect::<Vec<_>>());
        assert!(q.empty());
        assert_eq!(q.qsize(), 0);
    });
}

/// asyncio `LifoQueueTests.test_order`: the last item put is the first one out.
#[test]
fn lifo_queue_is_last_in_first_out() {
    common::run_guarded(async {
        let q = LifoQueue::new(0);
        for i in [1, 3, 2] {
            q.put(i).await.unwrap();
        }
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(q.get().await.unwrap());
        }
        assert_eq!(got, [2, 3, 1]);
        q.put_nowait(7).unwrap();
        q.put_nowait(8).unwrap();
        assert_eq!(q.get_nowait().unwrap(), 8);
        q.put_nowait(9).unwrap();
        assert_eq!(drain(&q), [9, 7]);
    });
}

/// asyncio `PriorityQueueTests.test_order`: the smallest item comes out first, whatever
/// the order of the puts (duplicates included).
#[test]
fn priority_queue_gives_the_smallest_first() {
    common::run_guarded(async {
        let q = PriorityQueue::new(0);
        for i in [1, 3, 2] {
            q.put(i).await.unwrap();
        }
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(q.get().await.unwrap());
        }
        assert_eq!(got, [1, 2, 3]);

        let mut rng = SplitMix64::new(7);
        let mut items: Vec<u64> = (0..200).map(|_| rng.below(50)).collect();
        for &i in &items {
            q.put_nowait(i).unwrap();
        }
        items.sort_unstable();
        assert_eq!(drain(&q), items);
        q.put_nowait(5).unwrap();
        q.put_nowait(4).unwrap();
        q.put_nowait(6).unwrap();
        assert_eq!(q.get().await.unwrap(), 4);
        q.put_nowait(1).unwrap();
        assert_eq!(drain(&q), [1, 5, 6]);
    });
}

/// asyncio `QueueBasicTests.test_maxsize`: a putter of three items into a queue of two
/// blocks after two; a get lets it put the third. `full`/`qsize`/`empty` follow.
#[test]
fn queue_maxsize_blocks_the_putter_and_a_get_lets_it_go_on() {
    let log = new_log();
    common::run_guarded(async {
        let q = Queue::new(2);
        assert_eq!(q.maxsize(), 2);
        let t = {
            let (q, log) = (q.clone(), log.clone());
            create_task(async move {
                for i in 0..3 {
                    q.put(i).await?;
                    push(&log, format!("put {i}"));
                }
                Ok(())
            })
        };
        settle().await;
        assert_eq!(
            entries(&log),
            strs(&["put 0", "put 1"]),
            "blocked at the 3rd"
        );
        assert!(q.full());
        assert_eq!(q.qsize(), 2);
        assert_eq!(q.get().await.unwrap(), 0);
        push(&log, "got 0");
        t.finish().await.unwrap();
        assert_eq!(entries(&log), strs(&["put 0", "put 1", "got 0", "put 2"]));
        assert!(q.full());
        assert_eq!(q.get().await.unwrap(), 1);
        assert_eq!(q.get().await.unwrap(), 2);
        assert!(q.empty());
        assert!(!q.full());
    });
}

/// asyncio `QueuePutTests.test_nonblocking_put_exception` (`QueueFull`): `put_nowait`
/// on a full queue fails and gives the value back; the queue is unchanged.
#[test]
fn put_nowait_on_a_full_queue_gives_the_value_back() {
    common::run_guarded(async {
        let q: Queue<String> = Queue::new(1);
        q.put_nowait("first".to_string()).unwrap();
        assert!(q.full());
        let err = q.put_nowait("second".to_string()).unwrap_err();
        assert!(!err.is_shut_down());
        assert_eq!(err.into_inner(), "second");
        assert_eq!(q.qsize(), 1);
        assert_eq!(q.get_nowait().unwrap(), "first");
        assert!(q.get_nowait().is_err(), "the refused value was not stored");
    });
}

/// asyncio `QueueGetTests.test_nonblocking_get_exception` (`QueueEmpty`) and
/// `test_nonblocking_get`.
#[test]
fn get_nowait_on_an_empty_queue_is_queue_empty() {
    common::run_guarded(async {
        let q: Queue<u8> = Queue::new(0);
        let err = q.get_nowait().unwrap_err();
        assert!(!err.is_shut_down());
        q.put_nowait(1).unwrap();
        assert_eq!(q.get_nowait().unwrap(), 1);
        assert!(q.get_nowait().is_err());
    });
}

// ---------------------------------------------------------------------------------
// Blocking get / put and the hand-over
// ---------------------------------------------------------------------------------

/// asyncio `QueuePutTests.test_blocking_put_wait` and `QueueGetTests.test_get_with_waiting_putters`:
/// a put blocked on a full queue resumes after a get made room — and the API's
/// hand-over: the get moves the waiting put's value into the buffer at once (`qsize`
/// stays at `maxsize`), waiting puts are served in order.
#[test]
fn put_blocked_on_a_full_queue_resumes_when_a_get_makes_room() {
    let log = new_log();
    common::run_guarded(async {
        let q = Queue::new(1);
        q.put_nowait("a").unwrap();
        let pb = putter(&q, &log, "pb", "b");
        until_logged(&log, "pb waiting").await;
        let pc = putter(&q, &log, "pc", "c");
        until_logged(&log, "pc waiting").await;
        settle().await;
        assert_eq!(entries(&log), strs(&["pb waiting", "pc waiting"]));

        assert_eq!(q.get_nowait().unwrap(), "a");
        push(&log, "got a");
        assert_eq!(q.qsize(), 1, "pb's value moved into the freed slot");
        assert!(q.full());
        assert!(q.put_nowait("x").is_err(), "no room: the slot went to pb");
        pb.finish().await.unwrap();
        assert!(!pc.done());
        assert_eq!(q.get().await.unwrap(), "b");
        push(&log, "got b");
        pc.finish().await.unwrap();
        assert_eq!(q.get().await.unwrap(), "c");
        assert!(q.empty());
    });
    assert_eq!(
        entries(&log),
        strs(&[
            "pb waiting",
            "pc waiting",
            "got a",
            "pb ok ()",
            "got b",
            "pc ok ()"
        ])
    );
}

/// asyncio `QueueGetTests.test_blocking_get_wait`, `QueuePutTests.test_put_with_waiting_getters`:
/// a get blocked on an empty queue resumes on a put; with the hand-over the item goes
/// straight to the first waiting get (reserved for it: counted in `qsize`, but
/// `get_nowait` cannot take it) and waiting gets are served in order.
#[test]
fn get_blocked_on_an_empty_queue_resumes_on_put() {
    let log = new_log();
    common::run_guarded(async {
        let q = Queue::new(0);
        let mut gets = Vec::new();
        for name in ["g1", "g2", "g3"] {
            gets.push(getter(&q, &log, name));
            until_logged(&log, &format!("{name} waiting")).await;
        }
        settle().await;
        assert_eq!(
            entries(&log),
            strs(&["g1 waiting", "g2 waiting", "g3 waiting"])
        );
        log.borrow_mut().clear();
        q.put_nowait(1).unwrap();
        assert_eq!(
            q.qsize(),
            1,
            "handed to g1: reserved for it, counted until it runs"
        );
        assert!(q.get_nowait().is_err(), "1 belongs to g1");
        q.put(2).await.unwrap();
        q.put_nowait(3).unwrap();
        assert_eq!(q.qsize(), 3, "1-3 are reserved for g1-g3");
        q.put_nowait(4).unwrap();
        assert_eq!(q.qsize(), 4, "4 is buffered: nobody waits for it");
        let got: Vec<i32> = {
            let mut v = Vec::new();
            for g in gets {
                v.push(g.finish().await.unwrap());
            }
            v
        };
        assert_eq!(got, [1, 2, 3]);
        assert_eq!(drain(&q), [4]);
    });
    assert_eq!(entries(&log), strs(&["g1 ok 1", "g2 ok 2", "g3 ok 3"]));
}

/// asyncio `QueueGetTests.test_get_cancelled_race`: a get cancelled while waiting takes
/// nothing; the next put goes to the next getter.
#[test]
fn get_cancelled_while_waiting_takes_nothing() {
    let log = new_log();
    common::run_guarded(async {
        let q = Queue::new(0);
        let g1 = getter(&q, &log, "g1");
        until_logged(&log, "g1 waiting").await;
        let g2 = getter(&q, &log, "g2");
        until_logged(&log, "g2 waiting").await;
        assert!(g1.cancel());
        assert!(g1.future().finish().await.unwrap_err().is_cancelled());
        q.put("a").await.unwrap();
        assert_eq!(g2.finish().await.unwrap(), "a");
        assert!(q.empty());
    });
    assert_eq!(
        entries(&log),
        strs(&["g1 waiting", "g2 waiting", "g1 cancelled", "g2 ok \"a\""])
    );
}

/// SPEC §13 ("an item is never taken from a queue by a cancelled get"), the API's
/// hand-over rule: the item handed to a waiting get that is cancelled before it runs
/// goes to the next waiting get.
#[test]
fn cancelled_get_passes_its_handed_item_to_the_next_getter() {
    let log = new_log();
    common::run_guarded(async {
        let q = Queue::new(0);
        let g1 = getter(&q, &log, "g1");
        until_logged(&log, "g1 waiting").await;
        let g2 = getter(&q, &log, "g2");
        until_logged(&log, "g2 waiting").await;
        log.borrow_mut().clear();
        q.put_nowait(1).unwrap(); // handed to g1 …
        assert!(g1.cancel()); // … which is cancelled before it runs
        settle().await;
        assert_eq!(
            entries(&log),
            strs(&["g1 cancelled", "g2 ok 1"]),
            "g1's item must go to g2"
        );
        assert!(g1.future().finish().await.unwrap_err().is_cancelled());
        assert_eq!(g2.finish().await.unwrap(), 1);
        assert!(q.empty());
    });
}

/// asyncio `QueuePutTests.test_get_cancel_drop_many_pending_readers`: three readers,
/// two items, the first reader cancelled: the other two readers get both items, one
/// each, and nothing is left or lost.
#[test]
fn cancelled_get_among_many_readers_loses_no_item() {
    let log = new_log();
    common::run_guarded(async {
        let q = Queue::new(0);
        let mut readers = Vec::new();
        for name in ["r1", "r2", "r3"] {
            readers.push(getter(&q, &log, name));
            until_logged(&log, &format!("{name} waiting")).await;
        }
        q.put_nowait(1).unwrap();
        q.put_nowait(2).unwrap();
        let mut readers = readers.into_iter();
        let r1 = readers.next().unwrap();
        assert!(r1.cancel());
        assert!(r1.finish().await.unwrap_err().is_cancelled());
        let mut got: Vec<i32> = Vec::new();
        for r in readers {
            got.push(r.finish().await.unwrap());
        }
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
        assert!(q.empty());
    });
}

/// asyncio `QueuePutTests.test_get_cancel_drop_one_pending_reader`: the only reader is
/// handed 1 and cancelled before it runs (2 is buffered behind it); 1 goes back to the
/// front of the queue, so a new reader gets 1 ("if we get 2, it means 1 got dropped").
#[test]
fn cancelled_get_puts_its_handed_item_back_at_the_front() {
    let log = new_log();
    common::run_guarded(async {
        let q = Queue::new(0);
        let g = getter(&q, &log, "g");
        until_logged(&log, "g waiting").await;
        q.put_nowait(1).unwrap(); // handed to g
        q.put_nowait(2).unwrap();
        q.put_nowait(3).unwrap();
        assert!(g.cancel());
        assert!(g.future().finish().await.unwrap_err().is_cancelled());
        assert_eq!(q.qsize(), 3, "1 is back in the queue");
        assert_eq!(q.get().await.unwrap(), 1, "at the front");
        assert_eq!(drain(&q), [2, 3]);
    });
    assert_eq!(entries(&log), strs(&["g waiting", "g cancelled"]));
}

/// For a `LifoQueue` the item of a cancelled get goes back where asyncio (which never
/// took it out of the buffer) has it: below the items put after it. asyncio's
/// `LifoQueue` with `put_nowait(5)` (a get waiting), `put_nowait(3)`, `put_nowait(4)`,
/// then the get's task cancelled, drains 4, 3, 5.
#[test]
fn cancelled_get_of_a_lifo_queue_puts_its_item_back_below_later_puts() {
    let log = new_log();
    common::run_guarded(async {
        let q = LifoQueue::new(0);
        let g = getter(&q, &log, "g");
        until_logged(&log, "g waiting").await;
        q.put_nowait(5).unwrap(); // handed to g
        q.put_nowait(3).unwrap();
        q.put_nowait(4).unwrap();
        assert!(g.cancel());
        assert!(g.future().finish().await.unwrap_err().is_cancelled());
        assert_eq!(q.qsize(), 3);
        assert_eq!(drain(&q), [4, 3, 5]);
    });
}

/// The API: for a `PriorityQueue` the item of a cancelled get is re-inserted in order.
#[test]
fn cancelled_get_of_a_priority_queue_reinserts_its_item() {
    let log = new_log();
    common::run_guarded(async {
        let q = PriorityQueue::new(0);
        let g = getter(&q, &log, "g");
        until_logged(&log, "g waiting").await;
        q.put_nowait(2).unwrap(); // handed to g
        q.put_nowait(3).unwrap();
        q.put_nowait(1).unwrap();
        assert!(g.cancel());
        assert!(g.future().finish().await.unwrap_err().is_cancelled());
        assert_eq!(q.qsize(), 3);
        assert_eq!(drain(&q), [1, 2, 3]);
    });
}

/// SPEC Q8 / the API ("registration removed when the future is dropped"; a get handed an
/// item and then dropped never loses it): a `get()` future polled once, handed an
/// item, and dropped without being polled again puts the item back; a dropped waiting
/// `get()` future no longer takes items.
#[test]
fn dropped_get_future_loses_no_item_and_leaves_no_registration() {
    let log = new_log();
    common::run_guarded(async {
        let q = Queue::new(0);
        let go: Future<()> = Future::new();
        let dropper = {
            let (q, log, go) = (q.clone(), log.clone(), go.clone());
            create_task(async move {
                let mut fut = pin!(q.get());
                assert!(poll_once(fut.as_mut()).await.is_pending());
                push(&log, "dropper registered");
                go.await?; // an item is handed to `fut` meanwhile
                Ok(())
            })
        };
        until_logged(&log, "dropper registered").await;
        q.put_nowait(1).unwrap();
        assert_eq!(q.qsize(), 1, "reserved for the dropper's get");
        go.set_result(()).unwrap();
        dropper.finish().await.unwrap();
        assert_eq!(q.qsize(), 1, "the dropped get gave its item back");
        assert_eq!(q.get_nowait().unwrap(), 1);

        // A waiting get dropped before anything arrived: the next put is not handed to it.
        {
            let mut fut = pin!(q.get());
            assert!(poll_once(fut.as_mut()).await.is_pending());
        }
        q.put_nowait(2).unwrap();
        assert_eq!(q.qsize(), 1, "buffered: nobody waits any more");
        assert_eq!(q.get_nowait().unwrap(), 2);
    });
}

/// asyncio `QueuePutTests.test_put_cancel_drop` and
/// `test_cancelled_puts_not_being_held_in_self_putters`: a put waiting on a full queue
/// that is cancelled resumes with `Err(Cancelled)` and puts nothing; it leaves no
/// registration (a later get does not pull a value from it).
#[test]
fn cancelled_blocked_put_puts_nothing() {
    let log = new_log();
    common::run_guarded(async {
        let q = Queue::new(1);
        q.put_nowait(1).unwrap();
        let p = putter(&q, &log, "p", 2);
        until_logged(&log, "p waiting").await;
        assert!(p.cancel());
        assert!(p.future().finish().await.unwrap_err().is_cancelled());
        assert_eq!(q.qsize(), 1);
        assert_eq!(q.get_nowait().unwrap(), 1);
        assert_eq!(q.qsize(), 0, "the cancelled put's value did not move in");
        assert!(q.get_nowait().is_err());
        q.put(3).await.unwrap();
        assert_eq!(drain(&q), [3]);
    });
    assert_eq!(entries(&log), strs(&["p waiting", "p cancelled"]));
}

/// asyncio `QueuePutTests.test_put_cancelled_race`: of three puts into a queue of one,
/// the first goes in, the second and third wait; the third is cancelled: the gets
/// return the first and the second value and never the cancelled one.
#[test]
fn cancelled_put_among_waiting_puts_is_skipped() {
    let log = new_log();
    common::run_guarded(async {
        let q = Queue::new(1);
        let pa = putter(&q, &log, "pa", "a");
        until_logged(&log, "pa ok ()").await;
        let pb = putter(&q, &log, "pb", "b");
        until_logged(&log, "pb waiting").await;
        let pc = putter(&q, &log, "pc", "X");
        until_logged(&log, "pc waiting").await;
        assert!(pc.cancel());
        assert!(pc.future().finish().await.unwrap_err().is_cancelled());
        assert_eq!(q.get_nowait().unwrap(), "a");
        assert_eq!(q.get().await.unwrap(), "b");
        pa.finish().await.unwrap();
        pb.finish().await.unwrap();
        settle().await;
        assert!(q.empty(), "X was never put: {:?}", drain(&q));
    });
}

/// The hand-over seen from the put side: a waiting put whose value a get already moved
/// into the queue, and which is cancelled before it runs, must tell the truth — the
/// `put` itself returns `Ok` if and only if its value is in the queue (asyncio: a
/// cancelled put never puts; evloop may have put already — the module docs: "`put`
/// returns `Ok` and the cancel is delivered at the next await" — and must then not
/// report a failure). The task still ends cancelled (SPEC T3: it returned `Ok` with the
/// request undelivered).
#[test]
fn put_completed_by_a_get_then_cancelled_reports_what_happened() {
    let log = new_log();
    common::run_guarded(async {
        let q = Queue::new(1);
        q.put_nowait(1).unwrap();
        let p = putter(&q, &log, "p", 2);
        until_logged(&log, "p waiting").await;
        assert_eq!(q.get_nowait().unwrap(), 1); // moves 2 in …
        assert!(p.cancel()); // … and p is cancelled before it runs
        assert!(p.future().finish().await.unwrap_err().is_cancelled());
        let put_said = entries(&log)[1].clone();
        let left = drain(&q);
        match put_said.as_str() {
            "p ok ()" => assert_eq!(left, [2], "put returned Ok: its value must be there"),
            "p cancelled" => assert!(
                left.is_empty(),
                "put returned Err(Cancelled) but its value was put anyway: {left:?}"
            ),
            other => panic!("unexpected put outcome {other:?}"),
        }
    });
}

/// asyncio's bound (`full()` means `qsize() >= maxsize`, and `put_nowait` then raises
/// `QueueFull`): `qsize` never exceeds `maxsize`, also when a get that was handed an
/// item is cancelled after the queue filled up behind it — and no item is lost. (In
/// asyncio the handed item stays in the queue until the getter runs, so the second
/// `put_nowait` below raises `QueueFull`.)
#[test]
fn cancelled_get_never_makes_the_queue_exceed_maxsize() {
    let log = new_log();
    common::run_guarded(async {
        let q = Queue::new(1);
        let g = getter(&q, &log, "g");
        until_logged(&log, "g waiting").await;
        q.put_nowait(1).unwrap(); // handed to g
        let second = q.put_nowait(2);
        assert!(g.cancel());
        assert!(g.future().finish().await.unwrap_err().is_cancelled());
        assert!(
            q.qsize() <= q.maxsize(),
            "qsize {} > maxsize {} after the cancelled get gave its item back",
            q.qsize(),
            q.maxsize()
        );
        let mut expected = vec![1];
        if second.is_ok() {
            expected.push(2);
        }
        assert_eq!(drain(&q), expected, "no item lost");
    });
}

// ---------------------------------------------------------------------------------
// task_done / join
// ---------------------------------------------------------------------------------

/// asyncio `_QueueJoinTestMixin.test_task_done` / `test_join_empty_queue`: `join` on a
/// queue with nothing unfinished returns at once; otherwise it resumes only after every
/// item put (also one handed straight to a waiting get) was marked done.
#[test]
fn join_waits_until_every_item_is_done() {
    let log = new_log();
    common::run_guarded(async {
        let q = Queue::new(0);
        q.join().await.unwrap();
        q.join().await.unwrap();

        let g = getter(&q, &log, "g");
        until_logged(&log, "g waiting").await;
        q.put_nowait(10).unwrap(); // handed to g: still an unfinished item
        q.put_nowait(20).unwrap();
        q.put_nowait(30).unwrap();
        let j = {
            let (q, log) = (q.clone(), log.clone());
            create_task(async move {
                q.join().await?;
                push(&log, "joined");
                Ok(())
            })
        };
        assert_eq!(g.finish().await.unwrap(), 10);
        settle().await;
        assert!(!j.done(), "three unfinished items");
        for i in 0..3 {
            if i > 0 {
                let v = q.get().await.unwrap();
                push(&log, format!("got {v}"));
            }
            settle().await;
            assert!(!j.done(), "{:?}", entries(&log));
            push(&log, format!("task_done {i}"));
            q.task_done().unwrap();
        }
        j.finish().await.unwrap();
        q.join().await.unwrap();
    });
    assert_eq!(
        entries(&log),
        strs(&[
            "g waiting",
            "g ok 10",
            "task_done 0",
            "got 20",
            "task_done 1",
            "got 30",
            "task_done 2",
            "joined"
        ])
    );
}

/// asyncio `_QueueJoinTestMixin.test_task_done` with two workers: `join` returns after
/// the workers processed all 100 items.
#[test]
fn join_returns_once_workers_processed_everything() {
    common::run_guarded(async {
        let q = PriorityQueue::new(0);
        for i in 0..100u64 {
            q.put_nowait(i).unwrap();
        }
        let sum = Rc::new(Cell::new(0u64));
        let workers: Vec<Task<()>> = (0..2)
            .map(|_| {
                let (q, sum) = (q.clone(), sum.clone());
                create_task(async move {
                    loop {
                        let v = q.get().await?;
                        evloop::yield_now().await?;
                        sum.set(sum.get() + v);
                        q.task_done()?;
                    }
                })
            })
            .collect();
        q.join().await.unwrap();
        assert_eq!(sum.get(), (0..100).sum::<u64>());
        for w in workers {
            w.cancel();
            assert!(w.finish().await.unwrap_err().is_cancelled());
        }
    });
}

/// asyncio `_QueueJoinTestMixin.test_task_done_underflow` (`ValueError`): `task_done`
/// more often than items were put is `Err(InvalidState)`, for all three kinds.
#[test]
fn task_done_called_too_often_is_invalid_state() {
    common::run_guarded(async {
        let q: Queue<u8> = Queue::new(0);
        assert!(q.task_done().unwrap_err().is_invalid_state());
        q.put_nowait(1).unwrap();
        q.get_nowait().unwrap();
        q.task_done().unwrap();
        assert!(q.task_done().unwrap_err().is_invalid_state());
        q.join().await.unwrap();

        let l: LifoQueue<u8> = LifoQueue::new(0);
        assert!(l.task_done().unwrap_err().is_invalid_state());
        let p: PriorityQueue<u8> = PriorityQueue::new(0);
        assert!(p.task_done().unwrap_err().is_invalid_state());
        p.put_nowait(1).unwrap();
        p.task_done().unwrap(); // done before it was even taken: allowed
        assert!(p.task_done().unwrap_err().is_invalid_state());
    });
}

// ---------------------------------------------------------------------------------
// shutdown (Python 3.13)
// ---------------------------------------------------------------------------------

/// Every operation that must fail on a shut-down queue with nothing left in it.
async fn assert_all_fail<T: std::fmt::Debug + PartialEq + Clone>(q: &Queue<T>, v: T) {
    let err = q.put(v.clone()).await.unwrap_err();
    assert!(is_shut_down(&err), "put: {err:?}");
    let full = q.put_nowait(v.clone()).unwrap_err();
    assert!(full.is_shut_down());
    assert_eq!(full.into_inner(), v, "put_nowait gives the value back");
    let err = q.get().await.unwrap_err();
    assert!(is_shut_down(&err), "get: {err:?}");
    assert!(q.get_nowait().unwrap_err().is_shut_down());
}

/// asyncio `_QueueShutdownTestMixin.test_shutdown_empty`: a get waiting on an empty queue
/// wakes with `QueueShutDown`; `join` returns; every later put and get fails.
#[test]
fn shutdown_wakes_a_waiting_get_and_fails_later_puts_and_gets() {
    let log = new_log();
    common::run_guarded(async {
        let q: Queue<&str> = Queue::new(0);
        let g = getter(&q, &log, "g");
        until_logged(&log, "g waiting").await;
        q.shutdown(false);
        assert_eq!(q.qsize(), 0);
        q.join().await.unwrap();
        let err = g.finish().await.unwrap_err();
        assert!(is_shut_down(&err), "{err:?}");
        assert_all_fail(&q, "data").await;
    });
    assert_eq!(entries(&log), strs(&["g waiting", "g shut down"]));
}

/// asyncio `_QueueShutdownTestMixin.test_shutdown_nonempty`: a put waiting on a full
/// queue wakes with `QueueShutDown` (its value not put); the items already there can
/// still be got; `join` waits for their `task_done`.
#[test]
fn shutdown_fails_a_waiting_put_and_lets_gets_drain_the_queue() {
    let log = new_log();
    common::run_guarded(async {
        let q = Queue::new(1);
        q.put_nowait("data").unwrap();
        let j = {
            let (q, log) = (q.clone(), log.clone());
            create_task(async move {
                q.join().await?;
                push(&log, "joined");
                Ok(())
            })
        };
        let p = putter(&q, &log, "p", "data2");
        until_logged(&log, "p waiting").await;
        settle().await;
        assert!(!p.done());
        q.shutdown(false);
        assert_eq!(q.qsize(), 1);
        let err = p.finish().await.unwrap_err();
        assert!(is_shut_down(&err), "{err:?}");
        assert_eq!(q.qsize(), 1, "data2 was not put");
        assert_eq!(q.get().await.unwrap(), "data", "gets drain what is left");
        settle().await;
        assert!(!j.done(), "data is not task_done yet");
        assert_all_fail(&q, "more").await;
        q.task_done().unwrap();
        j.finish().await.unwrap();
        assert!(q.task_done().unwrap_err().is_invalid_state());
    });
    assert_eq!(entries(&log), strs(&["p waiting", "p shut down", "joined"]));
}

/// Python 3.13 `Queue.shutdown(immediate=False)`: `get_nowait` drains too, several
/// waiting gets all wake with `QueueShutDown`, and `shutdown` twice is harmless.
#[test]
fn shutdown_wakes_every_waiting_get_and_get_nowait_drains() {
    let log = new_log();
    common::run_guarded(async {
        let q: LifoQueue<u32> = LifoQueue::new(0);
        let gets: Vec<Task<u32>> = ["g1", "g2", "g3"]
            .into_iter()
            .map(|n| getter(&q, &log, n))
            .collect();
        for n in ["g1", "g2", "g3"] {
            until_logged(&log, &format!("{n} waiting")).await;
        }
        q.shutdown(false);
        q.shutdown(false);
        for g in gets {
            assert!(is_shut_down(&g.finish().await.unwrap_err()));
        }

        let q: Queue<u32> = Queue::new(0);
        for i in 0..3 {
            q.put_nowait(i).unwrap();
        }
        q.shutdown(false);
        assert_eq!(q.get_nowait().unwrap(), 0);
        assert_eq!(q.get().await.unwrap(), 1);
        assert_eq!(q.get_nowait().unwrap(), 2);
        assert!(q.get_nowait().unwrap_err().is_shut_down());
        assert!(is_shut_down(&q.get().await.unwrap_err()));
    });
}

/// asyncio `_QueueShutdownTestMixin.test_shutdown_immediate`: the buffered items are
/// dropped at once and counted as done, so `join` wakes; every later operation fails and
/// `task_done` has nothing left to mark.
#[test]
fn shutdown_immediate_drops_the_items_and_wakes_join() {
    let log = new_log();
    common::run_guarded(async {
        let drops = Rc::new(Cell::new(0));
        let q: Queue<Tracked> = Queue::new(0);
        for _ in 0..3 {
            q.put_nowait(Tracked {
                drops: drops.clone(),
            })
            .unwrap();
        }
        let j = {
            let (q, log) = (q.clone(), log.clone());
            create_task(async move {
                push(&log, "join waiting");
                q.join().await?;
                push(&log, "joined");
                Ok(())
            })
        };
        until_logged(&log, "join waiting").await;
        assert_eq!(drops.get(), 0);
        q.shutdown(true);
        assert_eq!(q.qsize(), 0);
        assert!(q.empty());
        assert_eq!(drops.get(), 3, "the buffered items are dropped");
        j.finish().await.unwrap();
        let err = q
            .put(Tracked {
                drops: drops.clone(),
            })
            .await
            .unwrap_err();
        assert!(is_shut_down(&err));
        let back = q
            .put_nowait(Tracked {
                drops: drops.clone(),
            })
            .unwrap_err();
        assert!(back.is_shut_down());
        drop(back.into_inner());
        assert!(is_shut_down(&q.get().await.unwrap_err()));
        assert!(q.get_nowait().unwrap_err().is_shut_down());
        assert!(q.task_done().unwrap_err().is_invalid_state());
    });
    assert_eq!(entries(&log), strs(&["join waiting", "joined"]));
}

/// asyncio `_QueueShutdownTestMixin.test_shutdown_immediate_with_unfinished`: an item
/// already taken but not yet done keeps `join` waiting after `shutdown(true)`; its
/// `task_done` releases it.
#[test]
fn shutdown_immediate_with_an_unfinished_item_keeps_join_waiting() {
    let log = new_log();
    common::run_guarded(async {
        let q = PriorityQueue::new(0);
        q.put_nowait("data").unwrap();
        q.put_nowait("data").unwrap();
        let j = {
            let (q, log) = (q.clone(), log.clone());
            create_task(async move {
                q.join().await?;
                push(&log, "joined");
                Ok(())
            })
        };
        assert_eq!(q.get().await.unwrap(), "data");
        q.shutdown(true);
        assert_eq!(q.qsize(), 0);
        settle().await;
        assert!(!j.done(), "one taken item is not done");
        assert!(is_shut_down(&q.put("x").await.unwrap_err()));
        assert!(is_shut_down(&q.get().await.unwrap_err()));
        q.task_done().unwrap();
        assert!(q.task_done().unwrap_err().is_invalid_state());
        j.finish().await.unwrap();
    });
    assert_eq!(entries(&log), strs(&["joined"]));
}

/// Python 3.13 `shutdown(immediate=True)` "unblocks all blocked callers": gets waiting on
/// an empty queue and puts waiting on a full one all wake with `QueueShutDown`; the
/// waiting put's value is not stored.
#[test]
fn shutdown_immediate_wakes_waiting_gets_and_puts() {
    let log = new_log();
    common::run_guarded(async {
        let empty: Queue<u32> = Queue::new(0);
        let g = getter(&empty, &log, "g");
        until_logged(&log, "g waiting").await;

        let drops = Rc::new(Cell::new(0));
        let full: Queue<Tracked> = Queue::new(1);
        full.put_nowait(Tracked {
            drops: drops.clone(),
        })
        .unwrap();
        let p = {
            let (full, log, drops) = (full.clone(), log.clone(), drops.clone());
            create_task(async move {
                push(&log, "p waiting");
                let r = full.put(Tracked { drops }).await;
                push(&log, format!("p {}", describe(&r)));
                r
            })
        };
        until_logged(&log, "p waiting").await;

        empty.shutdown(true);
        full.shutdown(true);
        assert!(is_shut_down(&g.finish().await.unwrap_err()));
        assert!(is_shut_down(&p.finish().await.unwrap_err()));
        assert_eq!(full.qsize(), 0);
        assert_eq!(
            drops.get(),
            2,
            "the buffered and the refused value are dropped"
        );
        full.join().await.unwrap();
    });
    assert_eq!(
        entries(&log),
        strs(&["g waiting", "p waiting", "g shut down", "p shut down"])
    );
}

// ---------------------------------------------------------------------------------
// Many producers and consumers
// ---------------------------------------------------------------------------------

/// asyncio `QueueGetTests.test_why_are_getters_waiting` / `QueuePutTests.test_why_are_putters_waiting`,
/// scaled up, with SPEC §13's "a cancellation never loses what was handed over": several
/// producers and consumers share a small queue while the root cancels consumers and
/// producers at random points (replacing cancelled consumers). Every put that returned
/// `Ok` is got exactly once; no other value ever comes out; `qsize` never exceeds
/// `maxsize`; `join` returns; `shutdown` ends the consumers.
macro_rules! stress_test {
    ($name:ident, $queue:ident) => {
        #[test]
        fn $name() {
            for seed in 1..=4u64 {
                stress(seed, |maxsize| $queue::new(maxsize));
            }
        }
    };
}

stress_test!(many_producers_and_consumers_see_every_item_once_fifo, Queue);
stress_test!(
    many_producers_and_consumers_see_every_item_once_lifo,
    LifoQueue
);
stress_test!(
    many_producers_and_consumers_see_every_item_once_priority,
    PriorityQueue
);

fn stress<Q: TestQueue<u64>>(seed: u64, make: impl FnOnce(usize) -> Q) {
    const PRODUCERS: u64 = 6;
    const PER_PRODUCER: u64 = 150;
    const CONSUMERS: usize = 4;
    const MAXSIZE: usize = 3;
    let produced = Rc::new(RefCell::new(Vec::<u64>::new()));
    let consumed = Rc::new(RefCell::new(Vec::<u64>::new()));
    let oversize = Rc::new(Cell::new(false));
    common::run_guarded(async {
        let mut rng = SplitMix64::new(seed);
        let q = make(MAXSIZE);
        let producers: Vec<Task<()>> = (0..PRODUCERS)
            .map(|p| {
                let (q, produced, pause) = (q.clone(), produced.clone(), rng.below(3) as usize);
                create_task(async move {
                    for k in 0..PER_PRODUCER {
                        let v = p * 10_000 + k;
                        q.put(v).await?;
                        produced.borrow_mut().push(v);
                        yields((k as usize + pause) % 3).await?;
                    }
                    Ok(())
                })
            })
            .collect();
        let spawn_consumer = |pause: usize| -> Task<()> {
            let (q, consumed, oversize) = (q.clone(), consumed.clone(), oversize.clone());
            create_task(async move {
                let mut n = 0usize;
                loop {
                    match q.get().await {
                        Ok(v) => {
                            consumed.borrow_mut().push(v);
                            q.task_done()?;
                        }
                        Err(e) if is_shut_down(&e) => return Ok(()),
                        Err(e) => return Err(e),
                    }
                    if q.qsize() > MAXSIZE {
                        oversize.set(true);
                    }
                    n += 1;
                    yields((n + pause) % 4).await?;
                }
            })
        };
        let mut consumers: Vec<Task<()>> = (0..CONSUMERS).map(&spawn_consumer).collect();
        let mut cancelled_consumers = 0;
        let mut cancelled_producers = 0;
        while producers.iter().any(|p| !p.done()) {
            common::yield_times(rng.below(6) as usize).await;
            match rng.below(10) {
                0..=3 => {
                    let i = rng.below(CONSUMERS as u64) as usize;
                    if consumers[i].cancel() {
                        cancelled_consumers += 1;
                    }
                    let replacement = spawn_consumer(rng.below(4) as usize);
                    let old = std::mem::replace(&mut consumers[i], replacement);
                    let _ = old.finish().await;
                }
                4 if cancelled_producers < 2 => {
                    let i = rng.below(PRODUCERS) as usize;
                    if producers[i].cancel() {
                        cancelled_producers += 1;
                    }
                }
                _ => {}
            }
        }
        for p in producers {
            let _ = p.finish().await;
        }
        let joined = {
            let q = q.clone();
            create_task(async move { q.join().await })
        };
        joined.finish().await.unwrap(); // a lost item would keep join waiting
        q.shutdown(false);
        for c in consumers {
            c.finish().await.unwrap();
        }
        assert!(q.empty());
        assert!(
            cancelled_consumers > 0,
            "seed {seed}: the run cancelled no consumer"
        );
    });
    let mut produced = produced.borrow().clone();
    let mut consumed = consumed.borrow().clone();
    produced.sort_unstable();
    consumed.sort_unstable();
    let unique: BTreeSet<u64> = consumed.iter().copied().collect();
    assert_eq!(
        unique.len(),
        consumed.len(),
        "seed {seed}: an item was got twice"
    );
    assert_eq!(
        consumed, produced,
        "seed {seed}: what was got differs from what was put"
    );
    assert!(
        produced.len() as u64 > PER_PRODUCER,
        "seed {seed}: almost nothing was produced"
    );
    assert!(!oversize.get(), "seed {seed}: qsize exceeded maxsize");
}
