//! SPEC §13 Y7 (`SharedMutex`, `SharedSemaphore`, `SharedEvent`), T3, rules 1–2 of
//! ARCHITECTURE.md:
//!
//! * `SharedMutex` used by tasks on the two loops of a `LoopGroup` and by plain threads
//!   at once: a read-modify-write counter held across `.await`s is exact and no two
//!   holders overlap; waiters get the lock in FIFO order, across loops and threads; a
//!   lock handed to a waiter that is cancelled (or whose future is dropped) before it
//!   ran passes to the next waiter; the guard is `Send` (held across an await in a
//!   `LoopHandle::spawn` task).
//! * `SharedSemaphore`: never more holders than permits, across loops and threads;
//!   `forget`, unpaired `release`, no overtaking by `try_acquire`.
//! * `SharedEvent`: one `set` from a plain thread wakes tasks on two loops and a
//!   blocked thread; waiters woken by `set` return `Ok` even after a `clear`.
//! * every `blocking_*` panics on a loop thread; a panicking waker does not keep the
//!   other waiters from being woken.

mod common;
use common::{bounded, run_guarded, yield_times};

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use evloop::sync::{SharedEvent, SharedMutex, SharedSemaphore};
use evloop::{Error, LoopGroup, create_task};

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn the_types_are_send_sync_and_the_guard_is_send() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<SharedMutex<Vec<u8>>>();
    send_sync::<SharedSemaphore>();
    send_sync::<SharedEvent>();
    send_sync::<evloop::sync::SharedMutexGuard<'static, Vec<u8>>>();
    send_sync::<evloop::sync::SharedSemaphorePermit<'static>>();
    // A spawned (Send) task holds the guard across an await.
    let rt = evloop::Runtime::new().unwrap();
    let m = SharedMutex::new(0);
    let task = rt.handle().spawn({
        let m = m.clone();
        async move {
            let mut g = m.lock().await?;
            evloop::yield_now().await?;
            *g += 1;
            Ok::<(), Error>(())
        }
    });
    rt.block_on(task).unwrap();
    assert_eq!(*m.try_lock().unwrap(), 1);
}

/// Tasks on both loops and two plain threads increment a counter with a
/// read-modify-write that spans an await; `inside` catches any overlap.
#[test]
fn shared_mutex_excludes_across_two_loops_and_threads() {
    const TASKS_PER_LOOP: usize = 4;
    const ROUNDS: usize = 300;
    let m = SharedMutex::new(0usize);
    let inside = Arc::new(AtomicBool::new(false));
    let enter = |inside: &AtomicBool| assert!(!inside.swap(true, SeqCst), "two holders at once");
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (m, inside) = (m.clone(), inside.clone());
            std::thread::spawn(move || {
                for _ in 0..ROUNDS {
                    let mut g = m.blocking_lock();
                    enter(&inside);
                    let v = *g;
                    std::thread::yield_now();
                    *g = v + 1;
                    inside.store(false, SeqCst);
                }
            })
        })
        .collect();
    let group = LoopGroup::new(2).unwrap();
    let results = bounded(LIMIT, "SharedMutex across loops", {
        let (m, inside) = (m.clone(), inside.clone());
        move || {
            group.block_on_each(move |_, _| {
                let tasks: Vec<_> = (0..TASKS_PER_LOOP)
                    .map(|_| {
                        let (m, inside) = (m.clone(), inside.clone());
                        create_task(async move {
                            for _ in 0..ROUNDS {
                                let mut g = m.lock().await?;
                                enter(&inside);
                                let v = *g;
                                evloop::yield_now().await?;
                                *g = v + 1;
                                inside.store(false, SeqCst);
                            }
                            Ok::<(), Error>(())
                        })
                    })
                    .collect();
                async move {
                    for t in tasks {
                        t.await?;
                    }
                    Ok::<(), Error>(())
                }
            })
        }
    });
    for r in results {
        r.unwrap();
    }
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(*m.blocking_lock(), (2 * TASKS_PER_LOOP + 2) * ROUNDS);
    assert!(!m.locked());
}

/// Polls `fut` once (registering it), calls `registered`, then awaits the rest.
async fn after_first_poll<F: Future>(fut: F, registered: impl FnOnce()) -> F::Output {
    let mut fut = pin!(fut);
    let mut registered = Some(registered);
    std::future::poll_fn(move |cx| {
        let poll = fut.as_mut().poll(cx);
        if let Some(f) = registered.take() {
            f();
        }
        poll
    })
    .await
}

/// Blocks this plain thread until `what`'s `Debug` shows `waiting: n` (a bounded wait
/// for a registration made on another thread, not a timing check).
fn until_waiting(what: &dyn std::fmt::Debug, n: usize) {
    let want = format!("waiting: {n}");
    for _ in 0..10_000 {
        if format!("{what:?}").contains(&want) {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("never {want}: {what:?}");
}

#[test]
fn shared_mutex_is_fifo_across_loops_and_threads() {
    let m = SharedMutex::new(Vec::<String>::new());
    let holder = m.blocking_lock();
    let group = LoopGroup::new(2).unwrap();
    let mut tasks = Vec::new();
    let mut threads = Vec::new();
    // Waiters queue one at a time: loop 0, loop 1, a thread, loop 0, loop 1, a thread.
    for i in 0..6 {
        let m2 = m.clone();
        let name = format!("waiter {i}");
        if i % 3 == 2 {
            threads.push(std::thread::spawn(move || m2.blocking_lock().push(name)));
        } else {
            tasks.push(group.handles()[i % 3].spawn(async move {
                m2.lock().await?.push(name);
                Ok::<(), Error>(())
            }));
        }
        until_waiting(&m, i + 1);
    }
    drop(holder);
    for t in threads {
        t.join().unwrap();
    }
    let done = bounded(LIMIT, "FIFO waiters", move || {
        evloop::run(async move {
            for t in tasks {
                t.await?;
            }
            Ok::<(), Error>(())
        })
    });
    done.unwrap();
    let order = m.blocking_lock().clone();
    let expected: Vec<String> = (0..6).map(|i| format!("waiter {i}")).collect();
    assert_eq!(order, expected);
}

#[test]
fn a_lock_handed_to_a_cancelled_or_dropped_waiter_passes_to_the_next() {
    run_guarded(async {
        let m = SharedMutex::new(Vec::<&str>::new());
        let guard = m.lock().await?;
        let a = create_task({
            let m = m.clone();
            async move {
                m.lock().await?.push("a");
                Ok::<(), Error>(())
            }
        });
        yield_times(2).await; // a queues first
        // b: a plain thread, queued behind a.
        let b = std::thread::spawn({
            let m = m.clone();
            move || m.blocking_lock().push("b")
        });
        common::eventually("b is queued", || format!("{m:?}").contains("waiting: 2")).await;
        // The release hands the lock to a; a is cancelled before it runs.
        drop(guard);
        assert!(a.cancel());
        assert!(a.await.unwrap_err().is_cancelled());
        b.join().unwrap();
        assert_eq!(*m.lock().await?, ["b"], "b got the lock a was handed");

        // The same with a future that is dropped after it was handed the lock.
        let guard = m.lock().await?;
        let mut dropped = Box::pin(m.lock());
        let noop = Waker::noop();
        assert!(
            dropped
                .as_mut()
                .poll(&mut Context::from_waker(noop))
                .is_pending()
        );
        let c = create_task({
            let m = m.clone();
            async move {
                m.lock().await?.push("c");
                Ok::<(), Error>(())
            }
        });
        yield_times(2).await; // c queues behind the dropped one
        drop(guard); // handed to `dropped`
        assert!(
            format!("{m:?}").contains("waiting: 1"),
            "only c still waits"
        );
        drop(dropped); // … which passes it to c
        c.await?;
        assert_eq!(*m.lock().await?, ["b", "c"]);
        assert!(!m.locked());
        assert!(format!("{m:?}").contains("waiting: 0"));
        Ok::<(), Error>(())
    })
    .unwrap();
}

#[test]
fn shared_semaphore_bounds_holders_across_loops_and_threads() {
    const PERMITS: usize = 3;
    const ROUNDS: usize = 200;
    let sem = SharedSemaphore::new(PERMITS);
    let holders = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let hold = |holders: &AtomicUsize, peak: &AtomicUsize| {
        let now = holders.fetch_add(1, SeqCst) + 1;
        assert!(now <= PERMITS, "{now} holders of {PERMITS} permits");
        peak.fetch_max(now, SeqCst);
    };
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (sem, holders, peak) = (sem.clone(), holders.clone(), peak.clone());
            std::thread::spawn(move || {
                for _ in 0..ROUNDS {
                    let permit = sem.blocking_acquire();
                    hold(&holders, &peak);
                    std::thread::yield_now();
                    holders.fetch_sub(1, SeqCst);
                    drop(permit);
                }
            })
        })
        .collect();
    let group = LoopGroup::new(2).unwrap();
    let results = bounded(LIMIT, "SharedSemaphore across loops", {
        let (sem, holders, peak) = (sem.clone(), holders.clone(), peak.clone());
        move || {
            group.block_on_each(move |_, _| {
                let tasks: Vec<_> = (0..4)
                    .map(|_| {
                        let (sem, holders, peak) = (sem.clone(), holders.clone(), peak.clone());
                        create_task(async move {
                            for _ in 0..ROUNDS {
                                let permit = sem.acquire().await?;
                                hold(&holders, &peak);
                                evloop::yield_now().await?;
                                holders.fetch_sub(1, SeqCst);
                                drop(permit);
                            }
                            Ok::<(), Error>(())
                        })
                    })
                    .collect();
                async move {
                    for t in tasks {
                        t.await?;
                    }
                    Ok::<(), Error>(())
                }
            })
        }
    });
    for r in results {
        r.unwrap();
    }
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(sem.available(), PERMITS);
    assert!(peak.load(SeqCst) >= 2, "the permits were shared");
}

#[test]
fn shared_semaphore_forget_release_and_no_overtaking() {
    run_guarded(async {
        let sem = SharedSemaphore::new(1);
        sem.acquire().await?.forget();
        assert_eq!(sem.available(), 0);
        assert!(sem.locked());
        let waiter = create_task({
            let sem = sem.clone();
            async move {
                sem.acquire().await?.forget();
                Ok::<(), Error>(())
            }
        });
        yield_times(2).await;
        sem.release(); // handed to the waiter at once
        assert!(
            sem.try_acquire().is_none(),
            "a newcomer does not overtake the waiter"
        );
        waiter.await?;
        assert_eq!(sem.available(), 0);
        sem.release();
        sem.release();
        assert_eq!(sem.available(), 2, "release is unpaired (asyncio)");
        let p = sem.try_acquire().unwrap();
        assert_eq!(sem.available(), 1);
        drop(p);
        assert_eq!(sem.available(), 2);
        Ok::<(), Error>(())
    })
    .unwrap();
}

#[test]
fn shared_event_set_from_a_thread_wakes_tasks_on_two_loops_and_a_thread() {
    let event = SharedEvent::new();
    let waiting = Arc::new(AtomicUsize::new(0));
    let blocked = std::thread::spawn({
        let event = event.clone();
        move || event.blocking_wait()
    });
    let setter = std::thread::spawn({
        let (event, waiting) = (event.clone(), waiting.clone());
        move || {
            // Once the four loop tasks are queued (a bounded wait, not a timing check).
            for _ in 0..10_000 {
                if waiting.load(SeqCst) == 4 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            event.set();
        }
    });
    let group = LoopGroup::new(2).unwrap();
    let results = bounded(LIMIT, "SharedEvent across loops", {
        let event = event.clone();
        move || {
            group.block_on_each(move |_, _| {
                let tasks: Vec<_> = (0..2)
                    .map(|_| {
                        let (event, waiting) = (event.clone(), waiting.clone());
                        create_task(async move {
                            after_first_poll(event.wait(), || {
                                waiting.fetch_add(1, SeqCst);
                            })
                            .await
                        })
                    })
                    .collect();
                async move {
                    for t in tasks {
                        t.await?;
                    }
                    Ok::<(), Error>(())
                }
            })
        }
    });
    for r in results {
        r.unwrap();
    }
    setter.join().unwrap();
    blocked.join().unwrap();
    assert!(event.is_set());
}

#[test]
fn shared_event_waiters_woken_by_set_return_ok_after_a_clear() {
    run_guarded(async {
        let event = SharedEvent::new();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let event = event.clone();
                create_task(async move { event.wait().await })
            })
            .collect();
        yield_times(2).await;
        event.set();
        event.clear(); // before any waiter ran
        for w in waiters {
            w.await?;
        }
        assert!(!event.is_set());
        // A cancelled wait leaves nothing behind; a wait on a set event returns at once.
        let w = create_task({
            let event = event.clone();
            async move { event.wait().await }
        });
        yield_times(2).await;
        assert!(w.cancel());
        assert!(w.await.unwrap_err().is_cancelled());
        event.set();
        event.wait().await?;
        assert!(format!("{event:?}").contains("waiting: 0"), "{event:?}");
        Ok::<(), Error>(())
    })
    .unwrap();
}

#[test]
fn blocking_waits_on_a_loop_thread_panic() {
    let messages = evloop::run(async {
        let m = SharedMutex::new(());
        let sem = SharedSemaphore::new(1);
        let event = SharedEvent::new();
        let catch = |f: &dyn Fn()| {
            let payload = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_err();
            common::panic_message(&*payload)
        };
        [
            catch(&|| drop(m.blocking_lock())),
            catch(&|| drop(sem.blocking_acquire())),
            catch(&|| event.blocking_wait()),
        ]
    });
    assert!(
        messages[0].contains("SharedMutex::blocking_lock")
            && messages[0].contains("m.lock().await")
    );
    assert!(messages[1].contains("SharedSemaphore::blocking_acquire"));
    assert!(messages[2].contains("SharedEvent::blocking_wait"));
    assert!(
        messages.iter().all(|m| m.contains("would block")),
        "{messages:?}"
    );
}

/// A waker that panics when woken.
struct PanickingWaker;

impl Wake for PanickingWaker {
    fn wake(self: Arc<Self>) {
        panic!("waker says no");
    }
}

/// A waker that counts its wake-ups.
#[derive(Default)]
struct Counting(AtomicUsize);

impl Wake for Counting {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
}

#[test]
fn a_panicking_waker_does_not_keep_the_other_waiters_asleep() {
    let event = SharedEvent::new();
    let bad = Waker::from(Arc::new(PanickingWaker));
    let counting = Arc::new(Counting::default());
    let good = Waker::from(counting.clone());
    let mut first = Box::pin(event.wait());
    let mut second = Box::pin(event.wait());
    assert!(
        first
            .as_mut()
            .poll(&mut Context::from_waker(&bad))
            .is_pending()
    );
    assert!(
        second
            .as_mut()
            .poll(&mut Context::from_waker(&good))
            .is_pending()
    );
    let set = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| event.set()));
    assert!(set.is_err(), "the waker's panic reaches the caller of set");
    assert_eq!(
        counting.0.load(SeqCst),
        1,
        "the second waiter was woken anyway"
    );
    assert!(matches!(
        second.as_mut().poll(&mut Context::from_waker(&good)),
        Poll::Ready(Ok(()))
    ));
    // The event still works.
    assert!(event.is_set());
    drop(first);
    assert!(format!("{event:?}").contains("waiting: 0"));
}
