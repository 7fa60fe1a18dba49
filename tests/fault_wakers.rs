//! Hardening rule 2: a panicking waker never loses the rest of its batch.
//!
//! A `Waker` is foreign code: an evloop awaitable polled by another executor, a
//! combinator or a hand-written `poll_fn` can carry any waker, and `wake` may panic.
//! When evloop wakes a batch of waiters — a future's awaiters and done-callbacks, the
//! timers that expired together, the I/O events of one reactor poll — a panic from one
//! waker must not unwind through the batch: every other waiter is still woken, every
//! done-callback still runs, in registration order; the panic is reported to the loop's
//! exception handler (a report whose `exception` displays the panic message); the loop
//! keeps running and `block_on` does not panic.
//!
//! Each test polls one evloop awaitable once by hand with a waker whose
//! `wake` / `wake_by_ref` panics (registered first), then has ordinary tasks and
//! done-callbacks wait on the same or a sibling thing, and completes it:
//!
//! * `set_result_on_the_loop_thread_*` / `set_result_from_another_thread_*`: a
//!   `Future`; the later awaiter and both done-callbacks run, and a callback added after
//!   the completion runs too (the future does not stay "draining").
//! * `co_fired_sleeps_*`: two `sleep_until` with the same deadline.
//! * `io_events_of_one_reactor_poll_*`: reads on two socket pairs made ready by the same
//!   reactor poll (edge-triggered: a lost event is lost for good).
//! * `a_task_awaited_*`: a `Task`'s handle.
//! * `a_gather_awaited_*`: a `gather`'s outer future.
//! * `an_executor_job_awaited_*`: a `spawn_blocking` future (completed on a worker).
//! * `signal_waits_*`: two `signal::wait(SIGUSR1)` futures.
//! * `interval_ticks_*`: two `Interval`s ticking at the same instant.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use common::{Log, capture_exceptions, entries, new_log, push};
use evloop::JobHandle;
use evloop::net::UnixStream;
use evloop::{Error, ExceptionContext, Future, Runtime, Task, gather};

/// Generous bound that turns a hang into a failure.
const HANG_LIMIT: Duration = Duration::from_secs(20);
/// How long [`until`] waits for something that should happen in a few iterations
/// ("never", shorter than [`HANG_LIMIT`] so that it is the one to report).
const NEVER: Duration = Duration::from_secs(5);
/// How far ahead the co-fired timers are set: room for both to be registered first.
const AHEAD: Duration = Duration::from_millis(100);
const HOUR: Duration = Duration::from_secs(3600);

/// [`common::bounded`] with this file's [`HANG_LIMIT`].
fn bounded<T: Send + 'static>(what: &'static str, body: impl FnOnce() -> T + Send + 'static) -> T {
    common::bounded(HANG_LIMIT, what, body)
}

/// A waker whose `wake` and `wake_by_ref` panic with its message.
struct PanickingWaker(&'static str);

impl Wake for PanickingWaker {
    fn wake(self: Arc<Self>) {
        panic!("{}", self.0);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        panic!("{}", self.0);
    }
}

fn panicking_waker(message: &'static str) -> Waker {
    Waker::from(Arc::new(PanickingWaker(message)))
}

/// Polls `fut` once with `waker`; asserts it is pending.
fn poll_once_by_hand<F: std::future::Future>(fut: Pin<&mut F>, waker: &Waker) {
    let polled = fut.poll(&mut Context::from_waker(waker));
    assert!(polled.is_pending(), "the hand-polled awaitable is pending");
}

/// Lets the loop iterate until `cond` holds: yields first (a bounded number of
/// iterations is all the fixed loop needs), then 1 ms sleeps, for work completed on
/// other threads; gives up after [`NEVER`]. Whether `cond` came to hold.
async fn until(cond: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + NEVER;
    let mut round = 0;
    while !cond() {
        if Instant::now() >= deadline {
            return false;
        }
        round += 1;
        if round < 200 {
            evloop::yield_now().await.unwrap();
        } else {
            evloop::time::sleep(Duration::from_millis(1)).await.unwrap();
        }
    }
    true
}

/// Whether one of the reports carries an exception displaying `message`.
fn reported(reports: &Mutex<Vec<ExceptionContext>>, message: &str) -> bool {
    reports.lock().unwrap().iter().any(|ctx| {
        ctx.exception
            .as_ref()
            .is_some_and(|e| e.to_string().contains(message))
    })
}

/// Runs `scenario` in `rt.block_on` and returns its output, failing with the panic
/// message if a panic escaped `block_on`.
fn block_on_survives<T>(rt: &Runtime, scenario: impl std::future::Future<Output = T>) -> T {
    match catch_unwind(AssertUnwindSafe(|| rt.block_on(scenario))) {
        Ok(out) => out,
        Err(payload) => panic!(
            "a panic escaped block_on: {:?}",
            common::panic_message(&*payload)
        ),
    }
}

/// Asserts that the loop still runs callbacks after the scenario.
fn assert_loop_alive(rt: &Runtime) {
    let log = new_log();
    let sink = log.clone();
    rt.handle().call_soon(move || push(&sink, "still running"));
    rt.block_on(common::yield_times(2));
    assert_eq!(entries(&log), ["still running"]);
}

/// Adds two done-callbacks to `fut` that log `"{name}: {result:?}"`.
fn two_callbacks<T: Send + Clone + std::fmt::Debug + 'static>(fut: &Future<T>, log: &Log) {
    for name in ["callback 1", "callback 2"] {
        let log = log.clone();
        fut.add_done_callback(move |f: &Future<T>| push(&log, format!("{name}: {:?}", f.result())));
    }
}

/// A task that awaits `fut` and logs what it got.
fn awaiter<T: Send + Clone + std::fmt::Debug + 'static>(fut: Future<T>, log: &Log) -> Task<()> {
    let log = log.clone();
    evloop::create_task(async move {
        let got = fut.await;
        push(&log, format!("awaiter: {got:?}"));
        Ok(())
    })
}

/// The common shape of the `Future` cases: a panicking awaiter registered first, then
/// a task awaiting the same future, then two done-callbacks; `complete` finishes the
/// future (on this thread or another; `Err` if that panicked there); then a third
/// callback is added afterwards. Expected: `complete` returns normally; the awaiter,
/// callback 1 and callback 2 run in that order, and callback 3 runs too — after them
/// when everything happens on the loop thread (one queue, F7); when the completion
/// came from another thread its wake-ups travel through the cross-thread queue while
/// callback 3 is queued locally, so only its running is asserted. The panic is
/// reported.
fn future_case(
    marker: &'static str,
    complete: fn(Future<u32>) -> Result<(), String>,
    from_the_loop_thread: bool,
) {
    let rt = Runtime::new().unwrap();
    let reports = capture_exceptions(&rt.handle());
    let log = new_log();
    let completed = block_on_survives(&rt, async {
        let fut: Future<u32> = Future::new();
        let mut by_hand = fut.clone();
        poll_once_by_hand(Pin::new(&mut by_hand), &panicking_waker(marker));
        let _task = awaiter(fut.clone(), &log);
        common::yield_times(2).await; // the task awaits now, after the hand-polled one
        two_callbacks(&fut, &log);
        let completed = complete(fut.clone());
        {
            let log = log.clone();
            fut.add_done_callback(move |f: &Future<u32>| {
                push(&log, format!("callback 3: {:?}", f.result()));
            });
        }
        until(|| entries(&log).len() == 4).await;
        drop(by_hand);
        completed
    });
    assert_eq!(completed, Ok(()), "completing the future");
    let mut seen = entries(&log);
    if !from_the_loop_thread {
        let late = seen.iter().position(|e| e.starts_with("callback 3"));
        let late = late.map(|i| seen.remove(i));
        assert_eq!(late.as_deref(), Some("callback 3: Ok(7)"), "{seen:?}");
        seen.push("callback 3: Ok(7)".into());
    }
    assert_eq!(
        seen,
        [
            "awaiter: Ok(7)",
            "callback 1: Ok(7)",
            "callback 2: Ok(7)",
            "callback 3: Ok(7)"
        ]
    );
    assert!(
        reported(&reports, marker),
        "the waker's panic was not reported: {:?}",
        reports.lock().unwrap()
    );
    assert_loop_alive(&rt);
}

/// `Future::set_result` on the loop thread, with a panicking awaiter registered before
/// a task awaiting the same future and two done-callbacks. Today the panic unwinds out
/// of `FutureCore::complete_with`'s dispatch loop (src/future/core.rs): the later
/// awaiter is never woken, 0 of 2 callbacks run, and the future stays `DRAINING`, so a
/// callback added afterwards never runs either.
#[test]
fn set_result_on_the_loop_thread_with_a_panicking_awaiter_first_still_wakes_the_rest() {
    bounded("set_result on the loop thread", || {
        future_case(
            "waker panicked in set_result on the loop",
            |fut| fut.set_result(7).map_err(|e| e.to_string()),
            true,
        );
    });
}

/// The same with `set_result` called from another thread (where the panicking waker
/// runs): that thread's `set_result` must return normally too.
#[test]
fn set_result_from_another_thread_with_a_panicking_awaiter_first_still_wakes_the_rest() {
    bounded("set_result from another thread", || {
        future_case(
            "waker panicked in set_result off the loop",
            |fut| {
                let worker = thread::spawn(move || fut.set_result(7));
                match worker.join() {
                    Ok(set) => set.map_err(|e| e.to_string()),
                    Err(payload) => Err(format!(
                        "set_result panicked on the completing thread: {:?}",
                        common::panic_message(&*payload)
                    )),
                }
            },
            false,
        );
    });
}

/// Two `time::sleep_until(t)` with the same deadline: the first polled by hand with the
/// panicking waker, the second awaited by a task. Today `Local::fire_timers` wakes the
/// fired wakers in one loop outside any `catch_unwind`: the panic escapes `block_on`
/// and the co-fired sleep never wakes.
#[test]
fn co_fired_sleeps_with_a_panicking_waker_first_still_wake_the_rest() {
    bounded("co-fired sleeps", || {
        const MARKER: &str = "waker panicked when its sleep fired";
        let rt = Runtime::new().unwrap();
        let reports = capture_exceptions(&rt.handle());
        let log = new_log();
        block_on_survives(&rt, async {
            let deadline = Instant::now() + AHEAD;
            let mut by_hand = evloop::time::sleep_until(deadline);
            poll_once_by_hand(Pin::new(&mut by_hand), &panicking_waker(MARKER));
            let task = {
                let log = log.clone();
                evloop::create_task(async move {
                    evloop::time::sleep_until(deadline).await?;
                    push(&log, "co-fired sleep woke");
                    Ok::<_, Error>(())
                })
            };
            // (`NEVER` stands in for "never": the fixed loop wakes it at the deadline.)
            let _ = evloop::time::timeout(NEVER, task).await;
            drop(by_hand);
        });
        assert_eq!(entries(&log), ["co-fired sleep woke"]);
        assert!(reported(&reports, MARKER), "{:?}", reports.lock().unwrap());
        assert_loop_alive(&rt);
    });
}

/// Two `UnixStream::pair()`s: a read on pair A polled by hand with the panicking
/// waker, a task reading pair B; both peers are written before the loop polls its
/// reactor, so both events arrive in the same poll (A's first). Today
/// `ScheduledIo::wake` runs inside `Reactor::poll`'s event loop: the panic escapes
/// `block_on`, and B's event (edge-triggered, its readiness never recorded) is lost for
/// good.
#[test]
fn io_events_of_one_reactor_poll_with_a_panicking_waker_first_still_wake_the_rest() {
    bounded("I/O events of one poll", || {
        const MARKER: &str = "waker panicked on an I/O event";
        let rt = Runtime::new().unwrap();
        let reports = capture_exceptions(&rt.handle());
        let log = new_log();
        block_on_survives(&rt, async {
            let (a, a_peer) = UnixStream::pair().unwrap();
            let (b, b_peer) = UnixStream::pair().unwrap();
            let mut buf_a = [0u8; 8];
            let mut read_a = pin!(a.read(&mut buf_a));
            poll_once_by_hand(read_a.as_mut(), &panicking_waker(MARKER));
            let task = {
                let log = log.clone();
                evloop::create_task(async move {
                    let mut buf = [0u8; 8];
                    let n = b.read(&mut buf).await?;
                    push(&log, format!("B read {:?}", &buf[..n]));
                    Ok::<_, Error>(())
                })
            };
            common::yield_times(2).await; // B's read waits now
            assert_eq!(a_peer.try_write(b"a").unwrap(), 1);
            assert_eq!(b_peer.try_write(b"b").unwrap(), 1);
            let _ = evloop::time::timeout(NEVER, task).await;
        });
        assert_eq!(entries(&log), ["B read [98]"]);
        assert!(reported(&reports, MARKER), "{:?}", reports.lock().unwrap());
        assert_loop_alive(&rt);
    });
}

/// A `Task` handle polled by hand with the panicking waker, then a task awaiting the
/// same task (its future view) and two done-callbacks; the task finishes. Today its
/// completion (`TaskCell::finish` → `FutureCore::complete`, inside the loop's
/// `run_task`) unwinds out of `block_on`.
#[test]
fn a_task_awaited_with_a_panicking_waker_first_still_wakes_the_rest() {
    bounded("a task's waiters", || {
        const MARKER: &str = "waker panicked when the task finished";
        let rt = Runtime::new().unwrap();
        let reports = capture_exceptions(&rt.handle());
        let log = new_log();
        block_on_survives(&rt, async {
            let gate: Future<()> = Future::new();
            let mut target: Task<u32> = {
                let gate = gate.clone();
                evloop::create_task(async move {
                    gate.await?;
                    Ok(7)
                })
            };
            poll_once_by_hand(Pin::new(&mut target), &panicking_waker(MARKER));
            let _task = awaiter(target.future(), &log);
            common::yield_times(2).await;
            two_callbacks(&target.future(), &log);
            gate.set_result(()).unwrap();
            until(|| entries(&log).len() == 3).await;
            drop(target);
        });
        assert_eq!(
            entries(&log),
            ["awaiter: Ok(7)", "callback 1: Ok(7)", "callback 2: Ok(7)"]
        );
        assert!(reported(&reports, MARKER), "{:?}", reports.lock().unwrap());
        assert_loop_alive(&rt);
    });
}

/// A `gather`'s outer future polled by hand with the panicking waker, then a task
/// awaiting the same outer future and two done-callbacks; the only child completes.
/// Today the outer's completion runs in the gather's batch callback, whose
/// `catch_unwind` reports the panic — but the rest of the outer's waiters are lost:
/// the task is never woken and the callbacks never run.
#[test]
fn a_gather_awaited_with_a_panicking_waker_first_still_wakes_the_rest() {
    bounded("a gather's waiters", || {
        const MARKER: &str = "waker panicked when the gather finished";
        let rt = Runtime::new().unwrap();
        let reports = capture_exceptions(&rt.handle());
        let log = new_log();
        block_on_survives(&rt, async {
            let child: Future<u32> = Future::new();
            let outer = gather(vec![child.clone()]);
            let mut by_hand = outer.clone();
            poll_once_by_hand(Pin::new(&mut by_hand), &panicking_waker(MARKER));
            let _task = awaiter(outer.clone(), &log);
            common::yield_times(2).await;
            two_callbacks(&outer, &log);
            child.set_result(7).unwrap();
            until(|| entries(&log).len() == 3).await;
            drop(by_hand);
        });
        assert_eq!(
            entries(&log),
            [
                "awaiter: Ok([7])",
                "callback 1: Ok([7])",
                "callback 2: Ok([7])"
            ]
        );
        assert!(reported(&reports, MARKER), "{:?}", reports.lock().unwrap());
        assert_loop_alive(&rt);
    });
}

/// A `spawn_blocking` future polled by hand with the panicking waker, then a task
/// awaiting the same future and two done-callbacks; the job returns. The job's result
/// is set on the worker thread, where the panicking waker runs. Today the panic is
/// swallowed by the worker's `catch_unwind` and the rest of the waiters are lost.
#[test]
fn an_executor_job_awaited_with_a_panicking_waker_first_still_wakes_the_rest() {
    bounded("an executor job's waiters", || {
        const MARKER: &str = "waker panicked when the job finished";
        let rt = Runtime::new().unwrap();
        let reports = capture_exceptions(&rt.handle());
        let log = new_log();
        block_on_survives(&rt, async {
            let (release_tx, release_rx) = mpsc::channel::<()>();
            let job: JobHandle<u32> = evloop::spawn_blocking(move || {
                let _ = release_rx.recv_timeout(HANG_LIMIT);
                7
            });
            let mut by_hand = job.clone();
            poll_once_by_hand(Pin::new(&mut by_hand), &panicking_waker(MARKER));
            let _task = awaiter(job.clone(), &log);
            common::yield_times(2).await;
            two_callbacks(&job, &log);
            release_tx.send(()).unwrap();
            until(|| entries(&log).len() == 3).await;
            drop(by_hand);
        });
        assert_eq!(
            entries(&log),
            ["awaiter: Ok(7)", "callback 1: Ok(7)", "callback 2: Ok(7)"]
        );
        assert!(reported(&reports, MARKER), "{:?}", reports.lock().unwrap());
        assert_loop_alive(&rt);
    });
}

/// Two `signal::wait(SIGUSR1)` futures: the first polled by hand with the panicking
/// waker (and given a done-callback), the second awaited by a task; SIGUSR1 is raised.
/// Today `Signals::dispatch` completes the waiters in one loop inside `run_once`: the
/// panic escapes `block_on`, the first future's callback never runs and the second
/// future is never completed.
#[test]
fn signal_waits_with_a_panicking_waker_first_still_wake_the_rest() {
    bounded("signal waits", || {
        const MARKER: &str = "waker panicked when the signal arrived";
        let rt = Runtime::new().unwrap();
        let reports = capture_exceptions(&rt.handle());
        let log = new_log();
        block_on_survives(&rt, async {
            let mut first = evloop::signal::wait(libc::SIGUSR1);
            let second = evloop::signal::wait(libc::SIGUSR1);
            poll_once_by_hand(Pin::new(&mut first), &panicking_waker(MARKER));
            {
                let log = log.clone();
                first.add_done_callback(move |f: &Future<()>| {
                    push(&log, format!("first's callback: {:?}", f.result()));
                });
            }
            let _task = awaiter(second, &log);
            common::yield_times(2).await;
            // SAFETY: raising a signal this loop handles, in our own process.
            assert_eq!(unsafe { libc::raise(libc::SIGUSR1) }, 0);
            until(|| entries(&log).len() == 2).await;
            drop(first);
        });
        let mut seen = entries(&log);
        seen.sort();
        assert_eq!(seen, ["awaiter: Ok(())", "first's callback: Ok(())"]);
        assert!(reported(&reports, MARKER), "{:?}", reports.lock().unwrap());
        assert_loop_alive(&rt);
    });
}

/// Two `Interval`s whose first tick is the same future instant: the first's `tick`
/// polled by hand with the panicking waker, the second's awaited by a task. Both wait
/// on timers that fire together, so today the panic escapes `block_on` from
/// `Local::fire_timers` and the second interval never ticks.
#[test]
fn interval_ticks_with_a_panicking_waker_first_still_wake_the_rest() {
    bounded("interval ticks", || {
        const MARKER: &str = "waker panicked when the interval ticked";
        let rt = Runtime::new().unwrap();
        let reports = capture_exceptions(&rt.handle());
        let log = new_log();
        block_on_survives(&rt, async {
            let start = Instant::now() + AHEAD;
            let mut first = evloop::time::interval_at(start, HOUR);
            let polled = first.poll_tick(&mut Context::from_waker(&panicking_waker(MARKER)));
            assert!(polled.is_pending());
            let task = {
                let log = log.clone();
                evloop::create_task(async move {
                    let mut second = evloop::time::interval_at(start, HOUR);
                    let at = second.tick().await?;
                    push(&log, format!("second ticked on time: {}", at == start));
                    Ok::<_, Error>(())
                })
            };
            let _ = evloop::time::timeout(NEVER, task).await;
            drop(first);
        });
        assert_eq!(entries(&log), ["second ticked on time: true"]);
        assert!(reported(&reports, MARKER), "{:?}", reports.lock().unwrap());
        assert_loop_alive(&rt);
    });
}
