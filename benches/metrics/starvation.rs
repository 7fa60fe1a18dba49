//! The starvation probe (SPEC K7 / Q7, the program of issue 16): how long a sibling
//! waits while one task reads a Unix socket that always has data.
//!
//! A peer thread writes 96-byte lines (`"x" × 95 + "\n"`, 1 024 lines per `write`)
//! into one end of a socketpair until the other end is closed, so the socket's buffer
//! stays full. On the loop, a reader task wraps the other end in the runtime's
//! `BufReader` (evloop: `futures_util::io::BufReader` over `evloop::net::UnixStream`;
//! tokio: `tokio::io::BufReader` over `tokio::net::UnixStream`; smol:
//! `smol::io::BufReader` over `Async<UnixStream>`; 8 KiB buffers in all three) and reads
//! `LINES` lines with `read_line` into one reused `String`. After `WARM_LINES` it
//! spawns the sibling, which sleeps 1 ms. (Not after the first line: the reader drains
//! the buffer the peer filled before the loop started faster than the peer, woken only
//! then, refills it, so in the first few thousand lines every runtime suspends once,
//! budget or not. From then on the peer stays ahead.) Recorded per run, lines counted
//! from the sibling's spawn:
//!
//! * `lines_before_sibling`: lines the reader read before the sibling first ran;
//! * `lines_at_wake`: lines read before the sibling's sleep returned;
//! * `sibling_lateness_ms`: time from spawning the sibling to its sleep returning, minus
//!   1 ms — what a 1 ms sleep issued by a new task next to the reader costs, waiting
//!   for its first poll included (a sibling that only ran once the reader was done would
//!   otherwise look punctual);
//! * `sleep_lateness_ms`: the sleep alone, from the sibling's first poll;
//! * `reader_ms`: the reader's time for all `LINES` lines (what the budget's yields
//!   cost it).
//!
//! Each child makes `RUNS` runs (a fresh socketpair and writer each) and prints the
//! median of each value. Peers: `evloop`, `evloop_no_budget` (`coop_budget(None)`: what
//! the budget changes), tokio `current_thread` and `multi_thread` (1 worker, the body as
//! a task on the worker), smol (no budget of its own).

use std::io::Write;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use super::common::*;
use super::tokio_run;

pub const PEERS: [&str; 5] = [EVLOOP, EVLOOP_NO_BUDGET, TOKIO_CT, TOKIO_MT1, SMOL];
/// 48 MB of lines: far more than one pass without suspending reads in 1 ms.
const LINES: u64 = 500_000;
/// ≈ 4.8 MB: well past the first drain of the socket buffer (see the top).
const WARM_LINES: u64 = 50_000;
const LINE_LEN: usize = 96;
const RUNS: usize = 5;
const SLEEP: Duration = Duration::from_millis(1);

/// What one run saw, shared by the reader, the sibling and the child (atomics so that
/// tokio's `Send` tasks can share it; every peer pays the same relaxed increments).
#[derive(Default)]
struct Seen {
    lines: AtomicU64,
    at_spawn: AtomicU64,
    before_sibling: AtomicU64,
    at_wake: AtomicU64,
    late_ns: AtomicU64,
    sleep_late_ns: AtomicU64,
    reader_ns: AtomicU64,
}

/// The peer thread: writes lines until the loop's end of the socket is closed.
fn start_writer(theirs: StdUnixStream) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut line = [b'x'; LINE_LEN];
        line[LINE_LEN - 1] = b'\n';
        let chunk = line.repeat(1024);
        let mut theirs = theirs;
        // EPIPE / ECONNRESET once the reader is done (Rust ignores SIGPIPE).
        while theirs.write_all(&chunk).is_ok() {}
    })
}

/// The sibling's body; `sleep` makes the runtime's 1 ms sleep.
async fn sibling<F: std::future::Future>(
    seen: Arc<Seen>,
    spawned: Instant,
    sleep: impl FnOnce() -> F,
) {
    seen.before_sibling.store(seen.lines.load(Relaxed), Relaxed);
    let started = Instant::now();
    sleep().await;
    seen.at_wake.store(seen.lines.load(Relaxed), Relaxed);
    let late = |since: Instant| since.elapsed().saturating_sub(SLEEP).as_nanos() as u64;
    seen.late_ns.store(late(spawned), Relaxed);
    seen.sleep_late_ns.store(late(started), Relaxed);
}

/// The reader's body, the same for every peer (each with its own `BufReader` and
/// `AsyncBufReadExt` in scope): read lines until `LINES`, spawning the sibling with
/// `$spawn_sibling(spawned_at)` after `WARM_LINES`; evaluates to the sibling's handle.
macro_rules! read_lines {
    ($reader:expr, $seen:expr, $spawn_sibling:expr) => {{
        let (mut reader, seen) = ($reader, $seen);
        let mut line = String::new();
        let start = Instant::now();
        let mut sibling = None;
        while seen.lines.load(Relaxed) < LINES {
            line.clear();
            let n = reader.read_line(&mut line).await.expect("read_line");
            assert_eq!(n, LINE_LEN, "whole lines");
            let read = seen.lines.fetch_add(1, Relaxed) + 1;
            if sibling.is_none() && read == WARM_LINES {
                seen.at_spawn.store(read, Relaxed);
                sibling = Some($spawn_sibling(Instant::now()));
            }
        }
        seen.reader_ns
            .store(start.elapsed().as_nanos() as u64, Relaxed);
        sibling.expect("the sibling was spawned")
    }};
}

fn evloop_run(rt: &evloop::Runtime, seen: Arc<Seen>, ours: StdUnixStream) {
    use futures_util::io::{AsyncBufReadExt, BufReader};
    rt.block_on(async move {
        let stream = evloop::net::UnixStream::from_std(ours).unwrap();
        // From the first byte on, the peer keeps the buffer full.
        stream.readable().await.unwrap();
        let s = seen.clone();
        let reader = evloop::create_task(async move {
            let sibling = read_lines!(BufReader::new(stream), s, |spawned| {
                let s = seen.clone();
                evloop::create_task(async move {
                    let sleep = || async { evloop::time::sleep(SLEEP).await.unwrap() };
                    sibling(s, spawned, sleep).await;
                    Ok(())
                })
            });
            // The stream is dropped (closed) here: the writer stops.
            Ok(sibling)
        });
        reader.await.unwrap().await.unwrap();
    });
}

#[allow(
    clippy::async_yields_async,
    reason = "the reader hands back the sibling it spawned"
)]
async fn tokio_body(seen: Arc<Seen>, ours: StdUnixStream) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    ours.set_nonblocking(true).unwrap();
    let stream = tokio::net::UnixStream::from_std(ours).unwrap();
    stream.readable().await.unwrap();
    let s = seen.clone();
    let reader = tokio::spawn(async move {
        read_lines!(BufReader::new(stream), s, |spawned| {
            tokio::spawn(sibling(seen.clone(), spawned, || tokio::time::sleep(SLEEP)))
        })
    });
    reader.await.unwrap().await.unwrap();
}

#[allow(
    clippy::async_yields_async,
    reason = "the reader hands back the sibling it spawned"
)]
async fn smol_body(seen: Arc<Seen>, ours: StdUnixStream) {
    use smol::io::{AsyncBufReadExt, BufReader};
    let stream = smol::Async::new(ours).unwrap();
    stream.readable().await.unwrap();
    let s = seen.clone();
    let reader = smol_ex().spawn(async move {
        read_lines!(BufReader::new(stream), s, |spawned| {
            smol_ex().spawn(sibling(seen.clone(), spawned, || async {
                smol::Timer::after(SLEEP).await;
            }))
        })
    });
    reader.await.await;
}

/// One child: `RUNS` runs of `peer`, the medians printed for the parent.
pub fn starvation(peer: &str) {
    let rt = match peer {
        EVLOOP => Some(evloop_rt()),
        EVLOOP_NO_BUDGET => Some(evloop_rt_no_budget()),
        _ => None,
    };
    let mut runs: Vec<[f64; 5]> = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let (ours, theirs) = StdUnixStream::pair().expect("socketpair");
        let writer = start_writer(theirs);
        let seen = Arc::new(Seen::default());
        match (peer, &rt) {
            (_, Some(rt)) => evloop_run(rt, seen.clone(), ours),
            (SMOL, None) => smol_block_on(smol_body(seen.clone(), ours)),
            (tokio, None) => tokio_run(tokio, tokio_body(seen.clone(), ours)),
        }
        writer.join().expect("writer thread");
        let ms = |ns: &AtomicU64| ns.load(Relaxed) as f64 / 1e6;
        let since_spawn = |n: &AtomicU64| (n.load(Relaxed) - seen.at_spawn.load(Relaxed)) as f64;
        runs.push([
            since_spawn(&seen.before_sibling),
            since_spawn(&seen.at_wake),
            ms(&seen.late_ns),
            ms(&seen.sleep_late_ns),
            ms(&seen.reader_ns),
        ]);
    }
    let keys = [
        "lines_before_sibling",
        "lines_at_wake",
        "sibling_lateness_ms",
        "sleep_lateness_ms",
        "reader_ms",
    ];
    for (i, key) in keys.iter().enumerate() {
        let mut values: Vec<f64> = runs.iter().map(|r| r[i]).collect();
        values.sort_by(f64::total_cmp);
        println!("{key} {:.4}", values[RUNS / 2]);
    }
}
