//! Unit tests of `watch`'s registrations (Q8).

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use super::*;

fn poll_once<F: Future>(fut: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(Waker::noop()))
}

#[test]
fn abandoned_changed_waits_leave_no_registration() {
    let (tx, mut rx) = channel(0u32);
    for _ in 0..10_000 {
        let mut changed = pin!(rx.changed());
        assert!(poll_once(changed.as_mut()).is_pending());
    }
    assert_eq!(lock(rx.shared.state.lock()).waiters.len(), 0);
    tx.send(1).unwrap();
    let mut changed = pin!(rx.changed());
    assert!(matches!(poll_once(changed.as_mut()), Poll::Ready(Ok(()))));
}
