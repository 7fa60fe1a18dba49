//! SPEC §13 Y7 (`evloop::sync::broadcast`, `evloop::sync::watch`), T3:
//!
//! * broadcast: every receiver sees every message sent after it subscribed, in order,
//!   also across the loops of a `LoopGroup` and from plain threads; a receiver more
//!   than `capacity` behind gets `Lagged(n)` with the exact count and continues from
//!   the oldest kept message; `Closed` after the last sender, once drained; `send`
//!   with no receiver gives the value back; a cancelled `recv` returns
//!   `Cancelled` (→ `Error::Cancelled` through `?`) without moving the receiver on;
//!   messages are dropped once read by everyone or pushed out.
//! * watch: the latest value, tokio's version semantics (`has_changed`, `changed`
//!   marks seen, `borrow` does not, clones copy the seen version, `subscribe` has seen
//!   the current value), `changed` waking tasks on two loops and a plain thread,
//!   `Closed` once the senders are gone, `send` failing without receivers while
//!   `send_replace` stores, a cancelled `changed` marking nothing seen.

mod common;
use common::{bounded, run_guarded, yield_times};

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use evloop::sync::{broadcast, watch};
use evloop::{Error, LoopGroup, create_task};

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn handles_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<broadcast::Sender<String>>();
    send_sync::<broadcast::Receiver<String>>();
    send_sync::<watch::Sender<String>>();
    send_sync::<watch::Receiver<String>>();
}

#[test]
fn every_receiver_sees_every_message_after_it_subscribed() {
    let (tx, mut early) = broadcast::channel(16);
    tx.send(0).unwrap();
    let mut late = tx.subscribe();
    let mut later = early.resubscribe();
    for i in 1..=3 {
        assert_eq!(tx.send(i).unwrap(), 3, "three receivers");
    }
    let drain = |rx: &mut broadcast::Receiver<i32>| {
        std::iter::from_fn(|| rx.try_recv().ok()).collect::<Vec<_>>()
    };
    assert_eq!(drain(&mut early), [0, 1, 2, 3]);
    assert_eq!(drain(&mut late), [1, 2, 3]);
    assert_eq!(drain(&mut later), [1, 2, 3]);
    assert_eq!(early.try_recv(), Err(broadcast::TryRecvError::Empty));
    drop(tx);
    assert_eq!(late.try_recv(), Err(broadcast::TryRecvError::Closed));
}

#[test]
fn a_receiver_behind_by_more_than_capacity_lags_then_continues_from_the_oldest() {
    run_guarded(async {
        let (tx, mut slow) = broadcast::channel(4);
        let mut fast = tx.subscribe();
        for i in 0..10 {
            tx.send(i).unwrap();
            assert_eq!(fast.recv().await.unwrap(), i);
        }
        // 10 sent, 4 kept (6..10): the slow receiver missed 6.
        assert_eq!(slow.recv().await, Err(broadcast::RecvError::Lagged(6)));
        for i in 6..10 {
            assert_eq!(slow.recv().await.unwrap(), i);
        }
        // Lagging again, via try_recv.
        for i in 10..15 {
            tx.send(i).unwrap();
        }
        assert_eq!(slow.try_recv(), Err(broadcast::TryRecvError::Lagged(1)));
        assert_eq!(slow.try_recv(), Ok(11));
        drop(tx);
        for i in 12..15 {
            assert_eq!(slow.recv().await.unwrap(), i);
        }
        assert_eq!(slow.recv().await, Err(broadcast::RecvError::Closed));
        let err: Error = broadcast::RecvError::Lagged(6).into();
        assert_eq!(
            err.downcast_ref::<broadcast::RecvError>(),
            Some(&broadcast::RecvError::Lagged(6))
        );
        assert_eq!(err.to_string(), "channel lagged by 6");
        Ok::<(), Error>(())
    })
    .unwrap();
}

#[test]
fn send_without_receivers_gives_the_value_back() {
    let (tx, rx) = broadcast::channel::<String>(2);
    drop(rx);
    assert_eq!(tx.receiver_count(), 0);
    let err = tx.send("lost?".into()).unwrap_err();
    assert_eq!(err.0, "lost?");
    assert_eq!(format!("{err:?}"), "SendError(..)");
    // A new subscriber revives it.
    let mut rx = tx.subscribe();
    assert_eq!(tx.send("kept".into()).unwrap(), 1);
    assert_eq!(rx.try_recv().unwrap(), "kept");
}

#[test]
fn broadcast_across_two_loops_and_a_thread_every_receiver_gets_everything_in_order() {
    const MESSAGES: u64 = 2_000;
    let group = LoopGroup::new(2).unwrap();
    // Capacity above the burst: nobody lags, every receiver must see all of it.
    let (tx, rx) = broadcast::channel::<u64>(MESSAGES as usize);
    let subscribed = Arc::new(std::sync::Barrier::new(3));
    let rxs = Arc::new(std::sync::Mutex::new(vec![
        Some(rx.resubscribe()),
        Some(rx),
    ]));
    let mut thread_rx = tx.subscribe();
    let reader = std::thread::spawn(move || {
        std::iter::from_fn(|| thread_rx.blocking_recv().ok()).collect::<Vec<_>>()
    });
    let producer = {
        let subscribed = subscribed.clone();
        std::thread::spawn(move || {
            subscribed.wait();
            for i in 0..MESSAGES {
                tx.send(i).unwrap();
            }
        })
    };
    let results = bounded(LIMIT, "broadcast across loops", move || {
        group.block_on_each(move |index, _| {
            let mut rx = rxs.lock().unwrap()[index].take().unwrap();
            let subscribed = subscribed.clone();
            async move {
                evloop::spawn_blocking(move || subscribed.wait()).await?;
                let mut got = Vec::new();
                loop {
                    match rx.recv().await {
                        Ok(i) => got.push(i),
                        Err(broadcast::RecvError::Closed) => break,
                        Err(e) => return Err(e.into()),
                    }
                }
                Ok::<_, Error>(got)
            }
        })
    });
    producer.join().unwrap();
    let expected: Vec<u64> = (0..MESSAGES).collect();
    for got in results {
        assert_eq!(got.unwrap(), expected);
    }
    assert_eq!(reader.join().unwrap(), expected);
}

#[test]
fn a_cancelled_broadcast_recv_returns_cancelled_and_does_not_move_on() {
    run_guarded(async {
        let (tx, rx) = broadcast::channel::<u32>(4);
        let slot = std::rc::Rc::new(std::cell::RefCell::new(Some(rx)));
        let task = create_task({
            let slot = slot.clone();
            async move {
                let mut rx = slot.borrow_mut().take().unwrap();
                let got = rx.recv().await;
                *slot.borrow_mut() = Some(rx);
                Ok(got?)
            }
        });
        yield_times(2).await;
        tx.send(1).unwrap(); // wakes it; cancelled before it runs
        assert!(task.cancel_with("enough"));
        let err = task.await.unwrap_err();
        assert!(
            err.is_cancelled(),
            "RecvError::Cancelled → Error::Cancelled: {err:?}"
        );
        let mut rx = slot.borrow_mut().take().unwrap();
        assert_eq!(rx.recv().await.unwrap(), 1, "the message is still there");
        Ok::<(), Error>(())
    })
    .unwrap();
}

#[test]
fn broadcast_messages_are_dropped_once_read_by_all_or_pushed_out() {
    struct Counted(Arc<AtomicUsize>);
    impl Clone for Counted {
        fn clone(&self) -> Self {
            Counted(self.0.clone())
        }
    }
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
        }
    }
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, mut a) = broadcast::channel(2);
    let mut b = tx.subscribe();
    tx.send(Counted(drops.clone())).unwrap();
    drop(a.try_recv().unwrap());
    assert_eq!(drops.load(SeqCst), 1, "a's clone");
    drop(b.try_recv().unwrap());
    assert_eq!(
        drops.load(SeqCst),
        2,
        "b took the last reference: no copy left in the ring"
    );
    tx.send(Counted(drops.clone())).unwrap();
    tx.send(Counted(drops.clone())).unwrap();
    tx.send(Counted(drops.clone())).unwrap(); // pushes the oldest unread out
    assert_eq!(drops.load(SeqCst), 3);
    drop(b); // b will never read its two: a still will
    assert_eq!(drops.load(SeqCst), 3);
    drop(a); // nobody will: both dropped
    assert_eq!(drops.load(SeqCst), 5);
}

#[test]
#[should_panic(expected = "capacity must be at least 1")]
fn broadcast_capacity_zero_panics() {
    let _ = broadcast::channel::<()>(0);
}

#[test]
fn watch_versions_follow_tokio() {
    let (tx, mut rx) = watch::channel("a");
    assert!(
        !rx.has_changed().unwrap(),
        "the initial value counts as seen"
    );
    assert!(!rx.borrow().has_changed());
    tx.send("b").unwrap();
    assert!(rx.has_changed().unwrap());
    assert_eq!(*rx.borrow(), "b");
    assert!(rx.has_changed().unwrap(), "borrow does not mark seen");
    let clone = rx.clone();
    assert!(
        clone.has_changed().unwrap(),
        "a clone has seen what its source had"
    );
    let fresh = tx.subscribe();
    assert!(
        !fresh.has_changed().unwrap(),
        "a subscriber has seen the current value"
    );
    {
        let value = rx.borrow_and_update();
        assert!(value.has_changed());
        assert_eq!(*value, "b");
    }
    assert!(!rx.has_changed().unwrap());
    // The same value again is still a change.
    tx.send("b").unwrap();
    assert!(rx.has_changed().unwrap());
    assert_eq!(tx.receiver_count(), 3);
    drop((clone, fresh));
    assert_eq!(tx.receiver_count(), 1);
    drop(tx);
    assert_eq!(rx.has_changed(), Err(watch::RecvError::Closed));
    assert_eq!(*rx.borrow(), "b", "the last value stays readable");
}

#[test]
fn watch_send_needs_a_receiver_send_replace_does_not() {
    let (tx, rx) = watch::channel(1);
    drop(rx);
    assert!(tx.is_closed());
    assert_eq!(tx.send(2).unwrap_err().0, 2);
    assert_eq!(*tx.borrow(), 1, "a refused send stores nothing");
    assert_eq!(tx.send_replace(3), 1);
    assert_eq!(*tx.borrow(), 3);
    let rx = tx.subscribe();
    assert_eq!(*rx.borrow(), 3);
}

#[test]
fn watch_changed_returns_at_once_for_an_unseen_value_and_marks_it() {
    run_guarded(async {
        let (tx, mut rx) = watch::channel(0);
        tx.send(1).unwrap();
        tx.send(2).unwrap();
        rx.changed().await.unwrap();
        assert_eq!(*rx.borrow(), 2, "changes coalesce: the latest value");
        assert!(!rx.has_changed().unwrap());
        let waiter = create_task(async move {
            rx.changed().await?;
            let v = *rx.borrow();
            let closed = rx.changed().await;
            Ok((v, closed))
        });
        yield_times(2).await;
        tx.send(3).unwrap();
        yield_times(2).await;
        drop(tx);
        let (v, closed) = waiter.await?;
        assert_eq!(v, 3);
        assert_eq!(closed, Err(watch::RecvError::Closed));
        Ok::<(), Error>(())
    })
    .unwrap();
}

#[test]
fn watch_changed_wakes_tasks_on_two_loops_and_a_thread() {
    const ROUNDS: u64 = 200;
    let group = LoopGroup::new(2).unwrap();
    let (tx, rx) = watch::channel(0u64);
    let mut thread_rx = rx.clone();
    let rxs = Arc::new(std::sync::Mutex::new(vec![Some(rx.clone()), Some(rx)]));
    // Every receiver acknowledges each value before the next is sent, so none can
    // miss one through coalescing.
    let (ack_tx, ack_rx) = std::sync::mpsc::channel::<u64>();
    let thread_ack = ack_tx.clone();
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        while thread_rx.blocking_changed().is_ok() {
            let v = *thread_rx.borrow_and_update();
            seen.push(v);
            thread_ack.send(v).unwrap();
        }
        seen
    });
    let producer = std::thread::spawn(move || {
        for i in 1..=ROUNDS {
            tx.send(i).unwrap();
            for _ in 0..3 {
                assert_eq!(ack_rx.recv().unwrap(), i);
            }
        }
    });
    let results = bounded(LIMIT, "watch across loops", move || {
        group.block_on_each(move |index, _| {
            let mut rx = rxs.lock().unwrap()[index].take().unwrap();
            let ack = ack_tx.clone();
            async move {
                let mut seen = Vec::new();
                while rx.changed().await.is_ok() {
                    let v = *rx.borrow_and_update();
                    seen.push(v);
                    ack.send(v).unwrap();
                }
                Ok::<_, Error>(seen)
            }
        })
    });
    producer.join().unwrap();
    let expected: Vec<u64> = (1..=ROUNDS).collect();
    for seen in results {
        assert_eq!(seen.unwrap(), expected);
    }
    assert_eq!(reader.join().unwrap(), expected);
}

#[test]
fn a_cancelled_changed_marks_nothing_seen() {
    run_guarded(async {
        let (tx, rx) = watch::channel(0);
        let slot = std::rc::Rc::new(std::cell::RefCell::new(Some(rx)));
        let task = create_task({
            let slot = slot.clone();
            async move {
                let mut rx = slot.borrow_mut().take().unwrap();
                let got = rx.changed().await;
                *slot.borrow_mut() = Some(rx);
                Ok(got?)
            }
        });
        yield_times(2).await;
        tx.send(1).unwrap(); // wakes it; cancelled before it runs
        assert!(task.cancel());
        assert!(task.await.unwrap_err().is_cancelled());
        let mut rx = slot.borrow_mut().take().unwrap();
        assert!(rx.has_changed().unwrap(), "the change is still unseen");
        rx.changed().await.unwrap();
        assert_eq!(*rx.borrow(), 1);
        Ok::<(), Error>(())
    })
    .unwrap();
}
