//! Introspection (SPEC K6): `LoopHandle::all_tasks`, `dump_tasks` and `TaskRef::info`
//! name what each task waits on when that is an evloop awaitable, and a dump never
//! blocks or changes what the loop does.

use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use evloop::net::UnixStream;
use evloop::task::TaskState;
use evloop::{Error, Future, LoopHandle};

// The scenario: tasks blocked on a future, a sleep, a socket, a lock and
// another task; the dump has one line per task naming each.
#[test]
fn dump_names_what_each_task_waits_on() {
    evloop::run(async {
        let fut: Future<u8> = Future::new();
        let on_future = evloop::create_task({
            let fut = fut.clone();
            async move { fut.await.map(drop) }
        });
        on_future.set_name("on-future");

        let sleeper =
            evloop::create_task(async { evloop::time::sleep(Duration::from_secs(3600)).await });
        sleeper.set_name("sleeper");

        let (ours, _theirs) = UnixStream::pair().unwrap();
        let reader = evloop::create_task(async move {
            let mut buf = [0u8; 8];
            ours.read(&mut buf).await?;
            Ok::<_, Error>(())
        });
        reader.set_name("reader");

        let lock = Rc::new(evloop::sync::Mutex::new(0u32));
        let guard = lock.lock().await?;
        let locker = evloop::create_task({
            let lock = lock.clone();
            async move { lock.lock().await.map(drop) }
        });
        locker.set_name("locker");

        let joiner = evloop::create_task(sleeper.future());
        joiner.set_name("joiner");

        evloop::yield_now().await?;
        evloop::yield_now().await?;
        let dump = LoopHandle::current().dump_tasks();
        let line = |name: &str| {
            dump.lines()
                .find(|l| l.contains(&format!("{name:?}")))
                .unwrap_or_else(|| panic!("no line for {name} in:\n{dump}"))
                .to_string()
        };
        assert!(dump.starts_with("5 live task(s)"), "{dump}");
        let l = line("on-future");
        assert!(
            l.contains("waiting on a future created at tests/task_dump.rs"),
            "{l}"
        );
        assert!(
            line("sleeper").contains("waiting on a sleep, due in"),
            "{dump}"
        );
        assert!(line("reader").contains("waiting on socket fd"), "{dump}");
        assert!(line("reader").contains("(readable)"), "{dump}");
        assert!(
            line("locker").contains("waiting on evloop::sync::Mutex"),
            "{dump}"
        );
        let l = line("joiner");
        assert!(
            l.contains("waiting on task") && l.contains("\"sleeper\""),
            "{l}"
        );
        for name in ["on-future", "sleeper", "reader", "locker", "joiner"] {
            let l = line(name);
            assert!(l.contains("[Waiting]"), "{l}");
            assert!(l.contains("created at tests/task_dump.rs:"), "{l}");
            assert!(l.contains("1 polls"), "{l}");
        }

        // Everything still runs as if no dump had been taken.
        fut.set_result(1).unwrap();
        drop(guard);
        on_future.await?;
        locker.await?;
        sleeper.cancel();
        assert!(joiner.await.unwrap_err().is_cancelled());
        reader.cancel();
        assert!(reader.await.unwrap_err().is_cancelled());
        Ok::<(), Error>(())
    })
    .unwrap();
}

// `TaskRef::info` fields: state through a task's life, pending cancel requests, poll
// count; `all_tasks` includes the task that asks.
#[test]
fn info_reports_state_polls_and_cancel_requests() {
    evloop::run(async {
        let gate: Future<()> = Future::new();
        let task = evloop::create_task({
            let gate = gate.clone();
            async move {
                for _ in 0..3 {
                    evloop::yield_now().await?;
                }
                let me = evloop::current_task().unwrap();
                let info = me.info();
                assert_eq!(info.state, TaskState::Running);
                assert!(
                    LoopHandle::current()
                        .all_tasks()
                        .iter()
                        .any(|t| t.id() == me.id()),
                    "all_tasks includes the task being polled"
                );
                gate.await
            }
        });
        let r = task.to_ref();
        assert_eq!(r.info().state, TaskState::Created);
        assert_eq!(r.info().polls, Some(0));
        assert!(r.info().since_last_poll.is_none());
        evloop::time::sleep(Duration::from_millis(1)).await?;
        let info = r.info();
        assert_eq!(info.state, TaskState::Waiting);
        assert_eq!(
            info.polls,
            Some(4),
            "three yields and the await of the gate"
        );
        assert!(info.since_last_poll.is_some());
        assert_eq!(info.cancelling, 0);
        r.cancel();
        r.cancel();
        let info = r.info();
        assert_eq!(info.cancelling, 2);
        assert_eq!(
            info.state,
            TaskState::Scheduled,
            "woken to take the cancellation"
        );
        assert!(
            info.to_string().contains("2 cancel request(s) pending"),
            "{info}"
        );
        assert!(task.await.unwrap_err().is_cancelled());
        assert_eq!(r.info().state, TaskState::Cancelled);
        Ok::<(), Error>(())
    })
    .unwrap();
}

// Off the loop thread: `info` fills in what is shared and leaves the loop-only fields
// empty; `all_tasks` panics saying what to do.
#[test]
fn off_thread_info_is_partial_and_all_tasks_panics_with_advice() {
    let rt = evloop::Runtime::new().unwrap();
    let task = rt
        .handle()
        .spawn(async { evloop::time::sleep(Duration::from_secs(3600)).await });
    task.set_name("far");
    let r = task.to_ref();
    let handle = rt.handle();
    let (info, panic) = std::thread::spawn(move || {
        let info = r.info();
        let panic = std::panic::catch_unwind(|| handle.all_tasks()).unwrap_err();
        (
            info,
            panic.downcast_ref::<String>().cloned().unwrap_or_default(),
        )
    })
    .join()
    .unwrap();
    assert_eq!(info.name, "far");
    assert!(info.polls.is_none() && info.waiting_on.is_none());
    assert!(panic.contains("call_soon_threadsafe"), "{panic}");
    task.cancel();
    assert!(rt.block_on(task).unwrap_err().is_cancelled());
}

/// The order in which three tasks and a callback finish, with or without dumps taken
/// from a task, a done-callback and a timer callback meanwhile.
fn order_of_events(dumping: bool) -> Vec<&'static str> {
    let log = Arc::new(Mutex::new(Vec::new()));
    evloop::run({
        let log = log.clone();
        async move {
            let loop_ = LoopHandle::current();
            let fut: Future<u8> = Future::new();
            let mut tasks = Vec::new();
            for (name, yields) in [("a", 3), ("b", 1), ("c", 2)] {
                let log = log.clone();
                let fut = fut.clone();
                tasks.push(evloop::create_task(async move {
                    for _ in 0..yields {
                        if dumping {
                            let _ = LoopHandle::current().dump_tasks();
                        }
                        evloop::yield_now().await?;
                    }
                    fut.clone().await?;
                    log.lock().unwrap().push(name);
                    Ok::<_, Error>(())
                }));
            }
            let l = log.clone();
            fut.add_done_callback(move |_| {
                if dumping {
                    let _ = LoopHandle::current().dump_tasks();
                }
                l.lock().unwrap().push("done-callback");
            });
            let l = log.clone();
            loop_.call_later(Duration::from_millis(1), move || {
                if dumping {
                    let _ = LoopHandle::current().dump_tasks();
                }
                l.lock().unwrap().push("timer");
            });
            evloop::time::sleep(Duration::from_millis(2)).await.unwrap();
            fut.set_result(1).unwrap();
            for t in tasks {
                t.await.unwrap();
            }
        }
    });
    log.lock().unwrap().clone()
}

#[test]
fn a_dump_does_not_change_what_the_loop_does() {
    assert_eq!(order_of_events(true), order_of_events(false));
}
