//! SPEC §11 measurements that are not throughput: P8 timer precision, P9 wake-up
//! syscalls per 1 000 cross-thread schedules, P14 memory. Each measurement of each peer
//! runs in a fresh child process (this binary re-executed with `--child <what> <peer>`)
//! so peers never share a heap or an RSS; the parent writes
//! `target/evloop-bench/metrics.json`, which `cargo xtask bench` turns into
//! `BENCHMARKS.md`.
//!
//! * `precision` (P8): 2 000 sleeps of 1 ms, one after another; lateness = elapsed − 1 ms,
//!   measured with `Instant`; p50 and p99.
//! * `wakeups` (P9, evloop only: no other runtime counts them): the P9 burst (2 threads ×
//!   500 000 `call_soon_threadsafe` while a task keeps the loop busy), and the loop's
//!   `stats()` before and after: eventfd writes per 1 000 remote schedules.
//! * `idle_task` (P14): 100 000 tasks, each suspended awaiting one shared thing (evloop:
//!   clones of one `Future<()>`; tokio: one `Notify`; smol: clones of one channel
//!   receiver); heap bytes (a counting global allocator) and RSS (`VmRSS` of
//!   `/proc/self/status`) added per task once all are suspended. The task handles are
//!   not kept.
//! * `idle_conn` (P14): 5 000 accepted loopback TCP connections, each with a task
//!   suspended in `read` (a 64-byte buffer); the clients are plain blocking sockets of a
//!   helper thread. Heap and RSS added per connection.
//! * `starvation` (K7 / Q7, issue 16): a task reading lines from a Unix socket that
//!   always has data, and a sibling's 1 ms sleep: how many lines the reader gets through
//!   before the sibling runs and how late the sleep is (`metrics/starvation.rs`).
//!
//! Run: `cargo bench --bench metrics`.

mod common;
#[path = "metrics/starvation.rs"]
mod starvation;

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every method forwards to `System` with the same arguments and only adds
// bookkeeping on an atomic counter.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is; the caller upholds `alloc`'s contract.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const PEERS: [&str; 4] = [EVLOOP, TOKIO_CT, TOKIO_MT1, SMOL];
const SLEEPS: usize = 2_000;
const IDLE_TASKS: usize = 100_000;
const IDLE_CONNS: usize = 5_000;
const BURST_PER_THREAD: usize = 500_000;

/// Live heap bytes and resident set size, in bytes.
#[derive(Clone, Copy)]
struct Mem {
    heap: isize,
    rss: isize,
}

fn mem() -> Mem {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rss_kb: isize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    Mem {
        heap: LIVE.load(Ordering::Relaxed),
        rss: rss_kb * 1024,
    }
}

/// Prints the per-item growth between two snapshots (read by the parent).
fn report_growth(before: Mem, after: Mem, items: usize) {
    println!(
        "heap_bytes {:.1}",
        (after.heap - before.heap) as f64 / items as f64
    );
    println!(
        "rss_bytes {:.1}",
        (after.rss - before.rss) as f64 / items as f64
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(&args[i + 1], &args[i + 2]);
        return;
    }
    if args.iter().any(|a| a == "--list") {
        // `cargo bench -- --list` asks every bench binary for its benchmarks.
        return;
    }
    let mut results: BTreeMap<&str, BTreeMap<&str, BTreeMap<String, f64>>> = BTreeMap::new();
    let plan: [(&str, &[&str]); 5] = [
        ("precision", &PEERS),
        ("wakeups", &[EVLOOP]),
        ("idle_task", &PEERS),
        ("idle_conn", &PEERS),
        ("starvation", &starvation::PEERS),
    ];
    for (what, peers) in plan {
        for peer in peers {
            let out = Command::new(std::env::current_exe().expect("own path"))
                .args(["--child", what, peer])
                .output()
                .expect("run child");
            assert!(
                out.status.success(),
                "{what}/{peer} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let values = results.entry(what).or_default().entry(peer).or_default();
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                if let Some((k, v)) = line.split_once(' ') {
                    if let Ok(v) = v.trim().parse() {
                        values.insert(k.to_string(), v);
                    }
                }
            }
            println!("{what:10} {peer:22} {values:?}");
        }
    }
    let path = target_dir().join("evloop-bench").join("metrics.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, to_json(&results)).unwrap();
    println!("wrote {}", path.display());
}

fn to_json(results: &BTreeMap<&str, BTreeMap<&str, BTreeMap<String, f64>>>) -> String {
    let obj = |entries: Vec<String>| format!("{{{}}}", entries.join(","));
    obj(results
        .iter()
        .map(|(what, peers)| {
            let peers = obj(peers
                .iter()
                .map(|(peer, values)| {
                    let values = obj(values.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect());
                    format!("\"{peer}\":{values}")
                })
                .collect());
            format!("\"{what}\":{peers}")
        })
        .collect())
}

fn child(what: &str, peer: &str) {
    match what {
        "precision" => precision(peer),
        "wakeups" => wakeups(),
        "idle_task" => idle_task(peer),
        "idle_conn" => idle_conn(peer),
        "starvation" => starvation::starvation(peer),
        other => panic!("unknown measurement {other}"),
    }
}

/// Runs a tokio body on the `current_thread` runtime or as a task on the worker of the
/// 1-worker `multi_thread` one.
fn tokio_run<F>(peer: &str, body: F) -> F::Output
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    match peer {
        TOKIO_CT => tokio_ct().block_on(body),
        TOKIO_MT1 => tokio_on_worker(&tokio_mt1(), body),
        other => panic!("not a tokio peer: {other}"),
    }
}

/// Sleeps 1 ms `SLEEPS` times with `sleep`, returning each sleep's lateness.
async fn lateness<F: std::future::Future>(sleep: impl Fn() -> F) -> Vec<Duration> {
    let mut late = Vec::with_capacity(SLEEPS);
    for _ in 0..SLEEPS {
        let start = Instant::now();
        sleep().await;
        late.push(start.elapsed().saturating_sub(Duration::from_millis(1)));
    }
    late
}

fn precision(peer: &str) {
    const MS: Duration = Duration::from_millis(1);
    let mut late = match peer {
        EVLOOP => evloop_rt().block_on(lateness(|| async {
            evloop::time::sleep(MS).await.unwrap()
        })),
        SMOL => smol_block_on(lateness(|| async {
            smol::Timer::after(MS).await;
        })),
        tokio => tokio_run(tokio, lateness(|| tokio::time::sleep(MS))),
    };
    late.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("p50_ms {:.4}", ms(late[SLEEPS / 2]));
    println!("p99_ms {:.4}", ms(late[SLEEPS * 99 / 100]));
    println!("max_ms {:.4}", ms(late[SLEEPS - 1]));
}

fn wakeups() {
    let rt = evloop_rt();
    let handle = rt.handle();
    let helpers = [Helper::new(), Helper::new()];
    let before = handle.stats();
    let start = Instant::now();
    rt.block_on(async {
        let done = evloop::Future::<()>::new();
        let left = Arc::new((AtomicUsize::new(2 * BURST_PER_THREAD), done.clone()));
        let busy = {
            let done = done.clone();
            evloop::create_task(async move {
                while !done.done() {
                    evloop::yield_now().await?;
                }
                Ok(())
            })
        };
        for helper in &helpers {
            let (handle, left) = (evloop::LoopHandle::current(), left.clone());
            helper.start(move || {
                for _ in 0..BURST_PER_THREAD {
                    let left = left.clone();
                    handle.call_soon_threadsafe(move || {
                        if left.0.fetch_sub(1, Ordering::Relaxed) == 1 {
                            left.1.set_result(()).unwrap();
                        }
                    });
                }
            });
        }
        done.await.unwrap();
        busy.await.unwrap();
    });
    let took = start.elapsed();
    let after = handle.stats();
    let wakeups = after.wakeups - before.wakeups;
    let remote = after.remote_schedules - before.remote_schedules;
    println!("wakeups {wakeups}");
    println!("remote_schedules {remote}");
    println!("per_1000 {:.4}", wakeups as f64 * 1000.0 / remote as f64);
    println!("burst_ms {:.1}", took.as_secs_f64() * 1e3);
}

/// Gives the runtime 60 ms to poll everything spawned so far until it is suspended.
async fn settle_evloop() {
    for _ in 0..3 {
        evloop::time::sleep(Duration::from_millis(20))
            .await
            .unwrap();
    }
}

async fn settle_tokio() {
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn settle_smol() {
    for _ in 0..3 {
        smol::Timer::after(Duration::from_millis(20)).await;
    }
}

fn idle_task(peer: &str) {
    let left = Arc::new(AtomicUsize::new(IDLE_TASKS));
    let count = left.clone();
    let (before, after) = match peer {
        EVLOOP => evloop_rt().block_on(async move {
            settle_evloop().await;
            let fut = evloop::Future::<()>::new();
            let before = mem();
            for _ in 0..IDLE_TASKS {
                let (fut, left) = (fut.clone(), count.clone());
                drop(evloop::create_task(async move {
                    fut.await?;
                    left.fetch_sub(1, Ordering::Relaxed);
                    Ok(())
                }));
            }
            settle_evloop().await;
            let after = mem();
            fut.set_result(()).unwrap();
            settle_evloop().await;
            (before, after)
        }),
        SMOL => smol_block_on(async move {
            settle_smol().await;
            let (tx, rx) = smol::channel::bounded::<()>(1);
            let before = mem();
            for _ in 0..IDLE_TASKS {
                let (rx, left) = (rx.clone(), count.clone());
                smol_ex()
                    .spawn(async move {
                        let _ = rx.recv().await;
                        left.fetch_sub(1, Ordering::Relaxed);
                    })
                    .detach();
            }
            settle_smol().await;
            let after = mem();
            drop(tx);
            settle_smol().await;
            (before, after)
        }),
        tokio => tokio_run(tokio, async move {
            settle_tokio().await;
            let notify = Arc::new(tokio::sync::Notify::new());
            let before = mem();
            for _ in 0..IDLE_TASKS {
                let (notify, left) = (notify.clone(), count.clone());
                drop(tokio::spawn(async move {
                    notify.notified().await;
                    left.fetch_sub(1, Ordering::Relaxed);
                }));
            }
            settle_tokio().await;
            let after = mem();
            notify.notify_waiters();
            settle_tokio().await;
            (before, after)
        }),
    };
    report_growth(before, after, IDLE_TASKS);
    assert_eq!(
        left.load(Ordering::Relaxed),
        0,
        "every idle task finished once woken"
    );
}

/// The client side: a helper thread that, once told to go, connects `IDLE_CONNS`
/// blocking sockets and keeps them open until the child exits. Started (and its
/// vector allocated) before the baseline is taken. It connects 100 at a time and waits
/// for the server to accept them: a full accept queue would make the kernel drop SYNs
/// and the client retry only a second later.
fn client_thread(
    addr: std::net::SocketAddr,
    accepted: Arc<AtomicUsize>,
) -> std::sync::mpsc::Sender<()> {
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let (ready, is_ready) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let mut clients = Vec::with_capacity(IDLE_CONNS);
        ready.send(()).unwrap();
        wait.recv().unwrap();
        for i in 0..IDLE_CONNS {
            clients.push(std::net::TcpStream::connect(addr).expect("connect"));
            if i % 100 == 99 {
                while accepted.load(Ordering::Relaxed) <= i {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        }
        std::thread::park();
        drop(clients);
    });
    is_ready.recv().unwrap();
    go
}

/// Waits until every client was accepted and its task is suspended in `read`.
macro_rules! await_accepted {
    ($accepted:expr, $settle:expr) => {{
        let deadline = Instant::now() + Duration::from_secs(30);
        while $accepted.load(Ordering::Relaxed) < IDLE_CONNS && Instant::now() < deadline {
            $settle.await;
        }
        $settle.await;
    }};
}

fn idle_conn(peer: &str) {
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let (before, after) = match peer {
        EVLOOP => evloop_rt().block_on(async move {
            let listener = evloop::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let go = client_thread(addr, count.clone());
            settle_evloop().await;
            let before = mem();
            let counter = count.clone();
            drop(evloop::create_task(async move {
                loop {
                    let (conn, _) = listener.accept().await?;
                    counter.fetch_add(1, Ordering::Relaxed);
                    drop(evloop::create_task(async move {
                        let mut buf = [0u8; 64];
                        while conn.read(&mut buf).await? > 0 {}
                        Ok::<(), evloop::Error>(())
                    }));
                }
                #[allow(unreachable_code)]
                Ok::<(), evloop::Error>(())
            }));
            go.send(()).unwrap();
            await_accepted!(count, settle_evloop());
            (before, mem())
        }),
        SMOL => smol_block_on(async move {
            use smol::io::AsyncReadExt;
            let listener = smol::Async::<std::net::TcpListener>::bind(([127, 0, 0, 1], 0)).unwrap();
            let addr = listener.get_ref().local_addr().unwrap();
            let go = client_thread(addr, count.clone());
            settle_smol().await;
            let before = mem();
            let counter = count.clone();
            smol_ex()
                .spawn(async move {
                    loop {
                        let (mut conn, _) = listener.accept().await.unwrap();
                        counter.fetch_add(1, Ordering::Relaxed);
                        smol_ex()
                            .spawn(async move {
                                let mut buf = [0u8; 64];
                                while conn.read(&mut buf).await.unwrap_or(0) > 0 {}
                            })
                            .detach();
                    }
                })
                .detach();
            go.send(()).unwrap();
            await_accepted!(count, settle_smol());
            (before, mem())
        }),
        tokio => tokio_run(tokio, async move {
            use tokio::io::AsyncReadExt;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let go = client_thread(addr, count.clone());
            settle_tokio().await;
            let before = mem();
            let counter = count.clone();
            drop(tokio::spawn(async move {
                loop {
                    let (mut conn, _) = listener.accept().await.unwrap();
                    counter.fetch_add(1, Ordering::Relaxed);
                    drop(tokio::spawn(async move {
                        let mut buf = [0u8; 64];
                        while conn.read(&mut buf).await.unwrap_or(0) > 0 {}
                    }));
                }
            }));
            go.send(()).unwrap();
            await_accepted!(count, settle_tokio());
            (before, mem())
        }),
    };
    report_growth(before, after, IDLE_CONNS);
    assert_eq!(
        accepted.load(Ordering::Relaxed),
        IDLE_CONNS,
        "every connection was accepted"
    );
}
