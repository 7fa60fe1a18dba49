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
//! One task per connection; the task list is shared on the loop with `Rc<RefCell<…>>`
//! — no `Send` needed, since everything runs on the loop's thread.
//!
//! `--loops N` runs N loops on N threads (a [`LoopGroup`]), each with its own listener on
//! the same port (`SO_REUSEPORT`): the kernel spreads the connections over the loops.

#[path = "common/args.rs"]
mod args;
#[path = "common/dump.rs"]
mod dump;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use evloop::net::{ListenOptions, TcpListener, TcpStream};
use evloop::{Error, Future, LoopGroup, LoopHandle, Task, create_task};

async fn echo(stream: TcpStream) -> Result<u64, Error> {
    let mut buf = vec![0u8; 16 * 1024];
    let mut total = 0;
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(total);
        }
        stream.write_all(&buf[..n]).await?;
        total += n as u64;
    }
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
    let listener = if index == 0 {
        let listener = TcpListener::bind_with(("127.0.0.1", options.port), listen).await?;
        println!("listening on {}", listener.local_addr()?);
        let _ = port.set_result(listener.local_addr()?.port());
        listener
    } else {
        // Completed on loop 0, awaited on this loop (G5).
        TcpListener::bind_with(("127.0.0.1", port.await?), listen).await?
    };

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

    let connections: Rc<RefCell<Vec<Task<u64>>>> = Rc::default();
    let acceptor = {
        let connections = connections.clone();
        create_task(async move {
            loop {
                // A cancelled accept returns an io::Error wrapping CancelledError;
                // `?` turns it into Error::Cancelled and the task ends cancelled.
                let (stream, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        let e = Error::from(e);
                        if e.is_cancelled() {
                            return Err(e);
                        }
                        eprintln!("accept: {e}"); // e.g. EMFILE: the listener backs off
                        continue;
                    }
                };
                let task = create_task(echo(stream));
                task.set_name(format!("echo {peer}"));
                let mut tasks = connections.borrow_mut();
                tasks.retain(|t| !t.done());
                tasks.push(task);
            }
            #[allow(unreachable_code)]
            Ok::<(), Error>(())
        })
    };

    let signum = stop.await?;
    println!("loop {index}: signal {signum}: no longer accepting; waiting for open connections");
    acceptor.cancel();
    let _ = acceptor.await; // ends cancelled: the listener is dropped with it

    let open: Vec<_> = connections.borrow_mut().drain(..).collect();
    let count = open.len();
    match evloop::wait_for(evloop::gather_results(open), options.grace).await {
        Ok(outcomes) => Ok((count, outcomes.iter().filter_map(|o| o.as_ref().ok()).sum())),
        Err(e) if e.is_timeout() => {
            println!("loop {index}: grace period over; closing the remaining connections");
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
