//! SPEC §11 P11: gather of 100 000 futures completed from a worker thread, evloop
//! (`gather` over `evloop::Future`s) side by side with tokio `current_thread`
//! in the same run, both ways SPEC §11 names: `futures::future::join_all` over
//! `tokio::sync::oneshot` receivers, and a `JoinSet` of tasks each awaiting one.
//! The ratio is taken against the faster of the two.
//!
//! Run: `cargo bench --bench gather`.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};

const N: usize = 100_000;

fn gather_from_worker(c: &mut Criterion) {
    let mut g = c.benchmark_group("gather_100k_from_worker");
    let rt = evloop::Runtime::new().unwrap();
    g.bench_function("evloop", |b| {
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
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    g.bench_function("tokio_current_thread", |b| {
        b.iter(|| {
            rt.block_on(async {
                let (txs, rxs): (Vec<_>, Vec<_>) =
                    (0..N).map(|_| tokio::sync::oneshot::channel()).unzip();
                let worker = std::thread::spawn(move || {
                    for (i, tx) in txs.into_iter().enumerate() {
                        tx.send(i).unwrap();
                    }
                });
                let values = futures_util::future::join_all(rxs).await;
                worker.join().unwrap();
                assert_eq!(values.len(), N);
            })
        })
    });
    g.bench_function("tokio_current_thread_joinset", |b| {
        b.iter(|| {
            rt.block_on(async {
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
            })
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(5))
}

criterion_group! {
    name = benches;
    config = config();
    targets = gather_from_worker
}
criterion_main!(benches);
