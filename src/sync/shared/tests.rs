//! Unit tests of the shared locks' registrations (Q8) and of the parker.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use super::support::block_on;
use super::*;

fn poll_once<F: Future>(fut: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(Waker::noop()))
}

fn waiting(what: &dyn std::fmt::Debug) -> bool {
    !format!("{what:?}").contains("waiting: 0")
}

#[test]
fn abandoned_waits_leave_no_registration() {
    let m = SharedMutex::new(0);
    let guard = m.try_lock().unwrap();
    let sem = SharedSemaphore::new(0);
    let event = SharedEvent::new();
    for _ in 0..10_000 {
        let mut lock = pin!(m.lock());
        assert!(poll_once(lock.as_mut()).is_pending());
        let mut acquire = pin!(sem.acquire());
        assert!(poll_once(acquire.as_mut()).is_pending());
        let mut wait = pin!(event.wait());
        assert!(poll_once(wait.as_mut()).is_pending());
    }
    assert!(!waiting(&m) && !waiting(&sem) && !waiting(&event));
    let many: Vec<_> = (0..1000).map(|_| Box::pin(sem.acquire())).collect();
    let mut many = many;
    for a in &mut many {
        assert!(poll_once(a.as_mut()).is_pending());
    }
    assert!(format!("{sem:?}").contains("waiting: 1000"));
    drop(many);
    assert!(!waiting(&sem));
    drop(guard);
    assert!(!m.locked());
}

#[test]
fn block_on_parks_until_woken_from_another_thread() {
    let event = SharedEvent::new();
    let setter = {
        let event = event.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(10));
            event.set();
        })
    };
    block_on("test", "await", event.wait()).unwrap();
    setter.join().unwrap();
    // Nested use on one thread (a wait whose poll blocks again) takes a fresh parker.
    let inner = SharedEvent::new();
    inner.set();
    let out = block_on("outer", "await", async {
        block_on("inner", "await", inner.wait()).unwrap();
        7
    });
    assert_eq!(out, 7);
}
