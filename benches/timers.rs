//! SPEC §11 P7: timers, evloop side by side with tokio `current_thread`, tokio
//! `multi_thread` (1 worker) and smol in the same run.
//!
//! * `P7_timers_insert_cancel`: 1 000 000 timers with deadlines spread over 0–10 s (the
//!   same pseudo-random deadlines for every peer), then every second one cancelled.
//!   Every peer does it the same way: a sleep future per timer (`evloop::time::Sleep`,
//!   `tokio::time::Sleep`, `async_io::Timer`), polled once so it registers, and dropped
//!   to cancel. Only insertion and cancellation are timed (`iter_custom`); dropping the
//!   other half afterwards is not. `evloop_call_at` is the asyncio-style primitive
//!   (`call_at` + `TimerHandle::cancel`), shown for information.
//! * `P7_timers_fire`: 100 000 timers due now, fired: 100 000 tasks each awaiting a
//!   sleep until the instant the iteration started, all awaited. `evloop_call_at`:
//!   100 000 `call_at` callbacks at that instant (no tasks), for information.
//!
//! Run: `cargo bench --bench timers`.

mod common;

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use common::*;
use criterion::{Criterion, criterion_group, criterion_main};

const INSERTS: usize = 1_000_000;
const FIRES: usize = 100_000;
const SPREAD: Duration = Duration::from_secs(10);

fn deadlines() -> Vec<Duration> {
    let mut rng = Rng::new(0x5eed);
    (0..INSERTS).map(|_| rng.duration_below(SPREAD)).collect()
}

/// Registers one sleep per offset (polled once), then drops every second one; returns
/// the time that took and the sleeps still pending (dropped by the caller, untimed).
async fn insert_cancel<S: Future>(
    offsets: &[Duration],
    make: impl Fn(Instant) -> S,
) -> (Duration, Vec<Option<S>>) {
    let mut sleeps: Vec<Option<S>> = Vec::with_capacity(offsets.len());
    let took = poll_fn(|cx| {
        let base = Instant::now();
        let start = Instant::now();
        for d in offsets {
            sleeps.push(Some(make(base + *d)));
            let slot = sleeps.last_mut().unwrap().as_mut().unwrap();
            // SAFETY: the vector has its full capacity reserved and never grows past
            // it, so its elements never move; each sleep is dropped in place (by
            // assigning `None` or by dropping the vector), never moved out.
            let pinned = unsafe { Pin::new_unchecked(slot) };
            // smol completes a timer whose deadline passed during the loop at once.
            let _ = pinned.poll(cx);
        }
        for slot in sleeps.iter_mut().step_by(2) {
            *slot = None;
        }
        Poll::Ready(start.elapsed())
    })
    .await;
    (took, sleeps)
}

fn timers_insert_cancel(c: &mut Criterion) {
    let mut g = c.benchmark_group("P7_timers_insert_cancel");
    let offsets: &'static [Duration] = deadlines().leak();
    let rt = evloop_rt();
    g.bench_function(EVLOOP, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += rt
                    .block_on(async { insert_cancel(offsets, evloop::time::sleep_until).await.0 });
            }
            total
        })
    });
    g.bench_function("evloop_call_at", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += rt.block_on(async {
                    let handle = evloop::LoopHandle::current();
                    let mut timers = Vec::with_capacity(INSERTS);
                    let base = Instant::now();
                    let start = Instant::now();
                    for d in offsets {
                        timers.push(handle.call_at(base + *d, || {}));
                    }
                    for t in timers.iter().step_by(2) {
                        t.cancel();
                    }
                    let took = start.elapsed();
                    for t in &timers {
                        t.cancel();
                    }
                    took
                });
            }
            total
        })
    });
    let rt = tokio_ct();
    g.bench_function(TOKIO_CT, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += rt.block_on(async {
                    insert_cancel(offsets, |at| tokio::time::sleep_until(at.into()))
                        .await
                        .0
                });
            }
            total
        })
    });
    let rt = tokio_mt1();
    g.bench_function(TOKIO_MT1, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += tokio_on_worker(&rt, async {
                    insert_cancel(offsets, |at| tokio::time::sleep_until(at.into()))
                        .await
                        .0
                });
            }
            total
        })
    });
    g.bench_function(SMOL, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += smol_block_on(async { insert_cancel(offsets, smol::Timer::at).await.0 });
            }
            total
        })
    });
    g.finish();
}

fn timers_fire(c: &mut Criterion) {
    let mut g = c.benchmark_group("P7_timers_fire");
    let rt = evloop_rt();
    g.bench_function(EVLOOP, |b| {
        b.iter(|| {
            rt.block_on(async {
                let now = Instant::now();
                let tasks: Vec<_> = (0..FIRES)
                    .map(|_| evloop::create_task(evloop::time::sleep_until(now)))
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
            })
        })
    });
    g.bench_function("evloop_call_at", |b| {
        b.iter(|| {
            rt.block_on(async {
                let handle = evloop::LoopHandle::current();
                let done = evloop::Future::<()>::new();
                let left = Arc::new((AtomicUsize::new(FIRES), done.clone()));
                let now = Instant::now();
                for _ in 0..FIRES {
                    let left = left.clone();
                    handle.call_at(now, move || {
                        if left.0.fetch_sub(1, Ordering::Relaxed) == 1 {
                            left.1.set_result(()).unwrap();
                        }
                    });
                }
                done.await.unwrap();
            })
        })
    });
    async fn tokio_body() {
        let now = tokio::time::Instant::now();
        let tasks: Vec<_> = (0..FIRES)
            .map(|_| tokio::spawn(tokio::time::sleep_until(now)))
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    }
    bench_tokio_peers(&mut g, tokio_body);
    g.bench_function(SMOL, |b| {
        b.iter(|| {
            smol_block_on(async {
                let now = Instant::now();
                let tasks: Vec<_> = (0..FIRES)
                    .map(|_| smol_ex().spawn(smol::Timer::at(now)))
                    .collect();
                for t in tasks {
                    t.await;
                }
            })
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = config_heavy();
    targets = timers_insert_cancel, timers_fire
}
criterion_main!(benches);
