//! loom models of the future state machine (`future::core`): completion racing
//! cancellation, registration racing completion and the drain, and a task's poll
//! (waker registration) racing completion. Run with
//! `RUSTFLAGS="--cfg loom" cargo test --release --lib --target-dir target/loom loom_models`.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use crate::error::Error;

use crate::future::Future;
use crate::handle::LoopHandle;
use crate::loom::models::{CountingWaker, model};
use crate::reactor::Reactor;
use crate::shared::{ExecutorConfig, Remote, Shared};

fn test_loop() -> LoopHandle {
    let (_reactor, unparker, registrar) = Reactor::new(4).unwrap();
    LoopHandle {
        shared: crate::loop_ref::LoopRef::new(Shared::new(
            unparker,
            registrar,
            ExecutorConfig {
                max_threads: 1,
                keep_alive: std::time::Duration::from_secs(1),
            },
        )),
    }
}

/// Runs the done-callbacks the future dispatched (they were sent through the
/// cross-thread queue, since no loop runs in the model), in queue order.
fn run_dispatched(owner: &LoopHandle) -> usize {
    let mut n = 0;
    while let Some(item) = owner.shared.pop_remote() {
        if let Remote::Callback(cell) = item {
            assert!(cell.run());
            n += 1;
        }
    }
    n
}

/// `set_result` racing `cancel`: exactly one completion wins, the final state
/// matches it, and a callback registered before dispatches exactly once.
#[test]
fn completion_races_cancel() {
    model(|| {
        let owner = test_loop();
        let fut: Future<u32> = Future::with_loop(&owner);
        fut.add_done_callback(|_| {});
        let setter = {
            let fut = fut.clone();
            loom::thread::spawn(move || fut.set_result(7).is_ok())
        };
        let cancelled = fut.cancel();
        let set = setter.join().unwrap();
        assert!(set ^ cancelled, "exactly one completion wins");
        assert!(fut.done());
        assert_eq!(fut.cancelled(), cancelled);
        assert_eq!(fut.result().ok(), set.then_some(7));
        assert_eq!(run_dispatched(&owner), 1, "the callback runs exactly once");
    });
}

/// `add_done_callback` racing completion: the callback is dispatched exactly once,
/// whether it was registered before, during or after the completion.
#[test]
fn registration_races_completion() {
    model(|| {
        let owner = test_loop();
        let fut: Future<u32> = Future::with_loop(&owner);
        let setter = {
            let fut = fut.clone();
            loom::thread::spawn(move || fut.set_result(7).unwrap())
        };
        fut.add_done_callback(|f| assert_eq!(f.result().unwrap(), 7));
        setter.join().unwrap();
        assert_eq!(run_dispatched(&owner), 1, "the callback runs exactly once");
    });
}

fn poll_with(fut: &mut Future<u32>, waker: &Arc<CountingWaker>) -> Poll<Result<u32, Error>> {
    let waker = Waker::from(waker.clone());
    Pin::new(fut).poll(&mut Context::from_waker(&waker))
}

/// A task polling a future (registering its waker) racing the completion from
/// another thread — a result or a cancellation: either the poll sees the outcome,
/// or the waker stays registered and is woken exactly once — never a lost wake-up
/// (the task would sleep forever) nor a second one. The next poll is ready.
#[test]
fn a_task_poll_racing_completion_or_cancel_is_woken_exactly_once() {
    for cancel in [false, true] {
        model(move || {
            let owner = test_loop();
            let fut: Future<u32> = Future::with_loop(&owner);
            let completer = {
                let fut = fut.clone();
                loom::thread::spawn(move || {
                    if cancel {
                        assert!(fut.cancel());
                    } else {
                        fut.set_result(7).unwrap();
                    }
                })
            };
            let task = CountingWaker::new();
            let mut awaiting = fut.clone();
            let first = poll_with(&mut awaiting, &task);
            completer.join().unwrap();
            let outcome = match first {
                Poll::Ready(outcome) => {
                    assert_eq!(task.wakes(), 0, "a ready poll leaves no waker behind");
                    outcome
                }
                Poll::Pending => {
                    assert_eq!(task.wakes(), 1, "the suspended task is woken once");
                    match poll_with(&mut awaiting, &task) {
                        Poll::Ready(outcome) => outcome,
                        Poll::Pending => panic!("woken, but the future is still pending"),
                    }
                }
            };
            match (cancel, outcome) {
                (false, Ok(7)) => {}
                (true, Err(Error::Cancelled(_))) => {}
                (_, other) => panic!("wrong outcome {other:?}"),
            }
            assert_eq!(run_dispatched(&owner), 0);
        });
    }
}

/// A task re-polled with a different waker (it moved, or a combinator wraps it)
/// while another thread completes the future: only the waker of the latest pending
/// poll counts — it is woken exactly once — and the replaced one is never woken
/// after the replacement.
#[test]
fn a_waker_replaced_during_completion_is_the_one_woken() {
    model(|| {
        let owner = test_loop();
        let fut: Future<u32> = Future::with_loop(&owner);
        let old = CountingWaker::new();
        let new = CountingWaker::new();
        let mut awaiting = fut.clone();
        assert!(poll_with(&mut awaiting, &old).is_pending());
        let completer = {
            let fut = fut.clone();
            loom::thread::spawn(move || fut.set_result(7).unwrap())
        };
        let second = poll_with(&mut awaiting, &new);
        completer.join().unwrap();
        match second {
            Poll::Ready(outcome) => {
                assert_eq!(outcome.unwrap(), 7);
                assert_eq!(new.wakes(), 0);
                // Completed before the re-poll: the old waker got the wake-up.
                assert_eq!(old.wakes(), 1);
            }
            Poll::Pending => {
                assert_eq!(old.wakes(), 0, "the replaced waker is not woken");
                assert_eq!(new.wakes(), 1, "the current waker is woken once");
            }
        }
    });
}

/// Registrations racing the drain after completion (the DRAINING / NEW protocol):
/// every callback is dispatched exactly once, in registration order.
#[test]
fn registrations_racing_the_drain_keep_their_order() {
    model(|| {
        let owner = test_loop();
        let fut: Future<u32> = Future::with_loop(&owner);
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = |i: u32| {
            let order = order.clone();
            move |_: &Future<u32>| order.lock().unwrap().push(i)
        };
        fut.add_done_callback(record(0));
        let completer = {
            let fut = fut.clone();
            loom::thread::spawn(move || fut.set_result(1).unwrap())
        };
        fut.add_done_callback(record(1));
        fut.add_done_callback(record(2));
        completer.join().unwrap();
        assert_eq!(run_dispatched(&owner), 3);
        assert_eq!(*order.lock().unwrap(), [0, 1, 2]);
    });
}
