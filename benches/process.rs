//! SPEC §11 P17 (process): 200 × spawn `true` and wait — all 200 children spawned, then
//! all awaited concurrently (one task per child's `wait`, the tasks awaited in spawn
//! order) — with `evloop::process` on evloop's loop against `tokio::process` on tokio
//! `current_thread` and `multi_thread` with 1 worker, in the same run. The children
//! inherit stdin / stdout / stderr (no pipes), so what is measured is the spawn
//! (fork/exec through `std::process`), the exit notification (evloop: a pidfd in the
//! reactor; tokio: its SIGCHLD driver) and the reaping. An iteration is 200 children.
//!
//! Run: `cargo bench --bench process`.

mod common;

use common::*;
use criterion::{Criterion, criterion_group, criterion_main};

const CHILDREN: usize = 200;

async fn evloop_spawn_wait() {
    let children: Vec<evloop::process::Child> = (0..CHILDREN)
        .map(|_| {
            evloop::process::Command::new("true")
                .spawn()
                .expect("spawn true")
        })
        .collect();
    let waits: Vec<_> = children
        .into_iter()
        .map(|mut child| evloop::create_task(async move { Ok(child.wait().await?) }))
        .collect();
    for w in waits {
        let status: std::process::ExitStatus = w.await.expect("wait");
        assert!(status.success());
    }
}

async fn tokio_spawn_wait() {
    let children: Vec<tokio::process::Child> = (0..CHILDREN)
        .map(|_| {
            tokio::process::Command::new("true")
                .spawn()
                .expect("spawn true")
        })
        .collect();
    let waits: Vec<_> = children
        .into_iter()
        .map(|mut child| tokio::spawn(async move { child.wait().await }))
        .collect();
    for w in waits {
        let status = w.await.expect("join").expect("wait");
        assert!(status.success());
    }
}

fn spawn_and_wait(c: &mut Criterion) {
    let mut g = c.benchmark_group("P17_spawn");
    let rt = evloop_rt();
    g.bench_function(EVLOOP, |b| b.iter(|| rt.block_on(evloop_spawn_wait())));
    bench_tokio_peers(&mut g, tokio_spawn_wait);
    g.finish();
}

criterion_group! {
    name = benches;
    config = config_heavy();
    targets = spawn_and_wait
}
criterion_main!(benches);
