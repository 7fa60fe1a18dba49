//! Cross-thread scheduling (SPEC L2, L3, L13, L14, Q1, Q3): exactly-once delivery under
//! load, prompt and coalesced wake-ups, and closed loops.

mod common;
use common::run_until_stopped;

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use evloop::{Handle, LoopHandle, Runtime};

#[test]
fn four_threads_times_50_000_callbacks_each_run_exactly_once_in_producer_order() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 50_000;
    const TOTAL: usize = THREADS * PER_THREAD;

    let rt = Runtime::new().unwrap();
    let loop_ = rt.handle();
    let seen: Arc<Vec<AtomicU8>> = Arc::new((0..TOTAL).map(|_| AtomicU8::new(0)).collect());
    let next: Arc<Vec<AtomicUsize>> = Arc::new((0..THREADS).map(|_| AtomicUsize::new(0)).collect());
    let out_of_order = Arc::new(AtomicUsize::new(0));
    let total = Arc::new(AtomicUsize::new(0));
    let producers = Arc::new(Mutex::new(Vec::new()));
    let before = loop_.stats();

    {
        let (seen, next, out_of_order, total, producers) = (
            seen.clone(),
            next.clone(),
            out_of_order.clone(),
            total.clone(),
            producers.clone(),
        );
        // Start the producers from inside the running loop.
        loop_.call_soon(move || {
            let l = LoopHandle::current();
            for t in 0..THREADS {
                let (l, seen, next, out_of_order, total) = (
                    l.clone(),
                    seen.clone(),
                    next.clone(),
                    out_of_order.clone(),
                    total.clone(),
                );
                producers.lock().unwrap().push(std::thread::spawn(move || {
                    for i in 0..PER_THREAD {
                        let (seen, next, out_of_order, total) = (
                            seen.clone(),
                            next.clone(),
                            out_of_order.clone(),
                            total.clone(),
                        );
                        l.call_soon_threadsafe(move || {
                            seen[t * PER_THREAD + i].fetch_add(1, Ordering::Relaxed);
                            // Single producer → FIFO: thread t's indices arrive in order.
                            if next[t].swap(i + 1, Ordering::Relaxed) != i {
                                out_of_order.fetch_add(1, Ordering::Relaxed);
                            }
                            if total.fetch_add(1, Ordering::Relaxed) + 1 == TOTAL {
                                LoopHandle::current().stop();
                            }
                        });
                    }
                }));
            }
        });
    }
    run_until_stopped(&rt);
    for p in producers.lock().unwrap().drain(..) {
        p.join().unwrap();
    }

    assert_eq!(total.load(Ordering::SeqCst), TOTAL);
    let wrong: Vec<(usize, u8)> = seen
        .iter()
        .enumerate()
        .map(|(k, c)| (k, c.load(Ordering::SeqCst)))
        .filter(|&(_, c)| c != 1)
        .take(10)
        .collect();
    assert!(
        wrong.is_empty(),
        "callbacks lost or duplicated, (thread * {PER_THREAD} + index, runs): {wrong:?}"
    );
    assert_eq!(
        out_of_order.load(Ordering::SeqCst),
        0,
        "a single producer's callbacks ran out of order"
    );
    let after = loop_.stats();
    assert!(after.remote_schedules - before.remote_schedules >= TOTAL as u64);
    assert!(after.callbacks_run - before.callbacks_run > TOTAL as u64);
}

/// The loop blocks in its reactor with the timerfd armed for 10 s; a cross-thread
/// callback must wake it long before. (A broken wake-up still gets through when the
/// timer wheel wakes the loop at a cascade point shortly before the 10 s, so see also
/// the timer-less variant below.)
#[test]
fn a_loop_blocked_on_a_10_s_timer_wakes_for_a_cross_thread_callback() {
    let rt = Runtime::new().unwrap();
    let loop_ = rt.handle();
    let timer_fired = Arc::new(AtomicBool::new(false));
    let remote_ran = Arc::new(AtomicBool::new(false));
    let timer = {
        let timer_fired = timer_fired.clone();
        loop_.call_later(Duration::from_secs(10), move || {
            timer_fired.store(true, Ordering::SeqCst);
            LoopHandle::current().stop();
        })
    };
    let worker = {
        let loop_ = loop_.clone();
        let remote_ran = remote_ran.clone();
        std::thread::spawn(move || {
            while !loop_.is_running() {
                std::thread::yield_now();
            }
            // Give the loop time to block in its reactor.
            std::thread::sleep(Duration::from_millis(20));
            loop_.call_soon_threadsafe(move || {
                remote_ran.store(true, Ordering::SeqCst);
                LoopHandle::current().stop();
            });
        })
    };
    rt.run_forever();
    worker.join().unwrap();
    assert!(remote_ran.load(Ordering::SeqCst));
    assert!(
        !timer_fired.load(Ordering::SeqCst),
        "the loop only woke up for its 10 s timer, not for the cross-thread callback"
    );
    assert!(timer.cancel(), "the 10 s timer was still pending");
}

/// A loop with nothing to do (no timer, no I/O) blocks in its reactor until another
/// thread wakes it. Unlike the 10 s-timer variant above, nothing else can wake this
/// loop — the timer wheel wakes a loop early at its cascade points (a 10 s timer wakes
/// it ~0.3 s early), which would make a broken wake-up look like a slow one — so a
/// missing wake-up hangs, and the watchdog turns the hang into a failure.
#[test]
fn a_loop_with_nothing_to_do_wakes_for_a_cross_thread_callback() {
    let _watchdog = common::Watchdog::new(
        "a_loop_with_nothing_to_do_wakes_for_a_cross_thread_callback",
        Duration::from_secs(10),
    );
    let rt = Runtime::new().unwrap();
    let loop_ = rt.handle();
    let remote_ran = Arc::new(AtomicBool::new(false));
    let worker = {
        let loop_ = loop_.clone();
        let remote_ran = remote_ran.clone();
        std::thread::spawn(move || {
            while !loop_.is_running() {
                std::thread::yield_now();
            }
            std::thread::sleep(Duration::from_millis(20));
            loop_.call_soon_threadsafe(move || {
                remote_ran.store(true, Ordering::SeqCst);
                LoopHandle::current().stop();
            });
        })
    };
    rt.run_forever();
    worker.join().unwrap();
    assert!(remote_ran.load(Ordering::SeqCst));
    assert_eq!(loop_.stats().timers_pending, 0);
}

#[test]
fn stop_from_another_thread_wakes_a_blocked_loop() {
    let _watchdog = common::Watchdog::new(
        "stop_from_another_thread_wakes_a_blocked_loop",
        Duration::from_secs(10),
    );
    let rt = Runtime::new().unwrap();
    let loop_ = rt.handle();
    let worker = {
        let loop_ = loop_.clone();
        std::thread::spawn(move || {
            while !loop_.is_running() {
                std::thread::yield_now();
            }
            std::thread::sleep(Duration::from_millis(10));
            loop_.stop();
        })
    };
    // No timers: only the stop's wake-up can end this.
    rt.run_forever();
    worker.join().unwrap();
    assert!(!loop_.is_running());
}

#[test]
fn cross_thread_schedules_while_the_loop_is_busy_need_almost_no_wakeups() {
    const N: usize = 1000;
    let rt = Runtime::new().unwrap();
    let loop_ = rt.handle();
    let ran = Arc::new(AtomicUsize::new(0));
    // (wakeups, remote_schedules) before and after.
    let before = Arc::new(Mutex::new(None));
    let after = Arc::new(Mutex::new(None));
    {
        let (ran, before, after) = (ran.clone(), before.clone(), after.clone());
        loop_.call_soon(move || {
            let l = LoopHandle::current();
            let s = l.stats();
            *before.lock().unwrap() = Some((s.wakeups, s.remote_schedules));
            let producer = {
                let l = l.clone();
                std::thread::spawn(move || {
                    for _ in 0..N {
                        let (ran, after) = (ran.clone(), after.clone());
                        l.call_soon_threadsafe(move || {
                            if ran.fetch_add(1, Ordering::SeqCst) + 1 == N {
                                let l = LoopHandle::current();
                                let s = l.stats();
                                *after.lock().unwrap() = Some((s.wakeups, s.remote_schedules));
                                l.stop();
                            }
                        });
                    }
                })
            };
            // The loop thread stays busy (awake) while the producer runs.
            producer.join().unwrap();
        });
    }
    run_until_stopped(&rt);
    assert_eq!(ran.load(Ordering::SeqCst), N);
    let (w0, r0) = before.lock().unwrap().unwrap();
    let (w1, r1) = after.lock().unwrap().unwrap();
    assert!(
        w1 - w0 <= 10,
        "{} wake-up syscalls for {N} schedules onto an awake loop",
        w1 - w0
    );
    assert!(
        r1 - r0 >= N as u64,
        "remote_schedules grew by {} only",
        r1 - r0
    );
}

#[test]
fn scheduling_on_a_closed_loop_from_another_thread_never_runs_or_panics() {
    common::init_logger();
    let rt = Runtime::new().unwrap();
    let loop_ = rt.handle();
    let id = loop_.id();
    assert!(!loop_.is_closed());
    drop(rt);
    assert!(loop_.is_closed());
    assert!(!loop_.is_running());

    let ran = Arc::new(AtomicBool::new(false));
    let token = Arc::new(());
    let worker = {
        let (loop_, ran, token) = (loop_.clone(), ran.clone(), token.clone());
        std::thread::spawn(move || {
            let mut counts = Vec::new();
            let job = || {
                let (ran, token) = (ran.clone(), token.clone());
                move || {
                    let _keep = &token;
                    ran.store(true, Ordering::SeqCst);
                }
            };
            let h1 = loop_.call_soon_threadsafe(job());
            counts.push(Arc::strong_count(&token));
            let h2 = loop_.call_soon(job());
            counts.push(Arc::strong_count(&token));
            let t1 = loop_.call_later(Duration::ZERO, job());
            counts.push(Arc::strong_count(&token));
            let when = Instant::now() + Duration::from_millis(1);
            let t2 = loop_.call_at(when, job());
            counts.push(Arc::strong_count(&token));
            loop_.stop(); // harmless on a closed loop
            let cancelled = [
                h1.cancelled(),
                h2.cancelled(),
                t1.cancelled(),
                t2.cancelled(),
            ];
            let cancel_again = [h1.cancel(), h2.cancel(), t1.cancel(), t2.cancel()];
            (
                counts,
                cancelled,
                cancel_again,
                t2.when() == when,
                loop_.is_closed(),
            )
        })
    };
    let (counts, cancelled, cancel_again, when_ok, closed) = worker.join().unwrap();
    // `token` is held by the test and by the worker's `job` factory: 2 while the
    // worker runs; every scheduled closure was dropped at once.
    assert_eq!(
        counts,
        [2, 2, 2, 2],
        "a closure scheduled on a closed loop was kept"
    );
    assert_eq!(
        cancelled, [true; 4],
        "handles from a closed loop must be cancelled"
    );
    assert_eq!(cancel_again, [false; 4], "already cancelled");
    assert!(when_ok);
    assert!(closed);
    assert_eq!(Arc::strong_count(&token), 1);
    assert!(!ran.load(Ordering::SeqCst));
    // L14: "... and logs at debug level".
    let marker = format!("closed loop #{id}:");
    let logs = common::logs_containing(&marker);
    assert!(
        logs.iter().all(|l| l.starts_with("DEBUG evloop: ")) && logs.len() >= 4,
        "{logs:?}"
    );
}

#[test]
fn callbacks_and_timers_pending_at_drop_never_run_and_report_cancelled() {
    let rt = Runtime::new().unwrap();
    let loop_ = rt.handle();
    let ran = Arc::new(AtomicUsize::new(0));
    let token = Arc::new(());
    let job = || {
        let (ran, token) = (ran.clone(), token.clone());
        move || {
            let _keep = &token;
            ran.fetch_add(1, Ordering::SeqCst);
        }
    };
    // Left in the local ready queue and in the wheel by the last iteration.
    let (ready, wheel) = rt.block_on({
        let (a, b) = (job(), job());
        async move {
            let l = LoopHandle::current();
            (l.call_soon(a), l.call_later(Duration::from_secs(3600), b))
        }
    });
    // Waiting in the cross-thread queue (scheduled while the loop is not running).
    let queued = loop_.call_soon(job());
    let queued_timer = loop_.call_later(Duration::from_secs(3600), job());
    // From another thread, also never drained.
    let from_thread = {
        let l = loop_.clone();
        let j = job();
        std::thread::spawn(move || l.call_soon_threadsafe(j))
            .join()
            .unwrap()
    };
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert!(!ready.cancelled() && !wheel.cancelled() && !queued.cancelled());
    assert_eq!(Arc::strong_count(&token), 6);
    let executed_before = loop_.stats().callbacks_run;

    drop(rt);

    assert_eq!(
        ran.load(Ordering::SeqCst),
        0,
        "a callback ran during shutdown"
    );
    for (name, cancelled) in [
        ("queued", queued.cancelled()),
        ("from_thread", from_thread.cancelled()),
        ("ready", ready.cancelled()),
        ("queued_timer", queued_timer.cancelled()),
        ("wheel", wheel.cancelled()),
    ] {
        assert!(
            cancelled,
            "{name}: a handle pending at drop is not cancelled"
        );
    }
    assert_eq!(
        Arc::strong_count(&token),
        1,
        "closures pending at drop were leaked"
    );
    let stats = loop_.stats();
    assert_eq!(stats.callbacks_run, executed_before);
    assert_eq!(stats.timers_pending, 0);
    assert_eq!(stats.ready_len, 0);
}

/// Regression for the close-versus-push race (Dekker pair of `ParkState`): a producer
/// that pushes while the runtime is being dropped must never have its callback run
/// afterwards, and nothing it captured may leak (either the closing loop or the
/// producer itself drains the item).
#[test]
fn a_worker_scheduling_in_a_loop_while_the_runtime_is_dropped() {
    for round in 0..50 {
        let rt = Runtime::new().unwrap();
        let loop_ = rt.handle();
        let token = Arc::new(());
        let runs = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicBool::new(false));
        let ran_after_drop = Arc::new(AtomicBool::new(false));
        let started = Arc::new(AtomicBool::new(false));
        let worker = {
            let (loop_, token, runs, dropped, ran_after_drop, started) = (
                loop_.clone(),
                token.clone(),
                runs.clone(),
                dropped.clone(),
                ran_after_drop.clone(),
                started.clone(),
            );
            std::thread::spawn(move || {
                let mut handles: Vec<Handle> = Vec::new();
                let mut closed_seen = 0;
                while closed_seen < 100 {
                    if handles.len() >= 5_000 && !loop_.is_closed() {
                        // Enough for this round; wait for the drop without flooding
                        // the loop (keeps the test fast on a small machine).
                        std::thread::yield_now();
                        continue;
                    }
                    let (token, runs, dropped, ran_after_drop) = (
                        token.clone(),
                        runs.clone(),
                        dropped.clone(),
                        ran_after_drop.clone(),
                    );
                    let h = loop_.call_soon_threadsafe(move || {
                        let _keep = &token;
                        if dropped.load(Ordering::SeqCst) {
                            ran_after_drop.store(true, Ordering::SeqCst);
                        }
                        runs.fetch_add(1, Ordering::SeqCst);
                    });
                    started.store(true, Ordering::SeqCst);
                    if loop_.is_closed() {
                        closed_seen += 1;
                    }
                    handles.push(h);
                }
                handles
            })
        };
        while !started.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        // Run the loop for a moment so that some callbacks really run.
        rt.block_on(evloop::time::sleep(Duration::ZERO)).unwrap();
        dropped.store(true, Ordering::SeqCst);
        drop(rt);
        let runs_at_drop = runs.load(Ordering::SeqCst);
        let handles = worker.join().unwrap();

        assert!(
            !ran_after_drop.load(Ordering::SeqCst),
            "round {round}: ran after drop"
        );
        assert_eq!(runs.load(Ordering::SeqCst), runs_at_drop, "round {round}");
        let cancelled = handles.iter().filter(|h| h.cancelled()).count();
        assert_eq!(
            cancelled + runs_at_drop,
            handles.len(),
            "round {round}: every callback either ran or was cancelled"
        );
        assert_eq!(
            Arc::strong_count(&token),
            1,
            "round {round}: closures scheduled around the drop leaked"
        );
    }
}

/// Regression for the narrowest window of the close-versus-push race: a producer that
/// passed the `is_closed()` check just before the runtime closed pushes its item after
/// the closing loop drained an (almost) empty queue. Only the producer itself can then
/// cancel the item (it sees `CLOSED` after pushing); otherwise the closure leaks and its
/// handle never reports cancelled. A sparse producer keeps the queue nearly empty at
/// close time, so that many rounds hit the window.
#[test]
fn a_sparse_producer_racing_the_drop_leaks_nothing() {
    for round in 0..300 {
        let rt = Runtime::new().unwrap();
        let loop_ = rt.handle();
        let token = Arc::new(());
        let started = Arc::new(AtomicBool::new(false));
        let worker = {
            let (loop_, token, started) = (loop_.clone(), token.clone(), started.clone());
            std::thread::spawn(move || {
                let mut handles = Vec::new();
                loop {
                    let t = token.clone();
                    let h = loop_.call_soon_threadsafe(move || drop(t));
                    started.store(true, Ordering::Release);
                    let closed = loop_.is_closed();
                    handles.push(h);
                    if closed {
                        return handles;
                    }
                    // Leave a gap (and the CPU) between pushes.
                    std::thread::yield_now();
                    for _ in 0..(round % 7) * 40 {
                        std::hint::spin_loop();
                    }
                }
            })
        };
        while !started.load(Ordering::Acquire) {
            std::thread::yield_now();
        }
        // Drain the queue, then close right away.
        rt.block_on(async {});
        drop(rt);
        let handles = worker.join().unwrap();
        // Every closure either ran (and dropped its clone) or was cancelled (dropped).
        assert_eq!(
            Arc::strong_count(&token),
            1,
            "round {round}: a closure pushed around close() leaked"
        );
        assert!(handles.len() > 1);
    }
}
