//! A tour of evloop: timers, callbacks from worker threads, the exception handler,
//! a stop, futures, tasks, gather, locks and queues, blocking work, networking,
//! subprocesses and files, a group of loops, and the loop's statistics.
//!
//! Run with `cargo run --release --example tour`; it exits 0 by itself. It takes no
//! options but `--help`.

#[path = "common/args.rs"]
mod args;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use evloop::{ExceptionContext, Executor, LoopHandle, Runtime, run_on_executor};

/// A service whose blocking work runs on its own thread pool (Tornado's
/// `@run_on_executor`): each method returns an `evloop::Future` at once.
#[derive(Clone)]
struct Resolver {
    executor: Executor,
}

impl Resolver {
    /// DNS resolution blocks in the C library: run it off the loop. A `Result` body
    /// gives `Future<Vec<SocketAddr>>`, its `Err` stored as the future's exception (as
    /// Tornado does), so `gather` fails fast on it.
    #[run_on_executor]
    fn resolve(&self, host: String) -> std::io::Result<Vec<std::net::SocketAddr>> {
        use std::net::ToSocketAddrs;
        Ok((host.as_str(), 80).to_socket_addrs()?.collect())
    }

    /// File I/O blocks too.
    #[run_on_executor]
    fn file_len(&self, path: &'static str) -> std::io::Result<u64> {
        Ok(std::fs::metadata(path)?.len())
    }
}

fn main() -> std::io::Result<()> {
    args::Args::parse(
        "tour",
        "A tour of evloop's features, from timers to a group of loops; it exits 0 by itself.",
        &[],
    );
    let rt = Runtime::new()?;
    let loop_ = rt.handle();
    let start = Instant::now();
    let ms = move || start.elapsed().as_secs_f64() * 1e3;

    println!("== timers fire in deadline order, ties in insertion order");
    let order = Arc::new(Mutex::new(Vec::new()));
    let at = loop_.time() + Duration::from_millis(5);
    for (name, when) in [("c", at + Duration::from_millis(2)), ("a", at), ("b", at)] {
        let order = order.clone();
        loop_.call_at(when, move || {
            order.lock().unwrap().push(name);
            println!("  [{:6.2} ms] timer {name}", ms());
        });
    }
    let never = loop_.call_later(Duration::from_millis(1), || unreachable!("cancelled"));
    never.cancel();

    println!("== a 1 ms sleep, measured");
    rt.block_on(async {
        let t = Instant::now();
        evloop::time::sleep(Duration::from_millis(1)).await.unwrap();
        println!(
            "  slept {:.3} ms (asked for 1.000)",
            t.elapsed().as_secs_f64() * 1e3
        );
        evloop::time::sleep(Duration::from_millis(10))
            .await
            .unwrap();
    });
    assert_eq!(*order.lock().unwrap(), ["a", "b", "c"]);

    println!("== worker threads hand results to the loop with call_soon_threadsafe");
    let received = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..4)
        .map(|id| {
            let loop_ = loop_.clone();
            let received = received.clone();
            thread::spawn(move || {
                for i in 0..1000 {
                    let received = received.clone();
                    loop_.call_soon_threadsafe(move || {
                        let total = received.fetch_add(1, Ordering::Relaxed) + 1;
                        if i == 999 {
                            println!(
                                "  [{:6.2} ms] worker {id} done ({total} results so far)",
                                ms()
                            );
                        }
                        if total == 4000 {
                            LoopHandle::current().stop();
                        }
                    });
                }
            })
        })
        .collect();
    // A timer as a safety net: if a wake-up were lost, the loop would stop here.
    let fallback = loop_.call_later(Duration::from_secs(10), || {
        eprintln!("lost wake-up!");
        LoopHandle::current().stop();
    });
    rt.run_forever();
    fallback.cancel();
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(received.load(Ordering::Relaxed), 4000);

    println!("== a panicking callback is reported, the loop keeps going");
    loop_.set_exception_handler(Some(|_: &LoopHandle, ctx: &ExceptionContext| {
        println!("  exception handler: {ctx}");
    }));
    // Rust's default panic hook prints every panic, caught or not; keep the demo quiet.
    std::panic::set_hook(Box::new(|info| println!("  (panic hook) {info}")));
    loop_.call_soon(|| panic!("something went wrong"));
    loop_.call_soon(|| println!("  ...and the next callback still runs"));
    rt.block_on(evloop::time::sleep(Duration::ZERO)).unwrap();
    let _ = std::panic::take_hook();

    println!("== timeout and interval");
    rt.block_on(async {
        let slow = evloop::time::sleep(Duration::from_secs(60));
        let res = evloop::time::timeout(Duration::from_millis(2), slow).await;
        println!("  timeout(2 ms, sleep(60 s)) -> {}", res.unwrap_err());
        let mut tick = evloop::time::interval(Duration::from_millis(2));
        for _ in 0..3 {
            let t = tick.tick().await.unwrap();
            println!(
                "  tick scheduled at +{:.1} ms",
                (t - start).as_secs_f64() * 1e3
            );
        }
    });

    println!("== futures: worker threads hand results to the loop with set_result");
    rt.block_on(async {
        let futures: Vec<evloop::Future<u64>> = (0..3).map(|_| evloop::Future::new()).collect();
        for (i, fut) in futures.iter().enumerate() {
            let fut = fut.clone();
            thread::spawn(move || {
                let n = (i as u64 + 1) * 10;
                let sum = (1..=n).sum::<u64>(); // some work off the loop
                fut.set_result(sum).unwrap();
            });
        }
        for (i, fut) in futures.into_iter().enumerate() {
            fut.add_done_callback(move |f| println!("  done-callback {i}: {:?}", f.result()));
            println!("  awaited future {i}: {}", fut.await.unwrap());
        }
        // Callbacks of futures that were already done are scheduled, never run inline:
        // give them their turn.
        evloop::yield_now().await.unwrap();
    });

    println!("== tasks: cooperative cancellation, cleanup, and a failing task");
    rt.block_on(async {
        let worker = evloop::create_task(async {
            loop {
                match evloop::time::sleep(Duration::from_millis(1)).await {
                    Ok(()) => continue,
                    Err(e) => {
                        println!("  worker got {e}: cleaning up (asynchronously)");
                        evloop::time::sleep(Duration::from_millis(1)).await?;
                        return Err(e); // propagate: the task ends cancelled
                    }
                }
            }
            #[allow(unreachable_code)]
            Ok::<(), evloop::Error>(())
        });
        worker.set_name("worker");
        let failing = evloop::create_task(async {
            evloop::time::sleep(Duration::from_millis(1)).await?;
            let n: u32 = "not a number".parse()?; // `?` on any std error
            Ok(n)
        });
        evloop::time::sleep(Duration::from_millis(3)).await.unwrap();
        println!(
            "  cancel({}) -> {}",
            worker.name(),
            worker.cancel_with("shutting down")
        );
        let outcome = worker.future().await;
        println!(
            "  worker: cancelled={} outcome={outcome:?}",
            worker.cancelled()
        );
        match failing.await {
            Ok(n) => println!("  failing task returned {n}?"),
            Err(e) => println!("  failing task raised: {e}"),
        }
    });

    println!("== gather: a fan-out of tasks, one failing, one cancelled");
    rt.block_on(async {
        let fetch = |id: u64, ms: u64| {
            evloop::create_task(async move {
                evloop::time::sleep(Duration::from_millis(ms)).await?;
                if id == 3 {
                    return Err(evloop::Error::msg(format!("fetch {id} failed")));
                }
                Ok(id * 100)
            })
        };
        let tasks: Vec<_> = [(1, 3), (2, 1), (3, 2), (4, 50)]
            .into_iter()
            .map(|(id, ms)| fetch(id, ms))
            .collect();
        let slow = tasks[3].future();
        evloop::time::sleep(Duration::from_millis(5)).await.unwrap();
        slow.cancel_with("too slow");
        // gather_results (return_exceptions=True): every outcome, in argument order.
        let outcomes = evloop::gather_results(tasks).await.unwrap();
        for (i, outcome) in outcomes.iter().enumerate() {
            println!("  task {}: {outcome:?}", i + 1);
        }
        // gather: the first failure finishes the outer at once.
        let ok = evloop::gather([fetch(5, 1), fetch(6, 2)]).await.unwrap();
        println!("  gather([5, 6]) = {ok:?}");
        let err = evloop::gather([fetch(7, 1), fetch(3, 1)])
            .await
            .unwrap_err();
        println!("  gather([7, 3]) failed: {err}");
        // gather! for mixed types.
        let name = evloop::create_task(async { Ok::<_, evloop::Error>(String::from("evloop")) });
        let (n, s) = evloop::gather!(fetch(8, 1), name).await.unwrap();
        println!("  gather!(u64, String) = ({n}, {s:?})");
    });

    println!("== structured concurrency: a TaskGroup under a timeout scope, wait, as_completed");
    rt.block_on(async {
        // asyncio: `async with asyncio.timeout(0.02): async with TaskGroup() as tg: ...`
        // A task runs the scope: the deadline cancels the task, the group cancels its
        // children (they clean up), and the scope turns its own cancel into a timeout.
        let outcome = evloop::create_task(async {
            evloop::time::timeout_scope(Duration::from_millis(20), async {
                let tg = evloop::TaskGroup::new();
                for (id, ms) in [(1u64, 2u64), (2, 5), (3, 10_000)] {
                    tg.spawn(async move {
                        match evloop::time::sleep(Duration::from_millis(ms)).await {
                            Ok(()) => println!("  child {id} finished after {ms} ms"),
                            Err(e) => {
                                println!("  child {id} cancelled ({e}), cleaning up");
                                return Err(e);
                            }
                        }
                        Ok(())
                    })?;
                }
                tg.join().await
            })
            .await
        })
        .await;
        println!("  the scope ended with: {outcome:?}");
        // A first failure cancels the siblings; every failure is in the group's error.
        let tg = evloop::TaskGroup::new();
        for id in 1..=3u64 {
            tg.spawn(async move {
                evloop::time::sleep(Duration::from_millis(id)).await?;
                if id == 1 {
                    return Err(evloop::Error::msg("child 1 failed"));
                }
                Ok(())
            })
            .unwrap();
        }
        let err = evloop::create_task(async move { tg.join().await })
            .await
            .unwrap_err();
        println!("  TaskGroup::join: {err}");
        // wait(FIRST_COMPLETED) and as_completed over plain futures.
        let futs: Vec<evloop::Future<u64>> = (0..3).map(|_| evloop::Future::new()).collect();
        let loop_ = evloop::LoopHandle::current();
        for (i, f) in futs.iter().enumerate() {
            let f = f.clone();
            loop_.call_later(Duration::from_millis(3 - i as u64), move || {
                let _ = f.set_result(i as u64);
            });
        }
        let (done, pending) = evloop::wait(futs.clone(), None, evloop::ReturnWhen::FirstCompleted)
            .await
            .unwrap();
        println!(
            "  wait(FirstCompleted): {} done, {} pending",
            done.len(),
            pending.len()
        );
        let mut order = Vec::new();
        let mut it = evloop::as_completed(futs, Some(Duration::from_secs(1)));
        while let Some(r) = it.next().await {
            order.push(r.unwrap());
        }
        println!("  as_completed order: {order:?}");
    });

    println!("== sync: a Semaphore bounds concurrent work, a Queue collects the results");
    rt.block_on(async {
        // Ten fetches, at most three in flight (asyncio's `async with sem:`).
        let limit = evloop::sync::Semaphore::new(3);
        let results = evloop::sync::Queue::new(0);
        let in_flight = std::rc::Rc::new(std::cell::Cell::new(0usize));
        let peak = std::rc::Rc::new(std::cell::Cell::new(0usize));
        for id in 0..10u64 {
            let (limit, results) = (limit.clone(), results.clone());
            let (in_flight, peak) = (in_flight.clone(), peak.clone());
            evloop::create_task(async move {
                let _permit = limit.acquire().await?;
                in_flight.set(in_flight.get() + 1);
                peak.set(peak.get().max(in_flight.get()));
                evloop::time::sleep(Duration::from_millis(1 + id % 3)).await?;
                in_flight.set(in_flight.get() - 1);
                results.put(id).await
            });
        }
        let mut done = Vec::new();
        for _ in 0..10 {
            done.push(results.get().await.unwrap());
        }
        println!(
            "  10 fetches done, at most {} at once: {done:?}",
            peak.get()
        );
    });

    println!("== blocking work off the loop: #[run_on_executor] and spawn_blocking");
    rt.block_on(async {
        let resolver = Resolver {
            executor: Executor::new(2),
        };
        let both = evloop::gather!(
            resolver.resolve("localhost".into()),
            resolver.file_len("Cargo.toml")
        );
        match both.await {
            Ok((addrs, len)) => {
                println!("  localhost resolves to {} address(es)", addrs.len());
                println!("  Cargo.toml is {len} bytes");
            }
            Err(e) => println!("  a blocking job failed (gather fails fast): {e}"),
        }
        let who = evloop::spawn_blocking(|| std::thread::current().name().map(String::from))
            .await
            .unwrap();
        println!("  spawn_blocking ran on {who:?}");
        resolver.executor.shutdown(true);
    });

    println!("== networking: a loopback TCP echo round");
    rt.block_on(async {
        let listener = evloop::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = evloop::create_task(async move {
            let (stream, peer) = listener.accept().await?;
            let mut buf = [0u8; 1024];
            loop {
                let n = stream.read(&mut buf).await?;
                if n == 0 {
                    return Ok::<_, evloop::Error>(peer);
                }
                stream.write_all(&buf[..n]).await?;
            }
        });
        let client = evloop::net::TcpStream::connect(addr).await?;
        client.set_nodelay(true)?;
        let t = Instant::now();
        for round in 0..100u32 {
            client.write_all(&round.to_le_bytes()).await?;
            let mut back = [0u8; 4];
            client.read_exact(&mut back).await?;
            assert_eq!(u32::from_le_bytes(back), round);
        }
        let per_round = t.elapsed() / 100;
        client.shutdown(std::net::Shutdown::Write)?;
        let peer = server.await?;
        println!("  100 round trips via {addr} from {peer}: {per_round:?} each");
        Ok::<_, evloop::Error>(())
    })
    .unwrap();

    println!("== subprocesses and files: evloop::process and evloop::fs");
    rt.block_on(async {
        use evloop::process::{Command, Stdio, create_subprocess_shell};
        // asyncio's create_subprocess_exec + communicate: stdin fed and stdout read at
        // once, the exit awaited through a pidfd on the reactor (no thread per child).
        let mut child = Command::new("tr")
            .args(["a-z", "A-Z"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let pid = child.id();
        let out = child.communicate(b"hello from a child process").await?;
        println!(
            "  tr (pid {pid:?}) answered {:?}, {}",
            String::from_utf8_lossy(&out.stdout),
            out.status
        );
        let status = create_subprocess_shell("exit 3").status().await?;
        println!("  sh -c 'exit 3' exited with code {:?}", status.code());
        match Command::new("evloop-no-such-program").spawn() {
            Err(missing) => println!("  a missing program: {missing}"),
            // Under valgrind, which runs the exec itself, the failure shows as the
            // child's exit instead of a spawn error.
            Ok(mut child) => println!("  a missing program exited with {}", child.wait().await?),
        }

        // Files on the blocking pool, errors naming their paths.
        let path = std::env::temp_dir().join(format!("evloop-tour-{}.txt", std::process::id()));
        evloop::fs::write(&path, "one\ntwo\nthree\n").await?;
        let text = evloop::fs::read_to_string(&path).await?;
        println!(
            "  wrote and read back {} lines of {}",
            text.lines().count(),
            path.display()
        );
        // An open File: read ahead in large batches on the pool, lines through BufReader.
        let file = evloop::fs::File::open("Cargo.toml").await?;
        let mut lines = evloop::io::BufReader::new(file).lines();
        let first = lines.next_line().await?.unwrap_or_default();
        let mut count = 1;
        while lines.next_line().await?.is_some() {
            count += 1;
        }
        println!("  Cargo.toml through fs::File: {count} lines, the first {first:?}");
        evloop::fs::remove_file(&path).await?;
        let gone = evloop::fs::read(&path).await.unwrap_err();
        println!("  after remove_file: {gone}");
        Ok::<_, std::io::Error>(())
    })?;

    println!("== many loops: a LoopGroup of 2, one port shared with SO_REUSEPORT");
    {
        use evloop::net::{ListenOptions, TcpListener};
        let group = evloop::LoopGroup::new(2)?;
        // Loop 0 binds port 0 and hands the port to loop 1 through a Future bound to
        // loop 0 (awaited across loops); every loop echoes on its own listener.
        let port = evloop::Future::<u16>::with_loop(&group.handles()[0]);
        let stop = evloop::Future::<()>::with_loop(&group.handles()[0]);
        let (port_rx, stop_tx) = (port.clone(), stop.clone());
        let services = std::thread::spawn(move || {
            group.block_on_each(move |index, handle| {
                let (port, stop) = (port.clone(), stop.clone());
                async move {
                    let options = ListenOptions {
                        reuse_port: true,
                        ..Default::default()
                    };
                    let listener = if index == 0 {
                        let l = TcpListener::bind_with("127.0.0.1:0", options).await?;
                        let _ = port.set_result(l.local_addr()?.port());
                        l
                    } else {
                        TcpListener::bind_with(("127.0.0.1", port.await?), options).await?
                    };
                    let accepting = evloop::create_task(async move {
                        loop {
                            let (s, _) = listener.accept().await?;
                            evloop::create_task(async move {
                                let mut buf = [0u8; 64];
                                let n = s.read(&mut buf).await?;
                                s.write_all(&buf[..n]).await?;
                                Ok::<_, evloop::Error>(())
                            });
                        }
                        #[allow(unreachable_code)]
                        Ok::<(), evloop::Error>(())
                    });
                    stop.await?;
                    accepting.cancel();
                    Ok::<_, evloop::Error>(handle.stats().accepts)
                }
            })
        });
        // A plain thread is the client: 32 connections, each echoed by whichever loop
        // the kernel picked.
        let port = loop {
            if let Some(Ok(p)) = port_rx.done().then(|| port_rx.result()) {
                break p;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        for i in 0..32u8 {
            use std::io::{Read, Write};
            let mut c = std::net::TcpStream::connect(("127.0.0.1", port))?;
            c.write_all(&[i])?;
            let mut b = [0u8; 1];
            c.read_exact(&mut b)?;
            assert_eq!(b[0], i);
        }
        let _ = stop_tx.set_result(());
        let accepts: Vec<u64> = services
            .join()
            .unwrap()
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        println!("  32 connections, accepted per loop: {accepts:?}");
    }

    println!("== stats");
    let stats = loop_.stats();
    println!("  {stats:#?}");
    println!(
        "  {} cross-thread schedules cost {} wake-up syscalls",
        stats.remote_schedules, stats.wakeups
    );
    drop(rt);
    let h = loop_.call_soon_threadsafe(|| unreachable!("the loop is closed"));
    println!(
        "== after the runtime is dropped: closed={} handle.cancelled()={}",
        loop_.is_closed(),
        h.cancelled()
    );
    Ok(())
}
