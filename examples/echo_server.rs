//! A TCP echo server on 127.0.0.1 with graceful shutdown.
//!
//! ```sh
//! cargo run --release --example echo_server -- --port 7878   # 0: any free port
//! printf 'hello\n' | nc 127.0.0.1 7878                       # in another terminal
//! ```
//!
//! Options: `--port N` (default 7878; 0 picks a free port, the first line printed is
//! `listening on ADDR`), `--grace-secs S` (default 10), `--loops N` (default 1), `--help`.
//!
//! On Ctrl-C or SIGTERM it stops accepting, lets the open connections finish (for up to
//! the grace period), and exits with status 0. SIGUSR1 prints a dump of its tasks to
//! stderr (what each one waits on).
//!
//! Built on `net::start_server` (asyncio's): one task per connection, each given an
//! `io::BufReader` and an `io::BufWriter`; the server stops accepting on `close()` and
//! `wait_closed()` waits for the open connections. The counters are shared on the loop
//! with `Rc<Cell<…>>` — no `Send` needed, since everything runs on the loop's thread.
//!
//! `--loops N` runs N loops on N threads (a [`LoopGroup`]), each with its own listener on
//! the same port (`SO_REUSEPORT`): the kernel spreads the connections over the loops.

#[path = "common/args.rs"]
mod args;
#[path = "common/dump.rs"]
mod dump;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use evloop::net::{ListenOptions, StreamReader, StreamWriter, start_server_with};
use evloop::{Error, Future, LoopGroup, LoopHandle, time};

/// Connections that ended after the stop signal, and the bytes they echoed.
#[derive(Default)]
struct Finished {
    stopping: Cell<bool>,
    connections: Cell<usize>,
    bytes: Cell<u64>,
}

/// One connection: echo until the peer's end of stream, then flush and close.
async fn echo(mut r: StreamReader, mut w: StreamWriter, stats: Rc<Finished>) -> Result<(), Error> {
    let mut total = 0u64;
    let result = async {
        loop {
            let data = r.read(16 * 1024).await?;
            if data.is_empty() {
                break;
            }
            w.write(&data)?;
            w.drain().await?; // waits only if the peer does not keep up
            total += data.len() as u64;
        }
        w.close().await?;
        Ok::<_, Error>(())
    }
    .await;
    if stats.stopping.get() {
        stats.connections.set(stats.connections.get() + 1);
        stats.bytes.set(stats.bytes.get() + total);
    }
    result
}

/// The command line (see the module doc).
struct Options {
    port: u16,
    grace: Duration,
    loops: usize,
}

const OPTIONS: &[args::Opt] = &[
    args::Opt::value(
        "--port",
        "N",
        "the port to listen on (default 7878; 0: any free port)",
    ),
    args::Opt::value(
        "--loops",
        "N",
        "loops (threads) sharing the port (default 1)",
    ),
    args::Opt::value(
        "--grace-secs",
        "S",
        "how long open connections may finish after a signal (default 10)",
    ),
];

fn parse_args() -> Options {
    let args = args::Args::parse(
        "echo_server",
        "A TCP echo server on 127.0.0.1; Ctrl-C or SIGTERM stops it gracefully.",
        OPTIONS,
    );
    Options {
        port: args.get("--port", 7878),
        grace: Duration::from_secs(args.get("--grace-secs", 10)),
        loops: args.get_at_least("--loops", 1, 1),
    }
}

/// One loop's server; returns (connections finished, bytes echoed) after shutdown.
/// Loop 0 binds first and hands the port to the others (port 0 picks one), which bind
/// it too with `SO_REUSEPORT`: the kernel spreads connections over the loops.
async fn serve_loop(
    index: usize,
    options: Arc<Options>,
    port: Future<u16>,
) -> Result<(usize, u64), Error> {
    let listen = ListenOptions {
        reuse_port: options.loops > 1,
        ..ListenOptions::default()
    };
    // Completed on loop 0, awaited on the other loops (G5).
    let bind_port = if index == 0 {
        options.port
    } else {
        port.clone().await?
    };
    let stats = Rc::new(Finished::default());
    let server = {
        let stats = stats.clone();
        start_server_with(
            move |r, w| echo(r, w, stats.clone()),
            ("127.0.0.1", bind_port),
            listen,
        )
        .await?
    };
    if index == 0 {
        let addr = server.sockets()[0];
        println!("listening on {addr}");
        let _ = port.set_result(addr.port());
    }

    // Ctrl-C or SIGTERM completes `stop`; the handlers run on this loop.
    let stop: Future<i32> = Future::new();
    let loop_ = LoopHandle::current();
    dump::dump_tasks_on_sigusr1(&loop_)?;
    for signum in [libc::SIGINT, libc::SIGTERM] {
        let stop = stop.clone();
        loop_.add_signal_handler(signum, move || {
            let _ = stop.set_result(signum);
        })?;
    }

    let signum = stop.await?;
    println!("loop {index}: signal {signum}: no longer accepting; waiting for open connections");
    stats.stopping.set(true);
    server.close();
    match time::timeout(options.grace, server.wait_closed()).await {
        Ok(closed) => {
            closed?;
            Ok((stats.connections.get(), stats.bytes.get()))
        }
        Err(e) if e.is_timeout() => {
            println!("loop {index}: grace period over; closing the remaining connections");
            server.close_clients();
            Ok((0, 0))
        }
        Err(e) => Err(e),
    }
}

fn main() -> Result<(), Error> {
    let options = Arc::new(parse_args());
    // One loop per thread (`--loops 1`, the default, is a single loop).
    let group = LoopGroup::new(options.loops)?;
    let port: Future<u16> = Future::with_loop(&group.handles()[0]);
    let results =
        group.block_on_each(move |index, _| serve_loop(index, options.clone(), port.clone()));
    let (mut count, mut bytes) = (0, 0);
    for result in results {
        let (c, b) = result?;
        count += c;
        bytes += b;
    }
    println!("{count} connection(s) finished ({bytes} bytes echoed); bye");
    group.shutdown()
}
