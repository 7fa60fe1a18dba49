//! SPEC §11 P9: two threads each hand 500 000 callbacks to the loop while it is busy
//! (a task on it yields in a loop until everything ran) — evloop with
//! `call_soon_threadsafe`, tokio (`current_thread` and `multi_thread` with 1 worker)
//! with `Handle::spawn`, smol with `Executor::spawn` (its `LocalExecutor` cannot be
//! reached from other threads). The two producer threads are started once; an
//! iteration is one burst of 1 000 000 items, from the first send to the last run.
//!
//! The wake-up syscalls this costs evloop (≤ 10 per 1 000 is the target) are counted
//! from `LoopHandle::stats()` by `cargo bench --bench metrics`.
//!
//! Run: `cargo bench --bench cross_thread`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::*;
use criterion::{Criterion, criterion_group, criterion_main};

const PER_THREAD: usize = 500_000;
const THREADS: usize = 2;

/// What every callback touches: the count of items still to run, and the signal the
/// last one gives.
struct Burst<S> {
    left: AtomicUsize,
    done: S,
}

impl<S> Burst<S> {
    fn new(done: S) -> Arc<Burst<S>> {
        Arc::new(Burst {
            left: AtomicUsize::new(THREADS * PER_THREAD),
            done,
        })
    }

    /// `true` for the last item.
    fn item(&self) -> bool {
        self.left.fetch_sub(1, Ordering::Relaxed) == 1
    }
}

/// Starts the producers: each runs `send` `PER_THREAD` times on its helper thread.
fn produce(helpers: &[Helper], send: impl Fn() + Send + Sync + Clone + 'static) {
    for helper in helpers {
        let send = send.clone();
        helper.start(move || {
            for _ in 0..PER_THREAD {
                send();
            }
        });
    }
}

fn cross_thread(c: &mut Criterion) {
    let mut g = c.benchmark_group("P9_cross_thread");
    let helpers: Vec<Helper> = (0..THREADS).map(|_| Helper::new()).collect();

    let rt = evloop_rt();
    g.bench_function(EVLOOP, |b| {
        b.iter(|| {
            rt.block_on(async {
                let burst = Burst::new(evloop::Future::<()>::new());
                let busy = {
                    let done = burst.done.clone();
                    evloop::create_task(async move {
                        while !done.done() {
                            evloop::yield_now().await?;
                        }
                        Ok(())
                    })
                };
                let handle = evloop::LoopHandle::current();
                let sender = burst.clone();
                produce(&helpers, move || {
                    let burst = sender.clone();
                    handle.call_soon_threadsafe(move || {
                        if burst.item() {
                            burst.done.set_result(()).unwrap();
                        }
                    });
                });
                burst.done.clone().await.unwrap();
                busy.await.unwrap();
            })
        })
    });

    fn tokio_body(
        helpers: &[Helper],
        handle: tokio::runtime::Handle,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let burst = Burst::new(tokio::sync::Notify::new());
        let finished = Arc::new(AtomicBool::new(false));
        let sender = burst.clone();
        let spawner = handle.clone();
        let producers = move || {
            let burst = sender.clone();
            spawner.spawn(async move {
                if burst.item() {
                    burst.done.notify_one();
                }
            });
        };
        let busy = {
            let finished = finished.clone();
            handle.spawn(async move {
                while !finished.load(Ordering::Relaxed) {
                    tokio::task::yield_now().await;
                }
            })
        };
        produce(helpers, producers);
        async move {
            burst.done.notified().await;
            finished.store(true, Ordering::Relaxed);
            busy.await.unwrap();
        }
    }
    let rt = tokio_ct();
    g.bench_function(TOKIO_CT, |b| {
        b.iter(|| {
            let body = tokio_body(&helpers, rt.handle().clone());
            rt.block_on(body)
        })
    });
    let rt = tokio_mt1();
    g.bench_function(TOKIO_MT1, |b| {
        b.iter(|| {
            let body = tokio_body(&helpers, rt.handle().clone());
            tokio_on_worker(&rt, body)
        })
    });

    let ex: &'static smol::Executor<'static> = Box::leak(Box::new(smol::Executor::new()));
    g.bench_function(SMOL, |b| {
        b.iter(|| {
            smol::block_on(ex.run(async {
                let (tx, rx) = smol::channel::bounded::<()>(1);
                let burst = Burst::new(tx);
                let finished = Arc::new(AtomicBool::new(false));
                let busy = {
                    let finished = finished.clone();
                    ex.spawn(async move {
                        while !finished.load(Ordering::Relaxed) {
                            smol::future::yield_now().await;
                        }
                    })
                };
                let sender = burst.clone();
                produce(&helpers, move || {
                    let burst = sender.clone();
                    ex.spawn(async move {
                        if burst.item() {
                            burst.done.try_send(()).unwrap();
                        }
                    })
                    .detach();
                });
                rx.recv().await.unwrap();
                finished.store(true, Ordering::Relaxed);
                busy.await;
            }))
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = config_heavy();
    targets = cross_thread
}
criterion_main!(benches);
