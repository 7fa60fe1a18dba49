//! SPEC §11 P11: gather of 100 000 futures completed from a worker thread — evloop
//! (`gather` over `evloop::Future`s), tokio `current_thread` and `multi_thread` with 1
//! worker (a `JoinSet` of tasks each awaiting a `oneshot`), and smol (`join_all` over
//! bounded(1) channels) in the same run. Of the two tokio shapes SPEC §11 names, the
//! `JoinSet` is the faster by far: `futures::future::join_all` over 100 000 `oneshot`
//! receivers re-polls every pending receiver on each wake-up and took about 2.4 s per
//! iteration here (50× the `JoinSet`), so it is not part of the suite.
//!
//! Run: `cargo bench --bench gather`.

mod common;

use std::time::Duration;

use common::*;
use criterion::{Criterion, criterion_group, criterion_main};

const N: usize = 100_000;

async fn tokio_joinset() {
    let mut set = tokio::task::JoinSet::new();
    let mut txs = Vec::with_capacity(N);
    for _ in 0..N {
        let (tx, rx) = tokio::sync::oneshot::channel::<usize>();
        txs.push(tx);
        set.spawn(async move { rx.await.unwrap() });
    }
    let worker = std::thread::spawn(move || {
        for (i, tx) in txs.into_iter().enumerate() {
            tx.send(i).unwrap();
        }
    });
    let values = set.join_all().await;
    worker.join().unwrap();
    assert_eq!(values.len(), N);
}

fn gather_from_worker(c: &mut Criterion) {
    let mut g = c.benchmark_group("P11_gather");
    let rt = evloop_rt();
    g.bench_function(EVLOOP, |b| {
        b.iter(|| {
            rt.block_on(async {
                let futs: Vec<evloop::Future<usize>> =
                    (0..N).map(|_| evloop::Future::new()).collect();
                let all = evloop::gather(futs.iter().cloned());
                let worker = std::thread::spawn(move || {
                    for (i, f) in futs.into_iter().enumerate() {
                        f.set_result(i).unwrap();
                    }
                });
                let values = all.await.unwrap();
                worker.join().unwrap();
                assert_eq!(values.len(), N);
            })
        })
    });
    let rt = tokio_ct();
    g.bench_function(TOKIO_CT, |b| b.iter(|| rt.block_on(tokio_joinset())));
    let rt = tokio_mt1();
    g.bench_function(TOKIO_MT1, |b| {
        b.iter(|| tokio_on_worker(&rt, tokio_joinset()))
    });
    g.bench_function(SMOL, |b| {
        b.iter(|| {
            smol_block_on(async {
                let (txs, rxs): (Vec<_>, Vec<_>) =
                    (0..N).map(|_| smol::channel::bounded::<usize>(1)).unzip();
                let worker = std::thread::spawn(move || {
                    for (i, tx) in txs.into_iter().enumerate() {
                        tx.try_send(i).unwrap();
                    }
                });
                let values = futures_util::future::join_all(rxs.iter().map(|rx| rx.recv())).await;
                worker.join().unwrap();
                assert_eq!(values.len(), N);
            })
        })
    });
    g.finish();
}

fn config_gather() -> Criterion {
    config_heavy()
        .sample_size(20)
        .measurement_time(Duration::from_secs(5))
}

criterion_group! {
    name = benches;
    config = config_gather();
    targets = gather_from_worker
}
criterion_main!(benches);
