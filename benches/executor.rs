//! SPEC §11 P10: 10 000 trivial blocking jobs in batches of 16, awaited from the loop,
//! evloop (`spawn_blocking`, the default executor) side by side with tokio
//! `current_thread` (`tokio::task::spawn_blocking`) in the same run.
//!
//! Run: `cargo bench --bench executor`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};

const JOBS: usize = 10_000;
const BATCH: usize = 16;

fn run_in_executor(c: &mut Criterion) {
    let mut g = c.benchmark_group("executor_10k_in_batches_of_16");
    let rt = evloop::Runtime::new().unwrap();
    g.bench_function("evloop", |b| {
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
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    g.bench_function("tokio_current_thread", |b| {
        b.iter(|| {
            rt.block_on(async {
                for batch in 0..JOBS / BATCH {
                    let jobs: Vec<_> = (0..BATCH)
                        .map(|i| tokio::task::spawn_blocking(move || black_box(batch + i)))
                        .collect();
                    for job in jobs {
                        job.await.unwrap();
                    }
                }
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
    targets = run_in_executor
}
criterion_main!(benches);
