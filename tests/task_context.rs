//! `ContextVar` (SPEC K5): asyncio's copy-on-create context. A task starts with a copy of
//! its creator's context; changes on either side stay there; a callback runs in the
//! context current when it was scheduled. Ported from the behaviour CPython's
//! `test_context.py` / `test_tasks.py` (`test_context_1..3`, `test_context_run`) pin,
//! checked against python3.11.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use evloop::{ContextVar, Error, Future, LoopHandle, Runtime};

static NAME: ContextVar<String> = ContextVar::new("name");
static DEPTH: ContextVar<u32> = ContextVar::with_default("depth", 0);

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

// asyncio: `cvar.set('a'); t = create_task(child()); cvar.set('b')` — the child sees
// 'a' (its copy was taken at creation), sets 'c', and the parent still sees 'b'.
#[test]
fn child_starts_with_a_copy_and_changes_stay_on_their_side() {
    evloop::run(async {
        NAME.set("a".into());
        let child = evloop::create_task(async {
            let seen = NAME.get();
            NAME.set("c".into());
            evloop::yield_now().await?;
            Ok::<_, Error>((seen, NAME.get()))
        });
        NAME.set("b".into());
        let (seen, after) = child.await?;
        assert_eq!(
            seen,
            s("a"),
            "the child's copy was taken when it was created"
        );
        assert_eq!(after, s("c"));
        assert_eq!(
            NAME.get(),
            s("b"),
            "the child's set is invisible to the parent"
        );
        Ok::<(), Error>(())
    })
    .unwrap();
}

// 100 tasks, each setting its own value and yielding between reads: every task keeps
// seeing its own value (the contexts are swapped per poll).
#[test]
fn concurrent_tasks_are_isolated() {
    evloop::run(async {
        let tasks: Vec<_> = (0..100u32)
            .map(|i| {
                evloop::create_task(async move {
                    assert_eq!(DEPTH.get(), Some(0), "the default where never set");
                    DEPTH.set(i);
                    for _ in 0..5 {
                        evloop::yield_now().await?;
                        assert_eq!(DEPTH.get(), Some(i));
                    }
                    Ok::<_, Error>(i)
                })
            })
            .collect();
        for (i, t) in tasks.into_iter().enumerate() {
            assert_eq!(t.await?, i as u32);
        }
        assert_eq!(DEPTH.get(), Some(0));
        Ok::<(), Error>(())
    })
    .unwrap();
}

// Nested: a grandchild copies the child's context, not the root's.
#[test]
fn grandchild_copies_its_creator() {
    evloop::run(async {
        NAME.set("root".into());
        let child = evloop::create_task(async {
            NAME.set("child".into());
            let grandchild = evloop::create_task(async { Ok::<_, Error>(NAME.get()) });
            NAME.set("child later".into());
            grandchild.await
        });
        assert_eq!(child.await?, s("child"));
        assert_eq!(NAME.get(), s("root"));
        Ok::<(), Error>(())
    })
    .unwrap();
}

// asyncio's `loop.call_soon(cb)` copies the current context: the callback sees the value
// set before it was scheduled, not one set after; its own set is not seen afterwards.
#[test]
fn call_soon_and_call_later_run_in_the_context_they_were_scheduled_in() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    evloop::run({
        let seen = seen.clone();
        async move {
            let task = evloop::create_task(async move {
                let loop_ = LoopHandle::current();
                NAME.set("at call_soon".into());
                let s1 = seen.clone();
                loop_.call_soon(move || {
                    s1.lock().unwrap().push(("soon", NAME.get()));
                    NAME.set("set by the callback".into());
                });
                NAME.set("at call_later".into());
                let s2 = seen.clone();
                loop_.call_later(Duration::from_millis(1), move || {
                    s2.lock().unwrap().push(("later", NAME.get()))
                });
                NAME.set("after scheduling".into());
                evloop::time::sleep(Duration::from_millis(5)).await?;
                seen.lock().unwrap().push(("task", NAME.get()));
                Ok::<_, Error>(())
            });
            task.await.unwrap();
        }
    });
    assert_eq!(
        *seen.lock().unwrap(),
        [
            ("soon", s("at call_soon")),
            ("later", s("at call_later")),
            ("task", s("after scheduling")),
        ]
    );
}

// asyncio's `fut.add_done_callback(cb)` copies the context at registration: the
// callback sees the registrant's value, not the completer's.
#[test]
fn done_callback_runs_in_the_registrants_context() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    evloop::run({
        let seen = seen.clone();
        async move {
            let fut: Future<u8> = Future::new();
            let registrant = {
                let fut = fut.clone();
                let seen = seen.clone();
                evloop::create_task(async move {
                    NAME.set("registrant".into());
                    fut.add_done_callback(move |_| seen.lock().unwrap().push(NAME.get()));
                    Ok::<_, Error>(())
                })
            };
            registrant.await.unwrap();
            let completer = evloop::create_task(async move {
                NAME.set("completer".into());
                fut.set_result(1).unwrap();
                evloop::yield_now().await
            });
            completer.await.unwrap();
        }
    });
    assert_eq!(*seen.lock().unwrap(), [s("registrant")]);
}

// `LoopHandle::spawn` from another thread copies that thread's context.
#[test]
fn spawn_from_another_thread_copies_that_threads_context() {
    let rt = Runtime::new().unwrap();
    let handle = rt.handle();
    let task = std::thread::spawn(move || {
        NAME.set("spawner thread".into());
        handle.spawn(async { Ok::<_, Error>(NAME.get()) })
    })
    .join()
    .unwrap();
    assert_eq!(rt.block_on(task).unwrap(), s("spawner thread"));
    assert_eq!(NAME.get(), None, "this thread's own context was never set");
}

// `reset(token)` restores the previous value, `old_value` reports it; a token of
// another variable or made in another task is refused and changes nothing (asyncio:
// ValueError "Token was created by a different ContextVar" / "in a different Context").
#[test]
fn reset_restores_and_refuses_foreign_tokens() {
    static OTHER: ContextVar<String> = ContextVar::new("other");
    evloop::run(async {
        let task = evloop::create_task(async {
            let t1 = NAME.set("one".into());
            assert_eq!(t1.old_value(), None);
            let t2 = NAME.set("two".into());
            assert_eq!(t2.old_value(), s("one"));
            NAME.reset(t2)?;
            assert_eq!(NAME.get(), s("one"));

            let foreign = OTHER.set("x".into());
            let err = NAME.reset(foreign).unwrap_err();
            assert!(err.is_invalid_state());
            assert!(err.to_string().contains("another ContextVar"), "{err}");
            assert_eq!(NAME.get(), s("one"));

            let elsewhere =
                evloop::create_task(async { Ok::<_, Error>(NAME.set("in a sibling".into())) })
                    .await?;
            let err = NAME.reset(elsewhere).unwrap_err();
            assert!(err.to_string().contains("different context"), "{err}");
            assert_eq!(NAME.get(), s("one"));

            NAME.reset(t1)?;
            assert_eq!(NAME.get(), None, "back to unset");
            Ok::<_, Error>(())
        });
        task.await
    })
    .unwrap();
}

// A value's destructor runs when the last context holding it goes away — here when the
// task that set it finishes — and not while evloop holds a borrow (it may touch the
// variable again).
#[test]
fn values_are_dropped_with_their_context_outside_any_borrow() {
    struct Reentrant(Arc<Mutex<Vec<String>>>);
    impl Clone for Reentrant {
        fn clone(&self) -> Self {
            Reentrant(self.0.clone())
        }
    }
    impl Drop for Reentrant {
        fn drop(&mut self) {
            // Re-enters the context machinery from a destructor.
            let now = NAME.get();
            self.0
                .lock()
                .unwrap()
                .push(format!("dropped, name = {now:?}"));
        }
    }
    static HOLDER: ContextVar<Reentrant> = ContextVar::new("holder");
    let log = Arc::new(Mutex::new(Vec::new()));
    evloop::run({
        let log = log.clone();
        async move {
            let task = evloop::create_task({
                let log = log.clone();
                async move {
                    HOLDER.set(Reentrant(log.clone()));
                    log.lock().unwrap().push("set".to_string());
                    HOLDER.set(Reentrant(log.clone())); // replaces: the first is dropped
                    evloop::yield_now().await?;
                    log.lock().unwrap().push("task returns".to_string());
                    Ok::<_, Error>(())
                }
            });
            task.await.unwrap();
            log.lock().unwrap().push("awaited".to_string());
        }
    });
    let log = log.lock().unwrap().clone();
    assert_eq!(log[0], "set");
    assert!(log[1].starts_with("dropped"), "{log:?}");
    let returns = log.iter().position(|e| e == "task returns").unwrap();
    let last_drop = log.iter().rposition(|e| e.starts_with("dropped")).unwrap();
    assert!(
        last_drop > returns,
        "the task's context lives until it ends: {log:?}"
    );
    assert!(
        log.iter().filter(|e| e.starts_with("dropped")).count() >= 2,
        "{log:?}"
    );
}
