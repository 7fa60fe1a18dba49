//! Hardening rule 6: arithmetic on user durations and instants saturates. A user may
//! pass `Duration::MAX` (or any huge duration, or an instant far in the future) as "no
//! limit": a deadline computed from it saturates to "never" instead of panicking with
//! "overflow when adding duration to instant".
//!
//! * `interval_with_duration_max_*`, `interval_with_a_huge_period_*`:
//!   `time::interval(Duration::MAX)` (or a period of centuries) ticks once, then stays
//!   pending.
//! * `interval_reset_with_a_huge_period_*`: `Interval::reset` on such an interval.
//! * `interval_with_a_huge_period_and_missed_tick_behavior_*`: `Skip` and `Delay`, with
//!   a first tick in the past (the "missed" branch).
//! * `interval_at_a_far_future_instant_*`: the first tick is pending.
//! * `call_later_duration_max_*`, `sleep_duration_max_*`, `timeout_duration_max_*`,
//!   `wait_for_duration_max_*`: the loop-level deadlines.
//! * `shutdown_timeout_duration_max_*`: dropping such a runtime with a pending task
//!   (graceful cancellation still happens) and after using its default executor.
//! * `executor_keep_alive_duration_max_*`: `Executor::with_keep_alive(1, Duration::MAX)`
//!   and the builder's `thread_keep_alive(Duration::MAX)` run jobs and shut down.
//!
//! "Pending" is checked with `time::timeout(10 ms, ..)` returning `Err(Timeout)`.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::{Duration, Instant};

use common::{entries, new_log, push};
use evloop::time::{self, MissedTickBehavior};
use evloop::{Error, Executor, Future, LoopHandle, Runtime, Task};

const SHORT: Duration = Duration::from_millis(10);
const HOUR: Duration = Duration::from_secs(3600);
/// Huge, but not `Duration::MAX`.
const CENTURIES: Duration = Duration::from_secs(u64::MAX / 4);

/// Whether `fut` is still pending after [`SHORT`].
async fn stays_pending<F: std::future::IntoFuture>(fut: F) -> bool {
    matches!(time::timeout(SHORT, fut).await, Err(e) if e.is_timeout())
}

/// `time::interval(Duration::MAX)`: the first tick completes at once; scheduling the
/// second computes `tick + period`, which today panics with "overflow when adding
/// duration to instant" (src/time/interval.rs, `next_tick`). Expected: the second tick
/// is simply never due.
#[test]
fn interval_with_duration_max_ticks_once_then_stays_pending() {
    common::run_guarded(async {
        let mut every = time::interval(Duration::MAX);
        let first = every.tick().await.unwrap();
        assert!(first <= Instant::now());
        assert!(
            stays_pending(every.tick()).await,
            "the second tick is never due"
        );
        assert!(stays_pending(every.tick()).await, "still not due");
    });
}

/// The same with a huge period short of `Duration::MAX`.
#[test]
fn interval_with_a_huge_period_ticks_once_then_stays_pending() {
    common::run_guarded(async {
        let mut every = time::interval(CENTURIES);
        every.tick().await.unwrap();
        assert!(stays_pending(every.tick()).await);
    });
}

/// `Interval::reset` with a huge period: today `Instant::now() + self.period` panics.
/// Expected: the next tick is never due.
#[test]
fn interval_reset_with_a_huge_period_stays_pending() {
    common::run_guarded(async {
        let mut every = time::interval(Duration::MAX);
        every.reset();
        assert!(
            stays_pending(every.tick()).await,
            "reset: the next tick is never due"
        );
        let mut every = time::interval(CENTURIES);
        every.tick().await.unwrap();
        every.reset();
        assert!(stays_pending(every.tick()).await);
    });
}

/// `MissedTickBehavior::Skip` and `Delay` with a huge period and a first tick an hour in
/// the past: the first tick completes at once (it is late); computing the next one must
/// not overflow (today: `tick + period` panics before the behaviour is even consulted).
#[test]
fn interval_with_a_huge_period_and_missed_tick_behavior_skip_or_delay_stays_pending() {
    common::run_guarded(async {
        for behavior in [MissedTickBehavior::Skip, MissedTickBehavior::Delay] {
            for period in [Duration::MAX, CENTURIES] {
                let start = Instant::now()
                    .checked_sub(HOUR)
                    .unwrap_or_else(Instant::now);
                let mut every = time::interval_at(start, period);
                every.set_missed_tick_behavior(behavior);
                assert_eq!(every.tick().await.unwrap(), start, "{behavior:?}");
                assert!(
                    stays_pending(every.tick()).await,
                    "{behavior:?} {period:?}: the second tick is never due"
                );
            }
        }
    });
}

/// An instant as far in the future as `Instant` represents (about a century is enough
/// for "never"; try bigger first).
fn far_future() -> Instant {
    let now = Instant::now();
    [u64::MAX / 4, 1 << 40, 100 * 365 * 24 * 3600]
        .into_iter()
        .find_map(|secs| now.checked_add(Duration::from_secs(secs)))
        .expect("an instant a century away")
}

/// `interval_at(far future, ..)`: the first tick is pending, whatever the period.
#[test]
fn interval_at_a_far_future_instant_stays_pending() {
    common::run_guarded(async {
        for period in [Duration::from_millis(1), CENTURIES, Duration::MAX] {
            let mut every = time::interval_at(far_future(), period);
            assert!(stays_pending(every.tick()).await, "{period:?}");
            assert!(stays_pending(every.tick()).await, "{period:?}, again");
        }
        // `reset` brings it back to an ordinary schedule: one period from now.
        let mut every = time::interval_at(far_future(), Duration::from_millis(1));
        every.reset();
        every.tick().await.unwrap();
    });
}

/// `call_later(Duration::MAX, ..)` and `call_at(far future, ..)`: scheduled, never
/// fired, cancellable; `TimerHandle::when()` is in the future.
#[test]
fn call_later_duration_max_never_fires_and_can_be_cancelled() {
    let fired = Arc::new(AtomicBool::new(false));
    common::run_guarded({
        let fired = fired.clone();
        async move {
            let loop_ = LoopHandle::current();
            let later = {
                let fired = fired.clone();
                loop_.call_later(Duration::MAX, move || fired.store(true, SeqCst))
            };
            let at = {
                let fired = fired.clone();
                loop_.call_at(far_future(), move || fired.store(true, SeqCst))
            };
            assert!(later.when() > Instant::now());
            time::sleep(SHORT).await.unwrap();
            assert!(later.cancel());
            assert!(at.cancel());
        }
    });
    assert!(!fired.load(SeqCst));
}

/// `sleep(Duration::MAX)` and `sleep_until(far future)` stay pending (under a short
/// `timeout`).
#[test]
fn sleep_duration_max_stays_pending() {
    common::run_guarded(async {
        assert!(stays_pending(time::sleep(Duration::MAX)).await);
        assert!(stays_pending(time::sleep(CENTURIES)).await);
        assert!(stays_pending(time::sleep_until(far_future())).await);
    });
}

/// `time::timeout(Duration::MAX, ..)` is no limit: the inner future's output comes
/// through; `timeout_at(far future, ..)` likewise.
#[test]
fn timeout_duration_max_is_no_limit() {
    common::run_guarded(async {
        let out = time::timeout(Duration::MAX, async {
            time::sleep(Duration::from_millis(1)).await.unwrap();
            5
        })
        .await;
        assert_eq!(out.unwrap(), 5);
        let out = time::timeout_at(far_future(), async { 6 }).await;
        assert_eq!(out.unwrap(), 6);
    });
}

/// `wait_for(fut, Duration::MAX)` waits for `fut` however long it takes.
#[test]
fn wait_for_duration_max_waits_for_the_future() {
    common::run_guarded(async {
        let fut: Future<u8> = Future::new();
        let setter = fut.clone();
        LoopHandle::current().call_later(Duration::from_millis(2), move || {
            setter.set_result(9).unwrap();
        });
        assert_eq!(
            evloop::wait_for(fut.clone(), Duration::MAX).await.unwrap(),
            9
        );
        let pending: Future<u8> = Future::new();
        assert!(stays_pending(evloop::wait_for(pending.clone(), Duration::MAX)).await);
        assert!(
            !pending.done(),
            "a wait_for dropped by the outer timeout leaves it alone"
        );
    });
}

/// `Runtime::builder().shutdown_timeout(Duration::MAX)`, dropped with a pending task
/// that cleans up asynchronously when cancelled. "No limit" means: wait for it. Today
/// `shutdown_tasks` computes `Instant::now() + timeout`, which panics; `Runtime::drop`
/// catches that and aborts the task instead, so its graceful cancellation never
/// happens.
#[test]
fn shutdown_timeout_duration_max_still_cancels_pending_tasks_gracefully() {
    let log = new_log();
    let rt = Runtime::builder()
        .shutdown_timeout(Duration::MAX)
        .build()
        .unwrap();
    let [task] = rt.block_on({
        let log = log.clone();
        async move {
            let task: Task<&'static str> = evloop::create_task(async move {
                if let Err(e) = time::sleep(HOUR).await {
                    push(&log, format!("task: {e}"));
                    time::sleep(Duration::from_millis(1)).await?;
                    push(&log, "task: cleaned up");
                }
                Ok("handled")
            });
            common::yield_times(2).await;
            [task.future()]
        }
    });
    let dropped = catch_unwind(AssertUnwindSafe(move || drop(rt)));
    assert!(dropped.is_ok(), "Runtime::drop panicked");
    assert_eq!(entries(&log), ["task: cancelled", "task: cleaned up"]);
    assert_eq!(task.result().unwrap(), "handled");
}

/// `shutdown_timeout(Duration::MAX)` on a runtime whose default executor ran a job: the
/// drop shuts the executor down with that timeout. Today `Executor::shutdown_now`
/// computes `Instant::now() + timeout` outside any `catch_unwind`, so the panic escapes
/// `Runtime::drop` and the loop is never closed.
#[test]
fn shutdown_timeout_duration_max_with_the_default_executor_drops_cleanly() {
    let rt = Runtime::builder()
        .shutdown_timeout(Duration::MAX)
        .build()
        .unwrap();
    let handle = rt.handle();
    let out = rt.block_on(async { evloop::spawn_blocking(|| 4u8).await });
    assert_eq!(out.unwrap(), 4);
    let dropped = catch_unwind(AssertUnwindSafe(move || drop(rt)));
    assert!(
        dropped.is_ok(),
        "Runtime::drop panicked: {:?}",
        dropped.err().map(|p| common::panic_message(&*p))
    );
    assert!(handle.is_closed(), "the loop was closed");
}

/// `Executor::with_keep_alive(1, Duration::MAX)` runs jobs (its idle thread waits with
/// that timeout between them) and shuts down; the runtime builder's
/// `thread_keep_alive(Duration::MAX)` likewise for the default executor.
#[test]
fn executor_keep_alive_duration_max_runs_jobs_and_shuts_down() {
    let exec = Executor::with_keep_alive(1, Duration::MAX);
    let rt = Runtime::builder()
        .thread_keep_alive(Duration::MAX)
        .build()
        .unwrap();
    let out = rt.block_on(async {
        let a = exec.submit(|| 1u8).await?;
        time::sleep(Duration::from_millis(5)).await?; // the worker is idle meanwhile
        let b = exec.submit(|| 2u8).await?;
        let c = evloop::spawn_blocking(|| 3u8).await?;
        time::sleep(Duration::from_millis(5)).await?;
        let d = evloop::spawn_blocking(|| 4u8).await?;
        Ok::<_, Error>([a, b, c, d])
    });
    assert_eq!(out.unwrap(), [1, 2, 3, 4]);
    exec.shutdown(true);
    let dropped = catch_unwind(AssertUnwindSafe(move || drop(rt)));
    assert!(dropped.is_ok(), "Runtime::drop panicked");
}
