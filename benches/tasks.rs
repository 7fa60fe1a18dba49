//! SPEC §11 P1–P6: task workloads, evloop side by side with tokio `current_thread`,
//! tokio `multi_thread` (1 worker) and smol in the same run. The bodies mirror tokio's
//! own benches of the same names (`benches/rt_current_thread.rs`,
//! `rt_multi_threaded.rs`, `sync_mpsc_oneshot.rs`), adapted so a single-threaded runtime
//! awaits completion inside `block_on`. Where tokio uses a `oneshot` or `mpsc`
//! channel, evloop uses its `Future` (the asyncio way to hand over a value) and smol
//! uses `async-channel`. P1, P4 and P5 also run evloop with eager task start
//! (`evloop_eager`, `Builder::eager_tasks(true)`, opt-in), for information.
//!
//! Run: `cargo bench --bench tasks` (or `cargo xtask bench` for the whole report).

mod common;

use std::hint::black_box;

use common::workloads::{YIELD_TASKS, YIELDS};
use common::*;
use criterion::{Criterion, criterion_group, criterion_main};

const SPAWN: usize = 10_000;
const PINGS: usize = 1_000;
const CHAIN: usize = 1_000;
const REQUESTS: usize = 1_000;

/// The evloop body on the default runtime (the row's `evloop` column) and, as
/// `evloop_eager`, on one built with `Builder::eager_tasks(true)` (opt-in: it changes
/// T1), shown under "also measured".
fn bench_evloop_both<F: std::future::Future<Output = ()>>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    body: fn() -> F,
) {
    let rt = evloop_rt();
    g.bench_function(EVLOOP, |b| b.iter(|| rt.block_on(body())));
    let eager = evloop::Runtime::builder()
        .eager_tasks(true)
        .build()
        .expect("evloop runtime");
    g.bench_function("evloop_eager", |b| b.iter(|| eager.block_on(body())));
}

/// P1: spawn 10 000 tasks that finish at once, await them all.
fn spawn_many_local(c: &mut Criterion) {
    let mut g = c.benchmark_group("P1_spawn_many_local");
    async fn evloop_body() {
        let tasks: Vec<_> = (0..SPAWN)
            .map(|i| evloop::create_task(async move { Ok(black_box(i)) }))
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    }
    bench_evloop_both(&mut g, evloop_body);
    async fn tokio_body() {
        let tasks: Vec<_> = (0..SPAWN)
            .map(|i| tokio::spawn(async move { black_box(i) }))
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    }
    bench_tokio_peers(&mut g, tokio_body);
    g.bench_function(SMOL, |b| {
        b.iter(|| {
            smol_block_on(async {
                let tasks: Vec<_> = (0..SPAWN)
                    .map(|i| smol_ex().spawn(async move { black_box(i) }))
                    .collect();
                for t in tasks {
                    t.await;
                }
            })
        })
    });
    g.finish();
}

/// P2: 10 000 spawns from another thread while the loop is idle, then the loop awaits
/// them all (tokio's `spawn_many_remote_idle`, with the spawning done by a helper
/// thread instead of the bench thread).
fn spawn_many_remote(c: &mut Criterion) {
    let mut g = c.benchmark_group("P2_spawn_many_remote");
    let helper = Helper::new();
    let rt = evloop_rt();
    g.bench_function(EVLOOP, |b| {
        b.iter(|| {
            let handle = rt.handle();
            let tasks = helper.run(move || {
                (0..SPAWN)
                    .map(|i| handle.spawn(async move { Ok(black_box(i)) }))
                    .collect::<Vec<_>>()
            });
            rt.block_on(async {
                for t in tasks {
                    t.await.unwrap();
                }
            })
        })
    });
    for (name, rt) in [(TOKIO_CT, tokio_ct()), (TOKIO_MT1, tokio_mt1())] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let handle = rt.handle().clone();
                let tasks = helper.run(move || {
                    (0..SPAWN)
                        .map(|i| handle.spawn(async move { black_box(i) }))
                        .collect::<Vec<_>>()
                });
                rt.block_on(async {
                    for t in tasks {
                        t.await.unwrap();
                    }
                })
            })
        });
    }
    // smol's `LocalExecutor` cannot be spawned on from another thread: its `Executor`
    // (the thread-safe one) is run by this thread instead.
    let ex: &'static smol::Executor<'static> = Box::leak(Box::new(smol::Executor::new()));
    g.bench_function(SMOL, |b| {
        b.iter(|| {
            let tasks = helper.run(move || {
                (0..SPAWN)
                    .map(|i| ex.spawn(async move { black_box(i) }))
                    .collect::<Vec<_>>()
            });
            smol::block_on(ex.run(async {
                for t in tasks {
                    t.await;
                }
            }))
        })
    });
    g.finish();
}

/// P3: 200 tasks × 1 000 `yield_now` (the evloop body is shared with P16).
fn yield_many(c: &mut Criterion) {
    let mut g = c.benchmark_group("P3_yield_many");
    let rt = evloop_rt();
    g.bench_function(EVLOOP, |b| {
        b.iter(|| rt.block_on(workloads::evloop_yield_many()))
    });
    async fn tokio_body() {
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
    }
    bench_tokio_peers(&mut g, tokio_body);
    g.bench_function(SMOL, |b| {
        b.iter(|| {
            smol_block_on(async {
                let tasks: Vec<_> = (0..YIELD_TASKS)
                    .map(|_| {
                        smol_ex().spawn(async {
                            for _ in 0..YIELDS {
                                smol::future::yield_now().await;
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await;
                }
            })
        })
    });
    g.finish();
}

/// P4: 1 000 task pairs exchanging a message and its reply (tokio: two oneshots;
/// evloop: two `Future`s; smol: two bounded(1) channels).
fn ping_pong(c: &mut Criterion) {
    let mut g = c.benchmark_group("P4_ping_pong");
    async fn evloop_body() {
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
    }
    bench_evloop_both(&mut g, evloop_body);
    async fn tokio_body() {
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
    }
    bench_tokio_peers(&mut g, tokio_body);
    g.bench_function(SMOL, |b| {
        b.iter(|| {
            smol_block_on(async {
                let pairs: Vec<_> = (0..PINGS)
                    .map(|_| {
                        smol_ex().spawn(async {
                            let (tx1, rx1) = smol::channel::bounded::<()>(1);
                            let (tx2, rx2) = smol::channel::bounded::<()>(1);
                            smol_ex()
                                .spawn(async move {
                                    rx1.recv().await.unwrap();
                                    tx2.try_send(()).unwrap();
                                })
                                .detach();
                            tx1.try_send(()).unwrap();
                            rx2.recv().await.unwrap();
                        })
                    })
                    .collect();
                for p in pairs {
                    p.await;
                }
            })
        })
    });
    g.finish();
}

/// P5: each task spawns the next, depth 1 000; the last one signals.
fn chained_spawn(c: &mut Criterion) {
    let mut g = c.benchmark_group("P5_chained_spawn");
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
    async fn evloop_body() {
        let done = evloop::Future::new();
        evloop_link(done.clone(), CHAIN);
        done.await.unwrap();
    }
    bench_evloop_both(&mut g, evloop_body);
    fn tokio_link(done: tokio::sync::oneshot::Sender<()>, n: usize) {
        if n == 0 {
            done.send(()).unwrap();
        } else {
            tokio::spawn(async move { tokio_link(done, n - 1) });
        }
    }
    async fn tokio_body() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio_link(tx, CHAIN);
        rx.await.unwrap();
    }
    bench_tokio_peers(&mut g, tokio_body);
    fn smol_link(done: smol::channel::Sender<()>, n: usize) {
        if n == 0 {
            done.try_send(()).unwrap();
        } else {
            smol_ex()
                .spawn(async move { smol_link(done, n - 1) })
                .detach();
        }
    }
    g.bench_function(SMOL, |b| {
        b.iter(|| {
            smol_block_on(async {
                let (tx, rx) = smol::channel::bounded(1);
                smol_link(tx, CHAIN);
                rx.recv().await.unwrap();
            })
        })
    });
    g.finish();
}

/// One request to the P6 server: where to reply, and where the next request will be.
#[derive(Clone)]
struct Request {
    reply: evloop::Future<()>,
    next: evloop::Future<Request>,
}

/// P6: 1 000 round trips to a server task (tokio: an `mpsc` of `oneshot` senders, as
/// tokio's `request_reply`; evloop: each request carries its reply future and the
/// future the next request will arrive on; smol: `async-channel`s).
fn request_reply(c: &mut Criterion) {
    let mut g = c.benchmark_group("P6_request_reply");
    let rt = evloop_rt();
    #[allow(
        clippy::async_yields_async,
        reason = "the future is the server's inbox"
    )]
    let inbox = std::cell::Cell::new(Some(rt.block_on(async {
        let first = evloop::Future::<Request>::new();
        let mut inbox = first.clone();
        evloop::create_task(async move {
            loop {
                let Request { reply, next } = inbox.take().await?;
                reply.set_result(()).unwrap();
                inbox = next;
            }
            #[allow(unreachable_code)]
            Ok::<(), evloop::Error>(())
        });
        first
    })));
    g.bench_function(EVLOOP, |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut next_inbox = inbox.take().expect("the inbox is put back");
                for _ in 0..REQUESTS {
                    let reply = evloop::Future::new();
                    let next = evloop::Future::new();
                    next_inbox
                        .set_result(Request {
                            reply: reply.clone(),
                            next: next.clone(),
                        })
                        .unwrap();
                    next_inbox = next;
                    reply.await.unwrap();
                }
                inbox.set(Some(next_inbox));
            })
        })
    });
    fn tokio_server() -> tokio::sync::mpsc::Sender<tokio::sync::oneshot::Sender<()>> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<tokio::sync::oneshot::Sender<()>>(10);
        tokio::spawn(async move {
            while let Some(reply) = rx.recv().await {
                reply.send(()).unwrap();
            }
        });
        tx
    }
    async fn tokio_body(tx: tokio::sync::mpsc::Sender<tokio::sync::oneshot::Sender<()>>) {
        for _ in 0..REQUESTS {
            let (o_tx, o_rx) = tokio::sync::oneshot::channel();
            tx.send(o_tx).await.unwrap();
            let _ = o_rx.await;
        }
    }
    let rt = tokio_ct();
    let tx = rt.block_on(async { tokio_server() });
    g.bench_function(TOKIO_CT, |b| b.iter(|| rt.block_on(tokio_body(tx.clone()))));
    let rt = tokio_mt1();
    let tx = tokio_on_worker(&rt, async { tokio_server() });
    g.bench_function(TOKIO_MT1, |b| {
        b.iter(|| tokio_on_worker(&rt, tokio_body(tx.clone())))
    });
    let (tx, rx) = smol::channel::bounded::<smol::channel::Sender<()>>(10);
    smol_ex()
        .spawn(async move {
            while let Ok(reply) = rx.recv().await {
                reply.try_send(()).unwrap();
            }
        })
        .detach();
    g.bench_function(SMOL, |b| {
        b.iter(|| {
            smol_block_on(async {
                for _ in 0..REQUESTS {
                    let (o_tx, o_rx) = smol::channel::bounded(1);
                    tx.send(o_tx).await.unwrap();
                    let _ = o_rx.recv().await;
                }
            })
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = spawn_many_local, spawn_many_remote, yield_many, ping_pong, chained_spawn,
        request_reply
}

criterion_main!(benches);
