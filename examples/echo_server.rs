//! A TCP echo server on 127.0.0.1 with graceful shutdown.
//!
//! ```sh
//! cargo run --release --example echo_server -- 7878      # port (0: any free port)
//! printf 'hello\n' | nc 127.0.0.1 7878                   # in another terminal
//! ```
//!
//! On Ctrl-C or SIGTERM it stops accepting, lets the open connections finish (for up to
//! a grace period, 10 s by default, second argument), and exits with status 0.
//!
//! One task per connection; the task list is shared on the loop with `Rc<RefCell<…>>`
//! — no `Send` needed, since everything runs on the loop's thread.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use evloop::net::{TcpListener, TcpStream};
use evloop::{Error, Future, LoopHandle, Task, create_task};

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

#[evloop::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().map(|p| p.parse()).transpose()?.unwrap_or(7878);
    let grace = Duration::from_secs(args.next().map(|s| s.parse()).transpose()?.unwrap_or(10));

    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on {}", listener.local_addr()?);

    // Ctrl-C or SIGTERM completes `stop`; the handlers run on the loop.
    let stop: Future<i32> = Future::new();
    let loop_ = LoopHandle::current();
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
    println!("signal {signum}: no longer accepting; waiting for open connections");
    acceptor.cancel();
    let _ = acceptor.await; // ends cancelled: the listener is dropped with it

    let open: Vec<_> = connections.borrow_mut().drain(..).collect();
    let count = open.len();
    let finished = evloop::wait_for(evloop::gather_results(open), grace).await;
    match finished {
        Ok(outcomes) => {
            let bytes: u64 = outcomes.iter().filter_map(|o| o.as_ref().ok()).sum();
            println!("{count} connection(s) finished ({bytes} bytes echoed); bye");
        }
        Err(e) if e.is_timeout() => {
            println!("grace period over; closing the remaining connections")
        }
        Err(e) => return Err(e),
    }
    Ok(())
}
