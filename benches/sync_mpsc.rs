//! SPEC §11 P15, the cross-loop part: 1 000 000 items through an mpsc channel from a
//! task on one loop to a task on another (each loop on its own thread) — evloop's
//! `sync::mpsc` between two evloop loops, tokio's `sync::mpsc` between two
//! `current_thread` runtimes (the reference). Bounded (capacity 1 024) and unbounded.
//! An iteration is one burst, from the producer's spawn to the consumer's last item.
//!
//! Run: `cargo bench --bench sync_mpsc`.

mod common;

use common::*;
use criterion::{Criterion, criterion_group, criterion_main};

const ITEMS: u64 = 1_000_000;
const CAPACITY: usize = 1024;

/// A tokio `current_thread` runtime driven by a thread of its own (the producer's
/// loop), reachable through its handle.
fn tokio_producer_loop() -> (tokio::runtime::Handle, std::sync::mpsc::Sender<()>) {
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let (handle_tx, handle_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio_ct();
        handle_tx.send(rt.handle().clone()).unwrap();
        rt.block_on(async move {
            // Parks on the runtime until the bench ends.
            tokio::task::spawn_blocking(move || {
                let _ = stop_rx.recv();
            })
            .await
            .ok();
        });
    });
    (handle_rx.recv().unwrap(), stop_tx)
}

fn sync_mpsc(c: &mut Criterion) {
    let mut g = c.benchmark_group("P15_mpsc_cross_loop_bounded");
    let group = evloop::LoopGroup::new(1).expect("producer loop");
    let rt = evloop_rt();
    g.bench_function(EVLOOP, |b| {
        b.iter(|| {
            let (tx, mut rx) = evloop::sync::mpsc::channel::<u64>(CAPACITY);
            group.spawn(async move {
                for i in 0..ITEMS {
                    tx.send(i).await.expect("receiver alive");
                }
                Ok::<(), evloop::Error>(())
            });
            rt.block_on(async move {
                let mut sum = 0;
                while let Some(i) = rx.recv().await.unwrap() {
                    sum += i;
                }
                assert_eq!(sum, ITEMS * (ITEMS - 1) / 2);
            })
        })
    });
    let (producer, stop) = tokio_producer_loop();
    let rt = tokio_ct();
    g.bench_function(TOKIO_CT, |b| {
        b.iter(|| {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(CAPACITY);
            producer.spawn(async move {
                for i in 0..ITEMS {
                    tx.send(i).await.expect("receiver alive");
                }
            });
            rt.block_on(async move {
                let mut sum = 0;
                while let Some(i) = rx.recv().await {
                    sum += i;
                }
                assert_eq!(sum, ITEMS * (ITEMS - 1) / 2);
            })
        })
    });
    g.finish();

    let mut g = c.benchmark_group("P15_mpsc_cross_loop_unbounded");
    let rt = evloop_rt();
    g.bench_function(EVLOOP, |b| {
        b.iter(|| {
            let (tx, mut rx) = evloop::sync::mpsc::unbounded_channel::<u64>();
            group.spawn(async move {
                for i in 0..ITEMS {
                    tx.send(i).expect("receiver alive");
                }
                Ok::<(), evloop::Error>(())
            });
            rt.block_on(async move {
                let mut sum = 0;
                while let Some(i) = rx.recv().await.unwrap() {
                    sum += i;
                }
                assert_eq!(sum, ITEMS * (ITEMS - 1) / 2);
            })
        })
    });
    let rt = tokio_ct();
    g.bench_function(TOKIO_CT, |b| {
        b.iter(|| {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
            producer.spawn(async move {
                for i in 0..ITEMS {
                    tx.send(i).expect("receiver alive");
                }
            });
            rt.block_on(async move {
                let mut sum = 0;
                while let Some(i) = rx.recv().await {
                    sum += i;
                }
                assert_eq!(sum, ITEMS * (ITEMS - 1) / 2);
            })
        })
    });
    g.finish();
    drop(stop);
}

criterion_group! {
    name = benches;
    config = config_heavy();
    targets = sync_mpsc
}
criterion_main!(benches);
