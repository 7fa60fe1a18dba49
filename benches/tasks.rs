//! SPEC §11 P1–P5: task workloads, evloop side by side with tokio `current_thread`
//! in the same run. The bodies mirror tokio's own benches (`benches/rt_*.rs`) of the
//! same names, adapted so a current-thread runtime awaits completion inside
//! `block_on`; tokio uses `tokio::spawn` + `JoinHandle` and `oneshot` where evloop uses
//! `create_task` + `Task` and `evloop::Future`.
//!
//! Run: `cargo bench --bench tasks`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};

const SPAWN: usize = 10_000;
const YIELD_TASKS: usize = 200;
const YIELDS: usize = 1_000;
const PINGS: usize = 1_000;
const CHAIN: usize = 1_000;

fn evloop_rt() -> evloop::Runtime {
    evloop::Runtime::new().unwrap()
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

/// P1: spawn 10 000 tasks that finish at once, await them all.
fn spawn_many_local(c: &mut Criterion) {
    let mut g = c.benchmark_group("spawn_many_local");
    let rt = evloop_rt();
    g.bench_function("evloop", |b| {
        b.iter(|| {
            rt.block_on(async {
                let tasks: Vec<_> = (0..SPAWN)
                    .map(|i| evloop::create_task(async move { Ok(black_box(i)) }))
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
            })
        })
    });
    let rt = tokio_rt();
    g.bench_function("tokio_current_thread", |b| {
        b.iter(|| {
            rt.block_on(async {
                let tasks: Vec<_> = (0..SPAWN)
                    .map(|i| tokio::spawn(async move { black_box(i) }))
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
            })
        })
    });
    g.finish();
}

/// P3: 200 tasks × 1 000 `yield_now`.
fn yield_many(c: &mut Criterion) {
    let mut g = c.benchmark_group("yield_many");
    let rt = evloop_rt();
    g.bench_function("evloop", |b| {
        b.iter(|| {
            rt.block_on(async {
                let tasks: Vec<_> = (0..YIELD_TASKS)
                    .map(|_| {
                        evloop::create_task(async {
                            for _ in 0..YIELDS {
                                evloop::yield_now().await?;
                            }
                            Ok(())
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
            })
        })
    });
    let rt = tokio_rt();
    g.bench_function("tokio_current_thread", |b| {
        b.iter(|| {
            rt.block_on(async {
                let tasks: Vec<_> = (0..YIELD_TASKS)
                    .map(|_| {
                        tokio::spawn(async {
                            for _ in 0..YIELDS {
                                tokio::task::yield_now().await;
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
            })
        })
    });
    g.finish();
}

/// P4: 1 000 task pairs exchanging a message and its reply (tokio: two oneshots;
/// evloop: two `Future`s).
fn ping_pong(c: &mut Criterion) {
    let mut g = c.benchmark_group("ping_pong");
    let rt = evloop_rt();
    g.bench_function("evloop", |b| {
        b.iter(|| {
            rt.block_on(async {
                let pairs: Vec<_> = (0..PINGS)
                    .map(|_| {
                        evloop::create_task(async {
                            let ping = evloop::Future::<()>::new();
                            let pong = evloop::Future::<()>::new();
                            let (ping2, pong2) = (ping.clone(), pong.clone());
                            evloop::create_task(async move {
                                ping2.await?;
                                pong2.set_result(()).unwrap();
                                Ok(())
                            });
                            ping.set_result(()).unwrap();
                            pong.await
                        })
                    })
                    .collect();
                for p in pairs {
                    p.await.unwrap();
                }
            })
        })
    });
    let rt = tokio_rt();
    g.bench_function("tokio_current_thread", |b| {
        b.iter(|| {
            rt.block_on(async {
                let pairs: Vec<_> = (0..PINGS)
                    .map(|_| {
                        tokio::spawn(async {
                            let (tx1, rx1) = tokio::sync::oneshot::channel::<()>();
                            let (tx2, rx2) = tokio::sync::oneshot::channel::<()>();
                            tokio::spawn(async move {
                                rx1.await.unwrap();
                                tx2.send(()).unwrap();
                            });
                            tx1.send(()).unwrap();
                            rx2.await.unwrap();
                        })
                    })
                    .collect();
                for p in pairs {
                    p.await.unwrap();
                }
            })
        })
    });
    g.finish();
}

/// P5: each task spawns the next, depth 1 000; the last one signals.
fn chained_spawn(c: &mut Criterion) {
    let mut g = c.benchmark_group("chained_spawn");
    fn evloop_link(done: evloop::Future<()>, n: usize) {
        if n == 0 {
            done.set_result(()).unwrap();
        } else {
            evloop::create_task(async move {
                evloop_link(done, n - 1);
                Ok(())
            });
        }
    }
    let rt = evloop_rt();
    g.bench_function("evloop", |b| {
        b.iter(|| {
            rt.block_on(async {
                let done = evloop::Future::new();
                evloop_link(done.clone(), CHAIN);
                done.await.unwrap();
            })
        })
    });
    fn tokio_link(done: tokio::sync::oneshot::Sender<()>, n: usize) {
        if n == 0 {
            done.send(()).unwrap();
        } else {
            tokio::spawn(async move { tokio_link(done, n - 1) });
        }
    }
    let rt = tokio_rt();
    g.bench_function("tokio_current_thread", |b| {
        b.iter(|| {
            rt.block_on(async {
                let (tx, rx) = tokio::sync::oneshot::channel();
                tokio_link(tx, CHAIN);
                rx.await.unwrap();
            })
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = spawn_many_local, yield_many, ping_pong, chained_spawn
}
criterion_main!(benches);
