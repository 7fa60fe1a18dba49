//! SPEC §11 P10: 10 000 trivial blocking jobs in batches of 16, awaited from the loop —
//! evloop (`spawn_blocking`, the default executor), tokio `current_thread` and
//! `multi_thread` with 1 worker (`tokio::task::spawn_blocking`), and smol
//! (`smol::unblock`, the `blocking` crate's pool) in the same run.
//!
//! Run: `cargo bench --bench executor`.

mod common;

use std::hint::black_box;
use std::time::Duration;

use common::*;
use criterion::{Criterion, criterion_group, criterion_main};

const JOBS: usize = 10_000;
const BATCH: usize = 16;

fn run_in_executor(c: &mut Criterion) {
    let mut g = c.benchmark_group("P10_executor");
    let rt = evloop_rt();
    g.bench_function(EVLOOP, |b| {
        b.iter(|| {
            rt.block_on(async {
                for batch in 0..JOBS / BATCH {
                    let jobs: Vec<_> = (0..BATCH)
                        .map(|i| evloop::spawn_blocking(move || black_box(batch + i)))
                        .collect();
                    for job in jobs {
                        job.await.unwrap();
                    }
                }
            })
        })
    });
    async fn tokio_body() {
        for batch in 0..JOBS / BATCH {
            let jobs: Vec<_> = (0..BATCH)
                .map(|i| tokio::task::spawn_blocking(move || black_box(batch + i)))
                .collect();
            for job in jobs {
                job.await.unwrap();
            }
        }
    }
    bench_tokio_peers(&mut g, tokio_body);
    g.bench_function(SMOL, |b| {
        b.iter(|| {
            smol_block_on(async {
                for batch in 0..JOBS / BATCH {
                    let jobs: Vec<_> = (0..BATCH)
                        .map(|i| smol::unblock(move || black_box(batch + i)))
                        .collect();
                    for job in jobs {
                        job.await;
                    }
                }
            })
        })
    });
    g.finish();
}

fn config_executor() -> Criterion {
    config_heavy()
        .sample_size(20)
        .measurement_time(Duration::from_secs(5))
}

criterion_group! {
    name = benches;
    config = config_executor();
    targets = run_in_executor
}
criterion_main!(benches);
