//! Tasks (SPEC T1, T2, T6, T7, T8, L13): creation and scheduling, the `Future` view,
//! outcomes (result, error, panic), `!Send` coroutines, `yield_now`, `current_task`,
//! names, awaiting oneself, and the task statistics.

mod common;

use std::cell::RefCell;
use std::panic::catch_unwind;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use evloop::{Error, Future, LoopHandle, Runtime, Task};

#[test]
fn create_task_never_starts_synchronously() {
    let polled_in = Arc::new(Mutex::new(Vec::new()));
    let p = polled_in.clone();
    common::run_guarded(async move {
        let started = Arc::new(AtomicBool::new(false));
        let task = {
            let started = started.clone();
            evloop::create_task(async move {
                started.store(true, Ordering::SeqCst);
                Ok::<_, Error>(1)
            })
        };
        assert!(
            !started.load(Ordering::SeqCst),
            "the body ran synchronously"
        );
        assert!(!task.done());
        // Not even a callback scheduled earlier sees it started: its first poll is
        // queued behind what is ready now.
        let started2 = started.clone();
        LoopHandle::current().call_soon(move || {
            p.lock().unwrap().push(started2.load(Ordering::SeqCst));
        });
        assert_eq!(task.await.unwrap(), 1);
        assert!(started.load(Ordering::SeqCst));
    });
    // The callback was queued after the task's first poll, so it saw it started.
    assert_eq!(*polled_in.lock().unwrap(), [true]);
}

#[test]
fn tasks_are_first_polled_in_creation_order() {
    let order = Arc::new(Mutex::new(Vec::new()));
    let o = order.clone();
    common::run_guarded(async move {
        let tasks: Vec<_> = (0..10)
            .map(|i| {
                let o = o.clone();
                evloop::create_task(async move {
                    o.lock().unwrap().push(i);
                    Ok::<_, Error>(())
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    assert_eq!(*order.lock().unwrap(), (0..10).collect::<Vec<_>>());
}

#[test]
fn create_task_off_a_loop_panics_with_a_clear_message() {
    let payload = catch_unwind(|| {
        let _task = evloop::create_task(async { Ok::<_, Error>(()) });
    })
    .expect_err("create_task off a loop");
    let msg = common::panic_message(payload.as_ref());
    assert!(msg.contains("no running event loop"), "{msg}");
    assert!(msg.contains("LoopHandle::spawn"), "{msg}");
}

/// The loop blocks with no timer armed; the remote spawn must wake it and the task
/// must run on the loop thread.
#[test]
fn spawn_from_another_thread_runs_on_the_loop() {
    let _watchdog = common::Watchdog::new("spawn from another thread", Duration::from_secs(20));
    let rt = Runtime::new().unwrap();
    let loop_ = rt.handle();
    let loop_thread = std::thread::current().id();
    let reported: Future<std::thread::ThreadId> = loop_.create_future();
    let spawner = {
        let reported = reported.clone();
        std::thread::spawn(move || {
            while !loop_.is_running() {
                std::thread::yield_now();
            }
            // Let the loop go to sleep first (not an assertion).
            std::thread::sleep(Duration::from_millis(10));
            loop_.spawn(async move {
                let here = std::thread::current().id();
                reported.set_result(here).unwrap();
                Ok::<_, Error>(here)
            })
        })
    };
    let got = rt.block_on(reported).unwrap();
    let task = spawner.join().unwrap();
    assert_eq!(got, loop_thread);
    assert_eq!(rt.block_on(task).unwrap(), loop_thread);
}

#[test]
fn spawn_on_a_closed_loop_returns_a_cancelled_task_and_drops_the_coroutine() {
    let rt = Runtime::new().unwrap();
    let loop_ = rt.handle();
    drop(rt);
    assert!(loop_.is_closed());
    let held = Arc::new(());
    let ran = Arc::new(AtomicBool::new(false));
    let task = {
        let (held, ran) = (held.clone(), ran.clone());
        loop_.spawn(async move {
            ran.store(true, Ordering::SeqCst);
            let _keep = held;
            Ok::<_, Error>(5)
        })
    };
    assert!(task.done());
    assert!(task.cancelled());
    assert!(task.result().unwrap_err().is_cancelled());
    assert_eq!(Arc::strong_count(&held), 1, "the coroutine was dropped");
    assert!(!ran.load(Ordering::SeqCst));
    assert!(!task.cancel(), "already done");
}

#[test]
fn task_derefs_to_its_future() {
    let rt = Runtime::new().unwrap();
    let seen = Arc::new(Mutex::new(None));
    let s = seen.clone();
    let outer_loop = rt.handle();
    rt.block_on(async move {
        let gate = common::Gate::new();
        let task = {
            let gate = gate.clone();
            evloop::create_task(async move {
                gate.wait().await;
                Ok::<_, Error>(21)
            })
        };
        // Deref: the Future API on a task.
        assert!(!task.done());
        assert!(!task.cancelled());
        assert!(task.result().unwrap_err().is_invalid_state());
        assert!(task.exception().unwrap_err().is_invalid_state());
        assert_eq!(task.get_loop(), outer_loop);
        task.add_done_callback(move |f: &Future<i32>| {
            *s.lock().unwrap() = Some(f.result().unwrap() * 2);
        });
        gate.open();
        while !task.done() {
            evloop::yield_now().await.unwrap();
        }
        assert_eq!(task.result().unwrap(), 21);
        assert!(task.exception().unwrap().is_none());
        common::yield_times(2).await;
    });
    assert_eq!(*seen.lock().unwrap(), Some(42));
}

#[test]
fn task_future_views_are_the_same_future() {
    common::run_guarded(async {
        let task = evloop::create_task(async { Ok::<_, Error>(3u8) });
        let a = task.future();
        let b = task.future();
        assert_eq!(a, b);
        assert_eq!(a, *task);
        let other = evloop::create_task(async { Ok::<_, Error>(3u8) });
        assert_ne!(a, *other);
        let converted: Future<u8> = Future::from(other);
        assert_ne!(a, converted);
        assert_eq!(a.await.unwrap(), 3, "the view is awaitable");
        assert_eq!(b.result().unwrap(), 3);
        assert_eq!(task.await.unwrap(), 3);
        assert_eq!(converted.await.unwrap(), 3);
        let dbg = format!("{:?}", evloop::create_task(async { Ok::<_, Error>(()) }));
        assert!(dbg.contains("Task"), "{dbg}");
    });
}

/// No `Clone`: awaiting the task moves the value out (T2).
#[derive(Debug, PartialEq)]
struct NotClone(String, Box<u8>);

#[test]
fn awaiting_a_task_does_not_need_clone() {
    let (value, boxes) = common::run_guarded(async {
        let t1 =
            evloop::create_task(async { Ok::<_, Error>(NotClone("moved".into(), Box::new(1))) });
        let t2 = evloop::create_task(async {
            evloop::yield_now().await?;
            Ok::<_, Error>(vec![Box::new(2u8), Box::new(3)])
        });
        let value = t1.await.unwrap();
        let boxes = t2.await.unwrap();
        (value, boxes)
    });
    assert_eq!(value, NotClone("moved".into(), Box::new(1)));
    assert_eq!(boxes, vec![Box::new(2), Box::new(3)]);
}

#[test]
fn a_task_result_cannot_be_set_from_outside() {
    common::run_guarded(async {
        let gate = common::Gate::new();
        let task = {
            let gate = gate.clone();
            evloop::create_task(async move {
                gate.wait().await;
                Ok::<_, Error>(1u8)
            })
        };
        let view = task.future();
        assert!(task.set_result(9).is_err(), "pending task");
        assert!(view.set_exception(Error::msg("no")).is_err());
        assert!(!task.done(), "a refused set_* leaves the task running");
        gate.open();
        while !task.done() {
            evloop::yield_now().await.unwrap();
        }
        assert!(task.set_result(9).is_err(), "done task");
        assert!(view.set_exception(Error::msg("no")).is_err());
        assert_eq!(task.result().unwrap(), 1);
    });
}

#[derive(Debug)]
struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("refused")
    }
}

impl std::error::Error for Refused {}

#[test]
fn a_coroutine_returning_err_ends_the_task_with_that_exception() {
    common::run_guarded(async {
        let task = evloop::create_task(async {
            evloop::yield_now().await?;
            Err::<u8, _>(Error::new(Refused))
        });
        let view = task.future();
        let err = task.await.unwrap_err();
        assert!(err.downcast_ref::<Refused>().is_some(), "{err:?}");
        assert!(view.done());
        assert!(!view.cancelled());
        let exc = view.exception().unwrap().expect("an exception");
        assert!(exc.downcast_ref::<Refused>().is_some());
        assert!(
            view.result()
                .unwrap_err()
                .downcast_ref::<Refused>()
                .is_some()
        );
    });
}

async fn panics_after_a_yield() -> Result<u8, Error> {
    evloop::yield_now().await?;
    panic!("task went boom")
}

#[test]
fn a_panicking_coroutine_ends_the_task_and_the_loop_keeps_running() {
    let rt = Runtime::new().unwrap();
    let bystander_ticks = Arc::new(AtomicUsize::new(0));
    let ticks = bystander_ticks.clone();
    let (err, after) = rt.block_on(async move {
        let bystander = evloop::create_task(async move {
            for _ in 0..5 {
                ticks.fetch_add(1, Ordering::SeqCst);
                evloop::yield_now().await?;
            }
            Ok::<_, Error>("bystander done")
        });
        let task = evloop::create_task(panics_after_a_yield());
        let err = task.await.unwrap_err();
        let after = evloop::create_task(async { Ok::<_, Error>("after") })
            .await
            .unwrap();
        assert_eq!(bystander.await.unwrap(), "bystander done");
        (err, after)
    });
    assert!(err.is_panic(), "{err:?}");
    assert!(err.to_string().contains("task went boom"), "{err}");
    assert_eq!(after, "after");
    assert_eq!(bystander_ticks.load(Ordering::SeqCst), 5);
    // The runtime is still usable afterwards.
    assert_eq!(rt.block_on(async { 7 }), 7);
}

#[test]
fn not_send_coroutines_run_as_tasks() {
    let shared = common::run_guarded(async {
        let shared = Rc::new(RefCell::new(Vec::new()));
        let tasks: Vec<_> = (0..3)
            .map(|i| {
                let shared = Rc::clone(&shared);
                evloop::create_task(async move {
                    // The Rc lives across awaits: the coroutine is !Send.
                    for round in 0..2 {
                        shared.borrow_mut().push((i, round));
                        evloop::yield_now().await?;
                    }
                    Ok::<_, Error>(Rc::strong_count(&shared))
                })
            })
            .collect();
        for t in tasks {
            assert!(t.await.unwrap() >= 2);
        }
        Rc::try_unwrap(shared).unwrap().into_inner()
    });
    assert_eq!(shared, [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1)]);
}

#[test]
fn yield_now_interleaves_two_tasks() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    common::run_guarded(async move {
        let make = |name: &'static str| {
            let l = l.clone();
            evloop::create_task(async move {
                for i in 0..3 {
                    l.lock().unwrap().push(format!("{name}{i}"));
                    evloop::yield_now().await?;
                }
                Ok::<_, Error>(())
            })
        };
        let a = make("a");
        let b = make("b");
        a.await.unwrap();
        b.await.unwrap();
    });
    assert_eq!(*log.lock().unwrap(), ["a0", "b0", "a1", "b1", "a2", "b2"]);
}

#[test]
fn current_task_names_and_ids() {
    common::run_guarded(async {
        assert!(
            evloop::current_task().is_none(),
            "block_on's root future is not a task"
        );
        let unnamed = evloop::create_task(async {
            let me = evloop::current_task().expect("inside a task");
            Ok::<_, Error>((me.id(), me.name()))
        });
        let unnamed_id = unnamed.id();
        assert_eq!(unnamed.name(), format!("Task-{unnamed_id}"));
        let (id, name) = unnamed.await.unwrap();
        assert_eq!(id, unnamed_id);
        assert_eq!(name, format!("Task-{unnamed_id}"));

        let named = evloop::create_task(async {
            let me = evloop::current_task().unwrap();
            let before = me.name();
            me.set_name("renamed-inside");
            evloop::yield_now().await?;
            Ok::<_, Error>((before, me.done(), me.cancelled()))
        });
        named.set_name("worker");
        assert_eq!(named.name(), "worker");
        let (before, done_inside, cancelled_inside) = named.future().await.unwrap();
        assert_eq!(before, "worker");
        assert!(!done_inside && !cancelled_inside);
        assert_eq!(named.name(), "renamed-inside");
        assert_ne!(named.id(), unnamed_id);
        assert_eq!(named.to_ref().name(), "renamed-inside");
        assert!(named.to_ref().done());
        assert!(evloop::current_task().is_none(), "back in the root");
        // asyncio: current_task() is None in a plain callback, even one scheduled by a
        // task.
        let in_callback: Future<bool> = Future::new();
        {
            let in_callback = in_callback.clone();
            evloop::create_task(async move {
                LoopHandle::current().call_soon(move || {
                    in_callback
                        .set_result(evloop::current_task().is_none())
                        .unwrap();
                });
                Ok::<_, Error>(())
            });
        }
        assert!(in_callback.await.unwrap(), "a callback is not a task");
        let dbg = format!("{named:?}");
        assert!(dbg.contains("renamed-inside"), "{dbg}");
    });
}

/// Where a task finds its own future.
type SelfSlot = Arc<Mutex<Option<Future<(Error, &'static str)>>>>;

#[test]
fn a_task_awaiting_itself_gets_invalid_state() {
    let (err, after) = common::run_guarded(async {
        let slot: SelfSlot = Arc::new(Mutex::new(None));
        let task = {
            let slot = slot.clone();
            evloop::create_task(async move {
                let me = slot
                    .lock()
                    .unwrap()
                    .take()
                    .expect("set before the first poll");
                let err = me.await.unwrap_err();
                // The task is not stuck: it goes on and finishes.
                evloop::yield_now().await?;
                Ok::<_, Error>((err, "finished"))
            })
        };
        *slot.lock().unwrap() = Some(task.future());
        task.await.unwrap()
    });
    match err {
        Error::InvalidState(e) => assert_eq!(e.message(), "task cannot await on itself"),
        other => panic!("expected InvalidState, got {other:?}"),
    }
    assert_eq!(after, "finished");
}

#[test]
fn a_task_awaiting_its_own_task_handle_gets_invalid_state() {
    let err = common::run_guarded(async {
        let slot: Arc<Mutex<Option<Task<Error>>>> = Arc::new(Mutex::new(None));
        let task = {
            let slot = slot.clone();
            evloop::create_task(async move {
                let me = slot
                    .lock()
                    .unwrap()
                    .take()
                    .expect("set before the first poll");
                match me.await {
                    Err(e) => Ok(e),
                    Ok(_) => panic!("a task awaited itself successfully"),
                }
            })
        };
        let view = task.future();
        *slot.lock().unwrap() = Some(task);
        view.await.unwrap()
    });
    match err {
        Error::InvalidState(e) => assert_eq!(e.message(), "task cannot await on itself"),
        other => panic!("expected InvalidState, got {other:?}"),
    }
}

#[test]
fn dropping_a_task_handle_does_not_cancel_it() {
    let finished = Arc::new(AtomicBool::new(false));
    let f = finished.clone();
    common::run_guarded(async move {
        let probe = {
            let f = f.clone();
            let task = evloop::create_task(async move {
                common::yield_times(3).await;
                f.store(true, Ordering::SeqCst);
                Ok::<_, Error>(())
            });
            let probe = task.to_ref();
            drop(task);
            probe
        };
        while !probe.done() {
            evloop::yield_now().await.unwrap();
        }
        assert!(!probe.cancelled());
    });
    assert!(finished.load(Ordering::SeqCst));
}

#[test]
fn stats_count_live_tasks_and_task_polls() {
    let rt = Runtime::new().unwrap();
    let loop_ = rt.handle();
    rt.block_on(async {
        let base = loop_.stats();
        assert_eq!(base.live_tasks, 0);
        let fut: Future<()> = Future::new();
        let waiting: Vec<_> = (0..3)
            .map(|_| {
                let fut = fut.clone();
                evloop::create_task(fut)
            })
            .collect();
        assert_eq!(loop_.stats().live_tasks, 3, "counted from creation");
        let yielder = evloop::create_task(async {
            for _ in 0..4 {
                evloop::yield_now().await?;
            }
            Ok::<_, Error>(())
        });
        assert_eq!(loop_.stats().live_tasks, 4);
        let polls_before = loop_.stats().task_polls;
        yielder.await.unwrap();
        // The yielder alone was polled 5 times (4 yields + the final poll), the three
        // waiters once each, and the root at least once more.
        let polls = loop_.stats().task_polls - polls_before;
        assert!(polls > 5 + 3, "task_polls grew by {polls}");
        assert_eq!(loop_.stats().live_tasks, 3);
        fut.set_result(()).unwrap();
        for t in waiting {
            t.await.unwrap();
        }
        assert_eq!(loop_.stats().live_tasks, 0);
    });
    assert_eq!(loop_.stats().live_tasks, 0);
}
