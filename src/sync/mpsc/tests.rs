//! Unit tests of `mpsc`'s registrations (Q8) and of dropping what the channel holds.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::task::{Context, Poll, Waker};

use super::*;

fn poll_once<F: Future>(fut: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(Waker::noop()))
}

#[test]
fn abandoned_recvs_and_sends_leave_no_registration() {
    let (tx, mut rx) = channel::<u32>(1);
    for _ in 0..10_000 {
        let mut recv = pin!(rx.recv());
        assert!(poll_once(recv.as_mut()).is_pending());
    }
    assert_eq!(rx.rx.registrations(), (0, 0));
    tx.try_send(0).unwrap();
    for i in 0..10_000 {
        let mut send = pin!(tx.send(i));
        assert!(poll_once(send.as_mut()).is_pending(), "the channel is full");
    }
    assert_eq!(rx.rx.registrations(), (0, 0));
    // Many at once, then all dropped.
    let mut sends: Vec<_> = (0..1000).map(|i| Box::pin(tx.send(i))).collect();
    for send in &mut sends {
        assert!(poll_once(send.as_mut()).is_pending());
    }
    assert_eq!(rx.rx.registrations(), (0, 1000));
    drop(sends);
    assert_eq!(rx.rx.registrations(), (0, 0));
    assert_eq!(rx.try_recv(), Ok(0));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
}

#[test]
fn a_granted_send_that_is_dropped_hands_its_slot_on() {
    let (tx, mut rx) = channel::<u32>(1);
    tx.try_send(1).unwrap();
    let mut a = Box::pin(tx.send(2));
    let mut b = Box::pin(tx.send(3));
    assert!(poll_once(a.as_mut()).is_pending());
    assert!(poll_once(b.as_mut()).is_pending());
    assert_eq!(rx.try_recv(), Ok(1)); // the slot goes to `a`
    assert!(
        tx.try_send(9).unwrap_err().is_full(),
        "handed to a waiter, not free"
    );
    drop(a);
    assert!(matches!(poll_once(b.as_mut()), Poll::Ready(Ok(()))));
    assert_eq!(rx.try_recv(), Ok(3));
}

#[test]
fn a_waker_replaced_between_polls_is_the_one_woken() {
    #[derive(Default)]
    struct Count(AtomicUsize);
    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }
    let (first, second) = (Arc::new(Count::default()), Arc::new(Count::default()));
    let (tx, mut rx) = unbounded_channel::<u32>();
    let mut recv = pin!(rx.recv());
    let w1 = Waker::from(first.clone());
    let w2 = Waker::from(second.clone());
    assert!(
        recv.as_mut()
            .poll(&mut Context::from_waker(&w1))
            .is_pending()
    );
    assert!(
        recv.as_mut()
            .poll(&mut Context::from_waker(&w2))
            .is_pending()
    );
    tx.send(5).unwrap();
    assert_eq!((first.0.load(SeqCst), second.0.load(SeqCst)), (0, 1));
    assert!(matches!(poll_once(recv.as_mut()), Poll::Ready(Ok(Some(5)))));
}

#[test]
fn the_receiver_drops_every_item_even_when_one_panics() {
    struct Item(Arc<AtomicUsize>, bool);
    impl Drop for Item {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
            if self.1 {
                panic!("item drop panics");
            }
        }
    }
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = unbounded_channel();
    for i in 0..5 {
        tx.send(Item(drops.clone(), i == 1)).ok().unwrap();
    }
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(rx)));
    assert!(dropped.is_err(), "the panic is resumed");
    assert_eq!(drops.load(SeqCst), 5, "every item was dropped");
    assert!(tx.is_closed());
}

#[test]
fn the_receivers_batch_is_served_in_order_across_refills() {
    let (tx, mut rx) = unbounded_channel();
    let mut expected = 0;
    for round in 0..50u32 {
        for i in 0..round {
            tx.send(round * 1000 + i).unwrap();
        }
        // Take half, send more, take the rest: the batch and the queue interleave.
        for _ in 0..round / 2 {
            let v = rx.try_recv().unwrap();
            assert!(v >= expected);
            expected = v;
        }
        tx.send(round * 1000 + 999).unwrap();
        while let Ok(v) = rx.try_recv() {
            assert!(v >= expected, "{v} after {expected}");
            expected = v;
        }
    }
}
