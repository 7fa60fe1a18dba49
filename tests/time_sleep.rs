//! `evloop::time` (SPEC M1–M3, L4): `sleep`, `sleep_until`, `Sleep::reset`, `timeout`,
//! `interval` and its missed-tick behaviours.

mod common;

use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use common::SplitMix64;
use evloop::time::{self, Interval, MissedTickBehavior, Sleep};
use evloop::{LoopHandle, Runtime};

/// Polls `fut` once with the current task's context; `true` if it completed.
async fn poll_once<F: Future + Unpin>(fut: &mut F) -> bool {
    poll_fn(|cx| Poll::Ready(Pin::new(&mut *fut).poll(cx).is_ready())).await
}

fn pending_timers() -> u64 {
    LoopHandle::current().stats().timers_pending
}

#[evloop::test]
async fn sleep_never_completes_early() {
    for d in [0u64, 1, 2, 3] {
        let d = Duration::from_micros(d * 700);
        let start = Instant::now();
        time::sleep(d).await.unwrap();
        assert!(start.elapsed() >= d, "sleep({d:?}) completed early");
    }
    for us in [100u64, 1500, 2500] {
        let deadline = Instant::now() + Duration::from_micros(us);
        let s = time::sleep_until(deadline);
        assert_eq!(s.deadline(), deadline);
        s.await.unwrap();
        assert!(Instant::now() >= deadline, "sleep_until completed early");
    }
}

#[test]
fn sleep_until_in_the_past_completes_on_the_next_iteration() {
    let rt = Runtime::new().unwrap();
    let (before, after) = rt.block_on(async {
        let l = LoopHandle::current();
        let before = l.stats().iterations;
        let past = Instant::now() - Duration::from_millis(10);
        let s = time::sleep_until(past);
        assert!(s.is_elapsed());
        s.await.unwrap();
        (before, l.stats().iterations)
    });
    assert_eq!(after, before + 1);
}

/// Regression for the wheel's tick rounding (same bug as the zero-delay `call_later`
/// test in loop_timers.rs): `sleep(ZERO)` has a deadline of "now", which is in the past
/// by the next iteration, so it must complete there — also when that iteration does not
/// block because callbacks are ready. With the deadline rounded up to a ~1 µs tick, a
/// fast next iteration misses it and the sleep takes two iterations.
#[test]
fn sleep_zero_completes_on_the_next_iteration_even_when_the_loop_is_busy() {
    const ROUNDS: usize = 2000;
    let rt = Runtime::new().unwrap();
    let late = rt.block_on(async {
        let l = LoopHandle::current();
        let mut late = Vec::new();
        for _ in 0..ROUNDS {
            l.call_soon(|| {});
            let before = l.stats().iterations;
            time::sleep(Duration::ZERO).await.unwrap();
            let after = l.stats().iterations;
            if after != before + 1 {
                late.push(after - before);
            }
        }
        late
    });
    assert!(
        late.is_empty(),
        "{} of {ROUNDS} sleep(ZERO) took more than one iteration, e.g. {:?}",
        late.len(),
        &late[..late.len().min(5)]
    );
}

#[evloop::test]
async fn sleep_zero_yields_to_the_loop_once() {
    let ran = Arc::new(AtomicBool::new(false));
    {
        let ran = ran.clone();
        LoopHandle::current().call_soon(move || ran.store(true, Ordering::SeqCst));
    }
    let mut s = time::sleep(Duration::ZERO);
    assert!(
        !poll_once(&mut s).await,
        "sleep(ZERO) must not complete at once"
    );
    assert!(!ran.load(Ordering::SeqCst));
    s.await.unwrap();
    assert!(
        ran.load(Ordering::SeqCst),
        "the callback scheduled before sleep(ZERO) did not run first"
    );
}

#[evloop::test]
async fn dropping_a_registered_sleep_deregisters_it() {
    let base = pending_timers();
    let mut s = time::sleep(Duration::from_secs(3600));
    assert_eq!(
        pending_timers(),
        base,
        "sleep is lazy: no timer before the first poll"
    );
    assert!(!poll_once(&mut s).await);
    assert_eq!(pending_timers(), base + 1);
    assert!(!poll_once(&mut s).await);
    assert_eq!(
        pending_timers(),
        base + 1,
        "polling again does not add a timer"
    );
    drop(s);
    assert_eq!(pending_timers(), base, "drop unlinks the timer at once");
}

#[evloop::test]
async fn dropping_a_registered_sleep_on_another_thread_deregisters_it() {
    let l = LoopHandle::current();
    let base = pending_timers();
    let mut s = time::sleep(Duration::from_secs(3600));
    assert!(!poll_once(&mut s).await);
    assert_eq!(pending_timers(), base + 1);
    std::thread::spawn(move || drop(s)).join().unwrap();
    // The loop unlinks it when it drains its cross-thread queue.
    time::sleep(Duration::ZERO).await.unwrap();
    assert_eq!(l.stats().timers_pending, base);
}

#[test]
fn a_registered_sleep_outliving_its_runtime_can_be_dropped() {
    let rt = Runtime::new().unwrap();
    let loop_ = rt.handle();
    let mut s = time::sleep(Duration::from_secs(3600));
    assert!(!rt.block_on(async { poll_once(&mut s).await }));
    assert_eq!(loop_.stats().timers_pending, 1);
    drop(rt);
    assert!(loop_.is_closed());
    drop(s); // must not panic
    assert_eq!(loop_.stats().timers_pending, 0);
}

#[test]
fn a_sleep_polled_on_another_loop_moves_there() {
    let rt1 = Runtime::new().unwrap();
    let rt2 = Runtime::new().unwrap();
    let mut s = time::sleep(Duration::from_millis(2));
    assert!(!rt1.block_on(async { poll_once(&mut s).await }));
    assert_eq!(rt1.handle().stats().timers_pending, 1);
    let deadline = s.deadline();
    rt2.block_on(s).unwrap();
    assert!(Instant::now() >= deadline);
    // rt1 drops the old registration when it next runs.
    let pending = rt1.block_on(async { pending_timers() });
    assert_eq!(pending, 0);
}

#[evloop::test]
async fn reset_moves_the_deadline() {
    let base = pending_timers();
    // Earlier: a one-hour sleep reset to 1 ms completes.
    let mut s = time::sleep(Duration::from_secs(3600));
    assert!(!poll_once(&mut s).await);
    assert_eq!(pending_timers(), base + 1);
    let new_deadline = Instant::now() + Duration::from_millis(1);
    s.reset(new_deadline);
    assert_eq!(s.deadline(), new_deadline);
    assert_eq!(
        pending_timers(),
        base,
        "reset unlinks the old timer at once"
    );
    let out = time::timeout(Duration::from_secs(5), &mut s).await;
    assert!(
        out.is_ok(),
        "the reset sleep did not complete (still one hour?)"
    );
    assert!(Instant::now() >= new_deadline);
    assert!(s.is_elapsed());

    // Later: a 1 ms sleep reset to 3 ms does not complete at 1 ms.
    let mut s = time::sleep(Duration::from_millis(1));
    assert!(!poll_once(&mut s).await);
    let later = Instant::now() + Duration::from_millis(3);
    s.reset(later);
    s.await.unwrap();
    assert!(Instant::now() >= later, "completed at the old deadline");

    // A completed sleep can be reset and awaited again.
    let mut s = time::sleep(Duration::ZERO);
    (&mut s).await.unwrap();
    let again = Instant::now() + Duration::from_millis(1);
    s.reset(again);
    assert!(!s.is_elapsed());
    s.await.unwrap();
    assert!(Instant::now() >= again);
    assert_eq!(pending_timers(), base);
}

#[test]
fn a_sleep_polled_outside_a_running_loop_panics() {
    let mut s = time::sleep(Duration::from_millis(1));
    let mut cx = Context::from_waker(Waker::noop());
    let result = catch_unwind(AssertUnwindSafe(|| Pin::new(&mut s).poll(&mut cx)));
    let payload = result.expect_err("polling a Sleep off a loop must panic");
    let text = common::panic_message(payload.as_ref());
    assert!(text.contains("outside a running event loop"), "{text}");
}

/// Sets its flag when dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[evloop::test]
async fn timeout_returns_the_output_of_a_fast_future() {
    assert_eq!(
        time::timeout(Duration::from_secs(1), async { 5 })
            .await
            .unwrap(),
        5
    );
    let out = time::timeout(Duration::from_secs(1), async {
        time::sleep(Duration::from_millis(1)).await.unwrap();
        "slept"
    })
    .await;
    assert_eq!(out.unwrap(), "slept");
    let deadline = Instant::now() + Duration::from_secs(1);
    let t = time::timeout_at(deadline, std::future::ready(7));
    let _inner: &std::future::Ready<i32> = t.get_ref();
    assert_eq!(t.await.unwrap(), 7);
    assert_eq!(pending_timers(), 0, "the timeout's timer is gone");
}

#[evloop::test]
async fn timeout_of_a_slow_future_is_an_error_and_drops_the_future() {
    let dropped = Arc::new(AtomicBool::new(false));
    let guard = DropFlag(dropped.clone());
    let slow = async move {
        let _guard = guard;
        time::sleep(Duration::from_secs(3600)).await.unwrap();
        "never"
    };
    let start = Instant::now();
    let err = time::timeout(Duration::from_millis(2), slow)
        .await
        .unwrap_err();
    assert!(
        start.elapsed() >= Duration::from_millis(2),
        "timed out early"
    );
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(err.to_string(), "deadline has elapsed");
    assert!(
        dropped.load(Ordering::SeqCst),
        "the inner future was not dropped"
    );
    assert_eq!(pending_timers(), 0, "the inner sleep is still registered");

    // Any future works, also one that never wakes anybody.
    let err = time::timeout(Duration::from_millis(1), std::future::pending::<()>())
        .await
        .unwrap_err();
    assert!(err.is_timeout());
}

/// Polls the next tick; also reports whether it was ready on the very first poll.
async fn tick(iv: &mut Interval) -> (Instant, bool) {
    let mut polls = 0;
    let t = poll_fn(|cx| {
        polls += 1;
        iv.poll_tick(cx)
    })
    .await
    .unwrap();
    (t, polls == 1)
}

#[evloop::test]
async fn interval_first_tick_is_immediate_and_ticks_are_one_period_apart() {
    let period = Duration::from_millis(2);
    let before = Instant::now();
    let mut iv = time::interval(period);
    let after = Instant::now();
    assert_eq!(iv.period(), period);
    assert_eq!(iv.missed_tick_behavior(), MissedTickBehavior::Burst);
    let (first, immediate) = tick(&mut iv).await;
    assert!(immediate, "the first tick must complete without waiting");
    assert!(
        before <= first && first <= after,
        "the first tick is the start instant"
    );
    let mut prev = first;
    for k in 1..=4 {
        let (t, _) = tick(&mut iv).await;
        assert!(Instant::now() >= t, "tick {k} completed before its instant");
        assert_eq!(
            t - prev,
            period,
            "tick {k} is not one period after the last"
        );
        prev = t;
    }
    // tick() is the async form of poll_tick.
    let t = iv.tick().await.unwrap();
    assert_eq!(t - prev, period);
}

#[evloop::test]
async fn interval_at_a_future_start_waits_for_it_and_reset_restarts() {
    let period = Duration::from_millis(1);
    let start = Instant::now() + Duration::from_millis(2);
    let mut iv = time::interval_at(start, period);
    let (t, immediate) = tick(&mut iv).await;
    assert_eq!(t, start);
    assert!(!immediate);
    assert!(Instant::now() >= start);
    let before = Instant::now();
    iv.reset();
    let (t, _) = tick(&mut iv).await;
    assert!(
        t >= before + period,
        "after reset the next tick is a period away"
    );
    assert!(Instant::now() >= t);
}

#[test]
#[should_panic(expected = "period must be non-zero")]
fn interval_with_a_zero_period_panics() {
    let _ = time::interval(Duration::ZERO);
}

const PERIOD: Duration = Duration::from_millis(5);

/// Takes the first tick, then blocks the loop thread for 3.5 periods. Returns the first
/// tick's instant.
async fn first_tick_then_block(iv: &mut Interval) -> Instant {
    let (t0, immediate) = tick(iv).await;
    assert!(immediate);
    std::thread::sleep(PERIOD * 7 / 2);
    t0
}

#[evloop::test]
async fn missed_ticks_burst_fires_the_missed_instants_back_to_back() {
    let mut iv = time::interval(PERIOD);
    iv.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let t0 = first_tick_then_block(&mut iv).await;
    for k in 1..=3 {
        let (t, immediate) = tick(&mut iv).await;
        assert_eq!(
            t,
            t0 + PERIOD * k,
            "burst tick {k} is not on the original grid"
        );
        assert!(immediate, "missed tick {k} was not delivered at once");
    }
    // Then back on schedule, still on the original grid.
    let (t, _) = tick(&mut iv).await;
    assert_eq!(t, t0 + PERIOD * 4);
    assert!(Instant::now() >= t);
}

#[evloop::test]
async fn missed_ticks_delay_fires_once_then_continues_a_period_after_now() {
    let mut iv = time::interval(PERIOD);
    iv.set_missed_tick_behavior(MissedTickBehavior::Delay);
    assert_eq!(iv.missed_tick_behavior(), MissedTickBehavior::Delay);
    let t0 = first_tick_then_block(&mut iv).await;
    let before = Instant::now();
    let (t1, immediate) = tick(&mut iv).await;
    let after = Instant::now();
    assert!(immediate);
    assert_eq!(
        t1,
        t0 + PERIOD,
        "the late tick reports its scheduled instant"
    );
    let (t2, _) = tick(&mut iv).await;
    assert!(
        t2 >= before + PERIOD && t2 <= after + PERIOD,
        "the next tick must be one period after the late one was taken"
    );
    assert!(Instant::now() >= t2);
    let (t3, _) = tick(&mut iv).await;
    // Exactly one period on an idle machine; later only if this task itself was
    // late again (then Delay shifts the phase once more), never earlier.
    assert!(t3 - t2 >= PERIOD, "the new phase is kept");
}

#[evloop::test]
async fn missed_ticks_skip_fires_once_then_continues_on_the_original_grid() {
    let mut iv = time::interval(PERIOD);
    iv.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let t0 = first_tick_then_block(&mut iv).await;
    let before = Instant::now();
    let (t1, immediate) = tick(&mut iv).await;
    let after = Instant::now();
    assert!(immediate);
    assert_eq!(t1, t0 + PERIOD);
    let (t2, _) = tick(&mut iv).await;
    let offset = (t2 - t0).as_nanos();
    assert_eq!(
        offset % PERIOD.as_nanos(),
        0,
        "the next tick is off the original grid"
    );
    assert!(
        t2 > before,
        "the next tick must be after the late one was taken"
    );
    assert!(t2 <= after + PERIOD, "more than one period was skipped");
    assert!(t2 >= t0 + PERIOD * 4, "3.5 periods were missed");
    assert!(Instant::now() >= t2);
}

#[test]
fn many_concurrent_sleeps_complete_in_deadline_order() {
    const N: usize = 40;
    evloop::run(async {
        let mut rng = SplitMix64::new(0x51EE_9000);
        // 20 distinct deadlines 0.5 ms apart, each used twice, in random order.
        let mut offsets: Vec<Duration> = (0..N)
            .map(|i| Duration::from_micros(500 * (i as u64 / 2)))
            .collect();
        rng.shuffle(&mut offsets);
        let start = Instant::now();
        let deadlines: Vec<Instant> = offsets.iter().map(|o| start + *o).collect();
        let mut sleeps: Vec<Option<Sleep>> = deadlines
            .iter()
            .map(|&d| Some(time::sleep_until(d)))
            .collect();
        // (index, poll round, completion instant)
        let mut done: Vec<(usize, usize, Instant)> = Vec::new();
        let mut round = 0;
        poll_fn(|cx| {
            round += 1;
            for (i, slot) in sleeps.iter_mut().enumerate() {
                if let Some(s) = slot {
                    if Pin::new(s).poll(cx).is_ready() {
                        done.push((i, round, Instant::now()));
                        *slot = None;
                    }
                }
            }
            if done.len() == N {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
        for &(i, _, at) in &done {
            assert!(at >= deadlines[i], "sleep {i} completed early");
        }
        // Sorted by deadline, the completion rounds never go backwards: a sleep never
        // completes after one with a later deadline.
        let mut by_deadline = done.clone();
        by_deadline.sort_by_key(|&(i, _, _)| (deadlines[i], i));
        for w in by_deadline.windows(2) {
            assert!(
                w[0].1 <= w[1].1,
                "sleep {} (deadline +{:?}) completed in round {} after sleep {} \
                 (deadline +{:?}) in round {}",
                w[0].0,
                offsets[w[0].0],
                w[0].1,
                w[1].0,
                offsets[w[1].0],
                w[1].1
            );
        }
        assert!(round > 2, "the sleeps did not complete at different times");
        assert_eq!(pending_timers(), 0);
    });
}
