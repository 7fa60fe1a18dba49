//! SPEC §11 P15: `evloop::sync` side by side with tokio::sync (tokio `current_thread`,
//! the reference of every ratio, and `multi_thread` with 1 worker) and smol's
//! `async-lock` / `async-channel` in the same run.
//!
//! * P15a `mutex_uncontended`: 100 000 lock / increment / unlock of a `Mutex<u64>` in one
//!   task (`evloop::sync::Mutex`, `tokio::sync::Mutex`, `async_lock::Mutex`).
//! * P15b `mutex_contended`: 100 tasks × 1 000 locks of one `Mutex<u64>`, each holding
//!   the lock across a `yield_now` so that the other 99 are queued on it: every unlock
//!   hands the lock to a waiter.
//! * P15c `semaphore`: a semaphore of 10 permits shared by 1 000 tasks, each acquiring,
//!   yielding once while it holds the permit, and releasing. The 1 000 spawns are part
//!   of the workload (P1 measures them alone).
//! * P15d `queue_ping_pong`: two tasks exchanging a counter through two queues of one
//!   slot, 10 000 round trips (`Queue::new(1)`; tokio has no queue: two
//!   `mpsc::channel(1)`, its closest equivalent for use inside one runtime; smol: two
//!   `async_channel::bounded(1)`).
//! * P15e `queue_stream`: 1 000 000 integers from a producer task to a consumer task
//!   through `Queue::new(1024)` (tokio: `mpsc::channel(1024)`; smol:
//!   `async_channel::bounded(1024)`).
//!
//! P15's cross-loop part (`sync::mpsc` between two loops) is `benches/sync_mpsc.rs`.
//!
//! Every body checks its result (the final count or sum), so nothing is optimised away.
//!
//! Run: `cargo bench --bench sync` (or `cargo xtask bench sync sync_mpsc`, which also
//! rewrites the P15 rows of BENCHMARKS.md).

mod common;

use std::hint::black_box;
use std::rc::Rc;
use std::sync::Arc;

use common::*;
use criterion::{Criterion, criterion_group, criterion_main};

/// P15a: lock / unlock pairs in one task.
const LOCKS: u64 = 100_000;
/// P15b: tasks contending for one mutex, and the locks each takes.
const CONTENDERS: usize = 100;
const LOCKS_EACH: u64 = 1_000;
/// P15c: tasks sharing one semaphore, and its permits.
const SEM_TASKS: usize = 1_000;
const PERMITS: usize = 10;
/// P15d: round trips between the two tasks.
const ROUND_TRIPS: u64 = 10_000;
/// P15e: items from producer to consumer, and the queue / channel capacity.
const ITEMS: u64 = 1_000_000;
const CAPACITY: usize = 1024;

/// The sum of `0..n`, what a consumer of the items `0..n` adds up.
const fn sum_below(n: u64) -> u64 {
    n * (n - 1) / 2
}

/// P15a.
fn mutex_uncontended(c: &mut Criterion) {
    let mut g = c.benchmark_group("P15a_mutex_uncontended");
    let rt = evloop_rt();
    g.bench_function(EVLOOP, |b| {
        b.iter(|| {
            rt.block_on(async {
                let m = evloop::sync::Mutex::new(0u64);
                for _ in 0..LOCKS {
                    *black_box(&m).lock().await.unwrap() += 1;
                }
                assert_eq!(*m.lock().await.unwrap(), LOCKS);
            })
        })
    });
    async fn tokio_body() {
        let m = tokio::sync::Mutex::new(0u64);
        for _ in 0..LOCKS {
            *black_box(&m).lock().await += 1;
        }
        assert_eq!(*m.lock().await, LOCKS);
    }
    bench_tokio_peers(&mut g, tokio_body);
    g.bench_function(SMOL, |b| {
        b.iter(|| {
            smol_block_on(async {
                let m = smol::lock::Mutex::new(0u64);
                for _ in 0..LOCKS {
                    *black_box(&m).lock().await += 1;
                }
                assert_eq!(*m.lock().await, LOCKS);
            })
        })
    });
    g.finish();
}

/// P15b.
fn mutex_contended(c: &mut Criterion) {
    let mut g = c.benchmark_group("P15b_mutex_contended");
    let rt = evloop_rt();
    g.bench_function(EVLOOP, |b| {
        b.iter(|| {
            rt.block_on(async {
                let m = evloop::sync::Mutex::new(0u64);
                let tasks: Vec<_> = (0..CONTENDERS)
                    .map(|_| {
                        let m = m.clone();
                        evloop::create_task(async move {
                            for _ in 0..LOCKS_EACH {
                                let mut guard = m.lock().await?;
                                *guard += 1;
                                evloop::yield_now().await?;
                                drop(guard);
                            }
                            Ok(())
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
                assert_eq!(*m.lock().await.unwrap(), CONTENDERS as u64 * LOCKS_EACH);
            })
        })
    });
    async fn tokio_body() {
        let m = Arc::new(tokio::sync::Mutex::new(0u64));
        let tasks: Vec<_> = (0..CONTENDERS)
            .map(|_| {
                let m = m.clone();
                tokio::spawn(async move {
                    for _ in 0..LOCKS_EACH {
                        let mut guard = m.lock().await;
                        *guard += 1;
                        tokio::task::yield_now().await;
                        drop(guard);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*m.lock().await, CONTENDERS as u64 * LOCKS_EACH);
    }
    bench_tokio_peers(&mut g, tokio_body);
    g.bench_function(SMOL, |b| {
        b.iter(|| {
            smol_block_on(async {
                let m = Rc::new(smol::lock::Mutex::new(0u64));
                let tasks: Vec<_> = (0..CONTENDERS)
                    .map(|_| {
                        let m = m.clone();
                        smol_ex().spawn(async move {
                            for _ in 0..LOCKS_EACH {
                                let mut guard = m.lock().await;
                                *guard += 1;
                                smol::future::yield_now().await;
                                drop(guard);
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await;
                }
                assert_eq!(*m.lock().await, CONTENDERS as u64 * LOCKS_EACH);
            })
        })
    });
    g.finish();
}

/// P15c.
fn semaphore(c: &mut Criterion) {
    let mut g = c.benchmark_group("P15c_semaphore");
    let rt = evloop_rt();
    g.bench_function(EVLOOP, |b| {
        b.iter(|| {
            rt.block_on(async {
                let s = evloop::sync::Semaphore::new(PERMITS);
                let tasks: Vec<_> = (0..SEM_TASKS)
                    .map(|_| {
                        let s = s.clone();
                        evloop::create_task(async move {
                            let permit = s.acquire().await?;
                            evloop::yield_now().await?;
                            drop(permit);
                            Ok(())
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
                assert_eq!(s.available(), PERMITS);
            })
        })
    });
    async fn tokio_body() {
        let s = Arc::new(tokio::sync::Semaphore::new(PERMITS));
        let tasks: Vec<_> = (0..SEM_TASKS)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move {
                    let permit = s.acquire().await.unwrap();
                    tokio::task::yield_now().await;
                    drop(permit);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(s.available_permits(), PERMITS);
    }
    bench_tokio_peers(&mut g, tokio_body);
    g.bench_function(SMOL, |b| {
        b.iter(|| {
            smol_block_on(async {
                let s = Rc::new(smol::lock::Semaphore::new(PERMITS));
                let tasks: Vec<_> = (0..SEM_TASKS)
                    .map(|_| {
                        let s = s.clone();
                        smol_ex().spawn(async move {
                            let permit = s.acquire().await;
                            smol::future::yield_now().await;
                            drop(permit);
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await;
                }
                assert!(s.try_acquire().is_some());
            })
        })
    });
    g.finish();
}

/// P15d.
fn queue_ping_pong(c: &mut Criterion) {
    let mut g = c.benchmark_group("P15d_queue_ping_pong");
    let rt = evloop_rt();
    g.bench_function(EVLOOP, |b| {
        b.iter(|| {
            rt.block_on(async {
                let ping = evloop::sync::Queue::<u64>::new(1);
                let pong = evloop::sync::Queue::<u64>::new(1);
                let ponger = {
                    let (ping, pong) = (ping.clone(), pong.clone());
                    evloop::create_task(async move {
                        for _ in 0..ROUND_TRIPS {
                            let v = ping.get().await?;
                            pong.put(v + 1).await?;
                        }
                        Ok(())
                    })
                };
                let pinger = evloop::create_task(async move {
                    let mut v = 0;
                    for _ in 0..ROUND_TRIPS {
                        ping.put(v).await?;
                        v = pong.get().await?;
                    }
                    Ok(v)
                });
                assert_eq!(pinger.await.unwrap(), ROUND_TRIPS);
                ponger.await.unwrap();
            })
        })
    });
    async fn tokio_body() {
        let (ping_tx, mut ping_rx) = tokio::sync::mpsc::channel::<u64>(1);
        let (pong_tx, mut pong_rx) = tokio::sync::mpsc::channel::<u64>(1);
        let ponger = tokio::spawn(async move {
            for _ in 0..ROUND_TRIPS {
                let v = ping_rx.recv().await.unwrap();
                pong_tx.send(v + 1).await.unwrap();
            }
        });
        let pinger = tokio::spawn(async move {
            let mut v = 0;
            for _ in 0..ROUND_TRIPS {
                ping_tx.send(v).await.unwrap();
                v = pong_rx.recv().await.unwrap();
            }
            v
        });
        assert_eq!(pinger.await.unwrap(), ROUND_TRIPS);
        ponger.await.unwrap();
    }
    bench_tokio_peers(&mut g, tokio_body);
    g.bench_function(SMOL, |b| {
        b.iter(|| {
            smol_block_on(async {
                let (ping_tx, ping_rx) = smol::channel::bounded::<u64>(1);
                let (pong_tx, pong_rx) = smol::channel::bounded::<u64>(1);
                let ponger = smol_ex().spawn(async move {
                    for _ in 0..ROUND_TRIPS {
                        let v = ping_rx.recv().await.unwrap();
                        pong_tx.send(v + 1).await.unwrap();
                    }
                });
                let pinger = smol_ex().spawn(async move {
                    let mut v = 0;
                    for _ in 0..ROUND_TRIPS {
                        ping_tx.send(v).await.unwrap();
                        v = pong_rx.recv().await.unwrap();
                    }
                    v
                });
                assert_eq!(pinger.await, ROUND_TRIPS);
                ponger.await;
            })
        })
    });
    g.finish();
}

/// P15e.
fn queue_stream(c: &mut Criterion) {
    let mut g = c.benchmark_group("P15e_queue_stream");
    let rt = evloop_rt();
    g.bench_function(EVLOOP, |b| {
        b.iter(|| {
            rt.block_on(async {
                let q = evloop::sync::Queue::<u64>::new(CAPACITY);
                let producer = {
                    let q = q.clone();
                    evloop::create_task(async move {
                        for i in 0..ITEMS {
                            q.put(i).await?;
                        }
                        Ok(())
                    })
                };
                let consumer = evloop::create_task(async move {
                    let mut sum = 0;
                    for _ in 0..ITEMS {
                        sum += q.get().await?;
                    }
                    Ok(sum)
                });
                assert_eq!(black_box(consumer.await.unwrap()), sum_below(ITEMS));
                producer.await.unwrap();
            })
        })
    });
    async fn tokio_body() {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(CAPACITY);
        let producer = tokio::spawn(async move {
            for i in 0..ITEMS {
                tx.send(i).await.unwrap();
            }
        });
        let consumer = tokio::spawn(async move {
            let mut sum = 0;
            for _ in 0..ITEMS {
                sum += rx.recv().await.unwrap();
            }
            sum
        });
        assert_eq!(black_box(consumer.await.unwrap()), sum_below(ITEMS));
        producer.await.unwrap();
    }
    bench_tokio_peers(&mut g, tokio_body);
    g.bench_function(SMOL, |b| {
        b.iter(|| {
            smol_block_on(async {
                let (tx, rx) = smol::channel::bounded::<u64>(CAPACITY);
                let producer = smol_ex().spawn(async move {
                    for i in 0..ITEMS {
                        tx.send(i).await.unwrap();
                    }
                });
                let consumer = smol_ex().spawn(async move {
                    let mut sum = 0;
                    for _ in 0..ITEMS {
                        sum += rx.recv().await.unwrap();
                    }
                    sum
                });
                assert_eq!(black_box(consumer.await), sum_below(ITEMS));
                producer.await;
            })
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = mutex_uncontended, mutex_contended, semaphore, queue_ping_pong
}

criterion_group! {
    name = heavy;
    config = config_heavy();
    targets = queue_stream
}

criterion_main!(benches, heavy);
