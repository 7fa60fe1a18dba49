//! loom models of the wake protocols of the thread-safe half of `evloop::sync` (SPEC Q2,
//! Q9): each races the one step that must wake a waiter against that waiter's
//! registration, or a hand-over against the waiter going away, and checks that the
//! waiter is woken exactly once and finds what it waited for — no lost wake-up, no lost
//! or duplicated permit, slot or item. The `SharedMutex` models also check, through
//! loom's `UnsafeCell`, that no two accesses to the value overlap. Run with
//! `RUSTFLAGS="--cfg loom" cargo test --release --lib --target-dir target/loom loom_models`.
//!
//! Owns: nothing but the models. Must not touch: the primitives (only their public or
//! crate API is used).

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use crate::loom::models::{CountingWaker, model};
use crate::sync::{SharedEvent, SharedMutex, SharedSemaphore, mpsc, watch};

fn poll_with<F: Future + ?Sized>(fut: Pin<&mut F>, waker: &Arc<CountingWaker>) -> Poll<F::Output> {
    let waker = Waker::from(waker.clone());
    fut.poll(&mut Context::from_waker(&waker))
}

/// The outcome of a wait whose first poll raced the step that completes it: either
/// that poll saw it (and nobody woke the waiter), or the waiter was woken exactly once
/// and its next poll is ready.
fn settle<F: Future + ?Sized>(
    first: Poll<F::Output>,
    mut fut: Pin<&mut F>,
    waker: &Arc<CountingWaker>,
) -> F::Output {
    match first {
        Poll::Ready(out) => {
            assert_eq!(waker.wakes(), 0, "a ready poll leaves no waker behind");
            out
        }
        Poll::Pending => {
            assert_eq!(waker.wakes(), 1, "the waiting side is woken exactly once");
            match poll_with(fut.as_mut(), waker) {
                Poll::Ready(out) => out,
                Poll::Pending => panic!("woken, but still pending: a lost wake-up"),
            }
        }
    }
}

/// Drives `fut` to completion the way a task would: poll, and on `Pending` yield until
/// its waker is woken. A lost wake-up leaves this spinning with nothing left to run,
/// which loom reports (the model exceeds its branch budget).
fn wait_loom<F: Future + ?Sized>(mut fut: Pin<&mut F>) -> F::Output {
    let waker = CountingWaker::new();
    loop {
        let seen = waker.wakes();
        if let Poll::Ready(out) = poll_with(fut.as_mut(), &waker) {
            return out;
        }
        while waker.wakes() == seen {
            loom::thread::yield_now();
        }
    }
}

/// An unbounded send racing the receiver's registration: the item is received.
#[test]
fn mpsc_send_races_recv_registration() {
    model(|| {
        let (tx, mut rx) = mpsc::unbounded_channel::<u32>();
        let sender = {
            let tx = tx.clone();
            loom::thread::spawn(move || tx.send(7).unwrap())
        };
        let waker = CountingWaker::new();
        let mut recv = pin!(rx.recv());
        let first = poll_with(recv.as_mut(), &waker);
        sender.join().unwrap();
        assert_eq!(settle(first, recv, &waker).unwrap(), Some(7));
        drop(tx);
    });
}

/// The last sender leaving racing the receiver's registration: the receiver ends.
#[test]
fn mpsc_last_sender_drop_races_recv_registration() {
    model(|| {
        let (tx, mut rx) = mpsc::unbounded_channel::<u32>();
        let dropper = loom::thread::spawn(move || drop(tx));
        let waker = CountingWaker::new();
        let mut recv = pin!(rx.recv());
        let first = poll_with(recv.as_mut(), &waker);
        dropper.join().unwrap();
        assert_eq!(settle(first, recv, &waker).unwrap(), None);
    });
}

/// A bounded send waiting on a full channel racing the receive that frees a slot: the
/// send completes once, and its item follows the first one.
#[test]
fn mpsc_bounded_send_on_a_full_channel_races_recv() {
    model(|| {
        let (tx, mut rx) = mpsc::channel::<u32>(1);
        tx.try_send(1).unwrap();
        let receiver = loom::thread::spawn(move || {
            assert_eq!(rx.try_recv(), Ok(1));
            rx
        });
        let waker = CountingWaker::new();
        let mut send = pin!(tx.send(2));
        let first = poll_with(send.as_mut(), &waker);
        let mut rx = receiver.join().unwrap();
        assert!(settle(first, send, &waker).is_ok());
        assert_eq!(rx.try_recv(), Ok(2));
        assert_eq!(rx.try_recv(), Err(mpsc::TryRecvError::Empty));
    });
}

/// A waiting send handed the freed slot and dropped, racing that receive: the slot
/// passes to the next waiting send — never lost, never given twice.
#[test]
fn mpsc_granted_send_dropped_races_recv() {
    model(|| {
        let (tx, mut rx) = mpsc::channel::<u32>(1);
        tx.try_send(1).unwrap();
        let (wa, wb) = (CountingWaker::new(), CountingWaker::new());
        let mut a = Box::pin(tx.send(2));
        let mut b = Box::pin(tx.send(3));
        assert!(poll_with(a.as_mut(), &wa).is_pending());
        assert!(poll_with(b.as_mut(), &wb).is_pending());
        let receiver = loom::thread::spawn(move || {
            assert_eq!(rx.try_recv(), Ok(1));
            rx
        });
        drop(a);
        let mut rx = receiver.join().unwrap();
        assert!(settle(Poll::Pending, b.as_mut(), &wb).is_ok());
        assert_eq!(rx.try_recv(), Ok(3));
        assert_eq!(rx.try_recv(), Err(mpsc::TryRecvError::Empty));
        assert!(tx.try_send(4).is_ok(), "exactly one slot: free again");
    });
}

/// Two senders on their own threads and a receiver taking batches: every item arrives
/// exactly once, in order per sender, and the end of the channel is seen — whatever
/// the interleaving of pushes, batch swaps and registrations.
#[test]
fn mpsc_two_senders_and_a_batching_receiver() {
    for bound in [None, Some(1)] {
        model(move || {
            let (tx, mut rx) = match bound {
                None => {
                    let (tx, rx) = mpsc::unbounded_channel::<(u8, u8)>();
                    (Either::Unbounded(tx), Either2::Unbounded(rx))
                }
                Some(capacity) => {
                    let (tx, rx) = mpsc::channel::<(u8, u8)>(capacity);
                    (Either::Bounded(tx), Either2::Bounded(rx))
                }
            };
            let senders: Vec<_> = (0..2u8)
                .map(|s| {
                    let tx = tx.clone();
                    loom::thread::spawn(move || {
                        for seq in 0..2u8 {
                            tx.send((s, seq));
                        }
                    })
                })
                .collect();
            drop(tx);
            let mut next = [0u8; 2];
            while let Some((s, seq)) = rx.recv() {
                assert_eq!(seq, next[s as usize], "in order per sender, exactly once");
                next[s as usize] += 1;
            }
            assert_eq!(next, [2, 2]);
            for sender in senders {
                sender.join().unwrap();
            }
        });
    }
}

/// Either sender, driven with [`wait_loom`].
#[derive(Clone)]
enum Either {
    Bounded(mpsc::Sender<(u8, u8)>),
    Unbounded(mpsc::UnboundedSender<(u8, u8)>),
}

impl Either {
    fn send(&self, item: (u8, u8)) {
        match self {
            Either::Bounded(tx) => wait_loom(pin!(tx.send(item))).unwrap(),
            Either::Unbounded(tx) => tx.send(item).unwrap(),
        }
    }
}

/// Either receiver, driven with [`wait_loom`].
enum Either2 {
    Bounded(mpsc::Receiver<(u8, u8)>),
    Unbounded(mpsc::UnboundedReceiver<(u8, u8)>),
}

impl Either2 {
    fn recv(&mut self) -> Option<(u8, u8)> {
        match self {
            Either2::Bounded(rx) => wait_loom(pin!(rx.recv())).unwrap(),
            Either2::Unbounded(rx) => wait_loom(pin!(rx.recv())).unwrap(),
        }
    }
}

/// A `SharedMutex` waiter handed the lock and dropped, racing the release on another
/// thread: the lock passes to the next waiter, and the two holders' accesses to the
/// value never overlap (loom's `UnsafeCell`).
#[test]
fn shared_mutex_granted_waiter_dropped_races_release() {
    model(|| {
        // 'static for the guard to move to the releasing thread (loom leak-checks
        // only its own allocations and `Arc`s).
        let m: &'static SharedMutex<u32> = Box::leak(Box::new(SharedMutex::new(0)));
        let guard = m.try_lock().unwrap();
        let (wa, wb) = (CountingWaker::new(), CountingWaker::new());
        let mut a = Box::pin(m.lock());
        let mut b = Box::pin(m.lock());
        assert!(poll_with(a.as_mut(), &wa).is_pending());
        assert!(poll_with(b.as_mut(), &wb).is_pending());
        let releaser = loom::thread::spawn(move || {
            let mut guard = guard;
            *guard += 1;
        });
        drop(a);
        releaser.join().unwrap();
        let mut guard = settle(Poll::Pending, b.as_mut(), &wb).unwrap();
        *guard += 1;
        assert_eq!(*guard, 2);
        drop(guard);
        drop(b);
        assert!(!m.locked());
    });
}

/// Two threads contending for a `SharedMutex`: each gets it once, in turn, and
/// their accesses to the value never overlap.
#[test]
fn shared_mutex_contended_by_two_threads_excludes() {
    model(|| {
        let m = SharedMutex::new(0u32);
        let other = {
            let m = m.clone();
            loom::thread::spawn(move || {
                *wait_loom(pin!(m.lock())).unwrap() += 1;
            })
        };
        *wait_loom(pin!(m.lock())).unwrap() += 1;
        other.join().unwrap();
        assert_eq!(*m.try_lock().unwrap(), 2);
    });
}

/// A `SharedSemaphore` waiter handed the permit and dropped, racing the release: the
/// permit passes to the next waiter; no permit is lost or created.
#[test]
fn shared_semaphore_granted_waiter_dropped_races_release() {
    model(|| {
        let sem = SharedSemaphore::new(0);
        let (wa, wb) = (CountingWaker::new(), CountingWaker::new());
        let mut a = Box::pin(sem.acquire());
        let mut b = Box::pin(sem.acquire());
        assert!(poll_with(a.as_mut(), &wa).is_pending());
        assert!(poll_with(b.as_mut(), &wb).is_pending());
        let releaser = {
            let sem = sem.clone();
            loom::thread::spawn(move || sem.release())
        };
        drop(a);
        releaser.join().unwrap();
        let permit = settle(Poll::Pending, b.as_mut(), &wb).unwrap();
        assert_eq!(sem.available(), 0);
        drop(permit);
        drop(b);
        assert_eq!(sem.available(), 1);
    });
}

/// `SharedEvent::set` racing a wait's registration: the wait returns.
#[test]
fn shared_event_set_races_wait_registration() {
    model(|| {
        let event = SharedEvent::new();
        let setter = {
            let event = event.clone();
            loom::thread::spawn(move || event.set())
        };
        let waker = CountingWaker::new();
        let mut wait = pin!(event.wait());
        let first = poll_with(wait.as_mut(), &waker);
        setter.join().unwrap();
        settle(first, wait, &waker).unwrap();
    });
}

/// `watch::Sender::send` racing `changed`'s registration: the change is seen, and the
/// value read after it is the new one.
#[test]
fn watch_send_races_changed() {
    model(|| {
        let (tx, mut rx) = watch::channel(0u32);
        let sender = loom::thread::spawn(move || {
            tx.send(1).unwrap();
            tx
        });
        let waker = CountingWaker::new();
        {
            let mut changed = pin!(rx.changed());
            let first = poll_with(changed.as_mut(), &waker);
            let tx = sender.join().unwrap();
            settle(first, changed, &waker).unwrap();
            drop(tx);
        }
        assert_eq!(*rx.borrow_and_update(), 1);
    });
}
