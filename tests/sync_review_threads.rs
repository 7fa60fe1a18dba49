//! Adversarial review of the thread-safe half of `evloop::sync`: items lost or
//! duplicated, lost wake-ups and over-granted permits under concurrency (plain threads
//! and the two loops of a `LoopGroup`, with drop-based timeouts churning the waits),
//! `blocking_*` on a loop thread, and a foreign waker's `clone` under a primitive's
//! lock.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc as std_mpsc};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use std::time::Duration;

use evloop::LoopGroup;
use evloop::sync::{SharedEvent, SharedMutex, SharedSemaphore, broadcast, mpsc};
use evloop::time::timeout;

const GUARD: Duration = Duration::from_secs(60);

/// Runs `body` on its own thread; a hang fails the test instead of the whole binary.
fn guarded<T: Send + 'static>(what: &str, body: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std_mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(body());
    });
    rx.recv_timeout(GUARD)
        .unwrap_or_else(|_| panic!("{what}: hung (or panicked) for {GUARD:?}"))
}

static SEND_TIMEOUTS: AtomicUsize = AtomicUsize::new(0);

/// Every sender's items exactly once, in its order.
fn check_exactly_once(got: &[(usize, usize)], senders: usize, per: usize) {
    let mut next = vec![0; senders];
    for &(s, i) in got {
        assert_eq!(
            i, next[s],
            "sender {s}: item {i} out of order, duplicated or after a loss"
        );
        next[s] += 1;
    }
    assert!(next.iter().all(|&n| n == per), "items lost: {next:?}");
}

/// Pins: a bounded mpsc channel of capacity 2 fed by 3 plain threads (`blocking_send`)
/// and 4 tasks on two loops whose sends are wrapped in a 20 µs drop-based timeout and
/// retried (a dropped send sends nothing, so a retry must never duplicate), drained by
/// a task on a loop whose `recv` is churned the same way. Every item exactly once, in
/// each sender's order; `None` only once every sender is gone and all was received.
#[test]
fn mpsc_bounded_under_timeout_churn_is_exactly_once() {
    const PER: usize = 3000;
    const THREADS: usize = 3;
    const TASKS: usize = 4;
    let got = guarded("mpsc stress", || {
        let group = LoopGroup::new(2).unwrap();
        let (tx, rx) = mpsc::channel::<(usize, usize)>(2);
        let (done_tx, done_rx) = std_mpsc::channel();
        let mut threads = Vec::new();
        for s in 0..THREADS {
            let tx = tx.clone();
            threads.push(std::thread::spawn(move || {
                for i in 0..PER {
                    tx.blocking_send((s, i)).unwrap();
                }
            }));
        }
        for s in THREADS..THREADS + TASKS {
            let tx = tx.clone();
            group.spawn(async move {
                for i in 0..PER {
                    loop {
                        match timeout(Duration::from_micros(20), tx.send((s, i))).await {
                            Ok(Ok(())) => break,
                            Ok(Err(e)) => panic!("send failed: {e}"),
                            Err(_) => {
                                SEND_TIMEOUTS.fetch_add(1, Ordering::Relaxed);
                                continue; // dropped: nothing was sent
                            }
                        }
                    }
                }
                Ok(())
            });
        }
        drop(tx);
        group.spawn(async move {
            let mut rx = rx;
            let mut got = Vec::new();
            loop {
                match timeout(Duration::from_micros(30), rx.recv()).await {
                    Ok(Ok(Some(v))) => got.push(v),
                    Ok(Ok(None)) => break,
                    Ok(Err(e)) => panic!("recv failed: {e}"),
                    Err(_) => continue,
                }
            }
            done_tx.send(got).unwrap();
            Ok(())
        });
        let got = done_rx.recv().unwrap();
        for t in threads {
            t.join().unwrap();
        }
        got
    });
    eprintln!("send timeouts: {}", SEND_TIMEOUTS.load(Ordering::Relaxed));
    assert!(
        SEND_TIMEOUTS.load(Ordering::Relaxed) > 0,
        "the churn never dropped a send"
    );
    assert_eq!(got.len(), (THREADS + TASKS) * PER);
    check_exactly_once(&got, THREADS + TASKS, PER);
}

/// Pins: `close()` racing with senders on threads and loops: every send that returned
/// `Ok` is received, none that failed is, and `recv` ends with `None`.
#[test]
fn mpsc_close_racing_with_senders_loses_nothing_that_was_sent() {
    for round in 0..20 {
        let (sent, received) = guarded("mpsc close race", move || {
            let group = LoopGroup::new(2).unwrap();
            let (tx, mut rx) = mpsc::channel::<usize>(4);
            let ok = Arc::new(AtomicUsize::new(0));
            let (done_tx, done_rx) = std_mpsc::channel::<()>();
            let mut threads = Vec::new();
            for _ in 0..2 {
                let (tx, ok) = (tx.clone(), ok.clone());
                threads.push(std::thread::spawn(move || {
                    while tx.blocking_send(1).is_ok() {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                }));
            }
            for _ in 0..2 {
                let (tx, ok, done_tx) = (tx.clone(), ok.clone(), done_tx.clone());
                group.spawn(async move {
                    while tx.send(1).await.is_ok() {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    drop(done_tx);
                    Ok(())
                });
            }
            drop((tx, done_tx));
            let mut received = 0;
            for _ in 0..(200 + round * 37) {
                received += rx.blocking_recv().unwrap();
            }
            rx.close();
            while let Some(v) = rx.blocking_recv() {
                received += v;
            }
            for t in threads {
                t.join().unwrap();
            }
            let _ = done_rx.recv(); // every loop sender finished
            (ok.load(Ordering::SeqCst), received)
        });
        assert_eq!(sent, received, "round {round}: Ok sends vs received");
    }
}

/// Pins: `SharedSemaphore(2)` acquired by tasks on two loops (half of them through a
/// drop-based timeout, which hands a grant on when it fires after the hand-over) and by
/// plain threads: never more than 2 holders, and all permits back at the end.
#[test]
fn shared_semaphore_never_over_grants_under_churn() {
    const ROUNDS: usize = 2000;
    let (max, available) = guarded("semaphore stress", || {
        let group = LoopGroup::new(2).unwrap();
        let sem = SharedSemaphore::new(2);
        let holders = Arc::new(AtomicUsize::new(0));
        let max = Arc::new(AtomicUsize::new(0));
        let enter = |holders: &AtomicUsize, max: &AtomicUsize| {
            let now = holders.fetch_add(1, Ordering::SeqCst) + 1;
            max.fetch_max(now, Ordering::SeqCst);
        };
        let (done_tx, done_rx) = std_mpsc::channel::<()>();
        for t in 0..4 {
            let (sem, holders, max, done_tx) =
                (sem.clone(), holders.clone(), max.clone(), done_tx.clone());
            group.spawn(async move {
                for _ in 0..ROUNDS {
                    let permit = if t % 2 == 0 {
                        match timeout(Duration::from_micros(10), sem.acquire()).await {
                            Ok(p) => p?,
                            Err(_) => continue,
                        }
                    } else {
                        sem.acquire().await?
                    };
                    enter(&holders, &max);
                    evloop::yield_now().await?;
                    holders.fetch_sub(1, Ordering::SeqCst);
                    drop(permit);
                }
                drop(done_tx);
                Ok(())
            });
        }
        let mut threads = Vec::new();
        for _ in 0..2 {
            let (sem, holders, max) = (sem.clone(), holders.clone(), max.clone());
            threads.push(std::thread::spawn(move || {
                for _ in 0..ROUNDS {
                    let p = sem.blocking_acquire();
                    enter(&holders, &max);
                    std::thread::yield_now();
                    holders.fetch_sub(1, Ordering::SeqCst);
                    drop(p);
                }
            }));
        }
        drop(done_tx);
        for t in threads {
            t.join().unwrap();
        }
        let _ = done_rx.recv();
        (max.load(Ordering::SeqCst), sem.available())
    });
    assert!(max <= 2, "{max} holders of a 2-permit semaphore");
    assert_eq!(available, 2, "a permit was lost");
}

/// Pins: `SharedMutex` counter incremented under the lock from two loops (with timeout
/// churn) and two threads: the count equals the number of successful locks.
#[test]
fn shared_mutex_counts_exactly_under_churn() {
    const ROUNDS: usize = 2000;
    let (count, locks) = guarded("mutex stress", || {
        let group = LoopGroup::new(2).unwrap();
        let m = SharedMutex::new(0usize);
        let locks = Arc::new(AtomicUsize::new(0));
        let (done_tx, done_rx) = std_mpsc::channel::<()>();
        for _ in 0..4 {
            let (m, locks, done_tx) = (m.clone(), locks.clone(), done_tx.clone());
            group.spawn(async move {
                for _ in 0..ROUNDS {
                    let mut g = match timeout(Duration::from_micros(10), m.lock()).await {
                        Ok(g) => g?,
                        Err(_) => continue,
                    };
                    let v = *g;
                    evloop::yield_now().await?;
                    *g = v + 1;
                    locks.fetch_add(1, Ordering::SeqCst);
                }
                drop(done_tx);
                Ok(())
            });
        }
        let mut threads = Vec::new();
        for _ in 0..2 {
            let (m, locks) = (m.clone(), locks.clone());
            threads.push(std::thread::spawn(move || {
                for _ in 0..ROUNDS {
                    let mut g = m.blocking_lock();
                    let v = *g;
                    std::thread::yield_now();
                    *g = v + 1;
                    locks.fetch_add(1, Ordering::SeqCst);
                }
            }));
        }
        drop(done_tx);
        for t in threads {
            t.join().unwrap();
        }
        let _ = done_rx.recv();
        let count = *m.blocking_lock();
        (count, locks.load(Ordering::SeqCst))
    });
    assert_eq!(count, locks);
}

/// Pins: no lost wake-up of `SharedEvent`: 300 rounds of waiters on two loops and a
/// thread, set from another thread racing with their registration, each followed by a
/// clear; every waiter of every round returns.
#[test]
fn shared_event_set_races_with_waiters_and_wakes_all() {
    guarded("event stress", || {
        let group = LoopGroup::new(2).unwrap();
        for _ in 0..300 {
            let e = SharedEvent::new();
            let (done_tx, done_rx) = std_mpsc::channel::<()>();
            for _ in 0..4 {
                let (e, done_tx) = (e.clone(), done_tx.clone());
                group.spawn(async move {
                    e.wait().await?;
                    done_tx.send(()).unwrap();
                    Ok(())
                });
            }
            let t = {
                let (e, done_tx) = (e.clone(), done_tx.clone());
                std::thread::spawn(move || {
                    e.blocking_wait();
                    done_tx.send(()).unwrap();
                })
            };
            let setter = {
                let e = e.clone();
                std::thread::spawn(move || e.set())
            };
            for _ in 0..5 {
                done_rx
                    .recv_timeout(Duration::from_secs(10))
                    .expect("a waiter missed the set");
            }
            setter.join().unwrap();
            t.join().unwrap();
            e.clear();
        }
    });
}

/// Pins: a broadcast channel sent to from a thread, read by receivers on two loops and
/// a thread: each sees every message, in order (capacity large enough: no lag).
#[test]
fn broadcast_every_receiver_sees_everything_in_order() {
    const N: usize = 5000;
    guarded("broadcast stress", || {
        let group = LoopGroup::new(2).unwrap();
        let (tx, rx) = broadcast::channel::<usize>(N);
        let (done_tx, done_rx) = std_mpsc::channel::<Vec<usize>>();
        for _ in 0..2 {
            let (mut rx, done_tx) = (rx.resubscribe(), done_tx.clone());
            group.spawn(async move {
                let mut got = Vec::new();
                loop {
                    match timeout(Duration::from_micros(20), rx.recv()).await {
                        Ok(Ok(v)) => got.push(v),
                        Ok(Err(broadcast::RecvError::Closed)) => break,
                        Ok(Err(e)) => panic!("{e:?}"),
                        Err(_) => continue,
                    }
                }
                done_tx.send(got).unwrap();
                Ok(())
            });
        }
        let reader = {
            let (mut rx, done_tx) = (rx, done_tx);
            std::thread::spawn(move || {
                let mut got = Vec::new();
                while let Ok(v) = rx.blocking_recv() {
                    got.push(v);
                }
                done_tx.send(got).unwrap();
            })
        };
        std::thread::spawn(move || {
            for i in 0..N {
                tx.send(i).unwrap();
            }
        })
        .join()
        .unwrap();
        for _ in 0..3 {
            let got = done_rx.recv().unwrap();
            assert_eq!(got, (0..N).collect::<Vec<_>>());
        }
        reader.join().unwrap();
    });
}

/// Pins: every `blocking_*` panics on the thread of a `LoopGroup` loop (it would block
/// that loop) rather than deadlocking it.
#[test]
fn blocking_calls_on_a_group_loop_thread_panic() {
    let results = guarded("blocking on a loop", || {
        let group = LoopGroup::new(2).unwrap();
        group.block_on_each(|index, _| async move {
            match index {
                0 => SharedEvent::new().blocking_wait(),
                _ => {
                    let (_tx, mut rx) = mpsc::unbounded_channel::<()>();
                    let _ = rx.blocking_recv();
                }
            }
            Ok::<_, evloop::Error>(())
        })
    });
    for r in results {
        assert!(r.is_err_and(|e| e.is_panic()));
    }
}

// A foreign waker whose `clone` looks at the shared mutex it is being queued on.
static CLONE_TARGET: std::sync::OnceLock<SharedMutex<()>> = std::sync::OnceLock::new();

fn raw_clone(data: *const ()) -> RawWaker {
    if let Some(m) = CLONE_TARGET.get() {
        let _ = m.locked();
    }
    RawWaker::new(data, &VTABLE)
}
fn raw_noop(_: *const ()) {}
static VTABLE: RawWakerVTable = RawWakerVTable::new(raw_clone, raw_noop, raw_noop, raw_noop);

/// BUG (rule 1: `clone` is a foreign waker's user code): `SharedMutex::lock` clones the
/// waker inside `Permits::enqueue` → `WaitList::push_back` while it holds the
/// permits' `Mutex`; a `clone` that calls `locked()` on the same mutex deadlocks the
/// polling thread.
#[test]
fn shared_mutex_clones_a_foreign_waker_under_its_lock() {
    let (tx, rx) = std_mpsc::channel();
    std::thread::spawn(move || {
        let m = CLONE_TARGET.get_or_init(|| SharedMutex::new(()));
        let g = m.try_lock().unwrap();
        // SAFETY: the vtable ignores the data pointer.
        let waker = unsafe { Waker::from_raw(RawWaker::new(std::ptr::null(), &VTABLE)) };
        let mut fut = Box::pin(m.lock());
        let polled = fut.as_mut().poll(&mut Context::from_waker(&waker));
        let _ = tx.send(matches!(polled, Poll::Pending));
        drop(fut);
        drop(g);
    });
    let outcome = rx.recv_timeout(Duration::from_secs(5));
    assert!(
        outcome.is_ok(),
        "the poll deadlocked: the waker's clone ran under the SharedMutex's own lock"
    );
}
