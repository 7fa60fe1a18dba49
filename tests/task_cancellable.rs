//! K4 (`evloop::task::cancellable`): a foreign future wrapped in `cancellable` resolves
//! with `Err(Cancelled)` as soon as its task is cancelled, and the foreign future is
//! dropped then; unwrapped, the same foreign future keeps the task until it completes,
//! and the cancel lands at the task's next evloop await (T3). Order of events only.

mod common;

use std::cell::RefCell;
use std::future::Future as StdFuture;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use common::{DropSpy, run_guarded};
use evloop::{create_task, task::cancellable, yield_now};

/// A foreign future: completes when its gate is opened, knowing nothing of evloop.
#[derive(Clone, Default)]
struct Gate(Rc<RefCell<(bool, Option<Waker>)>>);

impl Gate {
    fn open(&self) {
        let waker = {
            let mut g = self.0.borrow_mut();
            g.0 = true;
            g.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
    fn wait(&self) -> GateWait {
        GateWait(self.clone())
    }
}

struct GateWait(Gate);

impl StdFuture for GateWait {
    type Output = u32;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        let mut g = (self.0).0.borrow_mut();
        if g.0 {
            Poll::Ready(7)
        } else {
            g.1 = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

async fn settle() {
    for _ in 0..8 {
        yield_now().await.unwrap();
    }
}

#[test]
fn a_cancelled_task_resumes_from_a_wrapped_foreign_future_at_once_and_drops_it() {
    run_guarded(async {
        let gate = Gate::default();
        let (spy, probe) = DropSpy::new();
        let log = Rc::new(RefCell::new(Vec::new()));
        let task = create_task({
            let (gate, log) = (gate.clone(), log.clone());
            async move {
                let foreign = async move {
                    let _held = spy; // dropped with the foreign future
                    gate.wait().await
                };
                let got = cancellable(foreign).await;
                log.borrow_mut()
                    .push(format!("resumed: cancelled={}", got.is_err()));
                got
            }
        });
        settle().await;
        assert!(!task.done());
        task.cancel();
        settle().await;
        assert!(task.done(), "resumed without the gate being opened");
        assert_eq!(*log.borrow(), ["resumed: cancelled=true"]);
        assert_eq!(probe.drops(), 1, "the foreign future was dropped");
        assert!(task.cancelled());
        gate.open(); // nobody waits any more: nothing happens
    });
}

#[test]
fn unwrapped_the_foreign_future_keeps_the_task_until_it_completes() {
    run_guarded(async {
        let gate = Gate::default();
        let log = Rc::new(RefCell::new(Vec::new()));
        let task = create_task({
            let (gate, log) = (gate.clone(), log.clone());
            async move {
                let got = gate.wait().await;
                log.borrow_mut()
                    .push(format!("foreign completed with {got}"));
                // The next evloop await takes the pending cancel (T3).
                let next = yield_now().await;
                log.borrow_mut()
                    .push(format!("next await cancelled={}", next.is_err()));
                next.map(|()| got)
            }
        });
        settle().await;
        task.cancel();
        settle().await;
        assert!(!task.done(), "a foreign future cannot be interrupted");
        assert!(log.borrow().is_empty());
        gate.open();
        settle().await;
        assert!(task.cancelled());
        assert_eq!(
            *log.borrow(),
            ["foreign completed with 7", "next await cancelled=true"]
        );
    });
}

#[test]
fn a_wrapped_future_that_completes_gives_its_value() {
    run_guarded(async {
        let gate = Gate::default();
        let task = create_task({
            let gate = gate.clone();
            async move { cancellable(gate.wait()).await }
        });
        settle().await;
        gate.open();
        assert_eq!(task.await.unwrap(), 7);
        // Outside any task nothing can cancel it: it is a plain wrapper.
        assert_eq!(cancellable(async { 5 }).await.unwrap(), 5);
    });
}
