//! SPEC §13 Y7 (`evloop::sync::mpsc`), Q1, Q8, T3:
//!
//! * bounded and unbounded channels: order, capacity, `try_send` / `try_recv`, errors;
//! * plain threads `blocking_send` into a loop (and `blocking_recv` from a loop's
//!   sends), and the panic of a `blocking_*` call on a loop thread;
//! * N senders × M items between the two loops of a `LoopGroup`: every item arrives
//!   exactly once and in order per sender (bounded with a small capacity, so senders
//!   wait, and unbounded);
//! * cancellation: a `recv` of a cancelled task returns `Err(Cancelled)` at once and
//!   loses nothing (also when the item had already arrived, or had woken it); a waiting
//!   `send` that is cancelled returns its value, and a slot handed to it passes on;
//! * closing: `close()` fails later and waiting sends, the items already sent are still
//!   received, then `Ok(None)`; `Ok(None)` once every sender is gone, also for a
//!   receiver that was waiting.
//!
//! Nothing here measures time; hangs become failures through `run_guarded` / `bounded`.

mod common;
use common::{bounded, eventually, run_guarded, yield_times};

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use evloop::sync::mpsc::{self, SendError, TryRecvError, TrySendError};
use evloop::{Error, LoopGroup, create_task};

const LIMIT: Duration = Duration::from_secs(60);

fn assert_send_sync<T: Send + Sync>() {}
fn assert_send<T: Send>() {}

#[test]
fn handles_are_send_and_senders_sync() {
    struct NotSync(#[allow(dead_code)] std::cell::Cell<u8>);
    assert_send_sync::<mpsc::Sender<NotSync>>();
    assert_send_sync::<mpsc::UnboundedSender<NotSync>>();
    assert_send::<mpsc::Receiver<NotSync>>();
    assert_send::<mpsc::UnboundedReceiver<NotSync>>();
    // The futures are Send too, so tasks of `LoopHandle::spawn` can await them.
    fn send_future<T: Send>(_: &T) {}
    let (tx, mut rx) = mpsc::channel::<u8>(1);
    send_future(&tx.send(1));
    send_future(&rx.recv());
}

#[test]
fn bounded_order_capacity_and_try_errors() {
    let (tx, mut rx) = mpsc::channel(2);
    tx.try_send(1).unwrap();
    tx.try_send(2).unwrap();
    match tx.try_send(3) {
        Err(TrySendError::Full(3)) => {}
        other => panic!("expected Full(3), got {other:?}"),
    }
    assert_eq!(rx.try_recv(), Ok(1));
    // The item handed out freed its slot at once.
    tx.try_send(3).unwrap();
    assert!(tx.try_send(4).unwrap_err().is_full());
    assert_eq!(rx.try_recv(), Ok(2));
    assert_eq!(rx.try_recv(), Ok(3));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    drop(tx);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
}

#[test]
fn errors_display_and_debug_without_t_debug() {
    struct Opaque;
    let (tx, rx) = mpsc::channel::<Opaque>(1);
    tx.try_send(Opaque).unwrap();
    let full = tx.try_send(Opaque).unwrap_err();
    assert_eq!(format!("{full:?}"), "Full(..)");
    assert_eq!(full.to_string(), "no available capacity");
    drop(rx);
    let closed = tx.try_send(Opaque).unwrap_err();
    assert_eq!(format!("{closed:?}"), "Closed(..)");
    assert_eq!(closed.to_string(), "channel closed");
    let err = tx.blocking_send(Opaque).unwrap_err();
    assert!(err.is_closed());
    assert_eq!(format!("{err:?}"), "Closed(..)");
    let std_err: &dyn std::error::Error = &err;
    assert!(std_err.source().is_none());
    assert_eq!(
        TryRecvError::Disconnected.to_string(),
        "receiving on a closed channel"
    );
}

#[test]
#[should_panic(expected = "capacity must be at least 1")]
fn capacity_zero_panics() {
    let _ = mpsc::channel::<()>(0);
}

#[test]
fn unbounded_send_never_waits_and_keeps_order() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    for i in 0..10_000 {
        tx.send(i).unwrap();
    }
    drop(tx);
    let got: Vec<i32> = std::iter::from_fn(|| rx.blocking_recv()).collect();
    assert_eq!(got, (0..10_000).collect::<Vec<_>>());
}

/// Checks that `items` holds `0..per_sender` for each of `senders` senders, each in
/// order: items are `(sender, seq)`.
fn assert_exactly_once_in_order(items: &[(usize, usize)], senders: usize, per_sender: usize) {
    let mut next = vec![0; senders];
    for &(s, seq) in items {
        assert_eq!(
            seq, next[s],
            "sender {s}: item {seq} out of order or duplicated"
        );
        next[s] += 1;
    }
    assert!(
        next.iter().all(|&n| n == per_sender),
        "missing items: {next:?}"
    );
}

#[test]
fn plain_threads_blocking_send_into_a_loop() {
    const SENDERS: usize = 4;
    const ITEMS: usize = 5_000;
    for capacity in [Some(3), None] {
        let items = bounded(LIMIT, "threads → loop", move || {
            let (tx, mut rx) = match capacity {
                Some(c) => {
                    let (tx, rx) = mpsc::channel::<(usize, usize)>(c);
                    (Tx::Bounded(tx), Rx::Bounded(rx))
                }
                None => {
                    let (tx, rx) = mpsc::unbounded_channel();
                    (Tx::Unbounded(tx), Rx::Unbounded(rx))
                }
            };
            let threads: Vec<_> = (0..SENDERS)
                .map(|s| {
                    let tx = tx.clone();
                    std::thread::spawn(move || {
                        for seq in 0..ITEMS {
                            tx.blocking_send((s, seq));
                        }
                    })
                })
                .collect();
            drop(tx);
            let items = evloop::run(async move {
                let mut items = Vec::new();
                while let Some(item) = rx.recv().await? {
                    items.push(item);
                }
                Ok::<_, Error>(items)
            })
            .unwrap();
            for t in threads {
                t.join().unwrap();
            }
            items
        });
        assert_exactly_once_in_order(&items, SENDERS, ITEMS);
    }
}

/// Either kind of sender, for tests that run the same scenario over both.
#[derive(Clone)]
enum Tx<T> {
    Bounded(mpsc::Sender<T>),
    Unbounded(mpsc::UnboundedSender<T>),
}

impl<T> Tx<T> {
    fn blocking_send(&self, value: T) {
        match self {
            Tx::Bounded(tx) => tx.blocking_send(value).expect("receiver alive"),
            Tx::Unbounded(tx) => tx.send(value).expect("receiver alive"),
        }
    }

    async fn send(&self, value: T) {
        match self {
            Tx::Bounded(tx) => tx.send(value).await.expect("receiver alive"),
            Tx::Unbounded(tx) => tx.send(value).expect("receiver alive"),
        }
    }
}

enum Rx<T> {
    Bounded(mpsc::Receiver<T>),
    Unbounded(mpsc::UnboundedReceiver<T>),
}

impl<T> Rx<T> {
    async fn recv(&mut self) -> Result<Option<T>, Error> {
        match self {
            Rx::Bounded(rx) => rx.recv().await,
            Rx::Unbounded(rx) => rx.recv().await,
        }
    }
}

#[test]
fn a_loop_sends_plain_threads_blocking_recv() {
    let got = bounded(LIMIT, "loop → thread", || {
        let (tx, mut rx) = mpsc::channel(2);
        let reader = std::thread::spawn(move || {
            std::iter::from_fn(|| rx.blocking_recv()).collect::<Vec<u32>>()
        });
        evloop::run(async move {
            for i in 0..1000 {
                tx.send(i).await.unwrap();
            }
        });
        reader.join().unwrap()
    });
    assert_eq!(got, (0..1000).collect::<Vec<u32>>());
}

#[test]
fn blocking_calls_on_a_loop_thread_panic() {
    let messages = evloop::run(async {
        let (tx, mut rx) = mpsc::channel::<u8>(1);
        let (utx, mut urx) = mpsc::unbounded_channel::<u8>();
        drop(utx);
        let send = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| tx.blocking_send(1)));
        let recv = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rx.blocking_recv()));
        let urecv = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| urx.blocking_recv()));
        [send.err(), recv.err(), urecv.err()].map(|p| common::panic_message(&*p.expect("panicked")))
    });
    assert!(
        messages[0].contains("Sender::blocking_send") && messages[0].contains("tx.send(v).await")
    );
    assert!(
        messages[1].contains("Receiver::blocking_recv") && messages[1].contains("rx.recv().await")
    );
    assert!(messages[2].contains("UnboundedReceiver::blocking_recv"));
    assert!(
        messages.iter().all(|m| m.contains("would block")),
        "{messages:?}"
    );
}

/// N sender tasks on loop 0 and loop 1 each, the receiver on loop 1.
fn cross_loop(capacity: Option<usize>) {
    const SENDERS_PER_LOOP: usize = 3;
    const ITEMS: usize = 3_000;
    let group = LoopGroup::new(2).unwrap();
    let (tx, rx) = match capacity {
        Some(c) => {
            let (tx, rx) = mpsc::channel::<(usize, usize)>(c);
            (Tx::Bounded(tx), Rx::Bounded(rx))
        }
        None => {
            let (tx, rx) = mpsc::unbounded_channel();
            (Tx::Unbounded(tx), Rx::Unbounded(rx))
        }
    };
    let rx = Arc::new(std::sync::Mutex::new(Some(rx)));
    // One sender per loop, taken out by that loop's service: the test keeps none, so
    // the channel ends when every sender task on both loops is done.
    let txs = Arc::new(std::sync::Mutex::new(vec![Some(tx.clone()), Some(tx)]));
    let results = bounded(LIMIT, "cross-loop mpsc", move || {
        group.block_on_each(move |index, _| {
            let tx = txs.lock().unwrap()[index]
                .take()
                .expect("this loop's sender");
            let rx = (index == 1).then(|| rx.lock().unwrap().take().expect("the receiver"));
            async move {
                for s in 0..SENDERS_PER_LOOP {
                    let tx = tx.clone();
                    let id = index * SENDERS_PER_LOOP + s;
                    create_task(async move {
                        for seq in 0..ITEMS {
                            tx.send((id, seq)).await;
                            if seq % 97 == 0 {
                                evloop::yield_now().await?;
                            }
                        }
                        Ok::<(), Error>(())
                    });
                }
                drop(tx);
                let mut items = Vec::new();
                if let Some(mut rx) = rx {
                    while let Some(item) = rx.recv().await? {
                        items.push(item);
                    }
                }
                Ok::<_, Error>(items)
            }
        })
    });
    let mut results = results.into_iter();
    assert!(results.next().unwrap().unwrap().is_empty());
    let items = results.next().unwrap().unwrap();
    assert_exactly_once_in_order(&items, 2 * SENDERS_PER_LOOP, ITEMS);
}

#[test]
fn senders_on_two_loops_bounded_every_item_once_in_order() {
    cross_loop(Some(4));
}

#[test]
fn senders_on_two_loops_unbounded_every_item_once_in_order() {
    cross_loop(None);
}

type SharedRx<T> = Rc<RefCell<Option<mpsc::Receiver<T>>>>;

/// A task that takes the receiver out of `slot`, awaits one `recv`, and puts it back.
fn recv_task(slot: &SharedRx<u32>) -> evloop::Task<Option<u32>> {
    let slot = slot.clone();
    create_task(async move {
        let mut rx = slot.borrow_mut().take().expect("receiver in its slot");
        let got = rx.recv().await;
        *slot.borrow_mut() = Some(rx);
        got
    })
}

#[test]
fn recv_of_a_cancelled_task_returns_cancelled_and_loses_nothing() {
    run_guarded(async {
        let (tx, rx) = mpsc::channel::<u32>(4);
        let slot: SharedRx<u32> = Rc::new(RefCell::new(Some(rx)));

        // 1. Waiting on an empty channel.
        let task = recv_task(&slot);
        yield_times(2).await;
        assert!(task.cancel());
        let err = task.await.unwrap_err();
        assert!(err.is_cancelled(), "{err:?}");

        // 2. Woken by a send, cancelled before it ran: the item stays.
        let task = recv_task(&slot);
        yield_times(2).await;
        tx.send(1).await.unwrap();
        assert!(task.cancel());
        assert!(task.await.unwrap_err().is_cancelled());

        // 3. Cancelled before its first poll, with an item waiting.
        let task = recv_task(&slot);
        assert!(task.cancel());
        assert!(task.await.unwrap_err().is_cancelled());

        tx.send(2).await.unwrap();
        let mut rx = slot.borrow_mut().take().unwrap();
        assert_eq!(rx.recv().await?, Some(1));
        assert_eq!(rx.recv().await?, Some(2));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        Ok::<(), Error>(())
    })
    .unwrap();
}

#[test]
fn a_cancelled_waiting_send_returns_its_value_and_hands_its_slot_on() {
    run_guarded(async {
        let (tx, mut rx) = mpsc::channel::<&'static str>(1);
        tx.send("first").await.unwrap();
        let spawn_send = |v: &'static str| {
            let tx = tx.clone();
            create_task(async move {
                match tx.send(v).await {
                    Ok(()) => Ok(None),
                    Err(SendError::Cancelled(v, c)) => {
                        assert_eq!(c.message(), Some("stop"));
                        Ok(Some(v))
                    }
                    Err(e) => panic!("unexpected {e:?}"),
                }
            })
        };
        let a = spawn_send("a");
        let b = spawn_send("b");
        yield_times(2).await; // both wait, `a` first
        // Taking "first" hands the slot to `a`; `a` is cancelled before it runs.
        assert_eq!(rx.recv().await?, Some("first"));
        assert!(a.cancel_with("stop"));
        assert_eq!(a.await?, Some("a"), "the cancelled send returns its value");
        assert_eq!(b.await?, None, "b got the slot a was handed");
        assert_eq!(rx.recv().await?, Some("b"));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));

        // A send cancelled through `?` gives `Error::Cancelled`.
        tx.send("c").await.unwrap();
        let c = create_task({
            let tx = tx.clone();
            async move {
                tx.send("d").await?;
                Ok(())
            }
        });
        yield_times(2).await;
        assert!(c.cancel());
        assert!(c.await.unwrap_err().is_cancelled());
        assert_eq!(rx.recv().await?, Some("c"));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        Ok::<(), Error>(())
    })
    .unwrap();
}

#[test]
fn close_fails_waiting_and_later_sends_and_drains_what_was_sent() {
    run_guarded(async {
        let (tx, mut rx) = mpsc::channel::<u32>(1);
        tx.send(1).await.unwrap();
        let waiting = create_task({
            let tx = tx.clone();
            async move {
                Ok(tx
                    .send(2)
                    .await
                    .map_err(|e| (e.is_closed(), e.into_inner())))
            }
        });
        yield_times(2).await;
        rx.close();
        assert_eq!(
            waiting.await?,
            Err((true, 2)),
            "the waiting send failed with its value"
        );
        assert!(tx.is_closed());
        assert!(tx.try_send(3).unwrap_err().is_closed());
        assert!(tx.send(3).await.unwrap_err().is_closed());
        assert_eq!(
            rx.recv().await?,
            Some(1),
            "sent before close: still received"
        );
        assert_eq!(rx.recv().await?, None);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));

        let (utx, mut urx) = mpsc::unbounded_channel::<u32>();
        utx.send(1).unwrap();
        urx.close();
        assert_eq!(utx.send(2).unwrap_err().into_inner(), 2);
        assert_eq!(urx.recv().await?, Some(1));
        assert_eq!(urx.recv().await?, None);
        Ok::<(), Error>(())
    })
    .unwrap();
}

#[test]
fn none_once_every_sender_is_gone_also_for_a_waiting_receiver() {
    run_guarded(async {
        let (tx, mut rx) = mpsc::unbounded_channel::<u32>();
        let tx2 = tx.clone();
        tx.send(7).unwrap();
        drop(tx);
        let dropper = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            drop(tx2);
        });
        assert_eq!(rx.recv().await?, Some(7));
        // Waits until the other thread drops the last sender.
        assert_eq!(rx.recv().await?, None);
        assert_eq!(rx.recv().await?, None, "and stays at the end");
        dropper.join().unwrap();
        Ok::<(), Error>(())
    })
    .unwrap();
}

#[test]
fn dropping_the_receiver_drops_the_items_and_wakes_waiting_senders() {
    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
        }
    }
    let drops = Arc::new(AtomicUsize::new(0));
    run_guarded({
        let drops = drops.clone();
        async move {
            let (tx, mut rx) = mpsc::channel(2);
            for _ in 0..2 {
                tx.send(Counted(drops.clone())).await.unwrap();
            }
            // One taken into the receiver's batch, one left in it.
            drop(rx.recv().await?);
            assert_eq!(drops.load(SeqCst), 1);
            tx.send(Counted(drops.clone())).await.unwrap();
            let waiting = create_task({
                let tx = tx.clone();
                let item = Counted(drops.clone());
                async move { Ok(tx.send(item).await.is_err()) }
            });
            yield_times(2).await;
            drop(rx);
            assert_eq!(
                drops.load(SeqCst),
                3,
                "both items in the channel were dropped"
            );
            assert!(waiting.await?, "the waiting send failed");
            eventually("the refused item is dropped", || drops.load(SeqCst) == 4).await;
            Ok::<(), Error>(())
        }
    })
    .unwrap();
}

#[test]
fn a_spawned_send_task_can_wait_on_a_full_channel_from_another_thread() {
    // `LoopHandle::spawn` needs `Send` futures: the send and recv futures are.
    let rt = evloop::Runtime::new().unwrap();
    let (tx, mut rx) = mpsc::channel::<u64>(1);
    let handle = rt.handle();
    let task = std::thread::spawn(move || {
        handle.spawn(async move {
            for i in 0..100 {
                tx.send(i).await.unwrap();
            }
            Ok::<(), Error>(())
        })
    })
    .join()
    .unwrap();
    let sum = rt
        .block_on(async move {
            let mut sum = 0;
            while let Some(i) = rx.recv().await? {
                sum += i;
            }
            task.await?;
            Ok::<_, Error>(sum)
        })
        .unwrap();
    assert_eq!(sum, 4950);
}
