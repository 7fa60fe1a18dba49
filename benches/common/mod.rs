//! What every SPEC §11 benchmark shares: the peers, how each one runs a workload, and
//! the criterion settings.
//!
//! Peers and the names their results are stored under (`target/criterion/<group>/<peer>`,
//! read by `cargo xtask bench`):
//!
//! | name | runtime |
//! |---|---|
//! | `evloop` | `evloop::Runtime::block_on` |
//! | `evloop_no_budget` | the same with `Builder::coop_budget(None)` (P16 and the starvation probe only) |
//! | `tokio_current_thread` | tokio `current_thread` (the reference of every ratio) |
//! | `tokio_multi_thread_1` | tokio `multi_thread` with 1 worker; the workload body runs *in a task on the worker* (as a tokio service would), awaited from `block_on` |
//! | `smol` | `smol::LocalExecutor` driven by `async_io::block_on` (smol's single-threaded setup) |
//! | `mio_floor` | a hand-written mio loop with no runtime (I/O workloads only) |

#![allow(dead_code, reason = "each bench binary uses part of this module")]

pub mod workloads;

use std::future::Future;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion};

pub const EVLOOP: &str = "evloop";
pub const EVLOOP_NO_BUDGET: &str = "evloop_no_budget";
pub const TOKIO_CT: &str = "tokio_current_thread";
pub const TOKIO_MT1: &str = "tokio_multi_thread_1";
pub const SMOL: &str = "smol";
pub const MIO_FLOOR: &str = "mio_floor";

pub fn evloop_rt() -> evloop::Runtime {
    evloop::Runtime::new().expect("evloop runtime")
}

/// evloop with the cooperative budget (SPEC K7) disabled for the whole loop.
pub fn evloop_rt_no_budget() -> evloop::Runtime {
    evloop::Runtime::builder()
        .coop_budget(None)
        .build()
        .expect("evloop runtime")
}

pub fn tokio_ct() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio current_thread runtime")
}

pub fn tokio_mt1() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio multi_thread runtime")
}

/// Runs `body` as a task on the multi-thread runtime's worker and waits for it, so the
/// spawns inside `body` are worker-local (tokio's fast path), not injected.
pub fn tokio_on_worker<F>(rt: &tokio::runtime::Runtime, body: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    rt.block_on(rt.spawn(body)).expect("tokio bench task")
}

/// Runs `body` as both tokio peers of a group: on a `current_thread` runtime
/// (`block_on`) and as a task on a `multi_thread` runtime with one worker.
pub fn bench_tokio_peers<F>(g: &mut BenchmarkGroup<'_, WallTime>, body: fn() -> F)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let rt = tokio_ct();
    g.bench_function(TOKIO_CT, |b| b.iter(|| rt.block_on(body())));
    let rt = tokio_mt1();
    g.bench_function(TOKIO_MT1, |b| b.iter(|| tokio_on_worker(&rt, body())));
}

/// Runs `round` as benchmark `name` on connections set up once: each iteration takes
/// the clients and hands them back for the next.
pub fn bench_rounds<C>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    clients: Vec<C>,
    mut round: impl FnMut(Vec<C>) -> Vec<C>,
) {
    let mut clients = Some(clients);
    g.bench_function(name, |b| {
        b.iter(|| clients = Some(round(clients.take().expect("handed back"))))
    });
}

/// [`bench_rounds`] on both tokio peers: `setup` makes the connections on each runtime
/// and `round` runs one iteration.
pub fn bench_tokio_rounds<C, S, R>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    setup: impl Fn() -> S,
    round: impl Fn(Vec<C>) -> R,
) where
    C: Send + 'static,
    S: Future<Output = Vec<C>> + Send + 'static,
    R: Future<Output = Vec<C>> + Send + 'static,
{
    let rt = tokio_ct();
    let clients = rt.block_on(setup());
    bench_rounds(g, TOKIO_CT, clients, |c| rt.block_on(round(c)));
    let rt = tokio_mt1();
    let clients = tokio_on_worker(&rt, setup());
    bench_rounds(g, TOKIO_MT1, clients, |c| tokio_on_worker(&rt, round(c)));
}

thread_local! {
    static SMOL_EX: &'static smol::LocalExecutor<'static> =
        Box::leak(Box::new(smol::LocalExecutor::new()));
}

/// This thread's smol `LocalExecutor` (leaked: it lives as long as the bench).
pub fn smol_ex() -> &'static smol::LocalExecutor<'static> {
    SMOL_EX.with(|ex| *ex)
}

/// smol's single-threaded `block_on`: async-io's reactor on this thread, the local
/// executor running the spawned tasks.
pub fn smol_block_on<F: Future>(fut: F) -> F::Output {
    smol::block_on(smol_ex().run(fut))
}

/// `CARGO_TARGET_DIR`, or the `target` directory this binary was built in
/// (`target/release/deps/metrics-…`).
pub fn target_dir() -> std::path::PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return std::path::PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("own path");
    exe.ancestors()
        .nth(3)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from("target"))
}

/// The default settings: enough samples for a stable median in a few seconds.
pub fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
}

/// For workloads whose iteration takes tens of milliseconds.
pub fn config_heavy() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(4))
}

/// A small deterministic generator (xorshift), so every peer gets the same deadlines.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A duration in `0..max`, microsecond-grained.
    pub fn duration_below(&mut self, max: Duration) -> Duration {
        Duration::from_micros(self.next_u64() % max.as_micros() as u64)
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// A helper thread that runs closures on request: "another thread" for the remote
/// workloads, started once so thread creation is not part of what is measured.
pub struct Helper {
    jobs: std::sync::mpsc::Sender<Job>,
}

impl Helper {
    pub fn new() -> Helper {
        let (jobs, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("bench-helper".into())
            .spawn(move || {
                for job in rx {
                    job();
                }
            })
            .expect("helper thread");
        Helper { jobs }
    }

    /// Runs `f` on the helper thread and waits for its result.
    pub fn run<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> R {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.jobs
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .expect("helper thread alive");
        rx.recv().expect("helper job finished")
    }

    /// Starts `f` on the helper thread without waiting.
    pub fn start(&self, f: impl FnOnce() + Send + 'static) {
        self.jobs.send(Box::new(f)).expect("helper thread alive");
    }
}

/// A load generator on the calling thread: keep-alive connections on one mio poll, each
/// sending `payload` and waiting for exactly `response_len` bytes back before sending it
/// again (no pipelining beyond what `payload` itself holds). The same client for every
/// peer, so the server is what differs. Used by P13 (HTTP) and S1 (loop-group echo).
pub struct MioLoad {
    poll: mio::Poll,
    events: mio::Events,
    conns: Vec<LoadConn>,
    payload: &'static [u8],
    response_len: usize,
    /// Exchanges completed since creation (for CPU per exchange).
    pub exchanges: u64,
}

struct LoadConn {
    stream: mio::net::TcpStream,
    /// Bytes of the current response received so far.
    received: usize,
    /// Exchanges still to do in this run, the one in flight included.
    remaining: usize,
}

impl MioLoad {
    /// Takes over connected blocking streams (made non-blocking here).
    pub fn new(
        streams: Vec<std::net::TcpStream>,
        payload: &'static [u8],
        response_len: usize,
    ) -> std::io::Result<MioLoad> {
        let poll = mio::Poll::new()?;
        let mut conns = Vec::with_capacity(streams.len());
        for (i, std) in streams.into_iter().enumerate() {
            std.set_nonblocking(true)?;
            // Readable only once the whole response is queued (Linux honours
            // SO_RCVLOWAT in epoll for TCP): one wake-up and one read per response,
            // however many segments the server wrote it in, so the client stays cheap
            // next to the server it measures.
            set_recv_lowat(&std, response_len)?;
            let mut stream = mio::net::TcpStream::from_std(std);
            poll.registry()
                .register(&mut stream, mio::Token(i), mio::Interest::READABLE)?;
            conns.push(LoadConn {
                stream,
                received: 0,
                remaining: 0,
            });
        }
        Ok(MioLoad {
            poll,
            events: mio::Events::with_capacity(conns.len().max(1)),
            conns,
            payload,
            response_len,
            exchanges: 0,
        })
    }

    /// `rounds` exchanges on every connection.
    pub fn run(&mut self, rounds: usize) -> std::io::Result<()> {
        use std::io::{Error, ErrorKind, Read};
        for conn in &mut self.conns {
            conn.remaining = rounds;
            conn.received = 0;
            send_all_now(&mut conn.stream, self.payload)?;
        }
        let mut open = self.conns.len();
        let mut buf = vec![0u8; 64 * 1024];
        while open > 0 {
            self.poll
                .poll(&mut self.events, Some(Duration::from_secs(10)))?;
            if self.events.is_empty() {
                return Err(Error::other("the server stopped answering"));
            }
            for event in &self.events {
                let conn = &mut self.conns[event.token().0];
                // Read until the response is complete or the socket is drained. Stopping
                // at a complete response (no read that would only say WouldBlock) is
                // safe with edge-triggered readiness: nothing more arrives until the
                // next payload is sent, and that reply raises a new edge.
                while conn.received < self.response_len {
                    match conn.stream.read(&mut buf) {
                        Ok(0) => return Err(Error::other("the server closed a connection")),
                        Ok(n) => conn.received += n,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    }
                }
                if conn.received >= self.response_len {
                    assert_eq!(conn.received, self.response_len, "more than one response");
                    conn.received = 0;
                    conn.remaining -= 1;
                    self.exchanges += 1;
                    if conn.remaining == 0 {
                        open -= 1;
                    } else {
                        send_all_now(&mut conn.stream, self.payload)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// `SO_RCVLOWAT`: the socket reports readable only with at least `bytes` queued.
fn set_recv_lowat(socket: &std::net::TcpStream, bytes: usize) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: `value` outlives the call and the length passed is its size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Writes a small payload to a socket whose previous data the server has consumed: the
/// send buffer has room, so one `write` takes it all.
fn send_all_now(stream: &mut mio::net::TcpStream, payload: &[u8]) -> std::io::Result<()> {
    let n = std::io::Write::write(stream, payload)?;
    assert_eq!(n, payload.len(), "short write of a small payload");
    Ok(())
}

/// CPU time in nanoseconds of a clock (`CLOCK_PROCESS_CPUTIME_ID`, `CLOCK_THREAD_CPUTIME_ID`).
fn cpu_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The CPU the rest of the process (the server threads) spent while this thread (the
/// load client) ran a benchmark: process CPU minus this thread's CPU. Printed per
/// exchange, as the server's cost independent of which side bounds the wall time.
pub struct ServerCpu {
    process: u64,
    client: u64,
    exchanges: u64,
}

impl ServerCpu {
    pub fn start(load: &MioLoad) -> ServerCpu {
        ServerCpu {
            process: cpu_ns(libc::CLOCK_PROCESS_CPUTIME_ID),
            client: cpu_ns(libc::CLOCK_THREAD_CPUTIME_ID),
            exchanges: load.exchanges,
        }
    }

    pub fn report(self, what: &str, load: &MioLoad) {
        let client = cpu_ns(libc::CLOCK_THREAD_CPUTIME_ID) - self.client;
        let server = cpu_ns(libc::CLOCK_PROCESS_CPUTIME_ID) - self.process - client;
        let n = (load.exchanges - self.exchanges).max(1);
        eprintln!(
            "{what}: server CPU {:.0} ns per exchange, client CPU {:.0} ns ({n} exchanges)",
            server as f64 / n as f64,
            client as f64 / n as f64
        );
    }
}
