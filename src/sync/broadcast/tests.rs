//! Unit tests of `broadcast`'s registrations (Q8) and positions.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use super::*;

fn poll_once<F: Future>(fut: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(Waker::noop()))
}

fn waiting<T>(rx: &Receiver<T>) -> usize {
    lock(rx.shared.state.lock()).waiters.len()
}

#[test]
fn abandoned_recvs_leave_no_registration() {
    let (tx, mut rx) = channel::<u32>(2);
    for _ in 0..10_000 {
        let mut recv = pin!(rx.recv());
        assert!(poll_once(recv.as_mut()).is_pending());
    }
    assert_eq!(waiting(&rx), 0);
    tx.send(1).unwrap();
    assert_eq!(rx.try_recv(), Ok(1));
}

#[test]
fn the_ring_keeps_capacity_messages_and_counts_every_lag() {
    let (tx, mut rx) = channel::<u64>(3);
    for i in 0..1000 {
        tx.send(i).unwrap();
    }
    assert_eq!(lock(rx.shared.state.lock()).ring.len(), 3);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Lagged(997)));
    assert_eq!(rx.try_recv(), Ok(997));
    let late = tx.subscribe();
    drop(rx);
    // `late` has read nothing of what is kept; the ones only `rx` had left are gone.
    let state = lock(late.shared.state.lock());
    assert!(state.ring.iter().all(|slot| slot.value.is_none()));
}
