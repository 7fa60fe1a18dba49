//! Adversarial review of `evloop::sync` (rule 1 and rule 2 of ARCHITECTURE.md): user
//! code — a waker's `wake` / `clone` / drop, an item's `Drop` or `Ord` — that re-enters
//! the very primitive that called it, and wakers / destructors that panic in the middle
//! of a batch.
//!
//! Everything is polled by hand with a custom `Waker`, outside any loop (the loop-local
//! primitives work there: nothing to bind to, no task to cancel). The primitive a hook
//! re-enters is reached through a thread-local clone, since a `Wake` type must be
//! `Send + Sync`.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Wake, Waker};

use evloop::sync::{
    Barrier, Condition, Event, Lock, PriorityQueue, Queue, Semaphore, SharedEvent, SharedMutex,
    broadcast, mpsc, watch,
};

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

/// A waker whose `wake` and final drop call plain functions (the hooks reach the
/// primitive through a thread-local).
struct Hooked {
    on_wake: fn(),
    on_drop: fn(),
}

impl Wake for Hooked {
    fn wake(self: Arc<Self>) {
        (self.on_wake)();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        (self.on_wake)();
    }
}

impl Drop for Hooked {
    fn drop(&mut self) {
        (self.on_drop)();
    }
}

fn hooked(on_wake: fn(), on_drop: fn()) -> Waker {
    Waker::from(Arc::new(Hooked { on_wake, on_drop }))
}

fn nothing() {}

fn poll<F: Future + ?Sized>(fut: std::pin::Pin<&mut F>, waker: &Waker) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(waker))
}

fn noop() -> Waker {
    Waker::noop().clone()
}

thread_local! {
    static HITS: Cell<u32> = const { Cell::new(0) };
}

fn hit() {
    HITS.with(|h| h.set(h.get() + 1));
}

fn hits() -> u32 {
    HITS.with(Cell::get)
}

fn panicky() {
    hit();
    panic!("review: this waker panics");
}

// ---------------------------------------------------------------------------------
// 1. Re-entry from a waker's wake or drop
// ---------------------------------------------------------------------------------

thread_local! {
    static LOCK: RefCell<Option<Lock>> = const { RefCell::new(None) };
}

fn lock_try() {
    hit();
    LOCK.with(|l| {
        let l = l.borrow();
        let l = l.as_ref().unwrap();
        drop(l.try_lock());
        let _ = l.locked();
    });
}

/// Pins: a lock waiter's waker whose `wake` and whose drop call `try_lock` on the same
/// lock (a release wakes it; a re-poll with another waker drops the old one) must not
/// meet a held `RefCell` borrow.
#[test]
fn lock_waker_wake_and_drop_reenter_try_lock() {
    let m = Lock::default();
    LOCK.with(|l| *l.borrow_mut() = Some(m.clone()));
    let g = m.try_lock().unwrap();
    let mut fut = pin!(m.lock());
    {
        let w = hooked(lock_try, lock_try);
        assert!(poll(fut.as_mut(), &w).is_pending());
    } // the lock's wait list now holds the only reference to `w`
    let before = hits();
    // A second poll with another waker drops the first one (its drop hook runs).
    assert!(poll(fut.as_mut(), &hooked(lock_try, nothing)).is_pending());
    assert!(hits() > before, "the replaced waker was dropped");
    drop(g); // wakes the second waker: its wake hook calls try_lock
    assert!(matches!(poll(fut.as_mut(), &noop()), Poll::Ready(Ok(_))));
    LOCK.with(|l| l.borrow_mut().take());
}

thread_local! {
    static SEM: RefCell<Option<Semaphore>> = const { RefCell::new(None) };
}

fn sem_reenter() {
    hit();
    SEM.with(|s| {
        let s = s.borrow();
        let s = s.as_ref().unwrap();
        let _ = s.locked();
        drop(s.try_acquire());
    });
}

/// Pins: a semaphore waiter's waker re-entering `locked` / `try_acquire` from its wake
/// (on release) and its drop (when the acquire future is dropped after its grant).
#[test]
fn semaphore_waker_wake_and_drop_reenter() {
    let s = Semaphore::new(0);
    SEM.with(|x| *x.borrow_mut() = Some(s.clone()));
    let mut a = Box::pin(s.acquire());
    {
        let w = hooked(sem_reenter, sem_reenter);
        assert!(poll(a.as_mut(), &w).is_pending());
    }
    let before = hits();
    s.release(); // grant + wake (hook runs)
    // Dropped after the grant: the permit goes back, the waker is dropped (hook runs).
    drop(a);
    assert!(hits() >= before + 2);
    assert_eq!(s.available(), 1);
    SEM.with(|x| x.borrow_mut().take());
}

thread_local! {
    static EVENT: RefCell<Option<Event>> = const { RefCell::new(None) };
}

fn event_reenter() {
    hit();
    EVENT.with(|e| {
        let e = e.borrow();
        let e = e.as_ref().unwrap();
        e.clear();
        // A new wait pushes a node: needs the waiters' borrow.
        let mut w = pin!(e.wait());
        let _ = poll(w.as_mut(), &noop());
        e.set();
    });
}

/// Pins: an event waiter's waker whose wake and drop clear the event, queue a new wait
/// and set it again, from inside `set` and from the waiter's removal.
#[test]
fn event_waker_wake_and_drop_reenter_wait_and_set() {
    let e = Event::new();
    EVENT.with(|x| *x.borrow_mut() = Some(e.clone()));
    let mut fut = pin!(e.wait());
    {
        let w = hooked(event_reenter, event_reenter);
        assert!(poll(fut.as_mut(), &w).is_pending());
    }
    let before = hits();
    e.set();
    assert!(hits() > before, "wake hook ran");
    assert!(matches!(poll(fut.as_mut(), &noop()), Poll::Ready(Ok(()))));
    assert!(e.is_set());
    EVENT.with(|x| x.borrow_mut().take());
}

thread_local! {
    static COND: RefCell<Option<Condition>> = const { RefCell::new(None) };
}

fn cond_reenter() {
    hit();
    COND.with(|c| {
        let c = c.borrow();
        let c = c.as_ref().unwrap();
        // Lock held by the notifier: a nested notify is legal and borrows the list.
        let _ = c.notify(1);
    });
}

/// Pins: a condition waiter's waker that notifies again from its wake (inside
/// `notify_all`) and from its drop.
#[test]
fn condition_waker_reenters_notify() {
    let c = Condition::new();
    COND.with(|x| *x.borrow_mut() = Some(c.clone()));
    let g = c.lock().try_lock().unwrap();
    let mut a = Box::pin(c.wait(g));
    {
        let w = hooked(cond_reenter, cond_reenter);
        assert!(poll(a.as_mut(), &w).is_pending());
    }
    let g = c.lock().try_lock().unwrap();
    let mut b = Box::pin(c.wait(g));
    {
        let w = hooked(cond_reenter, cond_reenter);
        assert!(poll(b.as_mut(), &w).is_pending());
    }
    let g = c.lock().try_lock().unwrap();
    let before = hits();
    c.notify_all().unwrap();
    assert!(hits() >= before + 2);
    drop(g);
    assert!(matches!(poll(a.as_mut(), &noop()), Poll::Ready(Ok(_))));
    drop(a);
    assert!(matches!(poll(b.as_mut(), &noop()), Poll::Ready(Ok(_))));
    drop(b);
    COND.with(|x| x.borrow_mut().take());
}

thread_local! {
    static BARRIER: RefCell<Option<Barrier>> = const { RefCell::new(None) };
}

fn barrier_reenter() {
    hit();
    BARRIER.with(|b| {
        let b = b.borrow();
        let b = b.as_ref().unwrap();
        let _ = b.n_waiting();
        let _ = b.broken();
    });
}

/// Pins: a barrier waiter's waker re-entering `n_waiting` while the last arrival
/// releases the round, and from its drop.
#[test]
fn barrier_waker_reenters_n_waiting() {
    let b = Barrier::new(2);
    BARRIER.with(|x| *x.borrow_mut() = Some(b.clone()));
    let mut first = pin!(b.wait());
    {
        let w = hooked(barrier_reenter, barrier_reenter);
        assert!(poll(first.as_mut(), &w).is_pending());
    }
    let mut last = pin!(b.wait());
    assert!(matches!(poll(last.as_mut(), &noop()), Poll::Ready(Ok(1))));
    assert!(matches!(poll(first.as_mut(), &noop()), Poll::Ready(Ok(0))));
    BARRIER.with(|x| x.borrow_mut().take());
}

thread_local! {
    static QUEUE: RefCell<Option<Queue<u32>>> = const { RefCell::new(None) };
}

fn queue_reenter() {
    hit();
    QUEUE.with(|q| {
        let q = q.borrow();
        let q = q.as_ref().unwrap();
        let _ = q.qsize();
        let _ = q.get_nowait();
        let _ = q.put_nowait(99);
    });
}

/// Pins: a queue getter's waker that calls `qsize` / `get_nowait` / `put_nowait` from
/// its wake (inside `put_nowait`) and from its drop (when the getter takes its item).
#[test]
fn queue_getter_waker_reenters_put_and_get() {
    let q = Queue::new(0);
    QUEUE.with(|x| *x.borrow_mut() = Some(q.clone()));
    let mut g = pin!(q.get());
    {
        let w = hooked(queue_reenter, queue_reenter);
        assert!(poll(g.as_mut(), &w).is_pending());
    }
    let before = hits();
    q.put_nowait(1).unwrap();
    assert!(hits() > before);
    // The waker's wake found 1 claimed by `g` (get_nowait failed) and put 99; its drop
    // (the last reference, right after the wake) took the next item in order, 1, as
    // asyncio's get_nowait would; `g` is owed an item and gets the one left.
    assert!(matches!(poll(g.as_mut(), &noop()), Poll::Ready(Ok(99))));
    QUEUE.with(|x| x.borrow_mut().take());
}

// ---------------------------------------------------------------------------------
// 1b. Re-entry from a user value's Drop / Ord
// ---------------------------------------------------------------------------------

thread_local! {
    static ITEM_QUEUE: RefCell<Option<Queue<Reenter>>> = const { RefCell::new(None) };
    static REENTERED: Cell<u32> = const { Cell::new(0) };
}

/// An item whose drop re-enters its queue (once per item: a fresh `Reenter(false)` put
/// back does not re-enter again).
struct Reenter(bool);

impl Drop for Reenter {
    fn drop(&mut self) {
        if !self.0 {
            return;
        }
        REENTERED.with(|r| r.set(r.get() + 1));
        ITEM_QUEUE.with(|q| {
            if let Some(q) = q.borrow().as_ref() {
                let _ = q.qsize();
                let _ = q.put_nowait(Reenter(false));
                let _ = q.full();
            }
        });
    }
}

/// Pins: queue items whose Drop re-enters the queue, dropped by `shutdown(true)`, by a
/// dropped waiting put, and by a put on a shut-down queue.
#[test]
fn queue_items_whose_drop_reenters_the_queue() {
    let q = Queue::new(1);
    ITEM_QUEUE.with(|x| *x.borrow_mut() = Some(q.clone()));
    q.put_nowait(Reenter(true)).ok().unwrap();
    // A waiting put holds its value in the queue's putters; dropping the future drops it.
    {
        let mut p = Box::pin(q.put(Reenter(true)));
        assert!(poll(p.as_mut(), &noop()).is_pending());
        drop(p);
    }
    assert_eq!(REENTERED.with(Cell::get), 1);
    // A waiting put whose value is dropped by shutdown(true), and the buffered one.
    let mut p = Box::pin(q.put(Reenter(true)));
    assert!(poll(p.as_mut(), &noop()).is_pending());
    q.shutdown(true);
    assert_eq!(REENTERED.with(Cell::get), 3);
    assert!(matches!(poll(p.as_mut(), &noop()), Poll::Ready(Err(_))));
    drop(p);
    ITEM_QUEUE.with(|x| x.borrow_mut().take());
}

thread_local! {
    static PQ: RefCell<Option<PriorityQueue<Nosy>>> = const { RefCell::new(None) };
}

/// An item whose `Ord` looks at the queue it is in (say, to log its size).
#[derive(PartialEq, Eq)]
struct Nosy(u32);

impl PartialOrd for Nosy {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Nosy {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        PQ.with(|q| {
            if let Some(q) = q.borrow().as_ref() {
                let _ = q.qsize();
            }
        });
        self.0.cmp(&other.0)
    }
}

/// A documented limitation (`PriorityQueue` docs, ARCHITECTURE rule 1): `Ord::cmp` is
/// called through `BinaryHeap` while the queue's state is borrowed, so an `Ord` that
/// looks at the same queue panics ("already borrowed") — a clear panic, not undefined
/// behaviour or a hang — and the queue stays usable: the item is in it, and both come
/// out.
#[test]
fn priority_queue_ord_that_reenters_the_queue_panics_and_the_queue_stays_usable() {
    let q = PriorityQueue::new(0);
    PQ.with(|x| *x.borrow_mut() = Some(q.clone()));
    q.put_nowait(Nosy(2)).ok().unwrap();
    let second = catch_unwind(AssertUnwindSafe(|| q.put_nowait(Nosy(1)).ok().unwrap()));
    PQ.with(|x| x.borrow_mut().take());
    let payload = second.expect_err("Ord::cmp re-entering qsize() panics");
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(message.contains("borrow"), "{message}");
    assert_eq!(q.qsize(), 2);
    let mut out: Vec<u32> = (0..2).map(|_| q.get_nowait().ok().unwrap().0).collect();
    out.sort();
    assert_eq!(out, [1, 2]);
}

// ---------------------------------------------------------------------------------
// 1c. Waker::clone is user code too (a hand-written RawWaker)
// ---------------------------------------------------------------------------------

thread_local! {
    static CLONE_LOCK: RefCell<Option<Lock>> = const { RefCell::new(None) };
}

fn raw_clone(data: *const ()) -> RawWaker {
    CLONE_LOCK.with(|l| {
        if let Some(l) = l.borrow().as_ref() {
            let _ = l.locked();
            drop(l.try_lock());
        }
    });
    RawWaker::new(data, &VTABLE)
}
fn raw_noop(_: *const ()) {}
static VTABLE: RawWakerVTable = RawWakerVTable::new(raw_clone, raw_noop, raw_noop, raw_noop);

/// A documented exception to rule 1 (ARCHITECTURE): a loop-local primitive clones the
/// waker of a wait it queues under its `RefCell` borrow (cloning outside would cost a
/// second borrow on every contended wait; evloop's own and `std::task::Wake` wakers
/// cannot re-enter). A hand-written `RawWaker` whose `clone` looks at the same lock
/// panics ("already borrowed") — a clear panic, not undefined behaviour or a hang —
/// and the lock is unchanged: nothing was queued, and it is free once released. (The
/// thread-safe types clone before they lock: see `sync_review_threads.rs`.)
#[test]
fn lock_waiter_clone_that_reenters_the_lock_panics_and_leaves_it_unchanged() {
    let m = Lock::default();
    let g = m.try_lock().unwrap();
    CLONE_LOCK.with(|l| *l.borrow_mut() = Some(m.clone()));
    // SAFETY: the vtable's functions ignore the data pointer.
    let waker = unsafe { Waker::from_raw(RawWaker::new(std::ptr::null(), &VTABLE)) };
    let mut fut = Box::pin(m.lock());
    let polled = catch_unwind(AssertUnwindSafe(|| poll(fut.as_mut(), &waker).is_pending()));
    CLONE_LOCK.with(|l| l.borrow_mut().take());
    drop(fut);
    assert!(polled.is_err(), "the re-entrant clone panics");
    drop(g);
    assert!(
        m.try_lock().is_some(),
        "nothing was queued: the lock is free"
    );
}

// ---------------------------------------------------------------------------------
// 1d. The thread-safe types
// ---------------------------------------------------------------------------------

thread_local! {
    static SMUTEX: RefCell<Option<SharedMutex<u32>>> = const { RefCell::new(None) };
    static SEVENT: RefCell<Option<SharedEvent>> = const { RefCell::new(None) };
    static MPSC_TX: RefCell<Option<mpsc::Sender<u32>>> = const { RefCell::new(None) };
    static BCAST_TX: RefCell<Option<broadcast::Sender<u32>>> = const { RefCell::new(None) };
}

fn smutex_reenter() {
    hit();
    SMUTEX.with(|m| {
        let m = m.borrow();
        let m = m.as_ref().unwrap();
        let _ = m.locked();
        drop(m.try_lock());
    });
}

/// Pins: a `SharedMutex` waiter's waker re-entering `try_lock` / `locked` from its wake
/// (on unlock) and its drop: a self-deadlock on the std mutex if either ran under it.
#[test]
fn shared_mutex_waker_reenters_try_lock() {
    let m = SharedMutex::new(0);
    SMUTEX.with(|x| *x.borrow_mut() = Some(m.clone()));
    let g = m.try_lock().unwrap();
    let mut fut = Box::pin(m.lock());
    {
        let w = hooked(smutex_reenter, smutex_reenter);
        assert!(poll(fut.as_mut(), &w).is_pending());
    }
    assert!(poll(fut.as_mut(), &hooked(smutex_reenter, smutex_reenter)).is_pending());
    drop(g);
    assert!(matches!(poll(fut.as_mut(), &noop()), Poll::Ready(Ok(_))));
    drop(fut);
    SMUTEX.with(|x| x.borrow_mut().take());
}

fn sevent_reenter() {
    hit();
    SEVENT.with(|e| {
        let e = e.borrow();
        let e = e.as_ref().unwrap();
        let _ = e.is_set();
        e.clear();
        e.set();
    });
}

/// Pins: a `SharedEvent` waiter's waker that clears and sets the event from its wake.
#[test]
fn shared_event_waker_reenters_set_and_clear() {
    let e = SharedEvent::new();
    SEVENT.with(|x| *x.borrow_mut() = Some(e.clone()));
    let mut fut = Box::pin(e.wait());
    {
        let w = hooked(sevent_reenter, sevent_reenter);
        assert!(poll(fut.as_mut(), &w).is_pending());
    }
    e.set();
    assert!(matches!(poll(fut.as_mut(), &noop()), Poll::Ready(Ok(()))));
    drop(fut);
    SEVENT.with(|x| x.borrow_mut().take());
}

fn mpsc_reenter() {
    hit();
    MPSC_TX.with(|t| {
        if let Some(t) = t.borrow().as_ref() {
            let _ = t.is_closed();
            let _ = t.try_send(7);
        }
    });
}

/// Pins: a waiting bounded sender's waker re-entering `try_send` from its wake (on a
/// receive) and its drop; the receiver's waker likewise from a send.
#[test]
fn mpsc_wakers_reenter_try_send() {
    let (tx, mut rx) = mpsc::channel::<u32>(1);
    MPSC_TX.with(|x| *x.borrow_mut() = Some(tx.clone()));
    tx.try_send(1).unwrap();
    let mut s = Box::pin(tx.send(2));
    {
        let w = hooked(mpsc_reenter, mpsc_reenter);
        assert!(poll(s.as_mut(), &w).is_pending());
    }
    let before = hits();
    assert_eq!(rx.try_recv(), Ok(1)); // grants the slot: wake hook's try_send finds it Full
    assert!(hits() > before);
    assert!(matches!(poll(s.as_mut(), &noop()), Poll::Ready(Ok(()))));
    drop(s);
    assert_eq!(rx.try_recv(), Ok(2));
    // The receiver's waker.
    {
        let mut r = Box::pin(rx.recv());
        {
            let w = hooked(mpsc_reenter, mpsc_reenter);
            assert!(poll(r.as_mut(), &w).is_pending());
        }
        tx.try_send(3).unwrap();
        assert!(matches!(
            poll(r.as_mut(), &noop()),
            Poll::Ready(Ok(Some(3)))
        ));
    }
    MPSC_TX.with(|x| x.borrow_mut().take());
    drop(tx);
}

thread_local! {
    static DROP_TX: RefCell<Option<mpsc::UnboundedSender<SendsOnDrop>>> = const { RefCell::new(None) };
}

struct SendsOnDrop(bool);

impl Drop for SendsOnDrop {
    fn drop(&mut self) {
        if self.0 {
            hit();
            DROP_TX.with(|t| {
                if let Some(t) = t.borrow().as_ref() {
                    let _ = t.is_closed();
                    let _ = t.send(SendsOnDrop(false));
                }
            });
        }
    }
}

/// Pins: items left in an mpsc channel whose Drop sends into the same channel, dropped
/// by the receiver's drop (a self-deadlock if dropped under the channel's lock).
#[test]
fn mpsc_items_whose_drop_reenters_the_channel() {
    let (tx, rx) = mpsc::unbounded_channel();
    DROP_TX.with(|x| *x.borrow_mut() = Some(tx.clone()));
    tx.send(SendsOnDrop(true)).ok().unwrap();
    tx.send(SendsOnDrop(true)).ok().unwrap();
    let before = hits();
    drop(rx);
    assert_eq!(hits(), before + 2);
    DROP_TX.with(|x| x.borrow_mut().take());
}

thread_local! {
    static BCAST_DROP_TX: RefCell<Option<broadcast::Sender<Arc<BroadcastsOnDrop>>>> = const { RefCell::new(None) };
}

struct BroadcastsOnDrop;

impl Drop for BroadcastsOnDrop {
    fn drop(&mut self) {
        hit();
        BCAST_DROP_TX.with(|t| {
            if let Some(t) = t.borrow().as_ref() {
                let _ = t.receiver_count();
            }
        });
    }
}

fn bcast_reenter() {
    hit();
    BCAST_TX.with(|t| {
        if let Some(t) = t.borrow().as_ref() {
            let _ = t.receiver_count();
        }
    });
}

/// Pins: a broadcast message pushed out of the ring, whose Drop re-enters the channel,
/// and a receiver's waker re-entering from its wake.
#[test]
fn broadcast_pushed_out_value_and_waker_reenter() {
    let (tx, _rx) = broadcast::channel::<Arc<BroadcastsOnDrop>>(1);
    BCAST_DROP_TX.with(|x| *x.borrow_mut() = Some(tx.clone()));
    tx.send(Arc::new(BroadcastsOnDrop)).ok().unwrap();
    let before = hits();
    tx.send(Arc::new(BroadcastsOnDrop)).ok().unwrap(); // pushes the first out
    assert_eq!(hits(), before + 1);
    BCAST_DROP_TX.with(|x| x.borrow_mut().take());

    let (tx, mut rx) = broadcast::channel::<u32>(4);
    BCAST_TX.with(|x| *x.borrow_mut() = Some(tx.clone()));
    let mut r = Box::pin(rx.recv());
    {
        let w = hooked(bcast_reenter, bcast_reenter);
        assert!(poll(r.as_mut(), &w).is_pending());
    }
    tx.send(1).unwrap();
    assert!(matches!(poll(r.as_mut(), &noop()), Poll::Ready(Ok(1))));
    drop(r);
    BCAST_TX.with(|x| x.borrow_mut().take());
}

thread_local! {
    static WATCH_TX: RefCell<Option<watch::Sender<Option<WatchOnDrop>>>> = const { RefCell::new(None) };
}

struct WatchOnDrop;

impl Drop for WatchOnDrop {
    fn drop(&mut self) {
        hit();
        WATCH_TX.with(|t| {
            if let Some(t) = t.borrow().as_ref() {
                // Reads the value: a deadlock if the old value were dropped under the
                // value's write lock.
                let _ = t.borrow().is_some();
                let _ = t.receiver_count();
            }
        });
    }
}

/// Pins: the old watch value's Drop re-entering the channel (borrow, receiver_count).
#[test]
fn watch_old_value_drop_reenters_the_channel() {
    let (tx, _rx) = watch::channel(Some(WatchOnDrop));
    WATCH_TX.with(|x| *x.borrow_mut() = Some(tx.clone()));
    let before = hits();
    tx.send(None).ok().unwrap();
    assert_eq!(hits(), before + 1);
    WATCH_TX.with(|x| x.borrow_mut().take());
}

// ---------------------------------------------------------------------------------
// 2. A panic in one wake or drop does not lose the rest of its batch
// ---------------------------------------------------------------------------------

/// Pins: `Event::set` with three waiters whose first waker panics: the other two are
/// still woken, the panic comes out of `set`, and every waiter then returns `Ok`.
#[test]
fn event_set_with_a_panicking_first_waker_wakes_the_rest() {
    let e = Event::new();
    let mut waits: Vec<_> = (0..3).map(|_| Box::pin(e.wait())).collect();
    assert!(poll(waits[0].as_mut(), &hooked(panicky, nothing)).is_pending());
    for w in &mut waits[1..] {
        assert!(poll(w.as_mut(), &hooked(hit, nothing)).is_pending());
    }
    let before = hits();
    assert!(catch_unwind(AssertUnwindSafe(|| e.set())).is_err());
    assert_eq!(hits(), before + 3, "all three wakers ran");
    assert!(e.is_set());
    for w in &mut waits {
        assert!(matches!(poll(w.as_mut(), &noop()), Poll::Ready(Ok(()))));
    }
}

/// Pins: `Condition::notify_all` whose first waker panics still notifies the others.
#[test]
fn condition_notify_all_with_a_panicking_first_waker_notifies_the_rest() {
    let c = Condition::new();
    let mut waits = Vec::new();
    for i in 0..3 {
        let g = c.lock().try_lock().unwrap();
        let mut w = Box::pin(c.wait(g));
        let waker = if i == 0 {
            hooked(panicky, nothing)
        } else {
            hooked(hit, nothing)
        };
        assert!(poll(w.as_mut(), &waker).is_pending());
        waits.push(w);
    }
    let g = c.lock().try_lock().unwrap();
    let before = hits();
    assert!(catch_unwind(AssertUnwindSafe(|| c.notify_all())).is_err());
    assert_eq!(hits(), before + 3);
    drop(g);
    for mut w in waits {
        assert!(matches!(poll(w.as_mut(), &noop()), Poll::Ready(Ok(_))));
    }
}

/// Pins: the last arrival of a barrier whose first waiter's waker panics: every waiter
/// is released with its index, and the barrier is ready for the next round.
#[test]
fn barrier_release_with_a_panicking_waker_releases_everyone() {
    let b = Barrier::new(3);
    let mut w0 = Box::pin(b.wait());
    let mut w1 = Box::pin(b.wait());
    assert!(poll(w0.as_mut(), &hooked(panicky, nothing)).is_pending());
    assert!(poll(w1.as_mut(), &hooked(hit, nothing)).is_pending());
    let mut last = Box::pin(b.wait());
    assert!(catch_unwind(AssertUnwindSafe(|| poll(last.as_mut(), &noop()))).is_err());
    assert!(matches!(poll(w0.as_mut(), &noop()), Poll::Ready(Ok(0))));
    assert!(matches!(poll(w1.as_mut(), &noop()), Poll::Ready(Ok(1))));
    drop(last);
    assert_eq!(b.n_waiting(), 0);
    // Next round works.
    let mut a = Box::pin(b.wait());
    assert!(poll(a.as_mut(), &noop()).is_pending());
    assert_eq!(b.n_waiting(), 1);
}

thread_local! {
    static DROPPED: Cell<u32> = const { Cell::new(0) };
}

struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        DROPPED.with(|d| d.set(d.get() + 1));
        panic!("review: this item's drop panics");
    }
}

/// Pins: `Queue::shutdown(true)` with three buffered items whose Drop panics and a
/// waiting put whose value panics too: every value is dropped, the waiting put is woken
/// with `QueueShutDown`, a waiting `join` is released.
#[test]
fn queue_shutdown_immediate_with_panicking_items_drops_them_all() {
    let q = Queue::new(3);
    for _ in 0..3 {
        q.put_nowait(PanicOnDrop).ok().unwrap();
    }
    let mut p = Box::pin(q.put(PanicOnDrop));
    assert!(poll(p.as_mut(), &hooked(hit, nothing)).is_pending());
    let mut j = Box::pin(q.join());
    assert!(poll(j.as_mut(), &hooked(hit, nothing)).is_pending());
    let before = hits();
    assert!(catch_unwind(AssertUnwindSafe(|| q.shutdown(true))).is_err());
    assert_eq!(DROPPED.with(Cell::get), 4, "every item dropped");
    assert_eq!(hits(), before + 2, "the putter and the joiner were woken");
    assert!(matches!(poll(p.as_mut(), &noop()), Poll::Ready(Err(_))));
    assert!(matches!(poll(j.as_mut(), &noop()), Poll::Ready(Ok(()))));
    assert_eq!(q.qsize(), 0);
}

/// Pins: `Queue::shutdown(false)` with three waiting getters, the first waker panics:
/// all three are woken and fail with `QueueShutDown`.
#[test]
fn queue_shutdown_with_a_panicking_getter_waker_wakes_the_rest() {
    let q = Queue::<u32>::new(0);
    let mut gets: Vec<_> = (0..3).map(|_| Box::pin(q.get())).collect();
    assert!(poll(gets[0].as_mut(), &hooked(panicky, nothing)).is_pending());
    for g in &mut gets[1..] {
        assert!(poll(g.as_mut(), &hooked(hit, nothing)).is_pending());
    }
    let before = hits();
    assert!(catch_unwind(AssertUnwindSafe(|| q.shutdown(false))).is_err());
    assert_eq!(hits(), before + 3);
    for g in &mut gets {
        assert!(matches!(poll(g.as_mut(), &noop()), Poll::Ready(Err(_))));
    }
}

/// Pins: a broadcast send to three waiting receivers whose first waker panics: all are
/// woken and all receive the message.
#[test]
fn broadcast_send_with_a_panicking_waker_wakes_every_receiver() {
    let (tx, rx) = broadcast::channel::<u32>(4);
    let mut rxs = [rx.resubscribe(), rx.resubscribe(), rx];
    let before = hits();
    {
        let mut recvs: Vec<_> = rxs.iter_mut().map(|r| Box::pin(r.recv())).collect();
        assert!(poll(recvs[0].as_mut(), &hooked(panicky, nothing)).is_pending());
        for r in &mut recvs[1..] {
            assert!(poll(r.as_mut(), &hooked(hit, nothing)).is_pending());
        }
        assert!(catch_unwind(AssertUnwindSafe(|| tx.send(5))).is_err());
        assert_eq!(hits(), before + 3);
        for r in &mut recvs {
            assert!(matches!(poll(r.as_mut(), &noop()), Poll::Ready(Ok(5))));
        }
    }
}

/// Pins: closing an mpsc channel with two waiting senders whose first waker panics:
/// both are woken and fail with their values.
#[test]
fn mpsc_close_with_a_panicking_sender_waker_wakes_the_rest() {
    let (tx, mut rx) = mpsc::channel::<u32>(1);
    tx.try_send(0).unwrap();
    let mut a = Box::pin(tx.send(1));
    let mut b = Box::pin(tx.send(2));
    assert!(poll(a.as_mut(), &hooked(panicky, nothing)).is_pending());
    assert!(poll(b.as_mut(), &hooked(hit, nothing)).is_pending());
    let before = hits();
    assert!(catch_unwind(AssertUnwindSafe(|| rx.close())).is_err());
    assert_eq!(hits(), before + 2);
    assert!(matches!(
        poll(a.as_mut(), &noop()),
        Poll::Ready(Err(mpsc::SendError::Closed(1)))
    ));
    assert!(matches!(
        poll(b.as_mut(), &noop()),
        Poll::Ready(Err(mpsc::SendError::Closed(2)))
    ));
    assert_eq!(rx.try_recv(), Ok(0));
}

/// Pins: a semaphore release of a permit to a waiter whose waker panics: the grant is
/// complete (the waiter holds it) and the next release serves the next waiter.
#[test]
fn semaphore_grant_to_a_panicking_waker_is_complete() {
    let s = Semaphore::new(0);
    let mut a = Box::pin(s.acquire());
    let mut b = Box::pin(s.acquire());
    assert!(poll(a.as_mut(), &hooked(panicky, nothing)).is_pending());
    assert!(poll(b.as_mut(), &hooked(hit, nothing)).is_pending());
    assert!(catch_unwind(AssertUnwindSafe(|| s.release())).is_err());
    assert!(matches!(poll(a.as_mut(), &noop()), Poll::Ready(Ok(_))));
    s.release();
    assert!(matches!(poll(b.as_mut(), &noop()), Poll::Ready(Ok(_))));
}
