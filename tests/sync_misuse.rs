//! Misuse of the loop-local `evloop::sync` primitives (SPEC §13): they are `!Send`, so
//! moving one to another thread does not compile (the `compile_fail` example in the
//! module docs pins that); the one misuse left — two loops on the same thread sharing a
//! primitive — panics, when the second loop's task has to wait on it, with a message
//! naming the thread-safe type to use instead. The panic is caught like any task panic:
//! the task fails with `Error::Panic` carrying the message.

use std::time::Duration;

use evloop::Runtime;
use evloop::sync::{Barrier, Condition, Event, Mutex, Queue, Semaphore};

type Wait = Box<dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>>;

fn bound_then_waited_from_another_loop(bind: Wait, wait: Wait) -> String {
    // Binds to the first loop: a wait that suspends (abandoned by the zero timeout).
    let first = Runtime::new().unwrap();
    first.block_on(async {
        let _ = evloop::time::timeout(Duration::ZERO, bind()).await;
    });
    drop(first);
    let second = Runtime::new().unwrap();
    let err = second
        .block_on(async {
            evloop::create_task(async move {
                // Bounded only so a missing check fails (expect_err) instead of hanging.
                let _ = evloop::time::timeout(Duration::from_secs(5), wait()).await;
                Ok(())
            })
            .await
        })
        .expect_err("waiting from a second loop must panic");
    assert!(err.is_panic(), "{err:?}");
    err.to_string()
}

macro_rules! check {
    ($make:expr, |$p:ident| $wait:expr, $name:literal, $instead:literal) => {{
        let made = $make;
        let (a, b) = (made.clone(), made.clone());
        let msg = bound_then_waited_from_another_loop(
            Box::new(move || {
                let owned = a.clone();
                Box::pin(async move {
                    let $p = &owned;
                    let _ = $wait.await;
                })
            }),
            Box::new(move || {
                let owned = b.clone();
                Box::pin(async move {
                    let $p = &owned;
                    let _ = $wait.await;
                })
            }),
        );
        assert!(msg.contains(concat!("evloop::sync::", $name)), "{msg}");
        assert!(msg.contains($instead), "{msg}");
    }};
}

#[test]
fn waiting_from_a_second_loop_panics_naming_the_thread_safe_type() {
    check!(
        Queue::<u32>::new(0),
        |q| q.get(),
        "Queue",
        "evloop::sync::mpsc"
    );
    check!(
        Event::new(),
        |e| e.wait(),
        "Event",
        "evloop::sync::SharedEvent"
    );
    check!(
        Semaphore::new(0),
        |s| async { s.acquire().await.map(drop) },
        "Semaphore",
        "evloop::sync::SharedSemaphore"
    );
    // A lock held forever by a guard leaked on purpose: every later lock waits.
    let m = Mutex::new(0u8);
    std::mem::forget(m.try_lock().unwrap());
    check!(
        m,
        |m| async { m.lock().await.map(drop) },
        "Mutex",
        "evloop::sync::SharedMutex"
    );
    check!(Barrier::new(3), |b| b.wait(), "Barrier", "SharedEvent");
    check!(
        Condition::new(),
        |c| async {
            let g = c.acquire().await?;
            c.wait(g).await.map(drop)
        },
        "Condition",
        "SharedMutex"
    );
}

/// Within one loop the binding is invisible: many tasks and many waits, one loop.
#[test]
fn one_loop_never_panics() {
    let q = Queue::new(0);
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let getter = evloop::create_task({
            let q = q.clone();
            async move { q.get().await }
        });
        evloop::yield_now().await.unwrap();
        q.put(5).await.unwrap();
        assert_eq!(getter.await.unwrap(), 5);
    });
}
